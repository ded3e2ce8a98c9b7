#include "codegen/x86/elf_object.h"

#include "ir/error.h"

#include <elf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace bitnet::x86 {
namespace {

template <class T>
T read_at(std::span<const uint8_t> bytes, uint64_t offset, const std::string& where, const char* what) {
  if (offset > bytes.size() || sizeof(T) > bytes.size() - offset) fail("{}: {} at offset {} is outside the object ({} bytes)", where, what, offset, bytes.size());
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace

ElfObject::ElfObject(std::span<const uint8_t> bytes, const std::string& where) {
  const auto eh = read_at<Elf64_Ehdr>(bytes, 0, where, "ELF header");
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) fail("{}: not an ELF object (bad magic)", where);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 || eh.e_type != ET_REL) {
    fail("{}: e_ident/e_machine/e_type: not a little-endian x86-64 relocatable object", where);
  }
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shnum > 4096) fail("{}: e_shentsize/e_shnum: {} sections of {} bytes", where, eh.e_shnum, eh.e_shentsize);
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  for (size_t i = 0; i < sh.size(); ++i) sh[i] = read_at<Elf64_Shdr>(bytes, eh.e_shoff + i * sizeof(Elf64_Shdr), where, "section header");
  // Layout: code first, then read-only data, each section at its alignment; the boundary on a page.
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::vector<uint64_t> at(sh.size(), UINT64_MAX);
  uint64_t end = 0, code_end = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < sh.size(); ++i) {
      if (!(sh[i].sh_flags & SHF_ALLOC) || sh[i].sh_size == 0) continue;
      if (sh[i].sh_flags & SHF_WRITE) fail("{}: section {}: writable (kernels keep no state)", where, i);
      if (((sh[i].sh_flags & SHF_EXECINSTR) != 0) != (pass == 0)) continue;
      const uint64_t align = std::max<uint64_t>(1, sh[i].sh_addralign);
      if (align > page || (align & (align - 1))) fail("{}: section {}: sh_addralign {}", where, i, sh[i].sh_addralign);
      if (sh[i].sh_size > (uint64_t{1} << 30)) fail("{}: section {}: sh_size {}", where, i, sh[i].sh_size);
      end = align_up(end, align);
      at[i] = end;
      end += sh[i].sh_size;
    }
    if (pass == 0) code_end = end = align_up(end, page);
  }
  size_ = std::max<uint64_t>(align_up(end, page), page);
  void* mem = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fail("{}: cannot map {} bytes for the kernels", where, size_);
  base_ = static_cast<uint8_t*>(mem);
  try {
    link(bytes, where, sh, at, code_end);
  } catch (...) {
    munmap(base_, size_);
    throw;
  }
}

