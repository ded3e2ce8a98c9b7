// `bitnetc import`: a model trained outside bitnetc → GGUF.
//   bitnetc import --tokenizer tok.json -o vocab.gguf
//       a vocabulary-only GGUF (for `bitnetc tokenize`, e.g. to make training ids);
//   bitnetc import --tokenizer tok.json --weights DIR --type i2_s|tq1_0|tq2_0|f16|f32 -o model.gguf
//       a full BitNet b1.58 model (arch bitnet-b1.58, the 2B4T keys and tensor names, F16 tied embedding,
//       F32 norms, BitLinear weights as trit × per-tensor scale in the chosen type).
// The two input formats — the tokenizer JSON of training/train_bpe.py and the weight dump folder
// (manifest.json + one data file: float tensors as f32/f16, BitLinear weights as 2-bit codes, code = trit+1,
// four per byte, lowest bits first, plus one scale each) — are specified in full at the top of
// frontend/import.h, next to the code that reads them. The output is written to a temporary and renamed.
#include "frontend/import.h"
#include "ir/error.h"
#include "tools/commands.h"

#include <chrono>
#include <filesystem>

namespace bitnet::tools {

Command add_import_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("import", "tokenizer JSON (+ weight dump) from training/ -> GGUF");
  struct Args {
    std::string tokenizer, weights, out, type = "i2_s";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--tokenizer", a->tokenizer, "tokenizer JSON (training/train_bpe.py)")->required();
  cmd->add_option("--weights", a->weights, "weight dump folder with manifest.json (training/train.py); without it, write a vocabulary-only GGUF");
  cmd->add_option("--type", a->type, "BitLinear weight type: i2_s, tq1_0, tq2_0, f16, f32");
  cmd->add_option("-o,--output", a->out, "output GGUF path")->required();
  return [a] {
    auto start = std::chrono::steady_clock::now();
    if (a->weights.empty()) {
      ImportedTokenizer tokenizer = read_tokenizer_json(a->tokenizer);
      write_vocab_gguf(tokenizer, a->out);
      std::fprintf(stderr, "wrote %s: vocabulary of %zu tokens, %zu merges\n", a->out.c_str(),
                   tokenizer.vocab.tokens.size(), tokenizer.vocab.merges.size());
      return 0;
    }
    auto type = tensor_type_from_name(a->type);
    if (!type || *type == TensorType::BF16 || *type == TensorType::Q8_0)
      fail("--type: '{}' is not one of i2_s, tq1_0, tq2_0, f16, f32", a->type);
    ImportSummary summary = import_model(a->tokenizer, a->weights, *type, a->out);
    if (summary.scales_rounded > 0)
      std::fprintf(stderr, "note: %d BitLinear scales were rounded to the nearest f16 value\n", summary.scales_rounded);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const SynthShape& s = summary.shape;
    std::fprintf(stderr,
                 "wrote %s (%.1f MB, %s): hidden %lld, layers %lld, heads %lld/%lld, ffn %lld, vocab %lld, "
                 "%.1fM parameters, %.1f s\n",
                 a->out.c_str(), std::filesystem::file_size(a->out) / 1e6, a->type.c_str(), (long long)s.hidden,
                 (long long)s.layers, (long long)s.heads, (long long)s.kv_heads, (long long)s.ffn, (long long)s.vocab,
                 summary.parameters / 1e6, seconds);
    return 0;
  };
}

}  // namespace bitnet::tools
