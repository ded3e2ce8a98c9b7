// `bitnetc tokenize model.gguf|model.bundle -p TEXT [--ids]`: the model's tokenizer on a text.
#include "frontend/gguf.h"
#include "frontend/tokenizer_gguf.h"
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
    std::string model, prompt;
    bool ids = false, no_bos = false, parse_special = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->model, "model.gguf or model.bundle")->required();
  cmd->add_option("-p,--prompt", a->prompt, "text to tokenize")->required();
  cmd->add_flag("--ids", a->ids, "print only the ids, as a list");
  cmd->add_flag("--no-bos", a->no_bos, "do not prepend BOS");
  cmd->add_flag("--parse-special", a->parse_special, "turn special-token text into its id");
  return [a] {
    std::ifstream probe(a->model, std::ios::binary);
    if (!probe) fail("{}: cannot open", a->model);
    char magic[8] = {};
    probe.read(magic, 8);
    TokenizerVocab vocab = std::memcmp(magic, kBundleMagic, 8) == 0
                               ? TokenizerVocab::deserialize(Bundle::open(a->model).section("tokenizer"), a->model + ":tokenizer")
                               : read_tokenizer_vocab(gguf::File::open(a->model));
    Tokenizer tokenizer(std::move(vocab));
    auto ids = tokenizer.encode(a->prompt, tokenizer.add_bos() && !a->no_bos, a->parse_special);
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
