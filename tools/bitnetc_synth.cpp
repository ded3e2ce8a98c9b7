// `bitnetc synth`: writes a synthetic BitNet GGUF of the 2B4T (default) or any other shape.
#include "frontend/synth.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "tools/commands.h"

#include <chrono>
#include <filesystem>

namespace bitnet::tools {

Command add_synth_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth", "write a synthetic BitNet b1.58 GGUF");
  struct Args {
    std::string out, type = "i2_s", shape = "2b4t", vocab;
    uint64_t seed = 1;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("-o,--output", args->out, "output GGUF path")->required();
  cmd->add_option("--type", args->type, "BitLinear weight type: i2_s, tq1_0, tq2_0, f16, f32");
  cmd->add_option("--shape", args->shape, "2b4t, tiny, or hidden=..,layers=..,heads=..,kv-heads=..,ffn=..,vocab=..");
  cmd->add_option("--seed", args->seed, "random seed");
  cmd->add_option("--vocab", args->vocab, "GGUF with the Llama-3 tokenizer (default: the repository's copy)");
  return [args] {
    SynthOptions options;
    options.shape = parse_synth_shape(args->shape);
    auto type = tensor_type_from_name(args->type);
    if (!type || *type == TensorType::BF16 || *type == TensorType::Q8_0) {
      fail("--type: '{}' is not one of i2_s, tq1_0, tq2_0, f16, f32", args->type);
    }
    options.type = *type;
    options.seed = args->seed;
    options.vocab_path = args->vocab.empty() ? std::string(BITNETC_SOURCE_DIR "/tests/data/llama3-vocab.gguf") : args->vocab;
    auto start = std::chrono::steady_clock::now();
    Progress progress("synth");
    synthesize_model(options, args->out, [&](size_t done, size_t total) { progress.update(done, total); });
    progress.finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "wrote %s (%.1f MB) in %.1f s\n", args->out.c_str(),
                 std::filesystem::file_size(args->out) / 1e6, seconds);
    return 0;
  };
}

}  // namespace bitnet::tools
