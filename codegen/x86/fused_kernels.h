// The x86 backend's fused element-wise and reduction kernels as the executor calls them: one C signature
// per kernel kind, a name per kind and shape, and the bundle section that carries them as machine code.
//
// `bitnetc compile --target x86` generates these kernels as LLVM IR specialised on the model's shapes,
// compiles them for two instruction-set levels (avx2 = x86-64-v3; avx512 = the same plus AVX-512 F/BW/VL
// with 512-bit vectors) and stores each level's ELF relocatable object in the section "x86_kernels"
// (codegen/x86/llvm/kernel_generator.h). The runtime links the object for the level the executor runs at
// with its own loader (codegen/x86/elf_object.h): no LLVM at run time. Where a bundle has no such section
// (a bitnetc built without LLVM, or a GGUF compiled on the fly by bitnet-run), or a kernel is absent from
// it, the executor binds the AVX2 intrinsics of vector_ops.h instead; `describe()` says which ran.
//
// Every generated kernel takes the shape arguments its fallback needs and ignores those it was
// specialised on, so both bind to the same pointer type.
#pragma once

#include "ir/ir.h"

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

namespace bitnet::x86 {

// [residual +] RMSNorm + absmax int8 quantization of one token row: with `residual` non-null, x + residual
// is written to `sum_out` and normalized; q [k] gets the int8 codes, the result is the multiplier 127/amax.
using NormQuantFn = float (*)(const float* x, const float* residual, float* sum_out, const float* w, float eps, int64_t k, int8_t* q);
using RmsNormFn = void (*)(const float* x, const float* w, float eps, int64_t n, float* y);
// q = absmax int8 of x [k]; *sum = sum(q); returns the multiplier.
using QuantizeFn = float (*)(const float* x, int64_t k, int8_t* q, int32_t* sum);
// y = relu(g)^2 * u over n features.
using GluFn = void (*)(const float* g, const float* u, int64_t n, float* y);
// One token's fused QKV row [q | k | v] (features q_dim + 2 kv_dim): RoPE on q and k (cos/sin of d/2
// frequencies at the token's position), q to q_out, k and v into the caches (f16 or f32 elements).
using RopeQkvFn = void (*)(const float* row, const float* cos, const float* sin, float* q_out, void* k_cache, void* v_cache);
// Causal attention of one query head over n cached positions (rows `stride` elements apart).
using AttendFn = void (*)(const float* q, const void* k, const void* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out);
// y[t * ldy + r] = dot(w row r, x row t) for r < rows, t < T; x rows are k floats apart.
using LmHeadF16Fn = void (*)(const uint16_t* w, const float* x, int64_t T, int64_t k, int64_t rows, float* y, int64_t ldy);
using LmHeadI8Fn = void (*)(const int8_t* w, const float* scales, const float* x, int64_t T, int64_t k, int64_t rows, float* y, int64_t ldy);

enum class FusedKind { NormQuant, AddNormQuant, RmsNorm, Quantize, GluRelu2, RopeQkv, Attend, LmHeadF16, LmHeadI8 };

// One kernel to generate: its kind and the shape constants it is specialised on.
struct FusedKernelSpec {
  FusedKind kind;
  int64_t k = 0;                     // features (norms, quantize, LM head)
  int64_t head_dim = 0;              // RoPE, attention
  int64_t n_head = 0, n_head_kv = 0; // RoPE
  bool kv_f32 = false;               // RoPE, attention: cache element type
  std::string name() const;          // e.g. "add_norm_quant.k2560", "attend.d128.f16"
  bool operator==(const FusedKernelSpec&) const = default;
};

// Whether the x86 executor keeps its KV cache in f32 (a model run with float activations) or f16.
bool kv_cache_f32(const ir::Module& module);
// The fused kernels `node` runs (none, one, or for a BitLinear a quantize, its GLU epilogue, its RoPE):
// the one mapping from nodes to kernels, used by the generator and the executor alike.
std::vector<FusedKernelSpec> fused_kernel_specs(const ir::Module& module, const ir::Node& node, bool kv_f32);
// Every kernel of the module, once each.
std::vector<FusedKernelSpec> fused_kernel_specs(const ir::Module& module);

// The section "x86_kernels": per level, the ELF object and the kernels it defines.
struct KernelObject {
  std::string level;                 // "avx2" or "avx512"
  std::vector<std::string> needs;    // CpuFeatures names the code uses, e.g. {"avx2", "fma", "f16c"}
  std::vector<std::string> kernels;  // symbol names
  std::string elf;
};
struct X86KernelsSection {
  std::string llvm_version;
  std::vector<KernelObject> objects;
};
std::string serialize_x86_kernels(const X86KernelsSection& s);
// Validates bounds and fields; throws naming `where` ("<file>: section 'x86_kernels'").
X86KernelsSection parse_x86_kernels(std::span<const uint8_t> bytes, const std::string& where);

class ElfObject;

// The kernels an executor calls, bound from a loaded object or to the intrinsics fallback.
class FusedKernels {
 public:
  // `section` may be empty (no LLVM kernels); `avx512` picks that level's object when there is one.
  FusedKernels(std::span<const uint8_t> section, const std::string& where, bool avx512);
  ~FusedKernels();
  // The kernel of `spec`: the bundle's generated one, else the intrinsics behind the same signature (null
  // for RopeQkv, whose fallback is the executor's own loop). Cast to the kind's *Fn type.
  void* bind(const FusedKernelSpec& spec) const;
  template <class Fn>
  Fn bind_as(const FusedKernelSpec& spec) const { return reinterpret_cast<Fn>(bind(spec)); }
  // "llvm avx512: 9 of 9 kernels bound" or "intrinsics (the bundle has no x86_kernels section)".
  std::string describe() const;
  size_t bound() const { return bound_.size(); }

 private:
  std::unique_ptr<ElfObject> object_;
  std::string level_;
  size_t n_kernels_ = 0;
  mutable std::set<std::string> bound_;
};

}  // namespace bitnet::x86
