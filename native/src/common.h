// Shared declarations for the vaeguard addon: the tensor wrapper, argument
// conversion and the guard that turns every C++ exception into a JS Error.
// The addon is deliberately generic: tensors, ops, autograd, TorchScript.
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vg {

struct AddonData {
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference moduleCtor;
  int64_t liveTensors = 0;
  int64_t liveBytes = 0;
};

AddonData* Data(Napi::Env env);

// A tensor handle is a plain JS object of class NativeTensor, type-tagged, with
// a TensorBox attached by napi_wrap. dispose() removes the wrap and deletes the
// box at once (libtorch memory and the wrapper's own bookkeeping), so nothing
// waits for a finalizer: Node 20 runs Node-API finalizers only when the event
// loop turns, and a synchronous training loop would pile them up. The
// finalizer stays as the safety net for handles that are never disposed.
struct TensorBox {
  torch::Tensor tensor;
  int64_t bytes = 0;
  AddonData* data = nullptr;
};

Napi::Function InitTensorClass(Napi::Env env);

// ---- argument conversion (throws std::invalid_argument, caught by the guard)
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

torch::Tensor& ArgTensor(const Napi::CallbackInfo& info, size_t i, const char* name);
c10::optional<torch::Tensor> ArgOptTensor(const Napi::CallbackInfo& info, size_t i, const char* name);
std::vector<torch::Tensor> ArgTensorList(const Napi::CallbackInfo& info, size_t i, const char* name);
bool IsTensor(const Napi::Value& v);
std::vector<int64_t> ArgInts(const Napi::CallbackInfo& info, size_t i, const char* name);
c10::optional<std::vector<int64_t>> ArgOptInts(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name);
c10::optional<int64_t> ArgOptInt(const Napi::CallbackInfo& info, size_t i, const char* name);
double ArgDouble(const Napi::CallbackInfo& info, size_t i, const char* name);
c10::optional<double> ArgOptDouble(const Napi::CallbackInfo& info, size_t i, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
c10::Scalar ArgScalar(const Napi::CallbackInfo& info, size_t i, const char* name);
c10::ScalarType ArgDtype(const Napi::CallbackInfo& info, size_t i, const char* name);
torch::Device ArgDevice(const Napi::CallbackInfo& info, size_t i, const char* name);
int64_t ArgReduction(const Napi::CallbackInfo& info, size_t i, const char* name);

c10::ScalarType DtypeFromString(const std::string& s);
std::string DtypeToString(c10::ScalarType t);

Napi::Value Wrap(Napi::Env env, torch::Tensor t);
Napi::Value WrapList(Napi::Env env, const std::vector<torch::Tensor>& ts);

// ---- the guard: every exported function runs inside it
using Impl = Napi::Value (*)(const Napi::CallbackInfo&);

template <Impl F>
Napi::Value Guarded(const Napi::CallbackInfo& info) {
  const char* name = static_cast<const char*>(info.Data());
  try {
    return F(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(info.Env(), std::string(name) + ": " + e.what());
  } catch (const c10::Error& e) {
    throw Napi::Error::New(info.Env(), std::string(name) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(info.Env(), std::string(name) + ": " + e.what());
  } catch (...) {
    throw Napi::Error::New(info.Env(), std::string(name) + ": unknown native error");
  }
}

#define VG_EXPORT(exports, jsname, fn) \
  (exports).Set(jsname, Napi::Function::New((exports).Env(), ::vg::Guarded<fn>, jsname, const_cast<char*>(jsname)))

void RegisterTensor(Napi::Env env, Napi::Object exports);
void RegisterElementwise(Napi::Env env, Napi::Object exports);
void RegisterReduce(Napi::Env env, Napi::Object exports);
void RegisterShape(Napi::Env env, Napi::Object exports);
void RegisterNn(Napi::Env env, Napi::Object exports);
void RegisterAutograd(Napi::Env env, Napi::Object exports);
void RegisterJit(Napi::Env env, Napi::Object exports);

}  // namespace vg
