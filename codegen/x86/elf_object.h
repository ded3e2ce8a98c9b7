// A minimal loader for the ELF relocatable objects (x86-64, ET_REL) that bitnetc's LLVM code generator
// stores in x86 bundles: it lays the allocated sections out in one private mapping, applies the
// relocations such position-independent code needs (R_X86_64_64, PC32, PLT32, PC64), makes code pages
// read+execute and the rest read-only, and looks up global symbols. Objects that need anything else — an
// undefined symbol (a library call), a writable section, another relocation type — are refused with the
// field named, so the runtime never needs LLVM or a dynamic linker to use precompiled kernels.
#pragma once

#include <elf.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace bitnet::x86 {

class ElfObject {
 public:
  // Throws bitnet::Error naming `where` and the offending field.
  ElfObject(std::span<const uint8_t> bytes, const std::string& where);
  ~ElfObject();
  ElfObject(const ElfObject&) = delete;
  ElfObject& operator=(const ElfObject&) = delete;
  // The address of a defined global symbol, or null.
  void* symbol(const std::string& name) const;
  const std::map<std::string, void*>& symbols() const { return symbols_; }

 private:
  // Copies the sections to their places `at` in the mapping, relocates, protects, collects the symbols.
  void link(std::span<const uint8_t> bytes, const std::string& where, const std::vector<Elf64_Shdr>& sh, const std::vector<uint64_t>& at,
            uint64_t code_end);
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, void*> symbols_;
};

}  // namespace bitnet::x86
