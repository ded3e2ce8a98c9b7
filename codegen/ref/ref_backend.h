// The reference backend: executes an IR module op by op with plain scalar loops, written for clarity and
// exactness (double accumulators where summation order would otherwise matter). It is the semantics
// oracle every other backend is tested against, and it is slow by design.
#pragma once

#include "codegen/backend.h"
#include "ir/ir.h"
#include "ir/weight_layout.h"

#include <span>
#include <vector>

namespace bitnet::ref {

// K and V of every layer for every sequence slot: [layer][seq][position][kv features], f32.
class KvCache {
 public:
  KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim);
  float* k(int64_t layer, int64_t seq, int64_t pos) { return k_.data() + index(layer, seq, pos); }
  float* v(int64_t layer, int64_t seq, int64_t pos) { return v_.data() + index(layer, seq, pos); }
  int64_t n_seq() const { return n_seq_; }
  int64_t n_ctx() const { return n_ctx_; }
  int64_t kv_dim() const { return kv_dim_; }
  int64_t n_layer() const { return n_layer_; }

 private:
  size_t index(int64_t layer, int64_t seq, int64_t pos) const {
    return static_cast<size_t>(((layer * n_seq_ + seq) * n_ctx_ + pos) * kv_dim_);
  }
  int64_t n_layer_, n_seq_, n_ctx_, kv_dim_;
  std::vector<float> k_, v_;
};

// Where each f32 value lives in the step's arena: value v at arena + T * offset[v], the arena holding
// T * floats_per_token floats (see passes/memory_plan.h). Empty: every value gets its own slot.
struct ArenaLayout {
  std::vector<int64_t> offset;  // per value id; -1 for i32 inputs
  int64_t floats_per_token = 0;
  static ArenaLayout separate(const ir::Module& m);
};

class Executor {
 public:
  Executor(const ir::Module& module, std::vector<WeightView> weights, ArenaLayout layout);
  // Runs one step of T tokens and returns the function's output, row-major [T, N].
  std::span<const float> run(const StepInputs& inputs, KvCache& cache);

 private:
  float* buffer(int value, int64_t T) { return arena_.data() + T * layout_.offset[value]; }
  const ir::Module& m_;
  std::vector<WeightView> weights_;
  ArenaLayout layout_;
  std::vector<float> arena_;    // grows to the largest T seen, then steps allocate nothing here
  std::vector<float> scratch_;  // the full matmul output inside bitlinear_glu and qkv_rope_cache
  std::vector<float> k_scratch_, v_scratch_;
};

// The ref backend behind the runtime's interface: the executor and its KV cache.
class RefStepExecutor : public StepExecutor {
 public:
  RefStepExecutor(const ir::Module& module, std::vector<WeightView> weights, ArenaLayout layout, int64_t n_layer, int64_t n_seq,
                  int64_t n_ctx, int64_t kv_dim)
      : cache_(n_layer, n_seq, n_ctx, kv_dim), executor_(module, std::move(weights), std::move(layout)), n_vocab_(0) {
    n_vocab_ = module.values[module.output].type.dims.back();
  }
  std::span<const float> run(const StepInputs& inputs) override {
    auto logits = executor_.run(inputs, cache_);
    return inputs.all_logits ? logits : logits.subspan(logits.size() - static_cast<size_t>(n_vocab_));
  }

 private:
  KvCache cache_;
  Executor executor_;
  int64_t n_vocab_;
};

}  // namespace bitnet::ref
