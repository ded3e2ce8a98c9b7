#include "codegen/cuda/nvrtc_compiler.h"

#include "codegen/cuda/kernel_plan.h"
#include "codegen/cuda/kernel_source.h"
#include "ir/error.h"

#include <dlfcn.h>
#include <nvrtc.h>

#include <algorithm>
#include <future>
#include <map>
#include <mutex>

namespace bitnet::cuda {
namespace {

struct NvrtcApi {
#define BITNETC_NVRTC_FUNCTIONS(X)                                                                                  \
  X(nvrtcVersion) X(nvrtcGetErrorString) X(nvrtcCreateProgram) X(nvrtcDestroyProgram) X(nvrtcCompileProgram)      \
  X(nvrtcGetProgramLogSize) X(nvrtcGetProgramLog) X(nvrtcGetPTXSize) X(nvrtcGetPTX) X(nvrtcGetCUBINSize) X(nvrtcGetCUBIN)
#define BITNETC_NVRTC_MEMBER(name) decltype(&::name) name = nullptr;
  BITNETC_NVRTC_FUNCTIONS(BITNETC_NVRTC_MEMBER)
#undef BITNETC_NVRTC_MEMBER
};

const NvrtcApi& nvrtc() {
  static std::once_flag once;
  static NvrtcApi api;
  static std::string error;
  std::call_once(once, [] {
    void* lib = nullptr;
    for (const char* name : {"libnvrtc.so.13", "libnvrtc.so", "/usr/local/cuda/lib64/libnvrtc.so.13", "/usr/local/cuda/lib64/libnvrtc.so"}) {
      if ((lib = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    }
    if (!lib) {
      error = "--target cuda: NVRTC (libnvrtc.so.13) is not on this machine: install the CUDA toolkit or add its lib64 to LD_LIBRARY_PATH";
      return;
    }
#define BITNETC_NVRTC_LOAD(name)                                              \
  api.name = reinterpret_cast<decltype(&::name)>(dlsym(lib, #name));          \
  if (!api.name && error.empty()) error = std::string("--target cuda: NVRTC lacks ") + #name;
    BITNETC_NVRTC_FUNCTIONS(BITNETC_NVRTC_LOAD)
#undef BITNETC_NVRTC_LOAD
  });
  if (!error.empty()) fail("{}", error);
  return api;
}

}  // namespace

std::string nvrtc_version() {
  int major = 0, minor = 0;
  nvrtc().nvrtcVersion(&major, &minor);
  return fmt::format("{}.{}", major, minor);
}

// ptxas warns on register spills and on any local memory (an array indexed at run time, e.g. by a loop
// that did not unroll): the NVRTC clean-log test turns either into a failure.
std::vector<std::string> nvrtc_options(const std::string& arch) {
  return {"--gpu-architecture=" + arch, "-std=c++17", "--fmad=false", "-default-device", "--ptxas-options=--warn-on-spills", "--ptxas-options=--warn-on-local-memory-usage"};
}

NvrtcResult nvrtc_compile(const std::string& source, const std::string& arch, const std::string& name) {
  const NvrtcApi& api = nvrtc();
  nvrtcProgram program = nullptr;
  nvrtcResult r = api.nvrtcCreateProgram(&program, source.c_str(), (name + ".cu").c_str(), 0, nullptr, nullptr);
  if (r != NVRTC_SUCCESS) fail("--target cuda: nvrtcCreateProgram: {}", api.nvrtcGetErrorString(r));
  struct Destroy {
    const NvrtcApi& api;
    nvrtcProgram& p;
    ~Destroy() { api.nvrtcDestroyProgram(&p); }
  } destroy{api, program};
  const std::vector<std::string> options = nvrtc_options(arch);
  std::vector<const char*> argv;
  for (const auto& o : options) argv.push_back(o.c_str());
  NvrtcResult out;
  r = api.nvrtcCompileProgram(program, static_cast<int>(argv.size()), argv.data());
  size_t log_size = 0;
  api.nvrtcGetProgramLogSize(program, &log_size);
  out.log.resize(log_size);
  if (log_size) api.nvrtcGetProgramLog(program, out.log.data());
  while (!out.log.empty() && (out.log.back() == '\0' || out.log.back() == '\n' || out.log.back() == ' ')) out.log.pop_back();
  if (r != NVRTC_SUCCESS) return out;
  size_t size = 0;
  if (arch.rfind("sm_", 0) == 0) {
    api.nvrtcGetCUBINSize(program, &size);
    out.image.resize(size);
    api.nvrtcGetCUBIN(program, reinterpret_cast<char*>(out.image.data()));
  } else {
    api.nvrtcGetPTXSize(program, &size);  // includes the NUL
    out.image.resize(size);
    api.nvrtcGetPTX(program, reinterpret_cast<char*>(out.image.data()));
  }
  out.ok = true;
  return out;
}

KernelsSection build_kernels(const ir::Module& m, const std::vector<int>& sms) {
  if (sms.empty()) fail("--sm: at least one architecture");
  for (int sm : sms) {
    if (sm < 80 || sm > 129) fail("--sm: {} is not an architecture the CUDA backend supports (80 .. 120: its GEMMs need mma.m16n8k32)", sm);
  }
  const ModulePlan plan = plan_module(m);
  KernelsSection section;
  section.nvrtc_version = nvrtc_version();
  section.source = generate_source(plan.kernels, Flavor::Device);
  for (const auto& k : plan.kernels)
    if (k.entry) section.kernels.push_back(k.name);
  std::vector<std::string> archs;
  for (int sm : sms) archs.push_back("sm_" + std::to_string(sm));
  archs.push_back("compute_" + std::to_string(*std::min_element(sms.begin(), sms.end())));
  section.options = nvrtc_options("<arch>");
  // Models of one shape generate the same source (every weight format of a model, say): a process
  // compiles each (source, architecture) once.
  static std::mutex cache_mutex;
  static std::map<std::pair<std::string, std::string>, std::vector<uint8_t>> cache;
  // Each architecture is an independent NVRTC program: compile them side by side.
  std::vector<std::future<NvrtcResult>> jobs;
  for (const auto& arch : archs) {
    jobs.push_back(std::async(std::launch::async, [&, arch] {
      {
        std::lock_guard<std::mutex> lock(cache_mutex);
        if (auto it = cache.find({section.source, arch}); it != cache.end()) return NvrtcResult{true, "", it->second};
      }
      return nvrtc_compile(section.source, arch, "bitnetc_kernels");
    }));
  }
  for (size_t i = 0; i < archs.size(); ++i) {
    NvrtcResult r = jobs[i].get();
    if (!r.ok) fail("--target cuda: NVRTC failed to compile the generated kernels for {}:\n{}", archs[i], r.log);
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      cache[{section.source, archs[i]}] = r.image;
    }
    section.images.push_back({archs[i], archs[i].rfind("compute_", 0) == 0, std::move(r.image)});
  }
  return section;
}

}  // namespace bitnet::cuda
