// Weight layouts shared by the bundle writer (frontend) and the backends. For every IR weight dtype:
//   f32: row-major floats; f16: row-major IEEE halves;
//   t2:  ternary [N, K]: each row holds K 2-bit codes (code = trit + 1, so 0 = -1, 1 = 0, 2 = +1), four per
//        byte with element k at bits 2(k % 4) of byte k / 4, rows ceil(K / 4) bytes apart; after the N rows
//        (padded to 4 bytes), one f32 scale per row. A BitNet matrix has one scale for all rows; per-row storage lets passes
//        concatenate matrices (Q, K, V) whose scales differ, for 0.4% more bytes on 2B4T.
#pragma once

#include "ir/ir.h"

#include <cstdint>

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
    case ir::DType::Q8: return 0;  // activations only, never a weight
  }
  return 0;
}

// A weight as the backends see it: its IR type and its bytes (in the mapped bundle).
struct WeightView {
  const ir::Type* type;
  const uint8_t* data;
};

}  // namespace bitnet
