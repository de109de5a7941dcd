// Neural-network functions and losses (NCHW shapes throughout; conv2d may compute in channels-last memory).
#include <atomic>

#include "common.h"
#include "maxpool2x2.h"
#include "threads.h"

namespace vg {

// conv2d runs in channels-last (NHWC) memory when this is on (the default, set from TypeScript at
// load): libtorch's oneDNN kernels are 1.2x to 1.9x faster in that layout on CPU for the Table 1 and
// Table 2 models (issue 14; README, performance). The layout follows the output into pooling, batch
// norm and activations; results are the same logical NCHW tensors (agreeing within 1e-7), only
// strides differ, and every read back to JavaScript goes through contiguous(). conv_transpose2d
// stays in NCHW: in channels-last it measured slower. Process-wide, as the kernels are.
static std::atomic<bool> g_channelsLast{false};

static torch::Tensor ConvLayout(const torch::Tensor& t) {
  return g_channelsLast.load(std::memory_order_relaxed) && t.dim() == 4 ? t.contiguous(at::MemoryFormat::ChannelsLast) : t;
}

// setChannelsLast(on)
static Napi::Value SetChannelsLast(const Napi::CallbackInfo& info) {
  g_channelsLast.store(ArgBool(info, 0, "on"));
  return info.Env().Undefined();
}
static Napi::Value GetChannelsLast(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), g_channelsLast.load());
}

// conv2d(x, w, b|null, stride[2], padding[2], dilation[2], groups)
static Napi::Value Conv2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::conv2d(ConvLayout(ArgTensor(info, 0, "input")), ConvLayout(ArgTensor(info, 1, "weight")),
                                        ArgOptTensor(info, 2, "bias"), ArgInts(info, 3, "stride"), ArgInts(info, 4, "padding"),
                                        ArgInts(info, 5, "dilation"), ArgInt(info, 6, "groups")));
}
// convTranspose2d(x, w, b|null, stride, padding, outputPadding, groups, dilation)
static Napi::Value ConvTranspose2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::conv_transpose2d(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "weight"), ArgOptTensor(info, 2, "bias"),
                                                  ArgInts(info, 3, "stride"), ArgInts(info, 4, "padding"),
                                                  ArgInts(info, 5, "outputPadding"), ArgInt(info, 6, "groups"),
                                                  ArgInts(info, 7, "dilation")));
}
// 2x2 pooling goes to vaeguard's own kernel (maxpool2x2.cc: libtorch's values and gradients, several
// times faster) unless setFastMaxPool(false), which the tests use to compare the two.
static std::atomic<bool> g_fastMaxPool{true};

static Napi::Value SetFastMaxPool(const Napi::CallbackInfo& info) {
  g_fastMaxPool.store(ArgBool(info, 0, "on"));
  return info.Env().Undefined();
}
static Napi::Value GetFastMaxPool(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), g_fastMaxPool.load());
}

