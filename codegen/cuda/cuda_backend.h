// The CUDA backend's executor: runs the optimized IR of a CUDA bundle with the kernels NVRTC compiled at
// `bitnetc compile` time (the bundle's "kernels" section), loaded through the driver API, which is itself
// loaded at run time (codegen/cuda/driver_api.h). Weights are uploaded once (ternary weights already in the
// CUDA layout, codegen/cuda/cuda_layout.h); the KV cache lives on the device (IEEE halves; f32 when the
// model runs with float activations, as the x86 backend); activations are planned into one device arena.
// A step of up to kMaxGemvTokens tokens (decode, batched decode) is captured once per token count as a
// CUDA graph (inputs copied in, every kernel, logits copied out) and replayed; kernels are chained with
// programmatic dependent launch, so each one's weight loads overlap the previous kernel's tail. With
// CudaOptions::persistent a step of one token (decode) runs everything before the LM head as one
// persistent cooperative kernel instead (kernels/step_t1.cu.in): the ops are its phases, separated by
// grid barriers.
#pragma once

#include "codegen/backend.h"
#include "ir/ir.h"
#include "ir/weight_layout.h"

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace bitnet::cuda {

struct DriverApi;

struct CudaOptions {
  bool graphs = true;              // replay steps of <= kMaxGemvTokens tokens as captured CUDA graphs
  bool pdl = true;                 // programmatic dependent launch between consecutive kernels
  int max_step_tokens = 512;       // longer steps run in slices of this many tokens (bounds the arena)
  int attention_splits = 32;       // position ranges per (token, KV head) in steps of <= kMaxGemvTokens tokens
  bool tc_attention = true;        // longer steps of one sequence (prefill): the tensor-core attention kernel
  // Ternary matmuls of steps of 2 .. tc_gemv_tokens tokens on the tensor-core GEMV (ternary_gemv_tc.cu.in),
  // below it the one-token GEMV, above it the tensor-core GEMM. H200, 2B4T (bench/RESULTS.md): batch 8
  // 3305 -> 4742 tok/s against the dp4a GEMV; batch 16 3709 -> 6849 and batch 64 11797 -> 14888 against
  // the GEMM (split over K). 0: the dp4a GEMV up to kMaxGemvTokens tokens, the GEMM beyond.
  int tc_gemv_tokens = 64;
  // Its groups of 16 row pairs per block at most (1 or 2) for steps that fill the wide block: 2 reads the
  // token rows from L2 half as often, where the grid still has two blocks per SM (H200, batch 64: 17.5k ->
  // 18.4k tok/s).
  int tc_gemv_pair_groups = 2;
  // The f16 LM head of up to kMaxGemvTokens rows on the tensor cores, else the f32 GEMV. H200: 8 rows
  // 486 -> ~200 us (batch 8 +17%); one row at 87% of the HBM's peak, batch 1 0.7% slower than with the
  // f32 GEMV (873 against 879 tok/s), kept so that a row's logits do not depend on its batch.
  bool tc_lm_head = true;
  int k_splits = 0;                // tensor-core GEMM: K ranges per output tile (0: enough to fill the GPU when a step has few tiles)
  // Steps of one token as one persistent kernel (when the plan has one). Off by default: on the H100 it
  // decodes no faster than graphs + PDL (bench/RESULTS.md), the per-op latency being the limit in both.
  bool persistent = false;
  int step_blocks = 0;             // its blocks (0: as many as the GPU holds at once)
  bool prefetch = false;           // its phases pull the next phase's weights into L2 (measured: slightly slower)
  bool release_barrier = true;     // its grid barrier arrives with a release reduction (else a fence and an atomic)
  bool profile = false;            // time every op (eager launches, no PDL) and print a table to stderr at exit
  // Diagnosis only: kernels whose name contains one of these are not launched, so a bench measures what
  // they cost inside graphs with PDL (where per-kernel timers cannot look). The results are then wrong.
  std::vector<std::string> omit_kernels;
  // The read-bandwidth probe's buffer: 0 picks 8 x the L2 cache, 256 MiB .. 1 GiB and at most a quarter of
  // the free memory (tests on the host emulator give a small one).
  uint64_t read_probe_bytes = 0;
  int device = 0;
  std::shared_ptr<const DriverApi> driver;  // null: libcuda.so.1 (tests pass the host emulator)
};

// Overrides from the environment for experiments: BITNETC_CUDA_GRAPHS=0, BITNETC_CUDA_PDL=0,
// BITNETC_CUDA_SPLITS=N, BITNETC_CUDA_TC_ATTENTION=0, BITNETC_CUDA_TC_GEMV=N (tc_gemv_tokens), BITNETC_CUDA_TC_GEMV_GROUPS=N, BITNETC_CUDA_TC_LM_HEAD=0, BITNETC_CUDA_K_SPLITS=N, BITNETC_CUDA_PERSISTENT=1, BITNETC_CUDA_STEP_BLOCKS=N,
// BITNETC_CUDA_PREFETCH=1, BITNETC_CUDA_RELEASE_BARRIER=0, BITNETC_CUDA_PROFILE=1, BITNETC_CUDA_OMIT=name,name (omit_kernels).
CudaOptions cuda_options_from_env();

class CudaStepExecutor : public StepExecutor {
 public:
  // `where` names the bundle in messages; `kernels` is its "kernels" section.
  CudaStepExecutor(const std::string& where, const ir::Module& module, const std::vector<WeightView>& weights,
                   std::span<const uint8_t> kernels, int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim, const CudaOptions& options);
  ~CudaStepExecutor() override;
  std::span<const float> run(const StepInputs& inputs) override;
  std::vector<int32_t> run_greedy(const StepInputs& inputs) override;  // the argmax on the GPU: only ids come back
  double device_read_bandwidth_gb_s() override;  // kernels/read_probe.cu.in over CudaOptions::read_probe_bytes

  std::string describe() const;     // "NVIDIA H100 80GB HBM3, sm_90 cubin, graphs, PDL, persistent decode step (132 blocks)"
  uint64_t device_bytes() const;    // what this executor allocated on the device
  int graphs_captured() const;
  int step_blocks() const;          // the persistent step kernel's blocks, 0 when steps of one token run op by op

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bitnet::cuda
