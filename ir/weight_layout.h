// Weight layouts shared by the bundle writer (frontend) and the backends. For every IR weight dtype:
//   f32: row-major floats; f16: row-major IEEE halves;
//   t2:  ternary [N, K]: each row holds K 2-bit codes (code = trit + 1, so 0 = -1, 1 = 0, 2 = +1), four per
//        byte with element k at bits 2(k % 4) of byte k / 4, rows ceil(K / 4) bytes apart; after the N rows
//        (padded to 4 bytes), one f32 scale per row. A BitNet matrix has one scale for all rows; per-row storage lets passes
//        concatenate matrices (Q, K, V) whose scales differ, for 0.4% more bytes on 2B4T.
//   i8:  [N, K] int8 rows (K bytes each), then from the next 4-byte boundary one f32 scale per row.
//   t2 in an x86 bundle (x86_t2_*): the same codes regrouped for the SIMD kernels, see below.
#pragma once

#include "ir/ir.h"

#include <cstdint>
#include <string>

namespace bitnet {

inline int64_t t2_row_bytes(int64_t k) { return (k + 3) / 4; }
// The scales start at the first 4-byte boundary after the codes.
inline int64_t t2_scales_offset(int64_t n, int64_t k) { return (n * t2_row_bytes(k) + 3) / 4 * 4; }
inline uint64_t t2_nbytes(int64_t n, int64_t k) { return static_cast<uint64_t>(t2_scales_offset(n, k) + 4 * n); }
inline const float* t2_scales(const uint8_t* data, int64_t n, int64_t k) {
  return reinterpret_cast<const float*>(data + t2_scales_offset(n, k));
}

inline uint64_t weight_nbytes(const ir::Type& t) {
  int64_t elements = 1;
  for (auto d : t.dims) elements *= d;
  switch (t.dtype) {
    case ir::DType::F32: case ir::DType::I32: return static_cast<uint64_t>(elements) * 4;
    case ir::DType::F16: return static_cast<uint64_t>(elements) * 2;
    case ir::DType::T2: return t2_nbytes(t.dims[0], t.dims[1]);
    case ir::DType::I8: return static_cast<uint64_t>((t.dims[0] * t.dims[1] + 3) / 4 * 4 + 4 * t.dims[0]);
    case ir::DType::Q8: return 0;  // activations only, never a weight
  }
  return 0;
}

// The x86 backend's ternary layout. Rows are taken four at a time (a row group; N is padded to a multiple
// of 4 with zero rows) and K is padded to a multiple of 128 with zero codes. A group is stored block after
// block: for each 128-column block, 32 bytes of row 0, then rows 1, 2, 3. Inside a row's 32 bytes, element
// 32s + j of the block sits in byte j at bits 2s (s = 0..3), so one 32-byte load and three shifts give four
// 32-lane vectors of codes that line up with four consecutive 32-byte slices of the int8 activations. A
// group is therefore K_pad bytes and the kernels stream one group with one linear read. After all groups,
// one f32 scale per padded row. Codes are trit + 1 as in t2, padding codes are 1 (zero).
constexpr int64_t kX86RowsPerGroup = 4;
constexpr int64_t kX86BlockK = 128;
inline int64_t x86_t2_padded_rows(int64_t n) { return (n + kX86RowsPerGroup - 1) / kX86RowsPerGroup * kX86RowsPerGroup; }
inline int64_t x86_t2_padded_k(int64_t k) { return (k + kX86BlockK - 1) / kX86BlockK * kX86BlockK; }
inline int64_t x86_t2_scales_offset(int64_t n, int64_t k) { return x86_t2_padded_rows(n) * x86_t2_padded_k(k) / 4; }
inline uint64_t x86_t2_nbytes(int64_t n, int64_t k) { return static_cast<uint64_t>(x86_t2_scales_offset(n, k) + 4 * x86_t2_padded_rows(n)); }
// Rewrites a t2 payload [N, K] into the x86 layout; `out` holds x86_t2_nbytes(N, K) bytes.
void repack_t2_for_x86(const uint8_t* t2, int64_t n, int64_t k, uint8_t* out);

// The bytes a weight of type `t` takes in a bundle built for `target` (only t2 differs between targets).
uint64_t weight_nbytes_for_target(const ir::Type& t, const std::string& target);

inline const float* i8_scales(const uint8_t* data, int64_t n, int64_t k) { return reinterpret_cast<const float*>(data + (n * k + 3) / 4 * 4); }
// Quantizes rows [N, K] of f32 to the i8 layout: per row absmax, q = round(w * 127 / amax), half to even.
void quantize_rows_i8(const float* rows, int64_t n, int64_t k, uint8_t* out);

// A weight as the backends see it: its IR type and its bytes (in the mapped bundle).
struct WeightView {
  const ir::Type* type;
  const uint8_t* data;
};

}  // namespace bitnet
