// The ggml tensor types bitnetc reads (spec section 2): ids, block geometry, byte sizes and a plain scalar
// decoder per type. Id 36 is I2_S only in Microsoft's fork; the reader accepts it and the model loader
// checks that the file is a BitNet one (spec 2.1).
#pragma once

#include "ir/half.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace bitnet {

enum class TensorType : uint32_t {
  F32 = 0, F16 = 1, Q8_0 = 8, Q8_K = 15, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, I2_S = 36,
};

struct TypeTraits {
  const char* name;
  int64_t block_elements;  // elements per block along ne0
  int64_t block_bytes;     // bytes per block (I2_S: see tensor_nbytes)
};

// nullopt for ids bitnetc does not decode.
std::optional<TensorType> tensor_type_from_id(uint32_t id);
const TypeTraits& type_traits(TensorType type);
const char* tensor_type_name(TensorType type);
// Lower-case names as the CLI spells them (f32, f16, bf16, q8_0, tq1_0, tq2_0, i2_s).
std::optional<TensorType> tensor_type_from_name(const std::string& name);
// Human-readable name of an id bitnetc refuses (e.g. "TL1 (bitnet.cpp lookup-table format)").
std::string unsupported_type_name(uint32_t id);

// Byte size of a tensor of `n_elements` elements with rows of `ne0` elements, or nullopt when ne0 is not a
// multiple of the block or the size overflows. I2_S: n/4 + 32 (codes, then a 32-byte tail with the scale).
std::optional<uint64_t> tensor_nbytes(TensorType type, int64_t ne0, int64_t n_elements);

// I2_S byte layouts Microsoft's code can write under the same type id, with no marker in the file (spec 2.5):
// the 128-element groups of the published 2B4T file (the default), ARM builds' 64-element groups, and x86
// builds without ACT_PARALLEL that interleave rows in fours.
enum class I2SLayout { X86_128, Arm64, X86_1x4 };
std::optional<I2SLayout> i2s_layout_from_name(const std::string& name);  // x86-128, arm-64, x86-1x4
// Decodes an I2_S tensor of `n` elements in rows of `ne0` under `layout`.
void decode_i2_s(const uint8_t* data, int64_t ne0, int64_t n, I2SLayout layout, float* out);

// Decodes `n_elements` elements of `type` at `data` (already bounds-checked by the caller) into `out`.
// Row-major over the whole tensor; `ne0` is the row length (needed by I2_S's tail-scale position only
// through n_elements).
void decode_to_f32(TensorType type, const uint8_t* data, int64_t n_elements, float* out);

float bf16_to_f32(uint16_t h);

// Bit-exact encoders for the ternary formats (used by synth and tests). `trits` holds -1/0/+1 per element.
// TQ1_0/TQ2_0 take one scale for every block; I2_S one per tensor.
void encode_tq2_0(std::span<const int8_t> trits, float scale, uint8_t* out);
void encode_tq1_0(std::span<const int8_t> trits, float scale, uint8_t* out);
void encode_i2_s(std::span<const int8_t> trits, float scale, uint8_t* out);

}  // namespace bitnet
