// A loaded bundle: the mapped file, its optimized IR parsed back, the tokenizer, the metadata, and a view of
// every weight. Engine runs steps on it: it owns the KV cache (n_ctx positions for each of n_seq sequence
// slots) and checks every token id, position and slot before a backend sees them.
#pragma once

#include "codegen/backend.h"
#include "codegen/ref/ref_backend.h"
#include "ir/ir.h"
#include "ir/weight_layout.h"
#include "runtime/bundle.h"
#include "runtime/tokenizer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <span>
#include <string>

namespace bitnet {

class Model {
 public:
  // Opens and validates `path`; refuses a bundle whose target this runtime cannot execute.
  static std::unique_ptr<Model> load(const std::string& path);
  // Validates and binds an opened bundle (fuzzing and tests hand one built in memory).
  static std::unique_ptr<Model> from_bundle(Bundle bundle);

  const std::string& path() const { return bundle_.path(); }
  const std::string& target() const { return bundle_.target(); }
  const ir::Module& module() const { return module_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const nlohmann::json& meta() const { return meta_; }
  const std::vector<WeightView>& weights() const { return weights_; }
  int64_t n_vocab() const { return meta_.at("n_vocab").get<int64_t>(); }
  int64_t n_ctx_train() const { return meta_.at("n_ctx_train").get<int64_t>(); }
  uint64_t weight_bytes() const { return weight_bytes_; }
  // Bytes of weights one decoded token reads: every weight whole, except tables only looked up by `embed`
  // (one row each), such as the f16 embedding when an int8 LM head replaces it as the output matrix.
  uint64_t weight_bytes_per_token() const;
  const ref::ArenaLayout& arena_layout() const { return arena_; }
  // A section of the bundle by name (throws when absent): the CUDA backend reads "kernels".
  std::span<const uint8_t> section(const std::string& name) const { return bundle_.section(name); }
  bool has_section(const std::string& name) const { return bundle_.has(name); }

 private:
  explicit Model(Bundle bundle) : bundle_(std::move(bundle)) {}
  Bundle bundle_;
  ir::Module module_;
  nlohmann::json meta_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<WeightView> weights_;
  uint64_t weight_bytes_ = 0;
  ref::ArenaLayout arena_;
};

struct EngineOptions {
  int threads = 0;           // x86: worker threads, 0 = physical cores (ref is single-threaded)
  std::string isa = "auto";  // x86: auto, avx2 or avx512vnni
};

class Engine {
 public:
  Engine(const Model& model, int64_t n_ctx, int64_t n_seq, const EngineOptions& options = {});
  ~Engine();
  // Runs T tokens (each with its position and sequence slot) and returns logits [T, n_vocab], or only
  // the last token's row [1, n_vocab] when `all_logits` is false (prompt processing).
  std::span<const float> step(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq,
                              bool all_logits = true);
  // The same step, returning the greedy token of each row (or of the last, as `all_logits`): on a GPU
  // the argmax runs there and only the ids come back.
  std::vector<int32_t> step_greedy(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq,
                                   bool all_logits = true);
  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_seq() const { return n_seq_; }
  int threads() const { return threads_; }
  const std::string& isa() const { return isa_; }
  // GB/s at which a GPU reads its own memory, measured now (the decode roofline of a CUDA bundle); 0 when
  // the weights stream from host memory.
  double device_read_bandwidth_gb_s() { return executor_->device_read_bandwidth_gb_s(); }
  // Which fused element-wise kernels run (x86: LLVM-generated from the bundle, or intrinsics).
  const std::string& fused_kernels() const { return fused_kernels_; }

 private:
  void check_step(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq) const;
  const Model& model_;
  int64_t n_ctx_, n_seq_;
  int threads_ = 1;
  std::string isa_ = "scalar", fused_kernels_ = "none";
  std::unique_ptr<StepExecutor> executor_;
};

}  // namespace bitnet
