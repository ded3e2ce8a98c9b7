// CPU feature detection for the x86 backend. Built without -mavx2 so it can run (and refuse) anywhere.
#include "codegen/x86/x86_backend.h"

#include <xbyak/xbyak_util.h>

#include <algorithm>

namespace bitnet::x86 {

CpuFeatures CpuFeatures::detect() {
  Xbyak::util::Cpu cpu;
  using C = Xbyak::util::Cpu;
  CpuFeatures f;
  f.avx2 = cpu.has(C::tAVX2);
  f.fma = cpu.has(C::tFMA);
  f.f16c = cpu.has(C::tF16C);
  f.avx512 = cpu.has(C::tAVX512F) && cpu.has(C::tAVX512BW) && cpu.has(C::tAVX512VL);
  f.avx512_vnni = f.avx512 && cpu.has(C::tAVX512_VNNI);
  return f;
}

std::string CpuFeatures::describe() const {
  std::string s;
  auto add = [&](bool present, const char* name) {
    if (!present) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(avx2, "avx2");
  add(fma, "fma");
  add(f16c, "f16c");
  add(avx512, "avx512");
  add(avx512_vnni, "avx512vnni");
  return s.empty() ? "none of avx2/fma/f16c" : s;
}

std::vector<std::string> required_isa() { return {"avx2", "fma", "f16c"}; }

std::vector<std::string> missing_isa(const std::vector<std::string>& required, const CpuFeatures& cpu) {
  std::vector<std::string> missing;
  for (const auto& name : required) {
    const bool present = name == "avx2" ? cpu.avx2 : name == "fma" ? cpu.fma : name == "f16c" ? cpu.f16c
                       : name == "avx512" ? cpu.avx512 : name == "avx512vnni" ? cpu.avx512_vnni : false;
    if (!present) missing.push_back(name);
  }
  return missing;
}

}  // namespace bitnet::x86
