// The emulator. One process-wide state (the driver API is a C API of free functions, so the emulated
// functions find their state here); tests use one emulated executor at a time.
#include "codegen/cuda/emu/host_driver.h"

#include "codegen/cuda/kernels/emu_abi.h"
#include "ir/error.h"

#include <dlfcn.h>
#include <ucontext.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <vector>

// Fiber switches happen at every __syncthreads, shuffle and mma of every emulated thread: on x86-64 a
// switch is six callee-saved registers and the stack pointer (no system call, unlike swapcontext).
#if defined(__x86_64__)
extern "C" void bitnetc_emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl bitnetc_emu_switch
.type bitnetc_emu_switch,@function
bitnetc_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size bitnetc_emu_switch, .-bitnetc_emu_switch
.section .note.GNU-stack,"",@progbits
.text
)");
#endif

namespace bitnet::cuda::emu {
namespace {

// A fiber's context: its saved stack pointer (x86-64) or a ucontext elsewhere.
struct Context {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

void switch_context(Context& from, Context& to) {
#if defined(__x86_64__)
  bitnetc_emu_switch(&from.sp, to.sp);
#else
  swapcontext(&from.uc, &to.uc);
#endif
}

struct Function {
  void (*entry)(void**);
  unsigned long args_size;
  std::string name;
};

struct Module {
  void* lib = nullptr;
  std::map<std::string, std::unique_ptr<Function>> functions;
};

struct Graph {
  std::vector<std::function<void()>> ops;
};

struct Stream {
  Graph* capture = nullptr;
};

// The emulated GPU's multiprocessors (one block each at a time): a cooperative launch gets this many
// blocks, enough for a grid barrier among several blocks and for uneven shares of a phase's work.
constexpr unsigned kSms = 4;

// Runs the blocks of one launch; each thread of a block is a fiber with its own stack. Blocks run one
// after another, or, for a cooperative launch (whose blocks may wait for each other at a grid barrier),
// all at once: then a fiber spinning on memory (spin_pause) lets the others run, and passes in which
// every fiber that ran only spun are counted as a deadlock (a barrier nobody can complete) after a while.
class BlockRunner {
 public:
  void run(const Function& f, void** params, EmuDim3 grid, EmuDim3 block, unsigned shared_bytes, bool cooperative) {
    if (block.y != 1 || block.z != 1) fail("emulator: {}: only 1-D blocks", f.name);
    const unsigned n = block.x;
    if (n == 0 || n % 32 != 0 || n > 1024) fail("emulator: {}: {} threads per block", f.name, n);
    function_ = &f;
    params_ = params;
    std::vector<EmuDim3> all;
    for (unsigned z = 0; z < grid.z; ++z)
      for (unsigned y = 0; y < grid.y; ++y)
        for (unsigned x = 0; x < grid.x; ++x) all.push_back({x, y, z});
    const size_t group = cooperative ? all.size() : 1;
    for (size_t b = 0; b < all.size(); b += group) run_blocks(std::vector<EmuDim3>(all.begin() + b, all.begin() + b + group), grid, block, shared_bytes);
  }

  EmuThread* current() { return &fibers_[current_].thread; }

  void sync_block() {
    Fiber& f = fibers_[current_];
    const size_t b = current_ / threads_;
    f.state = kAtBlockBarrier;
    ++progress_;
    if (++block_waiting_[b] == block_live_[b]) {
      release(kAtBlockBarrier, b * threads_, threads_);
      block_waiting_[b] = 0;
    } else {
      switch_context(f.ctx, scheduler_);
    }
  }

  void sync_warp() {
    Fiber& f = fibers_[current_];
    const size_t w = current_ / 32;
    f.state = kAtWarpBarrier;
    ++progress_;
    if (++warp_waiting_[w] == warp_live_[w]) {
      release(kAtWarpBarrier, w * 32, 32);
      warp_waiting_[w] = 0;
    } else {
      switch_context(f.ctx, scheduler_);
    }
  }

  void yield() {
    ++spins_;
    switch_context(fibers_[current_].ctx, scheduler_);
  }

 private:
  enum State { kRunnable, kAtBlockBarrier, kAtWarpBarrier, kDone };
  struct Fiber {
    Context ctx;
    EmuThread thread;
    State state;
  };
  static constexpr size_t kStack = 256 * 1024;
  static constexpr int kIdlePasses = 10000;

