// Crash-safe output: write everything to `path.tmp.<pid>` and rename it over `path` only after a successful
// close, so a reader ever sees the old file or the complete new one. The destructor removes an
// uncommitted temporary (an exception or an early return leaves nothing behind).
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace bitnet {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // throws Error naming the path if the folder is missing
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  void write(const void* data, size_t n);
  void pad_to(uint64_t alignment);  // zero bytes up to the next multiple of `alignment`
  uint64_t offset() const { return offset_; }
  // Overwrites bytes already written (a header whose checksums are known only at the end).
  void rewrite_at(uint64_t offset, const void* data, size_t n);
  void commit();  // flush, fsync, close, rename

  const std::string& path() const { return path_; }

 private:
  std::string path_, temp_path_;
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
};

}  // namespace bitnet
