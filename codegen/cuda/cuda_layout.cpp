#include "codegen/cuda/cuda_layout.h"

#include "ir/error.h"
#include "ir/weight_layout.h"

#include <cstring>

namespace bitnet::cuda {

void repack_t2_for_cuda(const uint8_t* t2, int64_t n, int64_t k, uint8_t* out) {
  if (k % 16 != 0) fail("internal: the CUDA weight layout needs K % 16 == 0, got {}", k);
  const int64_t row_bytes = t2_row_bytes(k);
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* src = t2 + r * row_bytes;
    uint8_t* dst = out + r * row_bytes;
    std::memset(dst, 0, static_cast<size_t>(row_bytes));
    for (int64_t c = 0; c < k; ++c) {
      const int code = (src[c / 4] >> (2 * (c % 4))) & 3;
      dst[(c / 16) * 4 + c % 4] |= static_cast<uint8_t>(code << (2 * ((c % 16) / 4)));
    }
  }
  std::memcpy(out + t2_scales_offset(n, k), t2 + t2_scales_offset(n, k), static_cast<size_t>(n) * 4);
}

}  // namespace bitnet::cuda
