#include "ir/file_bytes.h"

#include "ir/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace bitnet {

FileBytes FileBytes::map(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("{}: not a regular file", path);
  }
  FileBytes bytes;
  bytes.size_ = static_cast<uint64_t>(st.st_size);
  if (bytes.size_ > 0) {
    void* map = ::mmap(nullptr, bytes.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail("{}: cannot mmap {} bytes: {}", path, bytes.size_, std::strerror(err));
    }
    bytes.mapping_ = map;
  }
  ::close(fd);
  return bytes;
}

FileBytes FileBytes::adopt(std::vector<uint8_t> owned) {
  FileBytes bytes;
  bytes.size_ = owned.size();
  bytes.owned_ = std::move(owned);
  return bytes;
}

FileBytes& FileBytes::operator=(FileBytes&& other) noexcept {
  if (this == &other) return *this;
  release();
  mapping_ = std::exchange(other.mapping_, nullptr);
  owned_ = std::move(other.owned_);
  size_ = std::exchange(other.size_, 0);
  return *this;
}

void FileBytes::release() {
  if (mapping_) ::munmap(mapping_, size_);
  mapping_ = nullptr;
}

}  // namespace bitnet
