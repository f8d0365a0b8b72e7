// The threads oneDNN runs its parallel loops on inside the programs. Part of program.cpp's
// translation unit.
//
// Why not OpenMP: inside MindSpore's process libgomp sees more of its threads than CPUs (MindSpore
// runs OpenMP teams of its own) and throttles its spin-wait to ~100 iterations, so the worker
// threads fall asleep between two primitives and every primitive pays a futex wake-up (about
// 50 us per primitive on the 2-vCPU KVM machines; a MobileNetV2 program has 70 of them).
//
// Rules of SpinPool:
// - parallel_for(n, fn) runs fn(i, n) for every i in [0, n): the calling thread takes
//   i = 0, T, 2T, ..., worker t (1 <= t < T) takes i = t, t + T, ...; it returns when all ran.
//   One loop at a time: a second caller (another program run by another MindSpore thread at the
//   same moment) or a loop started from inside a loop runs its iterations itself.
// - Workers spin (pause) between loops while a program holds the pool (Hold, for the whole of
//   Program::execute); otherwise they spin kGraceSpins more times and then sleep on a condition
//   variable. So the threads spin only while a program is running, never between inferences.
//   Every 256th spin of a waiting thread is a yield (relax_or_yield).
// - The pool is never destroyed (its threads sleep until the process exits).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "dnnl_abi.h"

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// A spinning thread gives its CPU away now and then: a thread it waits for may have been
// preempted onto the same CPU (MindSpore's own threads share the two), and would otherwise
// wait for the spinner's whole time slice.
inline void relax_or_yield(int spins) {
  if (spins % 256 == 255)
    std::this_thread::yield();
  else
    cpu_relax();
}

thread_local bool in_pool_loop = false;

class SpinPool final : public dnnl::threadpool_interop::threadpool_iface {
 public:
  static constexpr int kGraceSpins = 4096;  // ~0.1 ms of pause instructions

  explicit SpinPool(int threads) : threads_(threads < 1 ? 1 : threads) {
    for (int t = 1; t < threads_; t++) std::thread([this, t] { work(t); }).detach();
  }

  int get_num_threads() const override { return threads_; }
  bool get_in_parallel() const override { return in_pool_loop; }
  uint64_t get_flags() const override { return 0; }

  void parallel_for(int n, const std::function<void(int, int)> &fn) override {
    if (n <= 0) return;
    std::unique_lock<std::mutex> dispatch(dispatch_, std::try_to_lock);
    if (n == 1 || threads_ == 1 || in_pool_loop || !dispatch.owns_lock()) {
      for (int i = 0; i < n; i++) fn(i, n);
      return;
    }
    job_ = &fn;
    job_n_ = n;
    done_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) wake_.notify_all();
    in_pool_loop = true;
    for (int i = 0; i < n; i += threads_) fn(i, n);
    in_pool_loop = false;
    for (int spins = 0; done_.load(std::memory_order_acquire) < threads_ - 1; spins++)
      relax_or_yield(spins);
  }

  // While a Hold lives, the workers spin between loops instead of sleeping.
  class Hold {
   public:
    explicit Hold(SpinPool &pool) : pool_(pool) { pool_.hold(+1); }
    ~Hold() { pool_.hold(-1); }
    Hold(const Hold &) = delete;
    Hold &operator=(const Hold &) = delete;

   private:
    SpinPool &pool_;
  };

  // Lets the workers sleep while the holder runs code with threads of its own (an OpenMP kernel).
  class Pause {
   public:
    explicit Pause(SpinPool &pool) : pool_(pool) { pool_.hold(-1); }
    ~Pause() { pool_.hold(+1); }
    Pause(const Pause &) = delete;
    Pause &operator=(const Pause &) = delete;

   private:
    SpinPool &pool_;
  };

 private:
  void hold(int change) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      holders_.fetch_add(change, std::memory_order_relaxed);
    }
    if (change > 0 && sleepers_.load(std::memory_order_acquire) > 0) wake_.notify_all();
  }

  void work(int index) {
    uint64_t seen = 0;
    for (;;) {
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen) {
        if (holders_.load(std::memory_order_relaxed) > 0 || spins < kGraceSpins) {
          relax_or_yield(spins++);
          continue;
        }
        std::unique_lock<std::mutex> lock(mutex_);
        sleepers_.fetch_add(1, std::memory_order_release);
        wake_.wait(lock, [&] {
          return generation_.load(std::memory_order_relaxed) != seen ||
                 holders_.load(std::memory_order_relaxed) > 0;
        });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        spins = 0;
      }
      seen++;  // the caller waits for every worker before it starts the next loop
      const std::function<void(int, int)> &fn = *job_;
      int n = job_n_;
      in_pool_loop = true;
      for (int i = index; i < n; i += threads_) fn(i, n);
      in_pool_loop = false;
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  const int threads_;
  std::mutex dispatch_;  // one loop at a time
  std::mutex mutex_;     // guards sleeping: generation_ and holders_ change under it
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> holders_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<int> done_{0};
  const std::function<void(int, int)> *job_ = nullptr;
  int job_n_ = 0;
};

}  // namespace
