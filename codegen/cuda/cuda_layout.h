// The CUDA backend's ternary weight layout, chosen at compile time (frontend/compile.cpp repacks t2 into
// it). Rows stay row-major with the same bytes per row as t2 (K / 4), so a bundle's weight sizes do not
// change; inside each 32-bit word of a row, which holds the 16 codes of columns [16w, 16w + 16), column
// 16w + 4s + b sits in byte b at bits 2s. A kernel then gets the codes of four consecutive columns,
// one per byte and lined up with four consecutive int8 activations, with one shift and one mask:
// (word >> 2s) & 0x03030303 (dp4a operand; the B fragment of mma.m16n8k32). Needs K % 16 == 0.
// The per-row f32 scales follow the codes exactly as in t2.
#pragma once

#include <cstdint>

namespace bitnet::cuda {

// Rewrites a t2 payload [N, K] (ir/weight_layout.h) into the CUDA layout; `out` holds t2_nbytes(N, K).
void repack_t2_for_cuda(const uint8_t* t2, int64_t n, int64_t k, uint8_t* out);

// The 2-bit code (trit + 1) of row r, column c of a CUDA-layout weight [N, K].
inline int cuda_t2_code(const uint8_t* data, int64_t k, int64_t r, int64_t c) {
  const uint8_t byte = data[r * (k / 4) + (c / 16) * 4 + c % 4];
  return (byte >> (2 * ((c % 16) / 4))) & 3;
}

}  // namespace bitnet::cuda