// maxPool2d(x, kernel, stride, padding, dilation, ceilMode)
static Napi::Value MaxPool2d(const Napi::CallbackInfo& info) {
  const torch::Tensor& x = ArgTensor(info, 0, "input");
  const auto kernel = ArgInts(info, 1, "kernelSize"), stride = ArgInts(info, 2, "stride");
  const auto padding = ArgInts(info, 3, "padding"), dilation = ArgInts(info, 4, "dilation");
  const bool ceilMode = ArgBool(info, 5, "ceilMode");
  if (g_fastMaxPool.load(std::memory_order_relaxed) && MaxPool2x2Applies(x, kernel, stride, padding, dilation, ceilMode)) {
    return Wrap(info.Env(), MaxPool2x2(x));
  }
  return Wrap(info.Env(), torch::max_pool2d(x, kernel, stride, padding, dilation, ceilMode));
}
// avgPool2d(x, kernel, stride, padding, ceilMode, countIncludePad)
static Napi::Value AvgPool2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::avg_pool2d(ArgTensor(info, 0, "input"), ArgInts(info, 1, "kernelSize"), ArgInts(info, 2, "stride"),
                                            ArgInts(info, 3, "padding"), ArgBool(info, 4, "ceilMode"), ArgBool(info, 5, "countIncludePad")));
}
static Napi::Value AdaptiveAvgPool2d(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::adaptive_avg_pool2d(ArgTensor(info, 0, "input"), ArgInts(info, 1, "outputSize")));
}
// interpolate(x, size[2], mode, alignCorners)
static Napi::Value Interpolate(const Napi::CallbackInfo& info) {
  namespace F = torch::nn::functional;
  const torch::Tensor& x = ArgTensor(info, 0, "input");
  auto size = ArgInts(info, 1, "size");
  std::string mode = ArgString(info, 2, "mode");
  F::InterpolateFuncOptions opts;
  opts.size(size);
  if (mode == "nearest") {
    opts.mode(torch::kNearest);
  } else if (mode == "bilinear") {
    opts.mode(torch::kBilinear).align_corners(ArgBool(info, 3, "alignCorners"));
  } else {
    throw ArgError("interpolate mode must be 'nearest' or 'bilinear' but received '" + mode + "'");
  }
  return Wrap(info.Env(), F::interpolate(x, opts));
}
// batchNorm(x, weight|null, bias|null, runningMean|null, runningVar|null, training, momentum, eps)
static Napi::Value BatchNorm(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::batch_norm(ArgTensor(info, 0, "input"), ArgOptTensor(info, 1, "weight"), ArgOptTensor(info, 2, "bias"),
                                            ArgOptTensor(info, 3, "runningMean"), ArgOptTensor(info, 4, "runningVar"),
                                            ArgBool(info, 5, "training"), ArgDouble(info, 6, "momentum"), ArgDouble(info, 7, "eps"),
                                            /*cudnn_enabled=*/true));
}
static Napi::Value Dropout(const Napi::CallbackInfo& info) {
  RandomGuard random;
  return Wrap(info.Env(), torch::dropout(ArgTensor(info, 0, "input"), ArgDouble(info, 1, "p"), ArgBool(info, 2, "training")));
}
static Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::softmax(ArgTensor(info, 0, "input"), ArgInt(info, 1, "dim")));
}
static Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::log_softmax(ArgTensor(info, 0, "input"), ArgInt(info, 1, "dim")));
}
// crossEntropy(logits, target, reduction, labelSmoothing): target holds class indices or probabilities
static Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  double smoothing = info[3].IsUndefined() ? 0.0 : ArgDouble(info, 3, "labelSmoothing");
  return Wrap(info.Env(), torch::cross_entropy_loss(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "target"), {}, ArgReduction(info, 2, "reduction"),
                                                    -100, smoothing));
}
static Napi::Value NllLoss(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::nll_loss(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "target"), {}, ArgReduction(info, 2, "reduction")));
}
static Napi::Value MseLoss(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::mse_loss(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "target"), ArgReduction(info, 2, "reduction")));
}
static Napi::Value BceLoss(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::binary_cross_entropy(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "target"), {}, ArgReduction(info, 2, "reduction")));
}
static Napi::Value BceWithLogits(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::binary_cross_entropy_with_logits(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "target"), {}, {},
                                                                  ArgReduction(info, 2, "reduction")));
}
// unfold(x, kernel, dilation, padding, stride): [N, C, H, W] -> [N, C*kh*kw, L]
static Napi::Value Unfold(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::im2col(ArgTensor(info, 0, "input"), ArgInts(info, 1, "kernelSize"), ArgInts(info, 2, "dilation"),
                                        ArgInts(info, 3, "padding"), ArgInts(info, 4, "stride")));
}
// fold(cols, outputSize, kernel, dilation, padding, stride): overlap-add back to [N, C, H, W]
static Napi::Value Fold(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::col2im(ArgTensor(info, 0, "input"), ArgInts(info, 1, "outputSize"), ArgInts(info, 2, "kernelSize"),
                                        ArgInts(info, 3, "dilation"), ArgInts(info, 4, "padding"), ArgInts(info, 5, "stride")));
}

void RegisterNn(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "conv2d", Conv2d);
  VG_EXPORT(exports, "setChannelsLast", SetChannelsLast);
  VG_EXPORT(exports, "getChannelsLast", GetChannelsLast);
  VG_EXPORT(exports, "convTranspose2d", ConvTranspose2d);
  VG_EXPORT(exports, "maxPool2d", MaxPool2d);
  VG_EXPORT(exports, "setFastMaxPool", SetFastMaxPool);
  VG_EXPORT(exports, "getFastMaxPool", GetFastMaxPool);
  VG_EXPORT(exports, "avgPool2d", AvgPool2d);
  VG_EXPORT(exports, "adaptiveAvgPool2d", AdaptiveAvgPool2d);
  VG_EXPORT(exports, "interpolate", Interpolate);
  VG_EXPORT(exports, "batchNorm", BatchNorm);
  VG_EXPORT(exports, "dropout", Dropout);
  VG_EXPORT(exports, "softmax", Softmax);
  VG_EXPORT(exports, "logSoftmax", LogSoftmax);
  VG_EXPORT(exports, "crossEntropy", CrossEntropy);
  VG_EXPORT(exports, "nllLoss", NllLoss);
  VG_EXPORT(exports, "mseLoss", MseLoss);
  VG_EXPORT(exports, "bceLoss", BceLoss);
  VG_EXPORT(exports, "bceWithLogits", BceWithLogits);
  VG_EXPORT(exports, "unfold", Unfold);
  VG_EXPORT(exports, "fold", Fold);
}

}  // namespace vg