void ElfObject::link(std::span<const uint8_t> bytes, const std::string& where, const std::vector<Elf64_Shdr>& sh, const std::vector<uint64_t>& at,
                     uint64_t code_end) {
  auto contents = [&](size_t i) -> std::span<const uint8_t> {
    if (sh[i].sh_type == SHT_NOBITS) return {};
    if (sh[i].sh_offset > bytes.size() || sh[i].sh_size > bytes.size() - sh[i].sh_offset) fail("{}: section {}: contents outside the object", where, i);
    return bytes.subspan(sh[i].sh_offset, sh[i].sh_size);
  };
  for (size_t i = 0; i < sh.size(); ++i) {
    if (at[i] == UINT64_MAX || sh[i].sh_type == SHT_NOBITS) continue;
    const auto data = contents(i);
    std::memcpy(base_ + at[i], data.data(), data.size());
  }

  // The symbol table (there is one in an object with relocations) and its strings.
  size_t symtab = 0;
  for (size_t i = 0; i < sh.size(); ++i)
    if (sh[i].sh_type == SHT_SYMTAB) symtab = i;
  if (symtab == 0 || sh[symtab].sh_link >= sh.size() || sh[symtab].sh_entsize != sizeof(Elf64_Sym)) fail("{}: no usable symbol table", where);
  const auto syms = contents(symtab);
  const auto strings = contents(sh[symtab].sh_link);
  const size_t n_syms = syms.size() / sizeof(Elf64_Sym);
  auto symbol_at = [&](size_t index) {
    if (index >= n_syms) fail("{}: symbol index {} of {}", where, index, n_syms);
    return read_at<Elf64_Sym>(syms, index * sizeof(Elf64_Sym), where, "symbol");
  };
  auto name_of = [&](const Elf64_Sym& s) {
    if (s.st_name >= strings.size()) fail("{}: symbol name offset {}", where, s.st_name);
    const char* p = reinterpret_cast<const char*>(strings.data()) + s.st_name;
    return std::string(p, strnlen(p, strings.size() - s.st_name));
  };
  auto address_of = [&](const Elf64_Sym& s) -> uint64_t {
    if (s.st_shndx == SHN_UNDEF) fail("{}: undefined symbol '{}' (the kernels must not call libraries)", where, name_of(s));
    if (s.st_shndx == SHN_ABS) return s.st_value;
    if (s.st_shndx >= sh.size() || at[s.st_shndx] == UINT64_MAX) fail("{}: symbol '{}' in section {}, which is not loaded", where, name_of(s), s.st_shndx);
    if (s.st_value > sh[s.st_shndx].sh_size) fail("{}: symbol '{}': st_value {} past its section", where, name_of(s), s.st_value);
    return reinterpret_cast<uint64_t>(base_ + at[s.st_shndx] + s.st_value);
  };

  for (size_t r = 0; r < sh.size(); ++r) {
    if (sh[r].sh_type == SHT_REL) fail("{}: section {}: SHT_REL relocations (x86-64 objects use RELA)", where, r);
    if (sh[r].sh_type != SHT_RELA) continue;
    const size_t target = sh[r].sh_info;
    if (target >= sh.size()) fail("{}: relocation section {}: sh_info {}", where, r, target);
    if (at[target] == UINT64_MAX) continue;  // relocations of sections that are not loaded (debug info)
    if (sh[r].sh_link != symtab || sh[r].sh_entsize != sizeof(Elf64_Rela)) fail("{}: relocation section {}: sh_link/sh_entsize", where, r);
    const auto relas = contents(r);
    for (size_t j = 0; j < relas.size() / sizeof(Elf64_Rela); ++j) {
      const auto rel = read_at<Elf64_Rela>(relas, j * sizeof(Elf64_Rela), where, "relocation");
      const uint32_t type = ELF64_R_TYPE(rel.r_info);
      const size_t width = type == R_X86_64_64 || type == R_X86_64_PC64 ? 8 : 4;
      if (rel.r_offset > sh[target].sh_size || width > sh[target].sh_size - rel.r_offset) fail("{}: relocation {} of section {}: r_offset {}", where, j, target, rel.r_offset);
      uint8_t* place = base_ + at[target] + rel.r_offset;
      const uint64_t s = address_of(symbol_at(ELF64_R_SYM(rel.r_info)));
      const uint64_t value = s + static_cast<uint64_t>(rel.r_addend);
      const uint64_t p = reinterpret_cast<uint64_t>(place);
      switch (type) {
        case R_X86_64_64: std::memcpy(place, &value, 8); break;
        case R_X86_64_PC64: {
          const uint64_t v = value - p;
          std::memcpy(place, &v, 8);
          break;
        }
        case R_X86_64_PC32:
        case R_X86_64_PLT32: {  // a call to a function of the same object: direct
          const int64_t v = static_cast<int64_t>(value - p);
          if (v != static_cast<int32_t>(v)) fail("{}: relocation {} of section {}: PC32 displacement out of range", where, j, target);
          const int32_t v32 = static_cast<int32_t>(v);
          std::memcpy(place, &v32, 4);
          break;
        }
        default: fail("{}: relocation {} of section {}: type {} is not supported", where, j, target, type);
      }
    }
  }
  if (code_end > 0 && mprotect(base_, code_end, PROT_READ | PROT_EXEC) != 0) fail("{}: cannot make the kernel code executable", where);
  if (size_ > code_end && mprotect(base_ + code_end, size_ - code_end, PROT_READ) != 0) fail("{}: cannot protect the kernel data", where);

  for (size_t i = 1; i < n_syms; ++i) {
    const auto s = symbol_at(i);
    if (ELF64_ST_BIND(s.st_info) != STB_GLOBAL || s.st_shndx == SHN_UNDEF || ELF64_ST_TYPE(s.st_info) != STT_FUNC) continue;
    symbols_[name_of(s)] = reinterpret_cast<void*>(address_of(s));
  }
}

ElfObject::~ElfObject() {
  if (base_) munmap(base_, size_);
}

void* ElfObject::symbol(const std::string& name) const {
  auto it = symbols_.find(name);
  return it == symbols_.end() ? nullptr : it->second;
}

}  // namespace bitnet::x86
