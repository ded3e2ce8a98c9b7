// Scalar reference decoders and encoders for the tensor formats of spec section 2. Written for clarity:
// each format's element order is spelled out once, in the decoder, and the encoder is its exact inverse.
#include "frontend/tensor_types.h"

#include <cassert>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>

namespace bitnet {
namespace {

constexpr TypeTraits kF32{"F32", 1, 4}, kF16{"F16", 1, 2}, kBF16{"BF16", 1, 2}, kQ8_0{"Q8_0", 32, 34},
    kQ8_K{"Q8_K", 256, 292}, kTQ1_0{"TQ1_0", 256, 54}, kTQ2_0{"TQ2_0", 256, 66}, kI2_S{"I2_S", 128, 32};

uint16_t load_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
void store_u16(uint8_t* p, uint16_t v) { p[0] = v & 0xFF; p[1] = v >> 8; }

}  // namespace

std::optional<TensorType> tensor_type_from_id(uint32_t id) {
  switch (id) {
    case 0: case 1: case 8: case 30: case 34: case 35: case 36: return static_cast<TensorType>(id);
    default: return std::nullopt;  // Q8_K (15) is an activation format; never a weight in a file we read
  }
}

const TypeTraits& type_traits(TensorType type) {
  switch (type) {
    case TensorType::F32: return kF32;
    case TensorType::F16: return kF16;
    case TensorType::BF16: return kBF16;
    case TensorType::Q8_0: return kQ8_0;
    case TensorType::Q8_K: return kQ8_K;
    case TensorType::TQ1_0: return kTQ1_0;
    case TensorType::TQ2_0: return kTQ2_0;
    case TensorType::I2_S: return kI2_S;
  }
  return kF32;
}

const char* tensor_type_name(TensorType type) { return type_traits(type).name; }

std::optional<TensorType> tensor_type_from_name(const std::string& name) {
  for (auto t : {TensorType::F32, TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::TQ1_0,
                 TensorType::TQ2_0, TensorType::I2_S}) {
    std::string lower = type_traits(t).name;
    for (auto& c : lower) c = static_cast<char>(std::tolower(c));
    if (lower == name) return t;
  }
  return std::nullopt;
}

std::string unsupported_type_name(uint32_t id) {
  switch (id) {
    case 2: case 3: case 6: case 7: case 9: case 10: case 11: case 12: case 13: case 14:
      return "a ggml k/legacy quantization bitnetc does not read";
    case 15: return "Q8_K, an activation format";
    case 37: return "I8_S, an activation format of Microsoft's fork";
    case 38: return "TL1, a bitnet.cpp lookup-table format";
    case 39: return "TL2 (Microsoft's fork) or MXFP4 (upstream)";
    default: return "unknown ggml type";
  }
}

std::optional<uint64_t> tensor_nbytes(TensorType type, int64_t ne0, int64_t n_elements) {
  const auto& traits = type_traits(type);
  if (ne0 <= 0 || n_elements <= 0 || ne0 % traits.block_elements != 0) return std::nullopt;
  if (type == TensorType::I2_S) return static_cast<uint64_t>(n_elements) / 4 + 32;
  uint64_t blocks = static_cast<uint64_t>(n_elements) / traits.block_elements;
  if (blocks > std::numeric_limits<uint64_t>::max() / traits.block_bytes) return std::nullopt;
  return blocks * traits.block_bytes;
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

namespace {

// TQ2_0 (spec 2.3): element c*128 + 32*l + m is bits 2l..2l+1 of qs[32c + m].
void decode_tq2_0_block(const uint8_t* block, float* out) {
  float d = f16_to_f32(load_u16(block + 64));
  for (int c = 0; c < 2; ++c)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) {
        int q = (block[32 * c + m] >> (2 * l)) & 3;
        out[c * 128 + 32 * l + m] = static_cast<float>(q - 1) * d;
      }
}

int tq1_trit(uint8_t byte, int n) {
  static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
  uint8_t q = static_cast<uint8_t>(byte * pow3[n]);
  return (static_cast<uint16_t>(q) * 3) >> 8;
}

// TQ1_0 (spec 2.4): qs[0..31] hold elements 32n+m, qs[32..47] elements 160+16n+m, qh[0..3] 240+4n+j.
void decode_tq1_0_block(const uint8_t* block, float* out) {
  const uint8_t* qs = block;
  const uint8_t* qh = block + 48;
  float d = f16_to_f32(load_u16(block + 52));
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) out[32 * n + m] = static_cast<float>(tq1_trit(qs[m], n) - 1) * d;
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) out[160 + 16 * n + m] = static_cast<float>(tq1_trit(qs[32 + m], n) - 1) * d;
  for (int n = 0; n < 4; ++n)
    for (int j = 0; j < 4; ++j) out[240 + 4 * n + j] = static_cast<float>(tq1_trit(qh[j], n) - 1) * d;
}

uint8_t tq1_pack(const int8_t* trits, int count) {  // trits as -1/0/+1, most significant first
  int v = 0;
  for (int i = 0; i < 5; ++i) v = v * 3 + (i < count ? trits[i] + 1 : 0);
  return static_cast<uint8_t>((v * 256 + 242) / 243);
}

}  // namespace

