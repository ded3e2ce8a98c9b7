// Compile time of the CUDA target: the module's kernels generated (kernel_plan + kernel_source) and
// compiled by NVRTC into a cubin per requested architecture plus PTX for the others, packed as the bundle's
// "kernels" section. NVRTC is loaded with dlopen when first needed (libnvrtc.so.13 from the loader path or
// /usr/local/cuda), so nothing that merely links the frontend (bitnet-run) depends on the CUDA toolkit.
#pragma once

#include "codegen/cuda/kernels_section.h"
#include "ir/ir.h"

#include <string>
#include <vector>

namespace bitnet::cuda {

struct NvrtcResult {
  bool ok = false;
  std::string log;             // NVRTC's program log (warnings, errors)
  std::vector<uint8_t> image;  // cubin, or NUL-terminated PTX
};

// "major.minor" of the NVRTC found; throws bitnet::Error when there is none.
std::string nvrtc_version();

// Compiles one source for "sm_NN" (cubin) or "compute_NN" (PTX) with the backend's options.
NvrtcResult nvrtc_compile(const std::string& source, const std::string& arch, const std::string& name);

// The options every kernel source is compiled with (--fmad=false: products and sums rounded separately,
// as in codegen/ref, which the integer path matches bit for bit).
std::vector<std::string> nvrtc_options(const std::string& arch);

// Plans, generates and compiles every kernel of `m`: a cubin for each of `sms` (e.g. {90}) and PTX for
// the lowest of them. Throws bitnet::Error with the NVRTC log when a compile fails.
KernelsSection build_kernels(const ir::Module& m, const std::vector<int>& sms);

}  // namespace bitnet::cuda
