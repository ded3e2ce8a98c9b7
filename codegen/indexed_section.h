// The framing both kernel sections of a bundle use ("kernels" for CUDA, "x86_kernels" for x86): 8 magic
// bytes, the length of a JSON index (u32, little-endian), the index, then the blobs it points into; every
// blob an index entry {"offset", "size"} relative to the first blob byte.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace bitnet {

std::string write_indexed_section(const char (&magic)[8], const nlohmann::json& index, const std::string& blobs);

struct IndexedSection {
  nlohmann::json index;
  std::span<const uint8_t> blobs;
  std::string where;  // for messages: "<file>: section '<name>'"
  // The blob of `entry`, bounds-checked; throws naming `what`.
  std::span<const uint8_t> blob(const nlohmann::json& entry, const std::string& what) const;
};

// Checks the magic (`kind` names it in the error) and the index length, parses the index; throws
// bitnet::Error naming `where`. Callers catch nlohmann::json::exception from their own field reads.
IndexedSection read_indexed_section(std::span<const uint8_t> bytes, const char (&magic)[8], const std::string& where, const char* kind);

}  // namespace bitnet
