// GGUF reader: a cursor that knows how many bytes remain, so every length and count is checked against
// the file before it is used to index or allocate. Validation follows spec 1.5 in order: header, KV
// records, tensor infos, alignment, then tensor placement.
#include "frontend/gguf.h"

#include "ir/error.h"
#include "ir/text_utils.h"


#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

namespace bitnet::gguf {
namespace {

constexpr uint32_t kValueTypeCount = 13;

uint64_t scalar_size(ValueType type) {
  switch (type) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    default: return 0;  // STRING and ARRAY have no fixed size
  }
}

// Bounded little-endian reader over [pos, end). `what` strings name the field being read so a truncated
// file says which field ran out.
class Cursor {
 public:
  Cursor(const std::string& path, const uint8_t* base, uint64_t size) : path_(path), base_(base), size_(size) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      fail("{}: truncated: {} needs {} bytes at offset {} but only {} remain", path_, what, n, pos_, remaining());
    }
  }
  template <typename T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T value;
    std::memcpy(&value, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  const uint8_t* take(uint64_t n, const std::string& what) {
    need(n, what);
    const uint8_t* p = base_ + pos_;
    pos_ += n;
    return p;
  }
  std::string_view read_string(const std::string& what, uint64_t max_len) {
    auto len = read<uint64_t>(what + " length");
    if (len > max_len) fail("{}: {}: string length {} exceeds the limit of {} bytes", path_, what, len, max_len);
    need(len, what);
    const char* p = reinterpret_cast<const char*>(take(len, what));
    return {p, len};
  }

 private:
  const std::string& path_;
  const uint8_t* base_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

}  // namespace

const char* value_type_name(ValueType type) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  auto id = static_cast<uint32_t>(type);
  return id < kValueTypeCount ? names[id] : "unknown";
}

File File::open(const std::string& path) {
  File file;
  file.path_ = path;
  file.bytes_ = FileBytes::map(path);
  file.base_ = file.bytes_.data();
  file.size_ = file.bytes_.size();
  file.parse();
  return file;
}

File File::from_memory(std::vector<uint8_t> bytes, const std::string& name) {
  File file;
  file.path_ = name;
  file.bytes_ = FileBytes::adopt(std::move(bytes));
  file.base_ = file.bytes_.data();
  file.size_ = file.bytes_.size();
  file.parse();
  return file;
}

