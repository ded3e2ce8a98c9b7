// The x86 backend: executes the optimized IR of an x86 bundle with ternary matmuls JIT-compiled by xbyak
// for the CPU present (codegen/x86/ternary_kernel.h), the fused element-wise kernels LLVM generated for the
// bundle or else AVX2 intrinsics (codegen/x86/fused_kernels.h), and a
// thread pool that splits each op by output rows (or heads, or tokens). Ternary weights arrive in the x86
// layout of ir/weight_layout.h, repacked at compile time, so binding them is pointer arithmetic on the map.
// The KV cache holds IEEE halves. Results match ref within the tolerances stated in tests/test_x86.cpp.
#pragma once

#include "codegen/backend.h"
#include "codegen/ref/ref_backend.h"
#include "codegen/x86/fused_kernels.h"
#include "codegen/x86/ternary_kernel.h"
#include "codegen/x86/thread_pool.h"
#include "ir/ir.h"
#include "ir/weight_layout.h"

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet::x86 {

// What the CPU running this process can do, as the backend needs it.
struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false, avx512 = false, avx512_vnni = false;
  static CpuFeatures detect();
  std::string describe() const;  // "avx2 fma f16c avx512 avx512vnni" (those present)
};

// The instruction sets an x86 bundle's kernels need, recorded in its metadata; `missing` names any the
// CPU lacks (empty: runnable).
std::vector<std::string> required_isa();
std::vector<std::string> missing_isa(const std::vector<std::string>& required, const CpuFeatures& cpu);

struct X86Options {
  int threads = 0;              // 0: physical cores
  int max_step_tokens = 64;     // longer steps run in slices of this many tokens (bounds the arena)
  std::string isa = "auto";     // "auto" (the best the CPU has), "avx2" or "avx512vnni"
  // The bundle's "x86_kernels" section (empty: none) and how to name it in errors.
  std::span<const uint8_t> fused_kernels;
  std::string fused_kernels_where;
};

class X86StepExecutor : public StepExecutor {
 public:
  X86StepExecutor(const ir::Module& module, std::vector<WeightView> weights, ref::ArenaLayout layout, int64_t n_layer,
                  int64_t n_seq, int64_t n_ctx, int64_t kv_dim, const X86Options& options);
  ~X86StepExecutor() override;
  std::span<const float> run(const StepInputs& inputs) override;
  int threads() const { return pool_.size(); }
  Isa isa() const { return isa_; }
  std::string fused_kernels() const { return fused_.describe(); }

 private:
  struct Int8Rows;
  // The fused kernels of one node, bound at construction (null where the node has no such kernel).
  struct NodeKernels {
    NormQuantFn norm_quant = nullptr;
    RmsNormFn rmsnorm = nullptr;
    QuantizeFn quantize = nullptr;
    GluFn glu_relu2 = nullptr;
    RopeQkvFn rope_qkv = nullptr;
    AttendFn attend = nullptr;
    LmHeadF16Fn lm_head_f16 = nullptr;
    LmHeadI8Fn lm_head_i8 = nullptr;
  };
  void run_slice(const StepInputs& in, bool all_logits, float* logits_out);
  // y [T, N] = x W^T for a ternary W; with `bands` > 1 the N rows are `bands` equal bands and each thread
  // takes the same rows of every band, then runs epilogue(n0, n1) on its rows of band 0 (the gate/up
  // GLU reads row i of both bands) without another dispatch.
  template <class Epilogue>
  void ternary_matmul(const Int8Rows& x, int64_t T, const WeightView& w, float* y, int64_t ldy, int bands, Epilogue&& epilogue);
  void quantize_rows(QuantizeFn quantize, const float* x, int64_t T, int64_t K, Int8Rows& out);
  Int8Rows q8_rows(const float* arena_value, int64_t T, int64_t K);
  const TernaryKernel& kernel(int64_t k_pad, int64_t act_stride, int rows, int tokens);
  // Rows of the prefill tile (R × 8 tokens), the fastest per core in thread CPU time, weights in L2
  // (tests/test_x86.cpp "[.x86-bench]"): AVX2 1×8 104–120 GMAC/s (2×4, 4×2 alike); VNNI 4×8 300–334
  // (2×8 241–247, 4×4 300–311).
  int prefill_rows() const { return isa_ == Isa::Avx2 ? 1 : 4; }
  // Element index of (layer, seq, pos) in the K or V cache.
  size_t kv_index(int64_t layer, int64_t seq, int64_t pos) const { return static_cast<size_t>(((layer * n_seq_ + seq) * n_ctx_ + pos) * kv_dim_); }
  void store_kv(const float* row, bool value, int64_t layer, int64_t seq, int64_t pos);
  void rope_tables(const int32_t* pos, int64_t T, int64_t d, float base, const float* factors);
  void write_kv(const float* k, const float* v, const int32_t* pos, const int32_t* seq, int64_t T, int64_t layer);
  void attend(AttendFn attend_head, const float* q, const int32_t* pos, const int32_t* seq, int64_t T, int64_t layer, int64_t n_head, int64_t n_head_kv, float* out);

  const ir::Module& m_;
  std::vector<WeightView> weights_;
  ref::ArenaLayout layout_;
  int64_t n_layer_, n_seq_, n_ctx_, kv_dim_, n_vocab_;
  X86Options options_;
  Isa isa_;
  ThreadPool pool_;
  FusedKernels fused_;
  std::vector<NodeKernels> node_kernels_;
  std::map<std::tuple<int64_t, int64_t, int, int>, std::unique_ptr<TernaryKernel>> kernels_;
  // The KV cache: IEEE halves, or f32 when the model runs with float activations (the verification mode,
  // whose bounds are tighter than half precision).
  bool kv_f32_ = false;
  std::unique_ptr<uint16_t[]> k_half_, v_half_;
  std::unique_ptr<float[]> k_f32_, v_f32_;
  std::unique_ptr<float[]> arena_;  // default-initialised: pages a step never touches stay unmapped
  int64_t arena_tokens_ = 0;
  std::vector<float> logits_, scratch_, rope_cos_, rope_sin_, scores_;
  std::vector<int8_t> q8_scratch_;
  std::vector<int32_t> acc_, q8_sum_;
  std::vector<float> q8_mult_;
  // BITNETC_PROFILE=1: wall time per op kind, printed to stderr when the executor is destroyed.
  bool profile_ = false;
  std::map<std::string, std::pair<double, int64_t>> op_seconds_;
  int64_t rope_key_T_ = -1;
  const int32_t* rope_key_pos_ = nullptr;
  float rope_key_base_ = 0;
  const float* rope_key_factors_ = nullptr;
};

}  // namespace bitnet::x86
