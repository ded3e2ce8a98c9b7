// The bundle: one self-contained file per compiled model.
//   header (64 bytes): magic "BITNETCB", u32 format version, u32 section count, char target[16],
//                      char producer[32] (NUL-padded)
//   section table: per section char name[16], u64 offset, u64 size, u64 xxh64 of the bytes
//   sections, each at a 64-byte aligned offset: meta (JSON), tokenizer (TokenizerVocab binary),
//   ir (optimized IR text), plan (JSON: weight table, op order), weights (each weight 64-byte aligned)
// The writer streams to a temporary file and renames it; the reader maps the file read-only and checks
// magic, version, target, every section's bounds and checksum before anything uses it.
#pragma once

#include "ir/file_bytes.h"

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace bitnet {

inline constexpr char kBundleMagic[8] = {'B', 'I', 'T', 'N', 'E', 'T', 'C', 'B'};
inline constexpr uint32_t kBundleVersion = 1;
inline constexpr uint64_t kBundleAlignment = 64;

class BundleWriter {
 public:
  BundleWriter(std::string target, std::string producer) : target_(std::move(target)), producer_(std::move(producer)) {}
  // A section whose bytes are produced by `fill` into a buffer of `size` bytes when the file is written.
  void add_section(const std::string& name, uint64_t size, std::function<void(uint8_t*)> fill);
  void add_section(const std::string& name, std::string bytes);
  void write(const std::string& path, const std::function<void(size_t, size_t)>& progress = {}) const;

 private:
  struct Section {
    std::string name;
    uint64_t size;
    std::function<void(uint8_t*)> fill;
  };
  std::string target_, producer_;
  std::vector<Section> sections_;
};

class Bundle {
 public:
  // Maps and validates; throws bitnet::Error naming the file and the field.
  static Bundle open(const std::string& path);
  // Validates a bundle already in memory (tests, fuzzing); `name` is used in messages.
  static Bundle from_memory(std::vector<uint8_t> bytes, const std::string& name);
  // Moving keeps section views valid: the mapping and the buffer do not move.
  Bundle(Bundle&&) noexcept = default;
  Bundle& operator=(Bundle&&) noexcept = default;

  const std::string& path() const { return path_; }
  const std::string& target() const { return target_; }
  const std::string& producer() const { return producer_; }
  bool has(const std::string& section) const;
  // Throws naming the bundle and the section when it is absent.
  std::span<const uint8_t> section(const std::string& name) const;
  std::string section_text(const std::string& name) const;

 private:
  Bundle() = default;
  static Bundle adopt(FileBytes bytes, const std::string& name);
  void parse();
  struct Entry {
    std::string name;
    uint64_t offset, size;
  };
  std::string path_, target_, producer_;
  const uint8_t* base_ = nullptr;
  uint64_t size_ = 0;
  FileBytes bytes_;  // base_ and size_ point into it
  std::vector<Entry> entries_;
};

}  // namespace bitnet