  void release(State barrier, size_t first, size_t count) {
    for (size_t i = first; i < first + count; ++i)
      if (fibers_[i].state == barrier) fibers_[i].state = kRunnable;
  }

  static void fiber_main();

  // A context that starts fiber_main on `stack`; fiber_main never returns (it switches to the scheduler).
  void make_fiber(Context& ctx, char* stack) {
#if defined(__x86_64__)
    // The first switch pops six registers and returns into fiber_main with the stack as after a call.
    auto* top = reinterpret_cast<void**>((reinterpret_cast<uintptr_t>(stack) + kStack) / 16 * 16);
    *--top = nullptr;                                             // fiber_main's return address (never used)
    *--top = reinterpret_cast<void*>(&BlockRunner::fiber_main);  // where the first switch returns to
    for (int i = 0; i < 6; ++i) *--top = nullptr;                // rbp rbx r12 r13 r14 r15
    ctx.sp = top;
#else
    make_ucontext(ctx.uc, stack);
#endif
  }
#if !defined(__x86_64__)
  [[gnu::noinline]] void make_ucontext(ucontext_t& uc, char* stack) {  // getcontext returns twice: no caller locals
    getcontext(&uc);
    uc.uc_stack.ss_sp = stack;
    uc.uc_stack.ss_size = kStack;
    uc.uc_link = nullptr;
    makecontext(&uc, &BlockRunner::fiber_main, 0);
  }
#endif

  void finish_current() {
    Fiber& f = fibers_[current_];
    f.state = kDone;
    ++progress_;
    const size_t b = current_ / threads_, w = current_ / 32;
    --block_live_[b];
    --warp_live_[w];
    if (block_waiting_[b] > 0 && block_waiting_[b] == block_live_[b]) {
      release(kAtBlockBarrier, b * threads_, threads_);
      block_waiting_[b] = 0;
    }
    if (warp_waiting_[w] > 0 && warp_waiting_[w] == warp_live_[w]) {
      release(kAtWarpBarrier, w * 32, 32);
      warp_waiting_[w] = 0;
    }
  }

  void run_blocks(const std::vector<EmuDim3>& blocks, EmuDim3 grid, EmuDim3 block, unsigned shared_bytes) {
    threads_ = block.x;
    const size_t n = blocks.size() * threads_;
    fibers_.resize(n);
    while (stacks_.size() < n) stacks_.push_back(std::unique_ptr<char[]>(new char[kStack]));
    slots_.assign(n, 0);
    mma_.assign(n * 10, 0);
    shared_.assign(blocks.size() * ((shared_bytes + 15) / 16 + 1), uint4_t{});
    block_live_.assign(blocks.size(), static_cast<int>(threads_));
    block_waiting_.assign(blocks.size(), 0);
    warp_live_.assign(n / 32, 32);
    warp_waiting_.assign(n / 32, 0);
    for (size_t i = 0; i < n; ++i) {
      Fiber& f = fibers_[i];
      const size_t b = i / threads_;
      char* shared = shared_bytes ? reinterpret_cast<char*>(shared_.data() + b * ((shared_bytes + 15) / 16 + 1)) : nullptr;
      f.thread = {{static_cast<unsigned>(i % threads_), 0, 0}, blocks[b], block, grid, slots_.data() + (i / 32) * 32, mma_.data() + (i / 32) * 320, shared};
      f.state = kRunnable;
      make_fiber(f.ctx, stacks_[i].get());
    }
    int idle = 0;
    for (;;) {
      bool ran = false;
      const uint64_t progress = progress_, spins = spins_;
      for (size_t i = 0; i < n; ++i) {
        if (fibers_[i].state != kRunnable) continue;
        current_ = i;
        switch_context(scheduler_, fibers_[i].ctx);
        ran = true;
      }
      size_t done = 0;
      for (const auto& f : fibers_) done += f.state == kDone;
      if (done == n) break;
      const EmuDim3 first = blocks.front();
      if (!ran) fail("emulator: {}: block ({}, {}, {}) deadlocked: its threads wait at different barriers", function_->name, first.x, first.y, first.z);
      idle = progress_ == progress && spins_ > spins ? idle + 1 : 0;
      if (idle > kIdlePasses) fail("emulator: {}: deadlocked: {} blocks spin on memory nobody changes (a grid barrier that cannot complete)", function_->name, blocks.size());
    }
  }

