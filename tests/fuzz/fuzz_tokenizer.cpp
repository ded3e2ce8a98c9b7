// Fuzz target: the Llama-3 tokenizer on arbitrary bytes (with and without special-token parsing), and
// encode -> decode identity whenever the input is valid UTF-8 (decode never drops or changes a byte).
#include "frontend/gguf.h"
#include "frontend/tokenizer_gguf.h"
#include "ir/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "ir/text_utils.h"
#include "runtime/tokenizer.h"

#include <cstdint>
#include <cstdlib>

namespace {
const bitnet::Tokenizer& llama3() {
  static const bitnet::Tokenizer tokenizer = [] {
    auto file = bitnet::gguf::File::open(BITNETC_SOURCE_DIR "/tests/data/llama3-vocab.gguf");
    return bitnet::Tokenizer(bitnet::read_tokenizer_vocab(file));
  }();
  return tokenizer;
}
}  // namespace

FUZZ_ENTRY(tokenizer) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const bitnet::Tokenizer* tokenizer = &llama3();
  try {
    auto special = tokenizer->encode(text, true, true);
    auto plain = tokenizer->encode(text, false, false);
    if (bitnet::valid_utf8(text) && tokenizer->decode(plain, false) != text) std::abort();
    (void)special;
  } catch (const bitnet::Error&) {
  }
  return 0;
}
