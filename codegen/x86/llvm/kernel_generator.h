// The compile-time half of the x86 backend's fused kernels (codegen/x86/fused_kernels.h): LLVM IR for
// every kernel a module needs, specialised on its shapes, optimized at -O3 for each instruction-set level
// and emitted as one ELF relocatable object per level. Only `bitnetc compile` links this (and LLVM).
#pragma once

#include "codegen/x86/fused_kernels.h"
#include "ir/ir.h"

#include <string>

namespace bitnet::x86 {

// `ir_text`, when given, receives the generated (unoptimized) LLVM IR of each level, for --dump-kernels.
X86KernelsSection generate_x86_kernels(const ir::Module& module, std::string* ir_text = nullptr);
// The same for an explicit list of kernels (tests).
X86KernelsSection generate_x86_kernels(const std::vector<FusedKernelSpec>& specs, std::string* ir_text = nullptr);

}  // namespace bitnet::x86