void File::parse() {
  if (size_ < 24) fail("{}: file is {} bytes; a GGUF header needs at least 24", path_, size_);
  Cursor in(path_, base_, size_);
  auto magic = in.read<uint32_t>("magic");
  if (magic != 0x46554747u) {
    fail("{}: magic: expected \"GGUF\" (47 47 55 46), found {:02x} {:02x} {:02x} {:02x}", path_, base_[0], base_[1],
         base_[2], base_[3]);
  }
  version_ = in.read<uint32_t>("version");
  if (version_ == 0) fail("{}: version: 0 is not a GGUF version", path_);
  if ((version_ & 0xFFFF) == 0) fail("{}: version: {:#x} looks byte-swapped (big-endian GGUF is not supported)", path_, version_);
  if (version_ == 1) fail("{}: version: GGUFv1 is unsupported (only versions 2 and 3)", path_);
  if (version_ > 3) fail("{}: version: {} is newer than supported (2 and 3)", path_, version_);

  auto n_tensors = in.read<int64_t>("n_tensors");
  auto n_kv = in.read<int64_t>("n_kv");
  if (n_tensors < 0 || n_tensors > kMaxTensors) fail("{}: n_tensors: {} is outside [0, {}]", path_, n_tensors, kMaxTensors);
  if (n_kv < 0 || n_kv > kMaxKvs) fail("{}: n_kv: {} is outside [0, {}]", path_, n_kv, kMaxKvs);
  constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1, kMinTensorBytes = 8 + 1 + 4 + 4 + 8;
  if (static_cast<uint64_t>(n_kv) * kMinKvBytes > in.remaining()) {
    fail("{}: n_kv: {} records cannot fit in the {} bytes that remain", path_, n_kv, in.remaining());
  }

  kvs_.reserve(static_cast<size_t>(n_kv));
  for (int64_t i = 0; i < n_kv; ++i) {
    std::string field = fmt::format("kv[{}]", i);
    std::string key(in.read_string(field + " key", kMaxKeyBytes));
    if (key.empty()) fail("{}: {}: empty key", path_, field);
    if (!valid_utf8(key)) fail("{}: {}: key is not valid UTF-8", path_, field);
    field = fmt::format("key '{}'", key);
    if (kv_index_.count(key)) fail("{}: {}: duplicate key", path_, field);
    auto type_id = in.read<uint32_t>(field + " type");
    if (type_id >= kValueTypeCount) fail("{}: {}: unknown value type {} (valid: 0..12)", path_, field, type_id);
    Value value{static_cast<ValueType>(type_id), ValueType::U8, 0, nullptr, 0};
    if (value.type == ValueType::STRING) {
      auto s = in.read_string(field, kMaxStringBytes);
      value.data = reinterpret_cast<const uint8_t*>(s.data());
      value.size = s.size();
    } else if (value.type == ValueType::ARRAY) {
      auto elem_id = in.read<uint32_t>(field + " array element type");
      if (elem_id >= kValueTypeCount) fail("{}: {}: unknown array element type {}", path_, field, elem_id);
      value.elem_type = static_cast<ValueType>(elem_id);
      if (value.elem_type == ValueType::ARRAY) fail("{}: {}: nested arrays are not supported", path_, field);
      value.count = in.read<uint64_t>(field + " array count");
      if (value.count > kMaxArrayElements) {
        fail("{}: {}: array count {} exceeds the limit of {}", path_, field, value.count, kMaxArrayElements);
      }
      value.data = base_ + in.pos();
      uint64_t start = in.pos();
      if (value.elem_type == ValueType::STRING) {
        if (value.count * 8 > in.remaining()) {
          fail("{}: {}: {} strings cannot fit in the {} bytes that remain", path_, field, value.count, in.remaining());
        }
        for (uint64_t e = 0; e < value.count; ++e) in.read_string(fmt::format("{}[{}]", field, e), kMaxStringBytes);
      } else {
        uint64_t elem = scalar_size(value.elem_type);
        if (value.count > in.remaining() / elem) {
          fail("{}: {}: {} elements of {} bytes exceed the {} bytes that remain", path_, field, value.count, elem,
               in.remaining());
        }
        in.take(value.count * elem, field);
      }
      value.size = in.pos() - start;
    } else {
      value.size = scalar_size(value.type);
      value.data = in.take(value.size, field);
      if (value.type == ValueType::BOOL && *value.data > 1) {
        warnings_.push_back(fmt::format("{}: {}: bool byte {} is neither 0 nor 1; read as true", path_, field, *value.data));
      }
    }
    kv_index_.emplace(key, kvs_.size());
    kvs_.push_back({std::move(key), value});
  }

  if (auto* align = find("general.alignment")) {
    if (align->type != ValueType::U32) {
      fail("{}: key 'general.alignment': type {} but must be u32", path_, value_type_name(align->type));
    }
    uint32_t a;
    std::memcpy(&a, align->data, 4);
    if (a == 0 || (a & (a - 1)) != 0) fail("{}: key 'general.alignment': {} is not a non-zero power of two", path_, a);
    if (a > (1u << 16)) fail("{}: key 'general.alignment': {} exceeds the limit of 65536", path_, a);
    alignment_ = a;
  }

  if (static_cast<uint64_t>(n_tensors) * kMinTensorBytes > in.remaining()) {
    fail("{}: n_tensors: {} records cannot fit in the {} bytes that remain", path_, n_tensors, in.remaining());
  }
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (int64_t i = 0; i < n_tensors; ++i) {
    std::string field = fmt::format("tensor[{}]", i);
    TensorInfo t{};
    t.name = std::string(in.read_string(field + " name", 1u << 16));
    if (t.name.empty()) fail("{}: {}: empty tensor name", path_, field);
    if (t.name.size() > kMaxTensorNameBytes) {
      fail("{}: {}: tensor name is {} bytes; the limit is {}", path_, field, t.name.size(), kMaxTensorNameBytes);
    }
    if (!valid_utf8(t.name)) fail("{}: {}: tensor name is not valid UTF-8", path_, field);
    field = fmt::format("tensor '{}'", t.name);
    if (tensor_index_.count(t.name)) fail("{}: {}: duplicate tensor name", path_, field);
    t.n_dims = in.read<uint32_t>(field + " n_dims");
    if (t.n_dims < 1 || t.n_dims > kMaxDims) fail("{}: {}: n_dims {} is outside [1, {}]", path_, field, t.n_dims, kMaxDims);
    for (int d = 0; d < 4; ++d) t.ne[d] = 1;
    int64_t elements = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      t.ne[d] = in.read<int64_t>(fmt::format("{} ne[{}]", field, d));
      if (t.ne[d] < 1) fail("{}: {}: ne[{}] = {} must be at least 1", path_, field, d, t.ne[d]);
      if (elements > std::numeric_limits<int64_t>::max() / t.ne[d]) {
        fail("{}: {}: element count overflows int64 at ne[{}] = {}", path_, field, d, t.ne[d]);
      }
      elements *= t.ne[d];
    }
    auto type_id = in.read<uint32_t>(field + " type");
    auto type = tensor_type_from_id(type_id);
    if (!type) fail("{}: {}: tensor type {} ({}) is not supported", path_, field, type_id, unsupported_type_name(type_id));
    t.type = *type;
    auto nbytes = tensor_nbytes(t.type, t.ne[0], elements);
    if (!nbytes) {
      fail("{}: {}: shape [{}, {}, {}, {}] is invalid for type {} (ne0 must be a multiple of {})", path_, field, t.ne[0],
           t.ne[1], t.ne[2], t.ne[3], tensor_type_name(t.type), type_traits(t.type).block_elements);
    }
    t.nbytes = *nbytes;
    t.offset = in.read<uint64_t>(field + " offset");
    if (t.offset % alignment_ != 0) fail("{}: {}: offset {} is not a multiple of the alignment {}", path_, field, t.offset, alignment_);
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  data_start_ = in.pos();
  if (n_tensors > 0) data_start_ = (data_start_ + alignment_ - 1) / alignment_ * alignment_;
  if (data_start_ > size_) fail("{}: data section: starts at {} past the end of the file ({} bytes)", path_, data_start_, size_);
  uint64_t data_size = size_ - data_start_;

  // Placement: inside the data section, no overlap. Gaps are legal for older writers but worth a warning.
  std::vector<const TensorInfo*> by_offset;
  for (auto& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset) {
      fail("{}: tensor '{}': data [{}, +{}) runs past the end of the file (data section is {} bytes)", path_, t.name,
           t.offset, t.nbytes, data_size);
    }
    by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  uint64_t expected = 0;
  for (size_t i = 0; i < by_offset.size(); ++i) {
    const TensorInfo* t = by_offset[i];
    if (i > 0) {
      const TensorInfo* prev = by_offset[i - 1];
      if (t->offset < prev->offset + prev->nbytes) {
        fail("{}: tensor '{}': data at offset {} overlaps tensor '{}' ({} bytes at {})", path_, t->name, t->offset,
             prev->name, prev->nbytes, prev->offset);
      }
    }
    if (t->offset != expected) {
      warnings_.push_back(fmt::format("{}: tensor '{}': offset {} leaves a gap (the next aligned offset is {})", path_,
                                      t->name, t->offset, expected));
    }
    expected = (t->offset + t->nbytes + alignment_ - 1) / alignment_ * alignment_;
  }
  // Spec 1.2: the data section holds every tensor padded to the alignment, the last one included.
  if (!by_offset.empty() && expected > data_size) {
    fail("{}: tensor '{}': its padding to the alignment {} runs past the end of the file", path_, by_offset.back()->name, alignment_);
  }
}