void decode_to_f32(TensorType type, const uint8_t* data, int64_t n, float* out) {
  switch (type) {
    case TensorType::F32: std::memcpy(out, data, static_cast<size_t>(n) * 4); return;
    case TensorType::F16: for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_u16(data + 2 * i)); return;
    case TensorType::BF16: for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(data + 2 * i)); return;
    case TensorType::Q8_0:
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* block = data + 34 * b;
        float d = f16_to_f32(load_u16(block));
        for (int i = 0; i < 32; ++i) out[32 * b + i] = d * static_cast<float>(static_cast<int8_t>(block[2 + i]));
      }
      return;
    case TensorType::TQ2_0: for (int64_t b = 0; b < n / 256; ++b) decode_tq2_0_block(data + 66 * b, out + 256 * b); return;
    case TensorType::TQ1_0: for (int64_t b = 0; b < n / 256; ++b) decode_tq1_0_block(data + 54 * b, out + 256 * b); return;
    case TensorType::I2_S: decode_i2_s(data, 128, n, I2SLayout::X86_128, out); return;
    case TensorType::Q8_K: assert(false && "Q8_K is never decoded from a file"); return;
  }
}

std::optional<I2SLayout> i2s_layout_from_name(const std::string& name) {
  if (name == "x86-128") return I2SLayout::X86_128;
  if (name == "arm-64") return I2SLayout::Arm64;
  if (name == "x86-1x4") return I2SLayout::X86_1x4;
  return std::nullopt;
}

void decode_i2_s(const uint8_t* data, int64_t ne0, int64_t n, I2SLayout layout, float* out) {
  float scale;
  std::memcpy(&scale, data + n / 4, 4);  // the f32 scale follows the n/4 bytes of codes in every layout
  auto value = [scale](uint8_t byte, int shift) { return static_cast<float>(((byte >> shift) & 3) - 1) * scale; };
  switch (layout) {
    case I2SLayout::X86_128:  // group k of 128 fills bytes 32k..32k+31; element 32g+j at bits 6-2g of byte 32k+j
    case I2SLayout::Arm64: {  // group k of 64 fills bytes 16k..16k+15; element 16g+j at bits 6-2g of byte 16k+j
      const int64_t group = layout == I2SLayout::X86_128 ? 128 : 64, lane = group / 4;
      for (int64_t k = 0; k < n / group; ++k)
        for (int g = 0; g < 4; ++g)
          for (int64_t j = 0; j < lane; ++j) out[group * k + lane * g + j] = value(data[lane * k + j], 6 - 2 * g);
      return;
    }
    case I2SLayout::X86_1x4: {  // byte rg*ne0 + c holds column c of rows 4rg..4rg+3, the first row highest
      const int64_t rows = n / ne0;
      for (int64_t rg = 0; rg < rows / 4; ++rg)
        for (int64_t c = 0; c < ne0; ++c)
          for (int r = 0; r < 4; ++r) out[(4 * rg + r) * ne0 + c] = value(data[rg * ne0 + c], 6 - 2 * r);
      return;
    }
  }
}

void encode_tq2_0(std::span<const int8_t> trits, float scale, uint8_t* out) {
  assert(trits.size() % 256 == 0);
  uint16_t d = f32_to_f16(scale);
  for (size_t b = 0; b < trits.size() / 256; ++b) {
    const int8_t* t = trits.data() + 256 * b;
    uint8_t* block = out + 66 * b;
    std::memset(block, 0, 64);
    for (int c = 0; c < 2; ++c)
      for (int l = 0; l < 4; ++l)
        for (int m = 0; m < 32; ++m) block[32 * c + m] |= static_cast<uint8_t>((t[c * 128 + 32 * l + m] + 1) << (2 * l));
    store_u16(block + 64, d);
  }
}

void encode_tq1_0(std::span<const int8_t> trits, float scale, uint8_t* out) {
  assert(trits.size() % 256 == 0);
  uint16_t d = f32_to_f16(scale);
  for (size_t b = 0; b < trits.size() / 256; ++b) {
    const int8_t* t = trits.data() + 256 * b;
    uint8_t* block = out + 54 * b;
    int8_t digits[5];
    for (int m = 0; m < 32; ++m) {
      for (int n = 0; n < 5; ++n) digits[n] = t[32 * n + m];
      block[m] = tq1_pack(digits, 5);
    }
    for (int m = 0; m < 16; ++m) {
      for (int n = 0; n < 5; ++n) digits[n] = t[160 + 16 * n + m];
      block[32 + m] = tq1_pack(digits, 5);
    }
    for (int j = 0; j < 4; ++j) {  // four trits shifted up one place: the fifth is 0 (code of -1 is 0)
      for (int n = 0; n < 4; ++n) digits[n] = t[240 + 4 * n + j];
      digits[4] = -1;
      block[48 + j] = tq1_pack(digits, 5);
    }
    store_u16(block + 52, d);
  }
}

void encode_i2_s(std::span<const int8_t> trits, float scale, uint8_t* out) {
  assert(trits.size() % 128 == 0);
  size_t n = trits.size();
  std::memset(out, 0, n / 4 + 32);
  for (size_t k = 0; k < n / 128; ++k)
    for (int g = 0; g < 4; ++g)
      for (int j = 0; j < 32; ++j) out[32 * k + j] |= static_cast<uint8_t>((trits[128 * k + 32 * g + j] + 1) << (6 - 2 * g));
  std::memcpy(out + n / 4, &scale, 4);
}

}  // namespace bitnet
