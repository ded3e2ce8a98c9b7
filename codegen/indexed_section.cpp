#include "codegen/indexed_section.h"

#include "ir/error.h"

#include <cstring>

namespace bitnet {

std::string write_indexed_section(const char (&magic)[8], const nlohmann::json& index, const std::string& blobs) {
  const std::string text = index.dump();
  std::string out(magic, 8);
  const uint32_t n = static_cast<uint32_t>(text.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + text + blobs;
}

std::span<const uint8_t> IndexedSection::blob(const nlohmann::json& entry, const std::string& what) const {
  const uint64_t offset = entry.at("offset").get<uint64_t>(), size = entry.at("size").get<uint64_t>();
  if (offset > blobs.size() || size > blobs.size() - offset) fail("{}: {}: [{}, +{}) is outside the section", where, what, offset, size);
  return blobs.subspan(offset, size);
}

IndexedSection read_indexed_section(std::span<const uint8_t> bytes, const char (&magic)[8], const std::string& where, const char* kind) {
  if (bytes.size() < 12 || std::memcmp(bytes.data(), magic, 8) != 0) fail("{}: not {} (bad magic)", where, kind);
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(bytes[8 + i]) << (8 * i);
  if (n > bytes.size() - 12) fail("{}: index of {} bytes but only {} follow", where, n, bytes.size() - 12);
  IndexedSection s;
  s.where = where;
  s.blobs = bytes.subspan(12 + n);
  try {
    s.index = nlohmann::json::parse(bytes.begin() + 12, bytes.begin() + 12 + n);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: index: {}", where, e.what());
  }
  return s;
}

}  // namespace bitnet