const Value* File::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

const TensorInfo* File::tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

bool is_integer(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
    case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64: return true;
    default: return false;
  }
}

// Integer value widened to a signed 128-bit range check: returns false if it does not fit in int64 or uint64
// as the caller asks.
__int128 integer_value(const Value& v) {
  switch (v.type) {
    case ValueType::U8: return load<uint8_t>(v.data);
    case ValueType::I8: return load<int8_t>(v.data);
    case ValueType::U16: return load<uint16_t>(v.data);
    case ValueType::I16: return load<int16_t>(v.data);
    case ValueType::U32: return load<uint32_t>(v.data);
    case ValueType::I32: return load<int32_t>(v.data);
    case ValueType::U64: return load<uint64_t>(v.data);
    case ValueType::I64: return load<int64_t>(v.data);
    default: return 0;
  }
}

}  // namespace

std::optional<std::string> File::get_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::STRING) fail("{}: key '{}': type {} but expected string", path_, key, value_type_name(v->type));
  return std::string(reinterpret_cast<const char*>(v->data), v->size);
}

std::optional<uint64_t> File::get_uint(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer(v->type)) fail("{}: key '{}': type {} but expected an unsigned integer", path_, key, value_type_name(v->type));
  __int128 x = integer_value(*v);
  if (x < 0) fail("{}: key '{}': value {} is negative", path_, key, static_cast<int64_t>(x));
  return static_cast<uint64_t>(x);
}

