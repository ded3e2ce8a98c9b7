#include "frontend/gguf_writer.h"

#include "ir/atomic_file.h"
#include "ir/error.h"

#include <cstring>

namespace bitnet::gguf {
namespace {

template <typename T>
void put(std::vector<uint8_t>& out, T value) {
  uint8_t bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

template <typename T>
std::vector<uint8_t> scalar(T value) {
  std::vector<uint8_t> out;
  put(out, value);
  return out;
}

}  // namespace

void Writer::add_kv(const std::string& key, ValueType type, std::vector<uint8_t> payload) {
  for (auto& kv : kvs_) {
    if (kv.key == key) {
      kv = {key, type, std::move(payload)};
      return;
    }
  }
  kvs_.push_back({key, type, std::move(payload)});
}

void Writer::set_string(const std::string& key, const std::string& value) {
  std::vector<uint8_t> p;
  put_string(p, value);
  add_kv(key, ValueType::STRING, std::move(p));
}
void Writer::set_u32(const std::string& key, uint32_t value) { add_kv(key, ValueType::U32, scalar(value)); }
void Writer::set_i32(const std::string& key, int32_t value) { add_kv(key, ValueType::I32, scalar(value)); }
void Writer::set_f32(const std::string& key, float value) { add_kv(key, ValueType::F32, scalar(value)); }
void Writer::set_bool(const std::string& key, bool value) { add_kv(key, ValueType::BOOL, scalar<uint8_t>(value ? 1 : 0)); }

void Writer::set_string_array(const std::string& key, const std::vector<std::string>& values) {
  std::vector<uint8_t> p;
  put<uint32_t>(p, static_cast<uint32_t>(ValueType::STRING));
  put<uint64_t>(p, values.size());
  for (auto& v : values) put_string(p, v);
  add_kv(key, ValueType::ARRAY, std::move(p));
}

void Writer::set_i32_array(const std::string& key, const std::vector<int32_t>& values) {
  std::vector<uint8_t> p;
  put<uint32_t>(p, static_cast<uint32_t>(ValueType::I32));
  put<uint64_t>(p, values.size());
  for (auto v : values) put(p, v);
  add_kv(key, ValueType::ARRAY, std::move(p));
}

void Writer::set_f32_array(const std::string& key, const std::vector<float>& values) {
  std::vector<uint8_t> p;
  put<uint32_t>(p, static_cast<uint32_t>(ValueType::F32));
  put<uint64_t>(p, values.size());
  for (auto v : values) put(p, v);
  add_kv(key, ValueType::ARRAY, std::move(p));
}

void Writer::add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape, Fill fill) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  auto nbytes = tensor_nbytes(type, shape.at(0), n);
  if (!nbytes) fail("tensor '{}': shape is invalid for type {}", name, tensor_type_name(type));
  tensors_.push_back({name, type, std::move(shape), *nbytes, std::move(fill)});
}

void Writer::write(const std::string& path, const std::function<void(size_t, size_t)>& progress) const {
  std::vector<uint8_t> header;
  put<uint32_t>(header, 0x46554747u);
  put<uint32_t>(header, 3);
  put<int64_t>(header, static_cast<int64_t>(tensors_.size()));
  put<int64_t>(header, static_cast<int64_t>(kvs_.size()));
  for (auto& kv : kvs_) {
    put_string(header, kv.key);
    put<uint32_t>(header, static_cast<uint32_t>(kv.type));
    header.insert(header.end(), kv.payload.begin(), kv.payload.end());
  }
  uint64_t offset = 0;
  for (auto& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.shape.size()));
    for (auto d : t.shape) put<int64_t>(header, d);
    put<uint32_t>(header, static_cast<uint32_t>(t.type));
    put<uint64_t>(header, offset);
    offset += (t.nbytes + kDefaultAlignment - 1) / kDefaultAlignment * kDefaultAlignment;
  }

  AtomicFile out(path);
  out.write(header.data(), header.size());
  if (!tensors_.empty()) out.pad_to(kDefaultAlignment);
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const auto& t = tensors_[i];
    buffer.assign(t.nbytes, 0);
    t.fill(buffer.data());
    out.write(buffer.data(), buffer.size());
    out.pad_to(kDefaultAlignment);
    if (progress) progress(i + 1, tensors_.size());
  }
  out.commit();
}

}  // namespace bitnet::gguf
