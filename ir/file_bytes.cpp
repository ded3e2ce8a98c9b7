#include "ir/file_bytes.h"

#include "ir/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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

void FileBytes::drop_resident(uint64_t offset, uint64_t size) const {
  if (!mapping_ || offset >= size_) return;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t begin = (offset + page - 1) / page * page, end = std::min(size_, offset + size) / page * page;
  if (end > begin) ::madvise(static_cast<uint8_t*>(mapping_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace bitnet
