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
#include "allocator.h"

#include <cstdlib>
#include <mutex>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace vg {

// Blocks of 1 MiB and more are mmapped; the heap's top is returned to the
// system above 2 MiB free (twice the threshold, as glibc's own dynamic rule).
static constexpr int kMmapThreshold = 1 << 20;
static constexpr int kTrimThreshold = 2 << 20;

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
    } else {
      source = "mallopt refused the settings";
    }
#else
    source = "not glibc";
#endif
  });
}

// allocatorSettings() -> { source, mmapThreshold, trimThreshold } (-1: not set by vaeguard)
static Napi::Value AllocatorSettings(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("source", source);
  o.Set("mmapThreshold", mmapThreshold);
  o.Set("trimThreshold", trimThreshold);
  return o;
}

void RegisterAllocator(Napi::Env env, Napi::Object exports) {
  exports.Set("allocatorSettings", Napi::Function::New(env, AllocatorSettings, "allocatorSettings"));
}

}  // namespace vg
