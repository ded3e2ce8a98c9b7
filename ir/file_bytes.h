// The bytes of an input file, read-only: either a private mmap of a regular file or a buffer handed in from
// memory (tests, fuzzing). Both readers (GGUF and bundle) hold their input this way, so opening, mapping and
// releasing live in one place. Errors name the path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bitnet {

class FileBytes {
 public:
  FileBytes() = default;
  static FileBytes map(const std::string& path);  // throws Error: missing, unreadable, not a regular file
  static FileBytes adopt(std::vector<uint8_t> bytes);
  FileBytes(FileBytes&& other) noexcept { *this = std::move(other); }
  FileBytes& operator=(FileBytes&& other) noexcept;
  FileBytes(const FileBytes&) = delete;
  FileBytes& operator=(const FileBytes&) = delete;
  ~FileBytes() { release(); }

  const uint8_t* data() const { return mapping_ ? static_cast<const uint8_t*>(mapping_) : owned_.data(); }
  uint64_t size() const { return size_; }
  // Lets the kernel drop the resident pages of [offset, offset + size) of a mapped file (they are read
  // again from the page cache when touched); a no-op for an owned buffer. Reading a whole file once,
  // to check it, then need not count all of it in the process's peak memory.
  void drop_resident(uint64_t offset, uint64_t size) const;

 private:
  void release();
  void* mapping_ = nullptr;
  std::vector<uint8_t> owned_;
  uint64_t size_ = 0;
};

}  // namespace bitnet
