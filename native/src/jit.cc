// TorchScript: load a scripted or traced module, run forward with autograd,
// list its parameters, switch train/eval.
#include <torch/script.h>

#include "common.h"

namespace vg {

class JsModule : public Napi::ObjectWrap<JsModule> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "NativeModule", {InstanceMethod("dispose", &JsModule::Dispose)});
  }
  explicit JsModule(const Napi::CallbackInfo& info) : Napi::ObjectWrap<JsModule>(info) {}
  std::unique_ptr<torch::jit::script::Module> module;

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    module.reset();
    return info.Env().Undefined();
  }
};

static torch::jit::script::Module& ArgModule(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsObject() || !info[i].As<Napi::Object>().InstanceOf(Data(info.Env())->moduleCtor.Value()))
    throw ArgError("expected a TorchScript module for argument " + std::to_string(i));
  JsModule* m = JsModule::Unwrap(info[i].As<Napi::Object>());
  if (!m->module) throw ArgError("TorchScript module was disposed");
  return *m->module;
}

static Napi::Value JitLoad(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  auto mod = std::make_unique<torch::jit::script::Module>(torch::jit::load(path, torch::Device(torch::kCPU)));
  Napi::Object obj = Data(info.Env())->moduleCtor.New({});
  JsModule::Unwrap(obj)->module = std::move(mod);
  return obj;
}

static Napi::Value IValueToJs(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return Wrap(env, v.toTensor());
  if (v.isTuple()) {
    auto elems = v.toTupleRef().elements();
    Napi::Array arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) arr.Set(static_cast<uint32_t>(i), IValueToJs(env, elems[i]));
    return arr;
  }
  if (v.isTensorList()) {
    auto list = v.toTensorVector();
    return WrapList(env, list);
  }
  if (v.isList()) {
    auto list = v.toListRef();
    Napi::Array arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), IValueToJs(env, list[i]));
    return arr;
  }
  if (v.isGenericDict()) {
    Napi::Object o = Napi::Object::New(env);
    for (const auto& kv : v.toGenericDict()) {
      if (!kv.key().isString()) throw ArgError("TorchScript output dictionary has a non-string key");
      o.Set(kv.key().toStringRef(), IValueToJs(env, kv.value()));
    }
    return o;
  }
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isNone()) return env.Null();
  throw ArgError(std::string("unsupported TorchScript output type ") + v.tagKind());
}

// jitForward(module, inputs[]) -> tensor, or nested arrays/objects of tensors
static Napi::Value JitForward(const Napi::CallbackInfo& info) {
  auto& mod = ArgModule(info, 0);
  auto inputs = ArgTensorList(info, 1, "inputs");
  std::vector<c10::IValue> args(inputs.begin(), inputs.end());
  return IValueToJs(info.Env(), mod.forward(args));
}

static Napi::Value JitNamedParameters(const Napi::CallbackInfo& info) {
  auto& mod = ArgModule(info, 0);
  Napi::Array arr = Napi::Array::New(info.Env());
  uint32_t k = 0;
  for (const auto& p : mod.named_parameters(true)) {
    Napi::Array pair = Napi::Array::New(info.Env(), 2);
    pair.Set(0u, Napi::String::New(info.Env(), p.name));
    pair.Set(1u, Wrap(info.Env(), p.value));
    arr.Set(k++, pair);
  }
  for (const auto& b : mod.named_buffers(true)) {
    Napi::Array pair = Napi::Array::New(info.Env(), 2);
    pair.Set(0u, Napi::String::New(info.Env(), b.name));
    pair.Set(1u, Wrap(info.Env(), b.value));
    arr.Set(k++, pair);
  }
  return arr;
}

static Napi::Value JitTrain(const Napi::CallbackInfo& info) {
  ArgModule(info, 0).train(ArgBool(info, 1, "on"));
  return info.Env().Undefined();
}

static Napi::Value JitIsTraining(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ArgModule(info, 0).is_training());
}

void RegisterJit(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = JsModule::Init(env);
  Data(env)->moduleCtor = Napi::Persistent(ctor);
  exports.Set("NativeModule", ctor);
  VG_EXPORT(exports, "jitLoad", JitLoad);
  VG_EXPORT(exports, "jitForward", JitForward);
  VG_EXPORT(exports, "jitNamedParameters", JitNamedParameters);
  VG_EXPORT(exports, "jitTrain", JitTrain);
  VG_EXPORT(exports, "jitIsTraining", JitIsTraining);
}

}  // namespace vg
