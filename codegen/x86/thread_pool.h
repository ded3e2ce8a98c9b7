// A fixed set of worker threads for splitting one op across cores. `run(n, fn)` calls fn(thread, n_threads)
// on every thread (the caller is thread 0) and returns when all have finished; each op divides its own
// work by the thread index, so a given thread count always computes each output on the same thread in the
// same order (deterministic results). Workers spin on a generation counter for a while (about 0.5 ms,
// longer than the gap between two ops) and only then sleep on it (a futex); the caller spins for the
// join. A dispatch makes a system call only when some worker is asleep: on the virtual machines these
// numbers come from, a futex wake costs 10-50 µs, as much as a whole small op.
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

  template <class Fn>
  void run(Fn&& fn) {
    if (n_threads_ == 1) {
      fn(0, 1);
      return;
    }
    using F = std::remove_reference_t<Fn>;
    dispatch(+[](void* f, int thread, int n) { (*static_cast<F*>(f))(thread, n); }, const_cast<void*>(static_cast<const void*>(&fn)));
  }

  // Splits [0, n) into n_threads contiguous parts, in `grain` units; thread `i` gets part i.
  static void split(int64_t n, int64_t grain, int thread, int n_threads, int64_t& begin, int64_t& end);

 private:
  using Trampoline = void (*)(void*, int, int);
  void dispatch(Trampoline call, void* fn);
  void worker(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  Trampoline call_ = nullptr;
  void* fn_ = nullptr;
  alignas(64) std::atomic<uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int> sleepers_{0};
  std::atomic<bool> stop_{false};
};

// Physical cores of this machine (hyper-threads excluded where the kernel tells), at least 1.
int physical_cores();

}  // namespace bitnet::x86
