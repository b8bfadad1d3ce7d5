// Worker threads kept alive between calls of the C interface
// (`c_bilinear_sampling.cc`), which has no framework's thread pool to run
// on. Starting a thread per range of work cost about 0.1 ms a call on the
// 2-core machine of `docs/benchmarks.md`, as much as sampling a batch of
// MNIST digits; a kept worker starts its range within microseconds.
//
// `WorkerPool::Instance().Run(ranges, work)` calls `work(range)` for each
// range in `[0, ranges)`, the caller's thread taking range 0, and returns
// when all have finished. One loop runs at a time: a caller that finds the
// workers busy with another thread's loop runs its ranges itself. After
// `fork`, where the parent's threads do not exist, the child starts workers
// of its own.

#ifndef KERAS_STN_OPS_KERNELS_WORKER_POOL_H_
#define KERAS_STN_OPS_KERNELS_WORKER_POOL_H_

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace keras_stn {

class WorkerPool {
 public:
  using Work = std::function<void(int64_t)>;

  // The process's pool, made on first use (and again in a forked child).
  // Never destroyed: its detached threads wait for work until the process
  // exits.
  static WorkerPool& Instance() {
    static std::mutex mutex;
    static WorkerPool* pool = nullptr;
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lock(mutex);
    if (pool == nullptr || owner != getpid()) {
      pool = new WorkerPool();
      owner = getpid();
    }
    return *pool;
  }

  void Run(int64_t ranges, const Work& work) {
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {
      for (int64_t range = 0; range < ranges; ++range) work(range);
      return;
    }
    while (static_cast<int64_t>(workers_.size()) < ranges - 1) {
      workers_.push_back(std::make_unique<Worker>());
    }
    for (int64_t range = 1; range < ranges; ++range) {
      workers_[range - 1]->Start(&work, range);
    }
    work(0);
    for (int64_t range = 1; range < ranges; ++range) {
      workers_[range - 1]->Wait();
    }
  }

 private:
  // How long a worker that finished its range watches for the next one
  // before it sleeps: the next call often follows at once (the backward
  // pass after the forward, the next example's sampling).
  static constexpr std::chrono::microseconds kWatch{50};

  // One thread, and the one range it is given at a time.
  class Worker {
   public:
    Worker() { std::thread([this] { Loop(); }).detach(); }

    void Start(const Work* work, int64_t range) {
      work_ = work;
      range_ = range;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ticket_.store(ticket_.load(std::memory_order_relaxed) + 1,
                      std::memory_order_release);
      }
      wake_.notify_one();
    }

    void Wait() const {
      const uint64_t ticket = ticket_.load(std::memory_order_relaxed);
      for (int spins = 0; done_.load(std::memory_order_acquire) != ticket;
           ++spins) {
        if (spins > 1000) std::this_thread::yield();
      }
    }

   private:
    void Loop() {
      uint64_t seen = 0;
      for (;;) {
        const auto deadline = std::chrono::steady_clock::now() + kWatch;
        while (ticket_.load(std::memory_order_acquire) == seen &&
               std::chrono::steady_clock::now() < deadline) {
        }
        if (ticket_.load(std::memory_order_acquire) == seen) {
          std::unique_lock<std::mutex> lock(mutex_);
          wake_.wait(lock, [&] {
            return ticket_.load(std::memory_order_acquire) != seen;
          });
        }
        seen = ticket_.load(std::memory_order_acquire);
        (*work_)(range_);
        done_.store(seen, std::memory_order_release);
      }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    // Counts the ranges given (`ticket_`) and finished (`done_`).
    std::atomic<uint64_t> ticket_{0};
    std::atomic<uint64_t> done_{0};
    const Work* work_ = nullptr;
    int64_t range_ = 0;
  };

  // Held by the caller whose loop the workers run.
  std::mutex busy_;
  std::vector<std::unique_ptr<Worker>> workers_;
};

}  // namespace keras_stn

#endif  // KERAS_STN_OPS_KERNELS_WORKER_POOL_H_