std::optional<int64_t> File::get_int(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (!is_integer(v->type)) fail("{}: key '{}': type {} but expected an integer", path_, key, value_type_name(v->type));
  __int128 x = integer_value(*v);
  if (x > std::numeric_limits<int64_t>::max()) fail("{}: key '{}': value does not fit in int64", path_, key);
  return static_cast<int64_t>(x);
}

std::optional<double> File::get_float(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == ValueType::F32) return load<float>(v->data);
  if (v->type == ValueType::F64) return load<double>(v->data);
  fail("{}: key '{}': type {} but expected f32", path_, key, value_type_name(v->type));
}

std::optional<bool> File::get_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::BOOL) fail("{}: key '{}': type {} but expected bool", path_, key, value_type_name(v->type));
  return *v->data != 0;
}

std::optional<uint64_t> File::array_length(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::ARRAY) fail("{}: key '{}': type {} but expected an array", path_, key, value_type_name(v->type));
  return v->count;
}

namespace {
const Value& expect_array(const std::string& path, std::string_view key, const Value& v, ValueType elem) {
  if (v.type != ValueType::ARRAY || v.elem_type != elem) {
    fail("{}: key '{}': type {}{}{} but expected array of {}", path, key, value_type_name(v.type),
         v.type == ValueType::ARRAY ? " of " : "", v.type == ValueType::ARRAY ? value_type_name(v.elem_type) : "",
         value_type_name(elem));
  }
  return v;
}
}  // namespace

std::optional<std::vector<std::string>> File::get_string_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  expect_array(path_, key, *v, ValueType::STRING);
  std::vector<std::string> out;
  out.reserve(v->count);
  const uint8_t* p = v->data;  // validated during parse: every length fits
  for (uint64_t i = 0; i < v->count; ++i) {
    auto len = load<uint64_t>(p);
    out.emplace_back(reinterpret_cast<const char*>(p + 8), len);
    p += 8 + len;
  }
  return out;
}

std::optional<std::vector<int32_t>> File::get_i32_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  expect_array(path_, key, *v, ValueType::I32);
  std::vector<int32_t> out(v->count);
  std::memcpy(out.data(), v->data, v->count * 4);
  return out;
}

std::optional<std::vector<float>> File::get_f32_array(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  expect_array(path_, key, *v, ValueType::F32);
  std::vector<float> out(v->count);
  std::memcpy(out.data(), v->data, v->count * 4);
  return out;
}

}  // namespace bitnet::gguf
