// Shape ops: views, joins, slicing, indexing and padding.
#include "common.h"

namespace vg {

static Napi::Value Reshape(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").reshape(ArgInts(info, 1, "shape")));
}
static Napi::Value Permute(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").permute(ArgInts(info, 1, "dims")));
}
static Napi::Value Transpose(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").transpose(ArgInt(info, 1, "dim0"), ArgInt(info, 2, "dim1")));
}
static Napi::Value Flatten(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").flatten(ArgInt(info, 1, "startDim"), ArgInt(info, 2, "endDim")));
}
static Napi::Value Cat(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::cat(ArgTensorList(info, 0, "tensors"), ArgInt(info, 1, "dim")));
}
static Napi::Value Stack(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::stack(ArgTensorList(info, 0, "tensors"), ArgInt(info, 1, "dim")));
}
static Napi::Value Narrow(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").narrow(ArgInt(info, 1, "dim"), ArgInt(info, 2, "start"), ArgInt(info, 3, "length")));
}
// slice(t, dim, start, end, step)
static Napi::Value Slice(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").slice(ArgInt(info, 1, "dim"), ArgOptInt(info, 2, "start"), ArgOptInt(info, 3, "end"),
                                                            ArgInt(info, 4, "step")));
}
static Napi::Value Select(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").select(ArgInt(info, 1, "dim"), ArgInt(info, 2, "index")));
}
static Napi::Value IndexSelect(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").index_select(ArgInt(info, 1, "dim"), ArgTensor(info, 2, "index")));
}
static Napi::Value Gather(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").gather(ArgInt(info, 1, "dim"), ArgTensor(info, 2, "index")));
}
static Napi::Value MaskedFill(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").masked_fill(ArgTensor(info, 1, "mask"), ArgScalar(info, 2, "value")));
}
static Napi::Value Expand(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").expand(ArgInts(info, 1, "shape")));
}
static Napi::Value Squeeze(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto dim = ArgOptInt(info, 1, "dim");
  return Wrap(info.Env(), dim ? t.squeeze(*dim) : t.squeeze());
}
static Napi::Value Unsqueeze(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").unsqueeze(ArgInt(info, 1, "dim")));
}
static Napi::Value Repeat(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").repeat(ArgInts(info, 1, "repeats")));
}
static Napi::Value Flip(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").flip(ArgInts(info, 1, "dims")));
}
static Napi::Value Split(const Napi::CallbackInfo& info) {
  return WrapList(info.Env(), ArgTensor(info, 0, "input").split(ArgInt(info, 1, "splitSize"), ArgInt(info, 2, "dim")));
}
static Napi::Value OneHot(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::one_hot(ArgTensor(info, 0, "indices"), ArgInt(info, 1, "numClasses")));
}
// pad(t, pads, mode, value): pads as in torch.nn.functional.pad (last dim first)
static Napi::Value Pad(const Napi::CallbackInfo& info) {
  namespace F = torch::nn::functional;
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  auto pads = ArgInts(info, 1, "pads");
  std::string mode = ArgString(info, 2, "mode");
  F::PadFuncOptions opts(pads);
  if (mode == "constant") {
    opts.mode(torch::kConstant).value(info[3].IsUndefined() ? 0.0 : ArgDouble(info, 3, "value"));
  } else if (mode == "reflect") {
    opts.mode(torch::kReflect);
  } else if (mode == "replicate") {
    opts.mode(torch::kReplicate);
  } else if (mode == "circular") {
    opts.mode(torch::kCircular);
  } else {
    throw ArgError("pad mode must be 'constant', 'reflect', 'replicate' or 'circular' but received '" + mode + "'");
  }
  return Wrap(info.Env(), F::pad(t, opts));
}

void RegisterShape(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "reshape", Reshape);
  VG_EXPORT(exports, "permute", Permute);
  VG_EXPORT(exports, "transpose", Transpose);
  VG_EXPORT(exports, "flatten", Flatten);
  VG_EXPORT(exports, "cat", Cat);
  VG_EXPORT(exports, "stack", Stack);
  VG_EXPORT(exports, "narrow", Narrow);
  VG_EXPORT(exports, "slice", Slice);
  VG_EXPORT(exports, "select", Select);
  VG_EXPORT(exports, "indexSelect", IndexSelect);
  VG_EXPORT(exports, "gather", Gather);
  VG_EXPORT(exports, "maskedFill", MaskedFill);
  VG_EXPORT(exports, "expand", Expand);
  VG_EXPORT(exports, "squeeze", Squeeze);
  VG_EXPORT(exports, "unsqueeze", Unsqueeze);
  VG_EXPORT(exports, "repeat", Repeat);
  VG_EXPORT(exports, "flip", Flip);
  VG_EXPORT(exports, "split", Split);
  VG_EXPORT(exports, "oneHot", OneHot);
  VG_EXPORT(exports, "pad", Pad);
}

}  // namespace vg