  struct uint4_t {
    alignas(16) unsigned char bytes[16];
  };
  const Function* function_ = nullptr;
  void** params_ = nullptr;
  size_t threads_ = 0;
  std::vector<Fiber> fibers_;
  std::vector<std::unique_ptr<char[]>> stacks_;
  std::vector<unsigned long long> slots_;
  std::vector<int> mma_;
  std::vector<uint4_t> shared_;
  Context scheduler_{};
  size_t current_ = 0;
  uint64_t progress_ = 0, spins_ = 0;
  std::vector<int> block_live_, block_waiting_, warp_live_, warp_waiting_;
};

struct State {
  std::string library;
  BlockRunner runner;
  EmuHooks hooks{};
  std::map<CUdeviceptr, std::unique_ptr<unsigned char[]>> memory;
};

State& state() {
  static State s;
  return s;
}

void BlockRunner::fiber_main() {
  BlockRunner& r = state().runner;
  r.function_->entry(r.params_);
  r.finish_current();
  switch_context(r.fibers_[r.current_].ctx, r.scheduler_);  // never resumed: the fiber is done
  std::abort();
}

EmuThread* hook_current() { return state().runner.current(); }
void hook_sync_block() { state().runner.sync_block(); }
void hook_sync_warp() { state().runner.sync_warp(); }
void hook_yield() { state().runner.yield(); }
unsigned long long hook_now_ns() {
  return static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

void enqueue(CUstream s, std::function<void()> op) {
  Stream* stream = reinterpret_cast<Stream*>(s);
  if (stream && stream->capture) {
    stream->capture->ops.push_back(std::move(op));
  } else {
    op();
  }
}

CUresult launch(CUfunction f, EmuDim3 grid, EmuDim3 block, unsigned shared_bytes, bool cooperative, CUstream stream, void** params) {
  const Function* fn = reinterpret_cast<const Function*>(f);
  if (cooperative && grid.x * grid.y * grid.z > kSms) return CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE;
  auto args = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(params[0]), static_cast<const unsigned char*>(params[0]) + fn->args_size);
  enqueue(stream, [fn, args, grid, block, shared_bytes, cooperative] {
    void* p[] = {args->data()};
    state().runner.run(*fn, p, grid, block, shared_bytes, cooperative);
  });
  return CUDA_SUCCESS;
}

// --- the emulated driver API
CUresult e_cuInit(unsigned) { return CUDA_SUCCESS; }
CUresult e_cuDriverGetVersion(int* v) { return *v = 13000, CUDA_SUCCESS; }
CUresult e_cuDeviceGetCount(int* n) { return *n = 1, CUDA_SUCCESS; }
CUresult e_cuDeviceGet(CUdevice* d, int ordinal) { return *d = ordinal, ordinal == 0 ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE; }
CUresult e_cuDeviceGetName(char* name, int len, CUdevice) {
  std::snprintf(name, static_cast<size_t>(len), "host emulator");
  return CUDA_SUCCESS;
}
CUresult e_cuDeviceGetAttribute(int* v, CUdevice_attribute a, CUdevice) {
  *v = a == CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR ? 9 : a == CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT ? static_cast<int>(kSms) : 0;
  return CUDA_SUCCESS;
}
CUresult e_cuDevicePrimaryCtxRetain(CUcontext* c, CUdevice) { return *c = reinterpret_cast<CUcontext>(&state()), CUDA_SUCCESS; }
CUresult e_cuDevicePrimaryCtxRelease(CUdevice) { return CUDA_SUCCESS; }
CUresult e_cuCtxSetCurrent(CUcontext) { return CUDA_SUCCESS; }
CUresult e_cuCtxSynchronize() { return CUDA_SUCCESS; }
CUresult e_cuModuleLoadDataEx(CUmodule* m, const void*, unsigned, CUjit_option*, void**) {
  auto module = std::make_unique<Module>();
  module->lib = dlopen(state().library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!module->lib) return CUDA_ERROR_INVALID_IMAGE;
  auto bind = reinterpret_cast<void (*)(const EmuHooks*)>(dlsym(module->lib, "bitnetc_emu_bind"));
  if (!bind) return CUDA_ERROR_INVALID_IMAGE;
  bind(&state().hooks);
  *m = reinterpret_cast<CUmodule>(module.release());
  return CUDA_SUCCESS;
}
CUresult e_cuModuleUnload(CUmodule m) {
  delete reinterpret_cast<Module*>(m);  // the library stays loaded: its statics may be read by a later module
  return CUDA_SUCCESS;
}
CUresult e_cuModuleGetFunction(CUfunction* f, CUmodule m, const char* name) {
  Module* module = reinterpret_cast<Module*>(m);
  auto entry = reinterpret_cast<void (*)(void**)>(dlsym(module->lib, (std::string("bitnetc_emu_") + name).c_str()));
  auto size = reinterpret_cast<unsigned long (*)()>(dlsym(module->lib, (std::string("bitnetc_emu_args_") + name).c_str()));
  if (!entry || !size) return CUDA_ERROR_NOT_FOUND;
  auto& slot = module->functions[name];
  slot = std::make_unique<Function>(Function{entry, size(), name});
  *f = reinterpret_cast<CUfunction>(slot.get());
  return CUDA_SUCCESS;
}
CUresult e_cuFuncSetAttribute(CUfunction, CUfunction_attribute, int) { return CUDA_SUCCESS; }
CUresult e_cuMemAlloc(CUdeviceptr* p, size_t bytes) {
  auto block = std::unique_ptr<unsigned char[]>(new unsigned char[bytes + 256]);
  std::memset(block.get(), 0xff, bytes + 256);  // never zero: reads of memory nobody wrote show up as NaN / -1
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(block.get()) + 255) / 256 * 256;
  *p = static_cast<CUdeviceptr>(aligned);
  state().memory[*p] = std::move(block);
  return CUDA_SUCCESS;
}
CUresult e_cuMemFree(CUdeviceptr p) { return state().memory.erase(p) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE; }
CUresult e_cuMemAllocHost(void** p, size_t bytes) { return *p = std::malloc(bytes), *p ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY; }
CUresult e_cuMemFreeHost(void* p) { return std::free(p), CUDA_SUCCESS; }
CUresult e_cuMemGetInfo(size_t* free, size_t* total) { return *free = *total = size_t{1} << 34, CUDA_SUCCESS; }
CUresult e_cuMemsetD8Async(CUdeviceptr p, unsigned char v, size_t n, CUstream s) {
  enqueue(s, [p, v, n] { std::memset(reinterpret_cast<void*>(p), v, n); });
  return CUDA_SUCCESS;
}
CUresult e_cuMemcpyHtoD(CUdeviceptr d, const void* h, size_t n) { return std::memcpy(reinterpret_cast<void*>(d), h, n), CUDA_SUCCESS; }
CUresult e_cuMemcpyHtoDAsync(CUdeviceptr d, const void* h, size_t n, CUstream s) {
  enqueue(s, [d, h, n] { std::memcpy(reinterpret_cast<void*>(d), h, n); });
  return CUDA_SUCCESS;
}
CUresult e_cuMemcpyDtoHAsync(void* h, CUdeviceptr d, size_t n, CUstream s) {
  enqueue(s, [d, h, n] { std::memcpy(h, reinterpret_cast<const void*>(d), n); });
  return CUDA_SUCCESS;
}
CUresult e_cuStreamCreate(CUstream* s, unsigned) { return *s = reinterpret_cast<CUstream>(new Stream), CUDA_SUCCESS; }
CUresult e_cuStreamDestroy(CUstream s) { return delete reinterpret_cast<Stream*>(s), CUDA_SUCCESS; }
CUresult e_cuStreamSynchronize(CUstream) { return CUDA_SUCCESS; }
CUresult e_cuLaunchKernel(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared, CUstream s, void** params, void**) {
  return launch(f, {gx, gy, gz}, {bx, by, bz}, shared, false, s, params);
}
CUresult e_cuLaunchKernelEx(const CUlaunchConfig* c, CUfunction f, void** params, void**) {
  bool cooperative = false;
  for (unsigned i = 0; i < c->numAttrs; ++i)
    if (c->attrs[i].id == CU_LAUNCH_ATTRIBUTE_COOPERATIVE && c->attrs[i].value.cooperative) cooperative = true;
  return launch(f, {c->gridDimX, c->gridDimY, c->gridDimZ}, {c->blockDimX, c->blockDimY, c->blockDimZ}, c->sharedMemBytes, cooperative, c->hStream, params);
}
CUresult e_cuOccupancyMaxActiveBlocksPerMultiprocessor(int* n, CUfunction, int, size_t) { return *n = 1, CUDA_SUCCESS; }
CUresult e_cuStreamBeginCapture(CUstream s, CUstreamCaptureMode) {
  Stream* stream = reinterpret_cast<Stream*>(s);
  if (stream->capture) return CUDA_ERROR_ILLEGAL_STATE;
  stream->capture = new Graph;
  return CUDA_SUCCESS;
}
CUresult e_cuStreamEndCapture(CUstream s, CUgraph* g) {
  Stream* stream = reinterpret_cast<Stream*>(s);
  *g = reinterpret_cast<CUgraph>(stream->capture);
  stream->capture = nullptr;
  return *g ? CUDA_SUCCESS : CUDA_ERROR_ILLEGAL_STATE;
}
CUresult e_cuGraphInstantiate(CUgraphExec* e, CUgraph g, unsigned long long) {
  return *e = reinterpret_cast<CUgraphExec>(new Graph(*reinterpret_cast<Graph*>(g))), CUDA_SUCCESS;
}
CUresult e_cuGraphLaunch(CUgraphExec e, CUstream s) {
  const Graph* g = reinterpret_cast<const Graph*>(e);
  enqueue(s, [g] {
    for (const auto& op : g->ops) op();
  });
  return CUDA_SUCCESS;
}
CUresult e_cuGraphDestroy(CUgraph g) { return delete reinterpret_cast<Graph*>(g), CUDA_SUCCESS; }
CUresult e_cuGraphExecDestroy(CUgraphExec e) { return delete reinterpret_cast<Graph*>(e), CUDA_SUCCESS; }
struct Event {
  std::chrono::steady_clock::time_point at;
};
CUresult e_cuEventCreate(CUevent* e, unsigned) { return *e = reinterpret_cast<CUevent>(new Event), CUDA_SUCCESS; }
CUresult e_cuEventRecord(CUevent e, CUstream s) {
  enqueue(s, [e] { reinterpret_cast<Event*>(e)->at = std::chrono::steady_clock::now(); });
  return CUDA_SUCCESS;
}
CUresult e_cuEventSynchronize(CUevent) { return CUDA_SUCCESS; }
CUresult e_cuEventElapsedTime(float* ms, CUevent a, CUevent b) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<Event*>(b)->at - reinterpret_cast<Event*>(a)->at).count();
  return CUDA_SUCCESS;
}
CUresult e_cuEventDestroy(CUevent e) { return delete reinterpret_cast<Event*>(e), CUDA_SUCCESS; }
CUresult e_cuGetErrorName(CUresult r, const char** s) { return *s = r == CUDA_SUCCESS ? "CUDA_SUCCESS" : "CUDA_ERROR (emulator)", CUDA_SUCCESS; }
CUresult e_cuGetErrorString(CUresult, const char** s) { return *s = "emulated driver", CUDA_SUCCESS; }

}  // namespace

