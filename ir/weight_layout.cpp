#include "ir/weight_layout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace bitnet {

void repack_t2_for_x86(const uint8_t* t2, int64_t n, int64_t k, uint8_t* out) {
  const int64_t n_pad = x86_t2_padded_rows(n), k_pad = x86_t2_padded_k(k);
  std::memset(out, 0x55, static_cast<size_t>(x86_t2_scales_offset(n, k)));  // code 1 (zero) in every slot
  for (int64_t row = 0; row < n; ++row) {
    const uint8_t* src = t2 + row * t2_row_bytes(k);
    uint8_t* group = out + (row / kX86RowsPerGroup) * k_pad;
    for (int64_t col = 0; col < k; ++col) {
      const int code = (src[col / 4] >> (2 * (col % 4))) & 3;
      const int64_t block = col / kX86BlockK, in_block = col % kX86BlockK, byte = in_block % 32, shift = 2 * (in_block / 32);
      uint8_t& slot = group[(block * kX86RowsPerGroup + row % kX86RowsPerGroup) * 32 + byte];
      slot = static_cast<uint8_t>((slot & ~(3 << shift)) | (code << shift));
    }
  }
  float* scales = reinterpret_cast<float*>(out + x86_t2_scales_offset(n, k));
  std::memcpy(scales, t2_scales(t2, n, k), static_cast<size_t>(n) * 4);
  for (int64_t row = n; row < n_pad; ++row) scales[row] = 0.0f;
}

void quantize_rows_i8(const float* rows, int64_t n, int64_t k, uint8_t* out) {
  float* scales = reinterpret_cast<float*>(out + (n * k + 3) / 4 * 4);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = rows + r * k;
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(row[i]));
    const float scale = amax > 0 ? amax / 127.0f : 1.0f;
    for (int64_t i = 0; i < k; ++i) out[r * k + i] = static_cast<uint8_t>(static_cast<int8_t>(std::clamp(std::nearbyint(row[i] / scale), -127.0f, 127.0f)));
    scales[r] = scale;
  }
}

uint64_t weight_nbytes_for_target(const ir::Type& t, const std::string& target) {
  if (t.dtype == ir::DType::T2 && target == "x86") return x86_t2_nbytes(t.dims[0], t.dims[1]);
  return weight_nbytes(t);
}

}  // namespace bitnet
