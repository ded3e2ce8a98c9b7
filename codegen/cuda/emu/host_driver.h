// A host emulator of the CUDA driver API subset the CUDA backend uses, for tests on machines without a
// GPU: "device" memory is host memory, a stream runs its work at once (or records it while a graph is
// captured), and a kernel launch runs the host-compiled flavor of the bundle's generated kernels
// (kernel_source.h, Flavor::Host) with every CUDA thread of a block as a fiber: __syncthreads, warp
// shuffles and mma are real exchange points between those fibers, blocks run one after another (all at
// once for a cooperative launch, whose blocks may wait for each other at a grid barrier). It checks
// the kernels' indexing, synchronisation and arithmetic against codegen/ref end to end; it says nothing
// about speed or about the GPU's memory model.
#pragma once

#include "codegen/cuda/driver_api.h"

#include <memory>
#include <string>

namespace bitnet::cuda::emu {

// Compiles `source` (a Flavor::Host translation unit) with `compiler` into <dir>/kernels_host.so and
// returns its path; throws bitnet::Error with the compiler's output on failure.
std::string build_kernel_library(const std::string& source, const std::string& dir, const std::string& compiler);

// The emulated driver; every module it loads is `library`, whatever image the executor hands it.
std::shared_ptr<const DriverApi> host_driver(const std::string& library);

}  // namespace bitnet::cuda::emu
