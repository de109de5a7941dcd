// Module initialisation. Context-aware: all state lives in per-environment
// instance data, so the addon loads in worker_threads too.
#include "common.h"

#include "allocator.h"
#include "threads.h"

namespace vg {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ConfigureAllocatorOnce();
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);
  Napi::Function ctor = InitTensorClass(env);
  data->tensorCtor = Napi::Persistent(ctor);
  exports.Set("NativeTensor", ctor);
  RegisterTensor(env, exports);
  RegisterElementwise(env, exports);
  RegisterReduce(env, exports);
  RegisterShape(env, exports);
  RegisterNn(env, exports);
  RegisterAutograd(env, exports);
  RegisterJit(env, exports);
  RegisterAllocator(env, exports);
  RegisterThreads(env, exports);
  return exports;
}

}  // namespace vg

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return vg::Init(env, exports); }

NODE_API_MODULE(vaeguard, InitAddon)
