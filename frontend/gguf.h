// GGUF v2/v3 reader over a read-only memory map (spec section 1). open() validates the whole header —
// counts, string lengths, value types, dims, sizes, offsets, alignment, duplicates — before anything is
// indexed, so every later accessor works on checked data. Values are views into the map: nothing is copied
// until a typed getter is asked for it. Every error names the file, the key or tensor, the value seen and
// the bound.
#pragma once

#include "frontend/tensor_types.h"
#include "ir/file_bytes.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace bitnet::gguf {

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* value_type_name(ValueType type);

// Limits (spec 1.5). Named so messages and tests can quote them.
inline constexpr int64_t kMaxTensors = 65536;
inline constexpr int64_t kMaxKvs = 65536;
inline constexpr uint64_t kMaxKeyBytes = 256;
inline constexpr uint64_t kMaxTensorNameBytes = 63;  // ggml: strictly less than GGML_MAX_NAME = 64
inline constexpr uint64_t kMaxStringBytes = 16u << 20;
inline constexpr uint64_t kMaxArrayElements = 1u << 24;
inline constexpr uint32_t kMaxDims = 4;
inline constexpr uint32_t kDefaultAlignment = 32;

// One metadata value, a view into the mapped file. For arrays, `data` points at the first element and
// `count` is the element count; string arrays must be walked (each element has its own length).
struct Value {
  ValueType type;
  ValueType elem_type;  // arrays only
  uint64_t count;       // arrays only
  const uint8_t* data;  // scalar bytes, string bytes (after the length) or the first array element
  uint64_t size;        // bytes of the payload (string length for strings)
};

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  uint32_t n_dims;
  int64_t ne[4];    // missing dims are 1
  TensorType type;
  uint64_t offset;  // relative to the data section
  uint64_t nbytes;  // computed from type and shape, never trusted from the file
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class File {
 public:
  // Maps and validates `path`; throws bitnet::Error naming the file and the field on any defect.
  static File open(const std::string& path);
  // Validates a buffer that is already in memory (tests, fuzzing); `name` is used in messages.
  static File from_memory(std::vector<uint8_t> bytes, const std::string& name);

  // Moving keeps every view valid: the mapping and the buffer do not move.
  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_start_; }
  uint64_t file_size() const { return size_; }

  const std::vector<KeyValue>& metadata() const { return kvs_; }
  const Value* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: throw if the key is present with another type (naming key, expected and actual type).
  // The integer getters accept any integer type whose value fits.
  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<uint64_t> get_uint(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // F32 or F64
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::vector<std::string>> get_string_array(std::string_view key) const;
  std::optional<std::vector<int32_t>> get_i32_array(std::string_view key) const;
  std::optional<std::vector<float>> get_f32_array(std::string_view key) const;
  // Length of an array value (any element type), without decoding it.
  std::optional<uint64_t> array_length(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* tensor(std::string_view name) const;
  const uint8_t* tensor_data(const TensorInfo& info) const { return base_ + data_start_ + info.offset; }

  // Non-fatal observations made while validating (gaps between tensors, non-0/1 bools).
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  File() = default;
  void parse();

  std::string path_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  FileBytes bytes_;                  // base_ and size_ point into it
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_start_ = 0;
  std::vector<KeyValue> kvs_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
  std::vector<std::string> warnings_;
};

}  // namespace bitnet::gguf
