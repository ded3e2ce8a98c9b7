#include "codegen/x86/thread_pool.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <string>

#include <immintrin.h>

namespace bitnet::x86 {
namespace {
// Pauses before a worker sleeps (a pause is 10-140 cycles depending on the core: 0.2-3 ms in all).
constexpr int kSpinIterations = 30000;
// Pauses before the caller, waiting for chunks in flight, starts yielding its core.
constexpr int kJoinSpins = 2000;
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

// The job word: generation (24 bits) | next unclaimed chunk (20 bits) | number of chunks (20 bits). The
// count travels in the same word as the claim, so a thread that read an old generation can neither claim
// a chunk of the next job nor judge "chunks left" by the next job's size.
namespace {
constexpr int kChunkBits = 20;
constexpr uint64_t kChunkMask = (uint64_t{1} << kChunkBits) - 1;
uint32_t generation_of(uint64_t job) { return static_cast<uint32_t>(job >> (2 * kChunkBits)); }
}  // namespace

// Claims and runs chunks of the job of `generation` until none is left (or a newer job replaced it).
void ThreadPool::work(uint32_t generation, int thread) {
  uint64_t job = job_.load(std::memory_order_acquire);
  for (;;) {
    if (generation_of(job) != generation) return;
    const uint64_t next = (job >> kChunkBits) & kChunkMask, count = job & kChunkMask;
    if (next >= count) return;
    if (!job_.compare_exchange_weak(job, job + (uint64_t{1} << kChunkBits), std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    // The claim succeeded on an unfinished chunk of this job, so its caller is still waiting and n_,
    // grain_, call_ and body_ still describe this job.
    const int64_t n = n_.load(std::memory_order_relaxed), grain = grain_.load(std::memory_order_relaxed);
    const int64_t begin = static_cast<int64_t>(next) * grain, end = std::min(n, begin + grain);
    call_.load(std::memory_order_relaxed)(body_.load(std::memory_order_relaxed), begin, end, thread);
    done_.fetch_add(end - begin, std::memory_order_acq_rel);
    job = job_.load(std::memory_order_acquire);
  }
}

void ThreadPool::dispatch(int64_t n, int64_t grain, Trampoline call, void* body) {
  grain = std::max<int64_t>({1, grain, (n + static_cast<int64_t>(kChunkMask) - 1) / static_cast<int64_t>(kChunkMask)});
  const uint64_t count = static_cast<uint64_t>((n + grain - 1) / grain);
  call_.store(call, std::memory_order_relaxed);
  body_.store(body, std::memory_order_relaxed);
  n_.store(n, std::memory_order_relaxed);
  grain_.store(grain, std::memory_order_relaxed);
  done_.store(0, std::memory_order_relaxed);
  const uint32_t generation = (generation_of(job_.load(std::memory_order_relaxed)) + 1) & 0xffffff;
  job_.store((static_cast<uint64_t>(generation) << (2 * kChunkBits)) | count, std::memory_order_seq_cst);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_.notify_all();
  work(generation, 0);
  for (int spins = 0; done_.load(std::memory_order_acquire) != n; ++spins) {
    if (spins < kJoinSpins) {
      _mm_pause();
    } else {
      std::this_thread::yield();  // the chunk we wait for may belong to a thread that needs this core
    }
  }
}

void ThreadPool::worker(int index) {
  // Not a fresh load: a pool destroyed before this thread got to run has already bumped wake_, and
  // starting from that value would wait for a wake that never comes. wake_ is 0 until the first dispatch.
  uint32_t seen = 0;
  for (;;) {
    int spins = 0;
    while (wake_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_acquire)) {
      if (++spins < kSpinIterations) {
        _mm_pause();
        continue;
      }
      // Announce the sleep before re-checking, so a dispatch either sees the sleeper or is seen here.
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      if (wake_.load(std::memory_order_seq_cst) == seen && !stop_.load(std::memory_order_seq_cst)) wake_.wait(seen, std::memory_order_acquire);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
      spins = 0;
    }
    seen = wake_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    work(generation_of(job_.load(std::memory_order_acquire)), index);
  }
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
