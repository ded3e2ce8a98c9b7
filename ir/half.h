// IEEE binary16 <-> binary32, exact in one direction and round-to-nearest-even in the other. Shared by the
// frontend's decoders and the backends that read F16 weights.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace bitnet {

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  uint32_t bits;
  if (exponent == 0x1F) {
    bits = sign | 0x7F800000u | (mantissa << 13);
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: value = mantissa * 2^-24
    float f = std::ldexp(static_cast<float>(mantissa), -24);
    std::memcpy(&bits, &f, 4);
    bits |= sign;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  uint32_t abs = x & 0x7FFFFFFF;
  if (abs > 0x7F800000) return sign | 0x7E00;           // NaN
  if (abs >= 0x477FF000) return sign | 0x7C00;          // rounds to infinity (>= 65520)
  if (abs < 0x38800000) {                                // subnormal or zero in f16
    float a;
    std::memcpy(&a, &abs, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));  // round-half-even in default mode
  }
  uint32_t mantissa = abs & 0x7FFFFF, exponent = (abs >> 23) - 112;
  uint32_t result = (exponent << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1FFF;
  if (rest > 0x1000 || (rest == 0x1000 && (result & 1))) ++result;  // carry into the exponent is correct
  return sign | static_cast<uint16_t>(result);
}

}  // namespace bitnet
