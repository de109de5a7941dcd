// What libtorch keeps once per process but concurrent jobs in worker threads
// need per job (threads.cc): the random generator, tensors handed from one
// thread to another, and OpenBLAS's own thread count.
#pragma once

#include <napi.h>

#include <mutex>

namespace vg {

// Held around every op that draws random numbers (rand, randn, randint,
// randperm, uniform_, normal_, dropout, manual_seed). libtorch has one default
// CPU generator per process; a thread that called ownGenerator() keeps its own
// generator state, which the guard swaps into the default generator for the
// op and back out after it, so jobs running side by side draw exactly the
// numbers each would draw alone. Threads that never asked (the main thread)
// draw from the default generator as before; the guard only serialises them
// with the others.
class RandomGuard {
 public:
  RandomGuard();
  ~RandomGuard();
  RandomGuard(const RandomGuard&) = delete;
  RandomGuard& operator=(const RandomGuard&) = delete;

 private:
  std::unique_lock<std::mutex> lock_;
  bool swapped_ = false;
};

void RegisterThreads(Napi::Env env, Napi::Object exports);

}  // namespace vg
