// Reductions and matrix products.
#include "common.h"

namespace vg {

// sum(t, dims|null, keepdim)
static Napi::Value Sum(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dims = ArgOptInts(info, 1, "dims");
  if (!dims) return Wrap(info.Env(), t.sum());
  return Wrap(info.Env(), t.sum(*dims, info[2].IsUndefined() ? false : ArgBool(info, 2, "keepdim")));
}
static Napi::Value Mean(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dims = ArgOptInts(info, 1, "dims");
  if (!dims) return Wrap(info.Env(), t.mean());
  return Wrap(info.Env(), t.mean(*dims, info[2].IsUndefined() ? false : ArgBool(info, 2, "keepdim")));
}
static Napi::Value Prod(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dim = ArgOptInt(info, 1, "dim");
  if (!dim) return Wrap(info.Env(), t.prod());
  return Wrap(info.Env(), t.prod(*dim, info[2].IsUndefined() ? false : ArgBool(info, 2, "keepdim")));
}
// var/std(t, dims|null, unbiased, keepdim)
static Napi::Value Var(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dims = ArgOptInts(info, 1, "dims");
  bool unbiased = ArgBool(info, 2, "unbiased"), keep = ArgBool(info, 3, "keepdim");
  return Wrap(info.Env(), dims ? t.var(at::IntArrayRef(*dims), unbiased, keep) : t.var(unbiased));
}
// amax/amin(t, dims|null, keepdim): reduce over dims (all when null)
static Napi::Value Amax(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dims = ArgOptInts(info, 1, "dims");
  if (!dims) return Wrap(info.Env(), t.max());
  return Wrap(info.Env(), t.amax(*dims, ArgBool(info, 2, "keepdim")));
}
static Napi::Value Amin(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dims = ArgOptInts(info, 1, "dims");
  if (!dims) return Wrap(info.Env(), t.min());
  return Wrap(info.Env(), t.amin(*dims, ArgBool(info, 2, "keepdim")));
}
static Napi::Value Argmax(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  return Wrap(info.Env(), t.argmax(ArgOptInt(info, 1, "dim"), info[2].IsUndefined() ? false : ArgBool(info, 2, "keepdim")));
}
static Napi::Value Argmin(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  return Wrap(info.Env(), t.argmin(ArgOptInt(info, 1, "dim"), info[2].IsUndefined() ? false : ArgBool(info, 2, "keepdim")));
}
// maxDim(t, dim, keepdim) -> [values, indices]
static Napi::Value MaxDim(const Napi::CallbackInfo& info) {
  auto r = ArgTensor(info, 0, "input").max(ArgInt(info, 1, "dim"), ArgBool(info, 2, "keepdim"));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}
static Napi::Value MinDim(const Napi::CallbackInfo& info) {
  auto r = ArgTensor(info, 0, "input").min(ArgInt(info, 1, "dim"), ArgBool(info, 2, "keepdim"));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}
// topk(t, k, dim, largest, sorted) -> [values, indices]
static Napi::Value Topk(const Napi::CallbackInfo& info) {
  auto r = ArgTensor(info, 0, "input").topk(ArgInt(info, 1, "k"), ArgInt(info, 2, "dim"), ArgBool(info, 3, "largest"),
                                            ArgBool(info, 4, "sorted"));
  return WrapList(info.Env(), {std::get<0>(r), std::get<1>(r)});
}
// norm(t, p, dims|null, keepdim): vector p-norm (p may be Infinity)
static Napi::Value Norm(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  double p = ArgDouble(info, 1, "p");
  auto dims = ArgOptInts(info, 2, "dims");
  bool keep = info[3].IsUndefined() ? false : ArgBool(info, 3, "keepdim");
  return Wrap(info.Env(), torch::linalg_vector_norm(t, p, dims ? at::OptionalIntArrayRef(*dims) : at::OptionalIntArrayRef(), keep));
}
static Napi::Value Logsumexp(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::logsumexp(ArgTensor(info, 0, "input"), ArgInts(info, 1, "dims"), ArgBool(info, 2, "keepdim")));
}
static Napi::Value All(const Napi::CallbackInfo& info) { return Wrap(info.Env(), ArgTensor(info, 0, "input").all()); }
static Napi::Value Any(const Napi::CallbackInfo& info) { return Wrap(info.Env(), ArgTensor(info, 0, "input").any()); }
static Napi::Value Cumsum(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").cumsum(ArgInt(info, 1, "dim")));
}

static Napi::Value Matmul(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::matmul(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "other")));
}
static Napi::Value Linear(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::linear(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "weight"), ArgOptTensor(info, 2, "bias")));
}

void RegisterReduce(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "sum", Sum);
  VG_EXPORT(exports, "mean", Mean);
  VG_EXPORT(exports, "prod", Prod);
  VG_EXPORT(exports, "var", Var);
  VG_EXPORT(exports, "amax", Amax);
  VG_EXPORT(exports, "amin", Amin);
  VG_EXPORT(exports, "argmax", Argmax);
  VG_EXPORT(exports, "argmin", Argmin);
  VG_EXPORT(exports, "maxDim", MaxDim);
  VG_EXPORT(exports, "minDim", MinDim);
  VG_EXPORT(exports, "topk", Topk);
  VG_EXPORT(exports, "norm", Norm);
  VG_EXPORT(exports, "logsumexp", Logsumexp);
  VG_EXPORT(exports, "all", All);
  VG_EXPORT(exports, "any", Any);
  VG_EXPORT(exports, "cumsum", Cumsum);
  VG_EXPORT(exports, "matmul", Matmul);
  VG_EXPORT(exports, "linear", Linear);
}

}  // namespace vg
