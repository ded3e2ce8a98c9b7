#include "codegen/x86/thread_pool.h"

#include <fstream>
#include <set>
#include <string>

#include <immintrin.h>

namespace bitnet::x86 {
namespace {
// Pauses before a worker sleeps (a pause is 10-140 cycles depending on the core: 0.2-3 ms).
constexpr int kSpinIterations = 30000;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::dispatch(Trampoline call, void* fn) {
  call_ = call;
  fn_ = fn;
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) generation_.notify_all();
  call(fn, 0, n_threads_);
  while (pending_.load(std::memory_order_acquire) != 0) _mm_pause();
}

void ThreadPool::worker(int index) {
  uint32_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen) {
      if (++spins < kSpinIterations) {
        _mm_pause();
        continue;
      }
      // Announce the sleep before re-checking, so a dispatch either sees the sleeper or is seen here.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (generation_.load(std::memory_order_seq_cst) == seen) generation_.wait(seen, std::memory_order_acquire);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      spins = 0;
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    call_(fn_, index, n_threads_);
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::split(int64_t n, int64_t grain, int thread, int n_threads, int64_t& begin, int64_t& end) {
  const int64_t units = (n + grain - 1) / grain;
  const int64_t per = units / n_threads, extra = units % n_threads;
  const int64_t first = thread * per + std::min<int64_t>(thread, extra);
  begin = std::min(n, first * grain);
  end = std::min(n, (first + per + (thread < extra ? 1 : 0)) * grain);
}

int physical_cores() {
  // Count distinct (package, core) pairs; fall back to the logical count.
  std::set<std::pair<std::string, std::string>> cores;
  const unsigned logical = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned cpu = 0; cpu < logical; ++cpu) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream package(dir + "physical_package_id"), core(dir + "core_id");
    std::string p, c;
    if (!(package >> p) || !(core >> c)) return static_cast<int>(logical);
    cores.insert({p, c});
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}

}  // namespace bitnet::x86
