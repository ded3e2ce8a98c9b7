// The whole `bitnetc compile` pipeline for one GGUF: recognise, lower, and write the bundle (meta, tokenizer,
// IR text, plan, weights) for a target. Shared by `bitnetc compile` and by `bitnet-run model.gguf`.
#pragma once

#include "codegen/x86/fused_kernels.h"
#include "frontend/lower.h"
#include "passes/pass_manager.h"

#include <optional>

#include <functional>
#include <string>

namespace bitnet {

struct CompileOptions {
  std::string target = "ref";
  LowerOptions lower;
  std::optional<std::vector<std::string>> pipeline;  // default: the target's pipeline
  std::string lm_head = "exact";  // "exact": the LM head as stored; "int8": rows quantized to int8 (half the bytes)
  std::vector<int> cuda_sm = {90};  // target cuda: a cubin per architecture, PTX for the lowest
  std::string dump_kernels;         // target cuda: the generated CUDA source; x86: the generated LLVM IR
  passes::PipelineOptions printing;
  // Target x86: generates the fused kernels as machine code for the bundle (codegen/x86/llvm). bitnetc
  // sets it where it was built with LLVM; bitnet-run's on-the-fly compile leaves it unset and never links
  // LLVM, and its bundles run the executor's intrinsics (codegen/x86/fused_kernels.h).
  std::function<x86::X86KernelsSection(const ir::Module&, std::string* ir_text)> x86_kernels;
};

struct CompileReport {
  uint64_t bundle_bytes = 0;
  size_t n_ops_lowered = 0, n_ops = 0, n_weights = 0;
  std::vector<passes::PassRun> passes;
  std::vector<std::string> notes, remarks;
  uint64_t arena_bytes_per_token = 0, naive_bytes_per_token = 0;  // from the memory plan
};

CompileReport compile_gguf(const std::string& gguf_path, const std::string& bundle_path, const CompileOptions& options,
                           const std::function<void(size_t, size_t)>& progress = {});

// The IR of a GGUF as lowered, then after the passes of `pipeline` (none: as lowered), without writing
// anything (dump-ir).
std::string lowered_ir_text(const std::string& gguf_path, const LowerOptions& options,
                            const std::vector<std::string>& pipeline = {});

}  // namespace bitnet
