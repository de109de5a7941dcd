// Why this exists: glibc raises its mmap threshold each time a large mmapped
// block is freed (up to 32 MB). After the first optimizer step, the 12.8 MB
// gradient and Adam buffers of the MNIST CNN's fc1 layer move from mmap to the
// heap, where the mix of large and small blocks fragments it so badly that
// resident memory grew by about 11 MB per training step (13 GB after 1,000
// steps). A fixed threshold turns the dynamic adjustment off: large blocks are
// always mmapped and returned to the system when freed.
//
// The settings are process-wide and made once, at the first load of the
// addon. They are left alone when the user chose glibc settings through its
// own environment variables, or set VAEGUARD_MALLOC=default.
//
// The fixed threshold has a price: every tensor of 1 MiB or more is a fresh
// mmap, and the kernel faults in and zeroes each of its 4 KiB pages at first
// touch, then unmaps it at free. A training or evaluation loop allocates the
// same large sizes at every step (the MNIST CNN's 256 x 32 x 28 x 28 float
// activations are 25 MB: 6,100 page faults each), and at 1 thread those faults
// took about a third of the CPU time of a forward pass. So libtorch's CPU
// allocator is replaced (c10::SetCPUAllocator) by one that keeps blocks of
// 128 KiB and more, once freed, in a cache of at most kCacheBytes (256 MiB by
// default, VAEGUARD_CPU_CACHE_MB to change, 0 for none) and hands a cached
// block of exactly the requested page-rounded size back to the next request;
// when the cache is full the blocks freed longest ago are unmapped first. New
// large blocks are mmapped with MADV_HUGEPAGE (2 MiB pages where the kernel
// allows them). Blocks under 128 KiB go to libtorch's own allocator as before.
// (The cache starts below glibc's 1 MiB threshold: blocks of 128 KiB to 1 MiB,
// such as the MNIST VAE's 800 KB activations, otherwise grow and trim the heap's
// top at every step, faulting its pages in again.)
// Memory stays bounded: what is cached is at most kCacheBytes more than what
// is in use. No value changes: allocation never initialised tensors' memory.
#include "allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace vg {

// Blocks of 1 MiB and more are mmapped; the heap's top is returned to the
// system above 2 MiB free (twice the threshold, as glibc's own dynamic rule).
static constexpr int kMmapThreshold = 1 << 20;
static constexpr int kTrimThreshold = 2 << 20;

static constexpr size_t kLargeBlock = size_t(128) << 10;
static constexpr size_t kDefaultCacheBytes = size_t(256) << 20;

// libtorch's CPU allocator with a bounded cache of large blocks (see the top of this file).
class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator(c10::Allocator* fallback, size_t capacity)
      : fallback_(fallback), fallbackDeleter_(fallback->raw_deleter()), capacity_(capacity) {}

  c10::DataPtr allocate(size_t n) const override {
    if (n < kLargeBlock || fallbackDeleter_ == nullptr) return fallback_->allocate(n);
    const size_t size = (n + page_ - 1) / page_ * page_;
    void* p = Take(size);
    if (p == nullptr) {
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      TORCH_CHECK(p != MAP_FAILED, "vaeguard CPU allocator: not enough memory: you tried to allocate ", n, " bytes.");
#if defined(MADV_HUGEPAGE)
      madvise(p, size, MADV_HUGEPAGE);
#endif
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    return {p, p, &Delete, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &Delete; }

  size_t capacity() const { return capacity_; }

 private:
  static void Delete(void* p);

  // A cached block of exactly `size` bytes (the one freed last), or nullptr.
  void* Take(size_t size) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = bySize_.find(size);
    if (it == bySize_.end() || it->second.empty()) return nullptr;
    auto entry = it->second.back();
    it->second.pop_back();
    void* p = entry->second;
    order_.erase(entry);
    cached_ -= size;
    return p;
  }

  void Release(void* p) const {
    std::unique_lock<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      lock.unlock();
      fallbackDeleter_(p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    if (size > capacity_) {
      lock.unlock();
      munmap(p, size);
      return;
    }
    std::list<std::pair<size_t, void*>> evicted;
    while (cached_ + size > capacity_ && !order_.empty()) {
      auto oldest = order_.begin();
      auto& same = bySize_[oldest->first];
      for (auto s = same.begin(); s != same.end(); ++s)
        if (*s == oldest) {
          same.erase(s);
          break;
        }
      cached_ -= oldest->first;
      evicted.splice(evicted.end(), order_, oldest);
    }
    order_.emplace_back(size, p);
    bySize_[size].push_back(std::prev(order_.end()));
    cached_ += size;
    lock.unlock();
    for (auto& e : evicted) munmap(e.second, e.first);
  }

  c10::Allocator* fallback_;
  c10::DeleterFnPtr fallbackDeleter_;
  const size_t capacity_;
  const size_t page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  mutable std::mutex mutex_;
  // Blocks in use, by address: their mapped size.
  mutable std::unordered_map<void*, size_t> live_;
  // Cached blocks, freed longest ago first, and the same entries by size.
  mutable std::list<std::pair<size_t, void*>> order_;
  mutable std::unordered_map<size_t, std::vector<std::list<std::pair<size_t, void*>>::iterator>> bySize_;
  mutable size_t cached_ = 0;
};

// Never destroyed: tensors may be freed during exit, after static destructors ran.
static CachingCpuAllocator* cachingAllocator = nullptr;

void CachingCpuAllocator::Delete(void* p) { cachingAllocator->Release(p); }

static size_t CacheCapacity() {
  const char* mb = std::getenv("VAEGUARD_CPU_CACHE_MB");
  if (mb == nullptr || *mb == '\0') return kDefaultCacheBytes;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(mb, &end, 10);
  if (*end != '\0') return kDefaultCacheBytes;
  return static_cast<size_t>(v) << 20;
}

static std::once_flag configured;
static std::string source = "not configured";
static int mmapThreshold = -1;
static int trimThreshold = -1;

static bool UserChoseGlibcSettings() {
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

void ConfigureAllocatorOnce() {
  std::call_once(configured, [] {
#if defined(__GLIBC__)
    const char* choice = std::getenv("VAEGUARD_MALLOC");
    if (choice != nullptr && std::string(choice) == "default") {
      source = "glibc defaults (VAEGUARD_MALLOC=default)";
      return;
    }
    if (UserChoseGlibcSettings()) {
      source = "glibc environment variables (MALLOC_*_)";
      return;
    }
    if (mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1) {
      mmapThreshold = kMmapThreshold;
      trimThreshold = kTrimThreshold;
      source = "vaeguard";
      const size_t capacity = CacheCapacity();
      if (capacity > 0) {
        cachingAllocator = new CachingCpuAllocator(c10::GetCPUAllocator(), capacity);
        c10::SetCPUAllocator(cachingAllocator, /*priority=*/1);
      }
    } else {
      source = "mallopt refused the settings";
    }
#else
    source = "not glibc";
#endif
  });
}

// allocatorSettings() -> { source, mmapThreshold, trimThreshold, cacheBytes } (-1: not set by vaeguard; cacheBytes 0: no cache)
static Napi::Value AllocatorSettings(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("source", source);
  o.Set("mmapThreshold", mmapThreshold);
  o.Set("trimThreshold", trimThreshold);
  o.Set("cacheBytes", cachingAllocator == nullptr ? 0.0 : static_cast<double>(cachingAllocator->capacity()));
  return o;
}

void RegisterAllocator(Napi::Env env, Napi::Object exports) {
  exports.Set("allocatorSettings", Napi::Function::New(env, AllocatorSettings, "allocatorSettings"));
}

}  // namespace vg
