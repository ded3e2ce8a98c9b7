// The parameter block of each kernel kind. A generated kernel takes one of these by value, and the host
// fills the same struct and passes its address to cuLaunchKernel, so the two sides cannot disagree on
// argument order. Compiled both by the host compiler (codegen/cuda) and into every generated source
// (NVRTC and the host emulator): plain pointers, ints and floats only, the same layout everywhere.
// Activations are row-major [T, N] f32; a q8 activation is int8 rows [T, K] plus per row the f32
// multiplier a (x ~ q / a) and the int32 sum of the row's q.
#pragma once

struct EmbedArgs {
  const int* tokens;
  const void* table;  // [V, D] f16 or f32
  float* y;           // [T, D]
  int T;
};

struct NormArgs {  // rmsnorm (f32 out) and the norm/quantize kernels (q8 out)
  const float* x;
  const float* x_add;   // add_rmsnorm_quant: the residual delta
  const float* w;       // the norm weight
  float* x_sum;         // add_rmsnorm_quant: x + x_add
  float* y;             // rmsnorm: the normalized rows
  signed char* q;       // q8 out
  float* q_mult;
  int* q_sum;
  float eps;
  int T;
};

struct TernaryArgs {  // the ternary matmuls and their fused epilogues
  const unsigned* w;       // the weight in the CUDA layout (codegen/cuda/cuda_layout.h): [N][K / 16] words
  const float* w_scale;    // [N]
  const signed char* q;    // q8 input rows (GEMM, and GEMV without a fused prologue)
  const float* q_mult;
  const int* q_sum;
  const float* x;          // f32 input rows: fused norm prologue, or float activations
  const float* x_add;      // fused add_rmsnorm_quant: the residual delta
  const float* norm_w;
  float* x_sum;            // fused add_rmsnorm_quant: x + x_add, written by the blocks of column 0
  float eps;
  float* y;                // plain: [T, N]; glu: [T, N / 2]; qkv: q [T, q_dim]
  void* k_cache;           // qkv: this layer's caches [n_seq][n_ctx][kv_dim], f16 or f32
  void* v_cache;
  const int* pos;
  const int* seq;
  const float* rope_cos;   // qkv: [n_ctx][head_dim / 2]
  const float* rope_sin;
  int* k_partials;         // GEMM split over K (k_splits > 1): int32 accumulators per (tile, split, thread)
  unsigned* k_counters;    // per output tile: splits done, zero between launches
  int k_splits;
  int n_ctx;
  int T;
};

struct AttendArgs {
  const float* q;          // [T, n_head * d]
  float* out;              // [T, n_head * d]
  const void* k_cache;     // this layer's caches [n_seq][n_ctx][kv_dim]
  const void* v_cache;
  const int* pos;
  const int* seq;
  float* part_acc;         // split-K partial results: [T][n_head_kv][splits][group][d]
  float* part_ml;          // [T][n_head_kv][splits][group][2]: running max and sum
  unsigned* counters;      // [T][n_head_kv], zero between launches
  float scale;             // 1 / sqrt(d)
  int n_ctx;
  int T;
  int splits;              // position ranges per (token, KV head): the kernel's grid x, the step kernel's items
  int min_range;           // positions per range at least: fewer ranges while the context is short
};

struct KvWriteArgs {
  const float* k;          // [T, kv_dim]
  const float* v;
  void* k_cache;
  void* v_cache;
  const int* pos;
  const int* seq;
  int n_ctx;
  int T;
};

struct MatMulArgs {  // the float matmul (LM head): y[t, n] = x[row0 + t] . W[n]
  const void* w;           // [N, K] f16 or f32
  const float* x;
  float* y;                // [T, N]
  unsigned short* x_hi;    // the tensor-core matmul (many rows): rows x[row0 ..] as f16 head and tail, [T, K] each
  unsigned short* x_lo;
  int row0;
  int T;
};

struct ArgmaxArgs {  // the greedy choice per logits row
  const float* y;          // [T, n_vocab]
  int* ids;                // [T]
};

struct ReadProbeArgs {  // the read-bandwidth probe: per block the sum (mod 2^32) of the 32-bit lanes it read
  const void* data;        // [words] 16-byte words
  unsigned* sums;          // [blocks]
  long long words;
};

struct EltwiseArgs {
  const float* a;
  const float* b;
  const float* w;          // scale: [1]; add_bias: [N]
  float* y;
  int a_stride;            // slice: the input's row length
  int a_offset;            // slice: its first column
  int T;
};

struct RopeArgs {
  const float* x;
  float* y;
  const int* pos;
  const float* rope_cos;
  const float* rope_sin;
  int T;
};

// One phase of the persistent decode step (step_t1.cu.in): which phase function (the step kernel's
// switch), the bytes to pull into L2 while it runs (the next phase's weights), and the arguments the op's
// own kernel would get. 256 bytes, so a block copies it in one go.
struct alignas(16) Phase {
  int kind;
  unsigned prefetch_bytes;
  const char* prefetch;
  union {
    TernaryArgs ternary;
    AttendArgs attend;
    EmbedArgs embed;
    NormArgs norm;
    EltwiseArgs eltwise;
    char bytes[232];
  };
};

struct StepArgs {
  const Phase* phases;
  int n_phases;
  unsigned* barrier;              // the grid barrier's counter, zeroed before each launch
  unsigned long long* times;      // profiling (zeroed before each launch): GridBarrier::times, else null
  unsigned release;               // the grid barrier's arrival: a release reduction (1) or fence + atomic (0)
};
