// glibc malloc settings that keep a long training loop's memory flat.
#pragma once

#include <napi.h>

namespace vg {

void ConfigureAllocatorOnce();
void RegisterAllocator(Napi::Env env, Napi::Object exports);

}  // namespace vg