std::string build_kernel_library(const std::string& source, const std::string& dir, const std::string& compiler) {
  // Named after the source: dlopen hands back a library already loaded from the same path.
  const std::string stem = dir + "/kernels_host_" + std::to_string(std::hash<std::string>{}(source));
  const std::string src = stem + ".cpp", lib = stem + ".so", log = stem + ".log";
  {
    std::ofstream out(src, std::ios::binary);
    out << source;
    if (!out) fail("emulator: cannot write {}", src);
  }
  const std::string command = "'" + compiler + "' -std=c++17 -O1 -fPIC -shared -w -o '" + lib + "' '" + src + "' > '" + log + "' 2>&1";
  if (std::system(command.c_str()) != 0) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    fail("emulator: compiling the host flavor of the kernels failed ({}):\n{}", command, text.str());
  }
  return lib;
}

std::shared_ptr<const DriverApi> host_driver(const std::string& library) {
  State& s = state();
  s.library = library;
  s.hooks = {hook_current, hook_sync_block, hook_sync_warp, hook_yield, hook_now_ns};
  auto api = std::make_shared<DriverApi>();
#define BITNETC_EMU_BIND(name) api->name = e_##name;
  BITNETC_CUDA_DRIVER_FUNCTIONS(BITNETC_EMU_BIND)
#undef BITNETC_EMU_BIND
  api->description = "host emulator";
  api->emulated = true;
  return api;
}

}  // namespace bitnet::cuda::emu
