#include "codegen/cuda/driver_api.h"

#include "ir/error.h"

#include <dlfcn.h>

#include <mutex>

namespace bitnet::cuda {
namespace {

// cuda.h maps most names to versioned symbols (cuMemAlloc -> cuMemAlloc_v2): stringify after expansion.
#define BITNETC_STR(x) #x
#define BITNETC_XSTR(x) BITNETC_STR(x)

std::shared_ptr<const DriverApi> open_driver(const std::string& context) {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) fail("{}: no CUDA driver (libcuda.so.1) on this machine", context);
  auto api = std::make_shared<DriverApi>();
#define BITNETC_CUDA_DRIVER_LOAD(name)                                                                  \
  api->name = reinterpret_cast<decltype(&::name)>(dlsym(lib, BITNETC_XSTR(name)));                   \
  if (!api->name) fail("{}: the CUDA driver (libcuda.so.1) has no {}: it is older than CUDA 12", context, BITNETC_XSTR(name));
  BITNETC_CUDA_DRIVER_FUNCTIONS(BITNETC_CUDA_DRIVER_LOAD)
#undef BITNETC_CUDA_DRIVER_LOAD
  const CUresult init = api->cuInit(0);
  if (init == CUDA_ERROR_NO_DEVICE) fail("{}: no CUDA device on this machine", context);
  check(*api, init, context, "cuInit");
  int count = 0;
  check(*api, api->cuDeviceGetCount(&count), context, "cuDeviceGetCount");
  if (count < 1) fail("{}: no CUDA device on this machine", context);
  int version = 0;
  api->cuDriverGetVersion(&version);
  api->description = fmt::format("libcuda.so.1 (driver API {}.{})", version / 1000, version % 1000 / 10);
  return api;
}

}  // namespace

std::shared_ptr<const DriverApi> load_driver(const std::string& context) {
  // The library stays loaded for the process; a failure is not cached, so the message names each caller.
  static std::mutex mutex;
  static std::shared_ptr<const DriverApi> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (!loaded) loaded = open_driver(context);
  return loaded;
}

void check(const DriverApi& api, CUresult r, const std::string& context, const std::string& what) {
  if (r == CUDA_SUCCESS) return;
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName) api.cuGetErrorName(r, &name);
  if (api.cuGetErrorString) api.cuGetErrorString(r, &text);
  fail("{}: {}: {} ({})", context, what, name ? name : fmt::format("CUDA error {}", static_cast<int>(r)), text ? text : "no description");
}

}  // namespace bitnet::cuda
