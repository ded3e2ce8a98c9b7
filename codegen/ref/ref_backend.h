// The reference backend: executes an IR module op by op with plain scalar loops, written for clarity and
// exactness (double accumulators where summation order would otherwise matter). It is the semantics
// oracle every other backend is tested against, and it is slow by design.
#pragma once

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

struct StepInputs {
  std::span<const int32_t> tokens, pos, seq;  // T each; the caller has range-checked them
};

class Executor {
 public:
  Executor(const ir::Module& module, std::vector<WeightView> weights);
  // Runs one step of T tokens and returns the function's output, row-major [T, N].
  std::span<const float> run(const StepInputs& inputs, KvCache& cache);
  // The f32 contents of any value after the last run (tests compare intermediates).
  std::span<const float> value(int id) const { return buffers_.at(id); }

 private:
  const ir::Module& m_;
  std::vector<WeightView> weights_;
  std::vector<std::vector<float>> buffers_;  // per value; i32 inputs are read from StepInputs
};

}  // namespace bitnet::ref
