// Fuzz target: the GGUF reader on arbitrary bytes, then everything the frontend does with a file it accepted
// (architecture recognition, tokenizer keys, decoding every tensor, lowering). Any input may be refused with
// bitnet::Error; none may crash, hang or read out of bounds.
#include "frontend/gguf.h"
#include "frontend/lower.h"
#include "frontend/model.h"
#include "frontend/tokenizer_gguf.h"
#include "ir/error.h"
#include "tests/fuzz/fuzz_target.h"

#include <cstdint>
#include <vector>

FUZZ_ENTRY(gguf) {
  try {
    auto file = bitnet::gguf::File::from_memory(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    for (const auto& t : file.tensors()) {
      if (t.n_elements() > (1 << 22)) continue;  // decoding is checked, not timed
      std::vector<float> out(static_cast<size_t>(t.n_elements()));
      bitnet::decode_to_f32(t.type, file.tensor_data(t), t.n_elements(), out.data());
    }
    try {
      bitnet::read_tokenizer_vocab(file);
    } catch (const bitnet::Error&) {
    }
    bitnet::lower_model(file, bitnet::LowerOptions{});
  } catch (const bitnet::Error&) {
  }
  return 0;
}
