// The CUDA driver API as the CUDA backend uses it: a table of function pointers, filled from libcuda.so.1
// with dlopen at run time (cuda.h is included for its types only, nothing is linked), so the same
// binaries run on a machine without a GPU and refuse a CUDA bundle there with a clear message. Tests
// fill the same table with a host emulator (codegen/cuda/emu/), which runs the generated kernels on the CPU.
#pragma once

#include <cuda.h>

#include <memory>
#include <string>

namespace bitnet::cuda {

struct DriverApi {
#define BITNETC_CUDA_DRIVER_FUNCTIONS(X)                                                                              \
  X(cuInit) X(cuDriverGetVersion) X(cuDeviceGetCount) X(cuDeviceGet) X(cuDeviceGetName) X(cuDeviceGetAttribute)     \
  X(cuDevicePrimaryCtxRetain) X(cuDevicePrimaryCtxRelease) X(cuCtxSetCurrent) X(cuCtxSynchronize)                    \
  X(cuModuleLoadDataEx) X(cuModuleUnload) X(cuModuleGetFunction) X(cuFuncSetAttribute)                               \
  X(cuMemAlloc) X(cuMemFree) X(cuMemAllocHost) X(cuMemFreeHost) X(cuMemGetInfo) X(cuMemsetD8Async)                   \
  X(cuMemcpyHtoD) X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync)                                                          \
  X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize) X(cuLaunchKernel) X(cuLaunchKernelEx)                   \
  X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiate) X(cuGraphLaunch) X(cuGraphDestroy)             \
  X(cuGraphExecDestroy) X(cuGetErrorName) X(cuGetErrorString) X(cuEventCreate) X(cuEventRecord) X(cuEventSynchronize)    \
  X(cuEventElapsedTime) X(cuEventDestroy) X(cuOccupancyMaxActiveBlocksPerMultiprocessor)
#define BITNETC_CUDA_DRIVER_MEMBER(name) decltype(&::name) name = nullptr;
  BITNETC_CUDA_DRIVER_FUNCTIONS(BITNETC_CUDA_DRIVER_MEMBER)
#undef BITNETC_CUDA_DRIVER_MEMBER
  std::string description;  // "libcuda.so.1 (driver 13.0)" or "host emulator"
  bool emulated = false;
};

// The real driver, loaded once per process; throws bitnet::Error starting with `context` ("<file>: target
// cuda") when libcuda.so.1 cannot be loaded, lacks a function, or cuInit fails (no device).
std::shared_ptr<const DriverApi> load_driver(const std::string& context);

// Throws bitnet::Error "<context>: <what>: <CUDA error name>: <description>" unless r is CUDA_SUCCESS.
void check(const DriverApi& api, CUresult r, const std::string& context, const std::string& what);

}  // namespace bitnet::cuda
