#include "ir/atomic_file.h"

#include "ir/error.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace bitnet {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  temp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  file_ = std::fopen(temp_path_.c_str(), "wb");
  if (!file_) {
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent)) fail("{}: output folder '{}' does not exist", path_, parent.string());
    fail("{}: cannot create: {}", path_, std::strerror(errno));
  }
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::remove(temp_path_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (n == 0) return;
  if (std::fwrite(data, 1, n, file_) != n) fail("{}: write failed at offset {}: {}", path_, offset_, std::strerror(errno));
  offset_ += n;
}

void AtomicFile::pad_to(uint64_t alignment) {
  static const uint8_t zeros[4096] = {};
  uint64_t pad = (alignment - offset_ % alignment) % alignment;
  while (pad > 0) {
    size_t n = pad < sizeof(zeros) ? pad : sizeof(zeros);
    write(zeros, n);
    pad -= n;
  }
}

void AtomicFile::rewrite_at(uint64_t offset, const void* data, size_t n) {
  if (offset + n > offset_ || std::fseek(file_, static_cast<long>(offset), SEEK_SET) != 0 ||
      std::fwrite(data, 1, n, file_) != n || std::fseek(file_, 0, SEEK_END) != 0) {
    fail("{}: rewrite at offset {} failed: {}", path_, offset, std::strerror(errno));
  }
}

void AtomicFile::commit() {
  if (std::fflush(file_) != 0 || ::fsync(::fileno(file_)) != 0) fail("{}: flush failed: {}", path_, std::strerror(errno));
  if (std::fclose(file_) != 0) {
    file_ = nullptr;
    std::remove(temp_path_.c_str());
    fail("{}: close failed: {}", path_, std::strerror(errno));
  }
  file_ = nullptr;
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    int err = errno;
    std::remove(temp_path_.c_str());
    fail("{}: cannot rename the finished file into place: {}", path_, std::strerror(err));
  }
}

}  // namespace bitnet
