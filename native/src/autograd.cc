// Autograd: requires-grad flags, backward, .grad, functional grad, grad mode.
#include "common.h"

namespace vg {

static Napi::Value RequiresGrad(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ArgTensor(info, 0, "input").requires_grad());
}
static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").requires_grad_(ArgBool(info, 1, "requiresGrad"));
  return info.Env().Undefined();
}
static Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ArgTensor(info, 0, "input").is_leaf());
}
// backward(t, gradient|null, retainGraph)
static Napi::Value Backward(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto g = ArgOptTensor(info, 1, "gradient");
  bool retain = info[2].IsUndefined() ? false : ArgBool(info, 2, "retainGraph");
  t.backward(g ? *g : torch::Tensor(), retain);
  return info.Env().Undefined();
}
// gradOf(t): the accumulated .grad, or undefined. Returns a new handle sharing storage.
static Napi::Value GradOf(const Napi::CallbackInfo& info) {
  const torch::Tensor& g = ArgTensor(info, 0, "input").grad();
  if (!g.defined()) return info.Env().Undefined();
  return Wrap(info.Env(), g);
}
static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  torch::Tensor& t = ArgTensor(info, 0, "input");
  auto g = ArgOptTensor(info, 1, "grad");
  t.mutable_grad() = g ? *g : torch::Tensor();
  return info.Env().Undefined();
}
// grad(outputs[], inputs[], gradOutputs[]|null, retainGraph, createGraph, allowUnused)
static Napi::Value Grad(const Napi::CallbackInfo& info) {
  auto outputs = ArgTensorList(info, 0, "outputs");
  auto inputs = ArgTensorList(info, 1, "inputs");
  std::vector<torch::Tensor> gradOutputs;
  if (!(info[2].IsUndefined() || info[2].IsNull())) gradOutputs = ArgTensorList(info, 2, "gradOutputs");
  bool retain = ArgBool(info, 3, "retainGraph");
  bool create = ArgBool(info, 4, "createGraph");
  bool allowUnused = ArgBool(info, 5, "allowUnused");
  auto grads = torch::autograd::grad(outputs, inputs, gradOutputs, retain, create, allowUnused);
  return WrapList(info.Env(), grads);
}
static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled());
}
static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  at::GradMode::set_enabled(ArgBool(info, 0, "enabled"));
  return info.Env().Undefined();
}
static Napi::Value GradFnName(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  if (!t.grad_fn()) return info.Env().Null();
  return Napi::String::New(info.Env(), t.grad_fn()->name());
}

void RegisterAutograd(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "requiresGrad", RequiresGrad);
  VG_EXPORT(exports, "setRequiresGrad", SetRequiresGrad);
  VG_EXPORT(exports, "isLeaf", IsLeaf);
  VG_EXPORT(exports, "backward", Backward);
  VG_EXPORT(exports, "gradOf", GradOf);
  VG_EXPORT(exports, "setGrad", SetGrad);
  VG_EXPORT(exports, "grad", Grad);
  VG_EXPORT(exports, "isGradEnabled", IsGradEnabled);
  VG_EXPORT(exports, "setGradEnabled", SetGradEnabled);
  VG_EXPORT(exports, "gradFnName", GradFnName);
}

}  // namespace vg
