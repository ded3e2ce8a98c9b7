// Which generated kernels run each op of an optimized IR module, decided once from the module alone: the
// compiler uses it to generate and compile every kernel a bundle can need (all token-tile variants), the
// executor to bind the same names at load time. No NVRTC and no driver in here.
//
// Steps of at most kMaxGemvTokens tokens (decode, batched decode) run the ternary matmuls as GEMVs; for
// one token the GEMV's prologue computes the (add_)rmsnorm_quant right before it (the q8 value never
// reaches memory; one kernel per BitLinear), for more the norm runs once as its own kernel. Longer steps
// (prefill) run the norm as its own kernel and the matmul on the int8 tensor cores. A step of one token
// can instead run as one persistent kernel whose phases are the same ops (step_t1.cu.in).
#pragma once

#include "ir/ir.h"

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <vector>

namespace bitnet::cuda {

// One kernel to generate: a template file of codegen/cuda/kernels/ with its holes filled.
struct KernelSpec {
  std::string name;  // the kernel's C identifier; unique per (template, holes)
  std::string template_file;
  std::map<std::string, std::string> holes;
  bool entry = true;  // false: device functions only (a phase of the persistent step kernel), no kernel
  int dynamic_smem = 0;  // bytes of dynamic shared memory its launches take
};

inline constexpr int kMaxGemvTokens = 8;
inline constexpr std::array<int, 4> kTokenTiles = {1, 2, 4, 8};  // the GEMV and LM-head variants per tile
inline constexpr int kGemmWarpTiles = 8;                          // ternary GEMM: 8-row mma tiles per warp (64 rows)
// The f16 tensor-core matmul (matmul_tc.cu.in): K steps in flight, and its shared memory (x head and
// tail [64][64 + 8] and weights [128][64 + 8] f16 per step).
inline constexpr int kMatmulStages = 3;
inline constexpr int kMatmulSmemBytes = kMatmulStages * (2 * 64 * 72 + 128 * 72) * 2;
inline constexpr int kGemmStages = 3;                             // ternary GEMM: K tiles in flight (cp.async buffers)
inline constexpr int kGemmTileK = 128;                            // ternary GEMM: the K step (its template's BK)
// The ternary GEMM's row pairs per block (grid x) and its dynamic shared memory, for `warps_n` warps
// across the rows: per stage the int8 tile [64][128 + 16] and the packed weight tile [rows][8 + 4 words]
// (the template checks the sum against its own layout).
inline constexpr int gemm_block_pairs(int warps_n) { return 4 * kGemmWarpTiles * warps_n; }
inline constexpr int gemm_smem_bytes(int warps_n) {
  return kGemmStages * (64 * (kGemmTileK + 16) + 8 * kGemmWarpTiles * warps_n * (kGemmTileK / 16 + 4) * 4);
}
// Shared-memory rows that mma fragments read 16 bytes at a time, lane (g, i) from row g at unit i: a pitch
// of 4 16-byte units mod 8 puts the 8 lanes of each load phase (rows g, g + 1) on 8 different bank groups.
inline constexpr int64_t fragment_row_pitch(int64_t row_bytes) { return ((row_bytes / 16 + 7) / 8 * 8 + 4) * 16; }
// The tensor-core GEMV of a few tokens (ternary_gemv_tc.cu.in): 8 nt int8 token rows of K bytes, later the
// warps' int32 sums [8 warps][2 tiles][16 pairs][8 nt tokens] in the same memory. Steps that fill it take
// the most 8-token tiles per block (up to 4) that leave room for 2 blocks per SM.
inline constexpr int gemv_tc_smem_bytes(int64_t k, int nt) { return static_cast<int>(std::max<int64_t>(8 * nt * fragment_row_pitch(k), 8 * 2 * 16 * 8 * nt * 4)); }
inline constexpr int gemv_tc_wide_tiles(int64_t k) { return static_cast<int>(std::clamp<int64_t>(112 * 1024 / (8 * fragment_row_pitch(k)), 1, 4)); }
// Its words per lane and row with `groups` groups of 16 row pairs per block (8 / groups warps cut K): the
// weights a lane holds are 4 times that, in registers.
inline constexpr int gemv_tc_lane_words(int64_t k, int groups) { return static_cast<int>((k / 16 + 32 / groups - 1) / (32 / groups)); }
// The f16 tensor-core matmul of up to 8 rows (matmul_tc_few.cu.in): the rows' f16 head and tail.
inline constexpr int matmul_tc_few_smem_bytes(int64_t k) { return static_cast<int>(2 * 8 * fragment_row_pitch(2 * k)); }
// The tensor-core prefill attention (attend_tc.cu.in) for head dim d: 2 warp groups x 2 stages x (K, V)
// tiles of 32 f16 rows of d + 8.
inline constexpr int attend_tc_smem_bytes(int64_t d) { return static_cast<int>(2 * 2 * 2 * 32 * (d + 8) * 2); }
// The decode attention's (attend.cu.in) positions per warp and chunk, U <= 8, for head dim d and cache
// values of kv_bytes: a stage of K and V (8 U rows each) is at most 16 KB, so a block takes ~52 KB (d 128,
// f16) and 4 fit on an SM; with 32 KB stages 2 did, and ncu showed batch 64's 320 blocks as a wave and a
// partial one.
inline constexpr int attend_chunk_rows(int64_t d, int64_t kv_bytes) {
  return static_cast<int>(16384 / (8 * 2 * d * kv_bytes) < 8 ? 16384 / (8 * 2 * d * kv_bytes) : 8);
}
// Its Scratch for group g: 2 stages x (K, V) x a chunk of 8 U rows, the warps' scores and weights (U g
// padded to a power of two), the warps' and ranges' softmax states, and two words.
inline constexpr int attend_smem_bytes(int64_t d, int64_t g, int64_t kv_bytes) {
  const int64_t row = d * kv_bytes, u = attend_chunk_rows(d, kv_bytes);
  int64_t c2 = 1;
  while (c2 < u * g) c2 *= 2;
  return static_cast<int>(2 * 2 * 8 * u * row + (2 * 8 * c2 + 2 * 8 * g + 8 * g * d + 2 * 64 * g) * 4 + 8);
}

enum class Prologue { Q8, Norm, AddNorm, Quant };  // how a ternary GEMV gets its int8 rows

struct NodeKernels {
  std::string main;                 // the op's kernel; ternary ops: the tensor-core GEMM (or the float GEMV)
  std::string pre;                  // attention: the KV write; f32-input int8 BitLinear: the quantize kernel
  std::string one_sequence;         // attention: the tensor-core kernel for longer steps of one sequence ("": none)
  int one_sequence_tokens = 0;      // its tokens per block
  std::string few_rows;             // f16 float matmul: the tensor-core kernel for up to kMaxGemvTokens rows ("": K % 32 != 0)
  std::string many_rows;            // f16 float matmul: the tensor-core kernel for steps of more than kMaxGemvTokens rows
  std::string many_rows_split;      // ... and the kernel before it that writes its input rows as f16 head and tail
  // Ternary: the tensor-core GEMV (q8 input): one tile of 8 tokens per block, the wide variant, and the wide
  // variant with 32 row pairs per block ("" when K is too long for the registers), and the tokens and row
  // pairs a block of each takes (steps of at least the wide block's tokens take a wide one).
  std::array<std::string, 3> tc_gemv;
  std::array<int, 3> tc_gemv_block_tokens = {8, 8, 8};
  std::array<int, 3> tc_gemv_block_pairs = {16, 16, 32};
  std::array<std::string, 4> tiles; // ternary GEMV / matmul per token tile
  Prologue prologue = Prologue::Q8; // the one-token ternary GEMV's input (tiles of more tokens read q8 rows)
  int fused_norm = -1;              // ternary GEMV: the (add_)rmsnorm_quant node its one-token prologue computes
  std::array<int, 4> pairs_per_warp = {1, 1, 1, 1};  // ternary GEMV per tile: row pairs per warp (wide matrices: more, one wave of blocks)
  int gemm_warps_n = 4;             // ternary GEMM: warps across the rows (block of 64 x WARPS_N threads)
  int fused_into = -1;              // (add_)rmsnorm_quant: the GEMV node that computes it in steps of one token
  bool float_activations = false;   // act_quant none: f32 input, float GEMV for every step size
  int phase = -1;                   // the persistent step kernel's phase function (its switch case) for this op; -1: none
};

struct ModulePlan {
  std::vector<NodeKernels> nodes;   // per module node
  std::vector<KernelSpec> kernels;  // every distinct kernel, in first-use order
  bool kv_f32 = false;              // float activations anywhere: an f32 KV cache (as the x86 backend)
  std::string argmax;               // the greedy choice of each logits row (steps that return token ids)
  std::string read_probe;           // the device memory's read bandwidth (bench's decode roofline)
  // Decode steps of one token as one persistent kernel (step_t1.cu.in) when every op has a phase (int8
  // activations; the LM head runs after it as its own kernel); "" otherwise.
  std::string step_kernel;
  int step_smem = 0;                // its dynamic shared memory
  std::string step_refusal;         // why there is no step kernel
};

// Throws bitnet::Error naming the op when the CUDA backend cannot run it (float BitLinear weights,
// input widths that are not a multiple of 16, head dims that are not a multiple of 32, ...).
ModulePlan plan_module(const ir::Module& m);

// The token tile index for a step of T <= kMaxGemvTokens tokens: the smallest tile >= T that `tiles`
// has, else the largest it has (the grid then covers T with several tiles).
int choose_tile(const std::array<std::string, 4>& tiles, int64_t T);

}  // namespace bitnet::cuda
