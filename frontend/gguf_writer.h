// GGUF v3 writer: metadata and tensor infos are collected first, tensor bytes are produced one tensor at a
// time by a callback while the file is streamed out, so a 1.2 GB model never has to sit in memory twice.
// The file is written to a temporary and renamed (AtomicFile). Tensor offsets are sequential and aligned,
// as current ggml requires.
#pragma once

#include "frontend/gguf.h"

#include <functional>
#include <string>
#include <vector>

namespace bitnet::gguf {

class Writer {
 public:
  void set_string(const std::string& key, const std::string& value);
  void set_u32(const std::string& key, uint32_t value);
  void set_i32(const std::string& key, int32_t value);
  void set_f32(const std::string& key, float value);
  void set_bool(const std::string& key, bool value);
  void set_string_array(const std::string& key, const std::vector<std::string>& values);
  void set_i32_array(const std::string& key, const std::vector<int32_t>& values);
  void set_f32_array(const std::string& key, const std::vector<float>& values);

  // `fill` writes exactly the tensor's byte size (computed from type and shape) into the buffer it is given.
  using Fill = std::function<void(uint8_t* out)>;
  void add_tensor(const std::string& name, TensorType type, std::vector<int64_t> shape, Fill fill);

  // Writes the whole file; `progress(done, total)` is called after each tensor if set.
  void write(const std::string& path, const std::function<void(size_t, size_t)>& progress = {}) const;

 private:
  struct Kv {
    std::string key;
    ValueType type;
    std::vector<uint8_t> payload;  // encoded value without the key and type
  };
  struct Tensor {
    std::string name;
    TensorType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    Fill fill;
  };
  void add_kv(const std::string& key, ValueType type, std::vector<uint8_t> payload);
  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace bitnet::gguf
