// 2x2 max pooling with stride 2, the pooling of every vaeguard model, as its own kernel (maxpool2x2.cc).
#pragma once

#include <torch/torch.h>

#include <vector>

namespace vg {

// Whether MaxPool2x2 computes max_pool2d(x, kernel, stride, padding, dilation, ceilMode): a 2x2 window,
// stride 2, no padding or dilation, a float32 CPU tensor [N, C, H, W] (H, W >= 2) in contiguous NCHW or
// channels-last memory, and ceilMode only where it changes nothing (even H and W).
bool MaxPool2x2Applies(const torch::Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                       const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceilMode);

// max_pool2d(x, 2) with libtorch's values and gradients exactly (the first maximum of a window, in
// row-major order, takes the gradient; a NaN wins), differentiable when x requires grad.
torch::Tensor MaxPool2x2(const torch::Tensor& x);

}  // namespace vg
