// Ternary × int8 matrix kernels generated with xbyak for the CPU present, over the x86 t2 layout
// (ir/weight_layout.h): each call computes, for `n_groups` consecutive row groups and C token rows of
// activations, the int32 dot products sum_k code[n][k] * q[c][k] (codes are trit + 1; the caller subtracts
// sum_k q[c][k] to get the ternary product). The code is specialised on K (so every address is a constant
// displacement), on the tile (R rows of a group × C tokens share each unpacked weight vector and each
// activation load) and on the ISA (AVX2: vpmaddubsw pairs summed in int16, widened every 16 blocks;
// AVX-512 VNNI: vpdpbusd straight into int32, two rows per zmm).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace bitnet::x86 {

enum class Isa { Avx2, Avx512Vnni };
const char* isa_name(Isa isa);

struct TernaryKernelConfig {
  Isa isa = Isa::Avx2;
  int64_t k_pad = 128;       // padded K (multiple of 128)
  int64_t act_stride = 128;  // bytes between two tokens' activation rows (>= k_pad)
  int rows = 4;         // R: rows of a group per tile (1, 2 or 4)
  int tokens = 1;       // C: token rows per tile; R * C <= 8
};

// out[c * ldo + g * 4 + r] = sum_k code * q[c][k], for groups g < n_groups, all 4 rows, tokens c < C.
using TernaryKernelFn = void (*)(const uint8_t* groups, const int8_t* act, int32_t* out, int64_t n_groups, int64_t ldo_bytes);

class TernaryKernel {
 public:
  explicit TernaryKernel(const TernaryKernelConfig& config);
  ~TernaryKernel();
  TernaryKernel(const TernaryKernel&) = delete;
  TernaryKernel& operator=(const TernaryKernel&) = delete;
  TernaryKernelFn fn() const { return fn_; }
  const TernaryKernelConfig& config() const { return config_; }
  size_t code_size() const;

 private:
  struct Generator;
  TernaryKernelConfig config_;
  std::unique_ptr<Generator> gen_;
  TernaryKernelFn fn_ = nullptr;
};

}  // namespace bitnet::x86
