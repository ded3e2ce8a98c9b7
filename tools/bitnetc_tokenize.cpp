// `bitnetc tokenize model.gguf|model.bundle -p TEXT|-f FILE [--ids] [--ids-out FILE]`: the model's tokenizer
// on a text. --ids-out writes the ids as raw little-endian int32 (training data for training/train.py).
#include "frontend/gguf.h"
#include "frontend/tokenizer_gguf.h"
#include "ir/atomic_file.h"
#include "ir/error.h"
#include "runtime/bundle.h"
#include "runtime/tokenizer.h"
#include "tools/commands.h"

#include <cstring>
#include <fstream>

namespace bitnet::tools {

Command add_tokenize_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "tokenize a text with a model's tokenizer");
  struct Args {
    std::string model, prompt, file, ids_out;
    bool ids = false, no_bos = false, parse_special = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->model, "model.gguf or model.bundle")->required();
  auto* prompt = cmd->add_option("-p,--prompt", a->prompt, "text to tokenize");
  auto* file = cmd->add_option("-f,--file", a->file, "read the text from a file");
  prompt->excludes(file);
  cmd->add_option("--ids-out", a->ids_out, "write the ids as raw little-endian int32 to this file");
  cmd->add_flag("--ids", a->ids, "print only the ids, as a list");
  cmd->add_flag("--no-bos", a->no_bos, "do not prepend BOS");
  cmd->add_flag("--parse-special", a->parse_special, "turn special-token text into its id");
  return [a, prompt, file] {
    if (!*prompt && !*file) fail("tokenize: give the text with -p TEXT or -f FILE");
    if (*file) {
      std::ifstream in(a->file, std::ios::binary);
      if (!in) fail("{}: cannot open", a->file);
      a->prompt.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::ifstream probe(a->model, std::ios::binary);
    if (!probe) fail("{}: cannot open", a->model);
    char magic[8] = {};
    probe.read(magic, 8);
    TokenizerVocab vocab = std::memcmp(magic, kBundleMagic, 8) == 0
                               ? TokenizerVocab::deserialize(Bundle::open(a->model).section("tokenizer"), a->model + ":tokenizer")
                               : read_tokenizer_vocab(gguf::File::open(a->model));
    Tokenizer tokenizer(std::move(vocab));
    auto ids = tokenizer.encode(a->prompt, tokenizer.add_bos() && !a->no_bos, a->parse_special);
    if (!a->ids_out.empty()) {
      AtomicFile out(a->ids_out);  // int32 in host order; bitnetc targets little-endian machines only
      out.write(ids.data(), ids.size() * sizeof(int32_t));
      out.commit();
      std::fprintf(stderr, "wrote %s: %zu tokens\n", a->ids_out.c_str(), ids.size());
      return 0;
    }
    if (a->ids) {
      std::printf("[");
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
      std::printf("]\n");
      return 0;
    }
    for (int32_t id : ids) {
      std::string piece = tokenizer.token_to_piece(id, true);
      std::printf("%6d -> '%s'\n", id, piece.c_str());
    }
    return 0;
  };
}

}  // namespace bitnet::tools
