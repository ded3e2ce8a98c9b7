// A fixed set of worker threads for splitting one op across cores. `parallel_for(n, grain, body)` hands out
// chunks of `grain` units of [0, n) to whichever thread asks first (the caller works too) and returns when
// every unit is done. Every output the ops compute depends only on its own unit, never on which thread
// ran it or in what order, so results are the same for any thread count and any schedule.
//
// Why claiming rather than a fixed split: on a loaded machine (two cores shared with a compiler, say) a
// worker can be descheduled for milliseconds; with a fixed split every op would wait for it, with claiming
// the running threads take its share. Workers spin on the job word for a while (longer than the gap between
// two ops) and then sleep on it (a futex); a dispatch makes a system call only when a worker sleeps. The
// caller's wait for chunks still in flight spins briefly, then yields its core to the thread it waits for.
// No locks and no allocation per dispatch.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <type_traits>
#include <vector>

namespace bitnet::x86 {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // body(begin, end, thread) for chunks [begin, end) of [0, n); `thread` < size() names the caller's slot
  // for per-thread scratch.
  template <class Body>
  void parallel_for(int64_t n, int64_t grain, Body&& body) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n <= grain) {
      body(int64_t{0}, n, 0);
      return;
    }
    using B = std::remove_reference_t<Body>;
    dispatch(n, grain, +[](void* f, int64_t begin, int64_t end, int thread) { (*static_cast<B*>(f))(begin, end, thread); },
             const_cast<void*>(static_cast<const void*>(&body)));
  }

 private:
  using Trampoline = void (*)(void*, int64_t, int64_t, int);
  void dispatch(int64_t n, int64_t grain, Trampoline call, void* body);
  void work(uint32_t generation, int thread);
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  // The current job. `job_` packs the generation (high 32 bits) and the next unclaimed chunk (low 32):
  // a thread claims a chunk by compare-and-swap, which fails for a thread still holding an old generation.
  std::atomic<Trampoline> call_{nullptr};
  std::atomic<void*> body_{nullptr};
  std::atomic<int64_t> n_{0}, grain_{1};
  alignas(64) std::atomic<uint64_t> job_{0};
  alignas(64) std::atomic<int64_t> done_{0};
  alignas(64) std::atomic<uint32_t> wake_{0};  // bumped per dispatch; sleeping workers wait on it
  std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

// Physical cores of this machine (hyper-threads excluded where the kernel tells), at least 1.
int physical_cores();

}  // namespace bitnet::x86
