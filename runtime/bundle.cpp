#include "runtime/bundle.h"

#include "ir/atomic_file.h"
#include "ir/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace bitnet {
namespace {

constexpr size_t kHeaderBytes = 64, kEntryBytes = 40, kNameBytes = 16;
constexpr uint32_t kMaxSections = 64;

uint64_t align_up(uint64_t x) { return (x + kBundleAlignment - 1) / kBundleAlignment * kBundleAlignment; }

void put_fixed(std::vector<uint8_t>& out, const std::string& s, size_t width) {
  std::vector<uint8_t> field(width, 0);
  std::memcpy(field.data(), s.data(), std::min(s.size(), width - 1));
  out.insert(out.end(), field.begin(), field.end());
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  out.insert(out.end(), b, b + sizeof(T));
}

std::string get_fixed(const uint8_t* p, size_t width) {
  size_t n = 0;
  while (n < width && p[n]) ++n;
  return std::string(reinterpret_cast<const char*>(p), n);
}

}  // namespace

void BundleWriter::add_section(const std::string& name, uint64_t size, std::function<void(uint8_t*)> fill) {
  sections_.push_back({name, size, std::move(fill)});
}

void BundleWriter::add_section(const std::string& name, std::string bytes) {
  uint64_t size = bytes.size();
  add_section(name, size, [bytes = std::move(bytes)](uint8_t* out) { std::memcpy(out, bytes.data(), bytes.size()); });
}

void BundleWriter::write(const std::string& path, const std::function<void(size_t, size_t)>& progress) const {
  // The table holds checksums, which are known only after each section is produced: write a placeholder
  // header, stream the sections, then rewrite the header in the temporary file before renaming it.
  uint64_t offset = align_up(kHeaderBytes + kEntryBytes * sections_.size());
  std::vector<uint64_t> offsets, hashes;
  for (auto& s : sections_) {
    offsets.push_back(offset);
    offset = align_up(offset + s.size);
  }
  AtomicFile out(path);
  std::vector<uint8_t> placeholder(offsets.empty() ? kHeaderBytes : offsets[0], 0);
  out.write(placeholder.data(), placeholder.size());
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < sections_.size(); ++i) {
    buffer.assign(sections_[i].size, 0);
    sections_[i].fill(buffer.data());
    hashes.push_back(XXH64(buffer.data(), buffer.size(), 0));
    out.write(buffer.data(), buffer.size());
    out.pad_to(kBundleAlignment);
    if (progress) progress(i + 1, sections_.size());
  }
  std::vector<uint8_t> header;
  header.insert(header.end(), kBundleMagic, kBundleMagic + 8);
  put<uint32_t>(header, kBundleVersion);
  put<uint32_t>(header, static_cast<uint32_t>(sections_.size()));
  put_fixed(header, target_, 16);
  put_fixed(header, producer_, 32);
  for (size_t i = 0; i < sections_.size(); ++i) {
    put_fixed(header, sections_[i].name, kNameBytes);
    put<uint64_t>(header, offsets[i]);
    put<uint64_t>(header, sections_[i].size);
    put<uint64_t>(header, hashes[i]);
  }
  out.rewrite_at(0, header.data(), header.size());
  out.commit();
}

namespace {
// xxh64 of [offset, +size) in 64 MiB pieces, dropping each piece's pages once hashed: the weights are then
// faulted in again only as the backend touches them, so the check does not set the peak RSS (it would
// otherwise hold a whole 1.2-1.5 GB file resident at once, tables the backend never reads included).
uint64_t checksum(const FileBytes& bytes, uint64_t offset, uint64_t size) {
  constexpr uint64_t kPiece = uint64_t{64} << 20;
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  for (uint64_t done = 0; done < size; done += kPiece) {
    const uint64_t n = std::min(kPiece, size - done);
    XXH64_update(state, bytes.data() + offset + done, n);
    bytes.drop_resident(offset + done, n);
  }
  const uint64_t hash = XXH64_digest(state);
  XXH64_freeState(state);
  return hash;
}
}  // namespace

Bundle Bundle::open(const std::string& path) { return adopt(FileBytes::map(path), path); }

Bundle Bundle::from_memory(std::vector<uint8_t> bytes, const std::string& name) { return adopt(FileBytes::adopt(std::move(bytes)), name); }

Bundle Bundle::adopt(FileBytes bytes, const std::string& name) {
  Bundle b;
  b.path_ = name;
  b.bytes_ = std::move(bytes);
  b.base_ = b.bytes_.data();
  b.size_ = b.bytes_.size();
  if (b.size_ < kHeaderBytes) fail("{}: header: file is {} bytes, a bundle header needs {}", name, b.size_, kHeaderBytes);
  b.parse();
  return b;
}

void Bundle::parse() {
  Bundle& b = *this;
  const std::string& path = path_;
  const uint8_t* h = b.base_;
  if (std::memcmp(h, kBundleMagic, 8) != 0) fail("{}: magic: not a bitnetc bundle (expected \"BITNETCB\")", path);
  uint32_t version, count;
  std::memcpy(&version, h + 8, 4);
  std::memcpy(&count, h + 12, 4);
  if (version > kBundleVersion) fail("{}: version: format {} is newer than this build reads ({}); rebuild bitnetc or recompile", path, version, kBundleVersion);
  if (version < 1) fail("{}: version: {} is not a bundle format version", path, version);
  b.target_ = get_fixed(h + 16, 16);
  b.producer_ = get_fixed(h + 32, 32);
  if (count > kMaxSections) fail("{}: section count: {} exceeds the limit of {}", path, count, kMaxSections);
  if (kHeaderBytes + kEntryBytes * count > b.size_) fail("{}: section table: truncated ({} sections)", path, count);
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t* e = h + kHeaderBytes + kEntryBytes * i;
    Entry entry{get_fixed(e, kNameBytes), 0, 0};
    uint64_t hash;
    std::memcpy(&entry.offset, e + 16, 8);
    std::memcpy(&entry.size, e + 24, 8);
    std::memcpy(&hash, e + 32, 8);
    if (entry.offset % kBundleAlignment != 0) fail("{}: section '{}': offset {} is not 64-byte aligned", path, entry.name, entry.offset);
    if (entry.offset > b.size_ || entry.size > b.size_ - entry.offset) {
      fail("{}: section '{}': [{}, +{}) runs past the end of the file ({} bytes; truncated?)", path, entry.name, entry.offset, entry.size, b.size_);
    }
    if (checksum(b.bytes_, entry.offset, entry.size) != hash) fail("{}: section '{}': checksum mismatch (the file is corrupt)", path, entry.name);
    for (auto& other : b.entries_) {
      if (other.name == entry.name) fail("{}: section '{}' appears twice", path, entry.name);
    }
    b.entries_.push_back(entry);
  }
}

bool Bundle::has(const std::string& name) const {
  for (auto& e : entries_) {
    if (e.name == name) return true;
  }
  return false;
}

std::span<const uint8_t> Bundle::section(const std::string& name) const {
  for (auto& e : entries_) {
    if (e.name == name) return {base_ + e.offset, e.size};
  }
  fail("{}: section '{}' is missing", path_, name);
}

std::string Bundle::section_text(const std::string& name) const {
  auto s = section(name);
  return std::string(reinterpret_cast<const char*>(s.data()), s.size());
}

}  // namespace bitnet
