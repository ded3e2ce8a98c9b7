// The CUDA C++ the backend generates: templates from codegen/cuda/kernels/ (embedded in the binary at
// build time) with named ${HOLES} filled from a KernelSpec, after a prelude. The same kernel text is
// compiled two ways: by NVRTC for the GPU (Flavor::Device) and by the host C++ compiler for the emulator
// the tests run on machines without a GPU (Flavor::Host).
#pragma once

#include "codegen/cuda/kernel_plan.h"

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace bitnet::cuda {

// The text of codegen/cuda/kernels/<file>; throws for an unknown name.
std::string_view kernel_template(std::string_view file);

// Replaces every ${NAME} in `text` with holes[NAME]. Throws (naming `what`) on a hole without a value and on
// a value no hole uses, so a template and its generator cannot drift apart silently.
std::string fill_template(std::string_view text, const std::map<std::string, std::string>& holes, const std::string& what);

enum class Flavor { Device, Host };

// One translation unit: the prelude of `flavor`, the argument structs, the shared device code, then every
// kernel of `kernels`.
std::string generate_source(const std::vector<KernelSpec>& kernels, Flavor flavor);

}  // namespace bitnet::cuda
