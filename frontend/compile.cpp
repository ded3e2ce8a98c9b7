#include "frontend/compile.h"

#include "frontend/tokenizer_gguf.h"
#include "ir/error.h"
#include "ir/weight_layout.h"
#include "runtime/bundle.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace bitnet {

CompileReport compile_gguf(const std::string& gguf_path, const std::string& bundle_path, const CompileOptions& options,
                           const std::function<void(size_t, size_t)>& progress) {
  if (options.target != "ref") {
    fail("--target: '{}' is not available in this build (available: ref; x86 and cuda are not built yet)", options.target);
  }
  auto file = gguf::File::open(gguf_path);
  LoweredModel lowered = lower_model(file, options.lower);
  TokenizerVocab vocab = read_tokenizer_vocab(file);
  const HParams& hp = lowered.hparams;

  nlohmann::json meta{{"arch", hp.arch}, {"name", hp.name}, {"n_vocab", hp.n_vocab}, {"n_ctx_train", hp.n_ctx_train},
                      {"n_embd", hp.n_embd}, {"n_layer", hp.n_layer}, {"n_ff", hp.n_ff}, {"n_head", hp.n_head},
                      {"n_head_kv", hp.n_head_kv}, {"head_dim", hp.head_dim}, {"ffn_act", ffn_activation_name(hp.ffn_act)},
                      {"act_quant", options.lower.act_quant}, {"target", options.target},
                      {"source", std::filesystem::path(gguf_path).filename().string()}};

  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < lowered.weights.size(); ++i) {
    const auto& w = lowered.module.weights[i];
    if (lowered.weights[i].nbytes != weight_nbytes(w.type)) fail("internal: weight @{} payload size mismatch", w.name);
    offsets.push_back(offset);
    table.push_back({{"name", w.name}, {"offset", offset}, {"nbytes", lowered.weights[i].nbytes}});
    offset = (offset + lowered.weights[i].nbytes + kBundleAlignment - 1) / kBundleAlignment * kBundleAlignment;
  }
  nlohmann::json plan{{"weights", table}, {"n_ops", lowered.module.nodes.size()}};

  BundleWriter writer(options.target, "bitnetc " BITNETC_VERSION);
  writer.add_section("meta", meta.dump(1));
  auto vocab_bytes = vocab.serialize();
  writer.add_section("tokenizer", std::string(vocab_bytes.begin(), vocab_bytes.end()));
  writer.add_section("ir", ir::print(lowered.module));
  writer.add_section("plan", plan.dump(1));
  const auto& payloads = lowered.weights;
  writer.add_section("weights", offset, [&](uint8_t* out) {
    for (size_t i = 0; i < payloads.size(); ++i) {
      payloads[i].fill(out + offsets[i]);
      if (progress) progress(i + 1, payloads.size());
    }
  });
  writer.write(bundle_path);
  CompileReport report;
  report.bundle_bytes = std::filesystem::file_size(bundle_path);
  report.n_ops = lowered.module.nodes.size();
  report.n_weights = lowered.module.weights.size();
  report.notes = lowered.notes;
  return report;
}

std::string lowered_ir_text(const std::string& gguf_path, const LowerOptions& options) {
  auto file = gguf::File::open(gguf_path);
  return ir::print(lower_model(file, options).module);
}

}  // namespace bitnet
