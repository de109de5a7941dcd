// 2x2 max pooling, stride 2, as a kernel of its own (see maxpool2x2.h).
//
// Why: every vaeguard model pools 2x2, and libtorch 1.13's general max_pool2d_with_indices, the op
// autograd needs, walks each window with per-element index arithmetic. On the Table 1 CNN and the
// Table 2 VAE it took about a sixth of a purifier training step (forward) in NCHW memory, and its
// backward is slow again in channels-last memory when the incoming gradient is NCHW (after flatten).
// Here a window is four loads and four compares, in either layout, and the index of the winner is one
// byte. The rule is libtorch's own (cpu_max_pool in aten/src/ATen/native/cpu/MaxPoolKernel.cpp): start
// from -inf and the window's first element, visit the window row by row, take a value when it is
// greater than the current maximum or NaN. So values, winners and gradients are libtorch's, bit for bit
// (test/core/maxpool.test.ts compares both paths).
#include "maxpool2x2.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <limits>

namespace vg {

namespace {

// The window (a, b / c, d): its maximum, and its position 0..3 (row-major) when `k` is given.
template <bool kIndex>
inline void Pick(float a, float b, float c, float d, float* out, uint8_t* k) {
  float m = -std::numeric_limits<float>::infinity();
  uint8_t i = 0;
  if (a > m || std::isnan(a)) m = a, i = 0;
  if (b > m || std::isnan(b)) m = b, i = 1;
  if (c > m || std::isnan(c)) m = c, i = 2;
  if (d > m || std::isnan(d)) m = d, i = 3;
  *out = m;
  if (kIndex) *k = i;
}

// Rows of work per thread task: about libtorch's grain of 32768 elements.
int64_t Grain(int64_t perUnit) { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(perUnit, 1)); }

template <bool kIndex>
void ForwardNchw(const float* in, float* out, uint8_t* idx, int64_t planes, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
  at::parallel_for(0, planes, Grain(H * W), [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; p++) {
      for (int64_t oh = 0; oh < OH; oh++) {
        const float* r0 = in + (p * H + 2 * oh) * W;
        const float* r1 = r0 + W;
        const int64_t o = (p * OH + oh) * OW;
        for (int64_t ow = 0; ow < OW; ow++) {
          Pick<kIndex>(r0[2 * ow], r0[2 * ow + 1], r1[2 * ow], r1[2 * ow + 1], out + o + ow, kIndex ? idx + o + ow : nullptr);
        }
      }
    }
  });
}

template <bool kIndex>
void ForwardNhwc(const float* in, float* out, uint8_t* idx, int64_t N, int64_t C, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
  at::parallel_for(0, N * OH, Grain(OW * C * 4), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t n = r / OH, oh = r % OH;
      const float* row0 = in + ((n * H + 2 * oh) * W) * C;
      const float* row1 = row0 + W * C;
      for (int64_t ow = 0; ow < OW; ow++) {
        const float* a = row0 + 2 * ow * C;
        const float* c = row1 + 2 * ow * C;
        const int64_t o = (r * OW + ow) * C;
        for (int64_t ch = 0; ch < C; ch++) {
          Pick<kIndex>(a[ch], a[C + ch], c[ch], c[C + ch], out + o + ch, kIndex ? idx + o + ch : nullptr);
        }
      }
    }
  });
}

bool ChannelsLast(const torch::Tensor& x) { return x.suggest_memory_format() == at::MemoryFormat::ChannelsLast; }

// Output (and, with indices, the winners) in x's layout.
std::pair<torch::Tensor, torch::Tensor> Forward(const torch::Tensor& x, bool withIndex) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const bool cl = ChannelsLast(x);  // a layout both readings of which agree (C == 1, say) may go either way
  const auto format = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::Tensor out = at::empty({N, C, H / 2, W / 2}, x.options().memory_format(format));
  torch::Tensor idx;
  if (withIndex) idx = at::empty({N, C, H / 2, W / 2}, x.options().dtype(at::kByte).memory_format(format));
  const float* in = x.data_ptr<float>();
  float* o = out.data_ptr<float>();
  uint8_t* k = withIndex ? idx.data_ptr<uint8_t>() : nullptr;
  if (cl) {
    withIndex ? ForwardNhwc<true>(in, o, k, N, C, H, W) : ForwardNhwc<false>(in, o, k, N, C, H, W);
  } else {
    withIndex ? ForwardNchw<true>(in, o, k, N * C, H, W) : ForwardNchw<false>(in, o, k, N * C, H, W);
  }
  return {out, idx};
}

// The input gradient: each window's gradient to its winner, zeros elsewhere (windows do not overlap).
torch::Tensor Backward(const torch::Tensor& gradOut, const torch::Tensor& winners, int64_t H, int64_t W, bool cl) {
  const int64_t N = winners.size(0), C = winners.size(1), OH = winners.size(2), OW = winners.size(3);
  const auto format = cl ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::Tensor idx = winners.contiguous(format);
  torch::Tensor g = gradOut.to(at::kFloat).contiguous(format);
  // at::empty, not at::zeros: zeros takes no memory format and would leave gradIn in NCHW.
  torch::Tensor gradIn = at::empty({N, C, H, W}, g.options().memory_format(format)).zero_();
  const float* go = g.data_ptr<float>();
  const uint8_t* k = idx.data_ptr<uint8_t>();
  float* gi = gradIn.data_ptr<float>();
  if (cl) {
    at::parallel_for(0, N * OH, Grain(OW * C * 4), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const int64_t n = r / OH, oh = r % OH;
        for (int64_t ow = 0; ow < OW; ow++) {
          const int64_t o = (r * OW + ow) * C;
          for (int64_t ch = 0; ch < C; ch++) {
            const int64_t w = k[o + ch];
            gi[((n * H + 2 * oh + (w >> 1)) * W + 2 * ow + (w & 1)) * C + ch] = go[o + ch];
          }
        }
      }
    });
  } else {
    at::parallel_for(0, N * C, Grain(H * W), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; p++) {
        for (int64_t oh = 0; oh < OH; oh++) {
          const int64_t o = (p * OH + oh) * OW;
          for (int64_t ow = 0; ow < OW; ow++) {
            const int64_t w = k[o + ow];
            gi[(p * H + 2 * oh + (w >> 1)) * W + 2 * ow + (w & 1)] = go[o + ow];
          }
        }
      }
    });
  }
  return gradIn.to(gradOut.scalar_type());
}

// The same gradient from differentiable ops, for a backward that is itself differentiated (createGraph).
torch::Tensor DifferentiableBackward(const torch::Tensor& gradOut, const torch::Tensor& idx, int64_t H, int64_t W) {
  const int64_t N = idx.size(0), C = idx.size(1), OH = idx.size(2), OW = idx.size(3);
  const auto longs = idx.options().dtype(at::kLong);
  torch::Tensor k = idx.to(at::kLong);
  torch::Tensor oh = at::arange(OH, longs).view({1, 1, OH, 1});
  torch::Tensor ow = at::arange(OW, longs).view({1, 1, 1, OW});
  torch::Tensor flat = (oh * 2 + k.div(2, "floor")) * W + ow * 2 + k.remainder(2);
  torch::Tensor src = gradOut.reshape({N, C, OH * OW});
  return at::zeros({N, C, H * W}, gradOut.options()).scatter(2, flat.reshape({N, C, OH * OW}), src).view({N, C, H, W});
}

class MaxPool2x2Function : public torch::autograd::Function<MaxPool2x2Function> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x) {
    auto [out, idx] = Forward(x, true);
    ctx->save_for_backward({idx});
    ctx->saved_data["height"] = x.size(2);
    ctx->saved_data["width"] = x.size(3);
    ctx->saved_data["channelsLast"] = ChannelsLast(x);
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const torch::Tensor idx = ctx->get_saved_variables()[0];
    const int64_t H = ctx->saved_data["height"].toInt(), W = ctx->saved_data["width"].toInt();
    if (torch::GradMode::is_enabled()) return {DifferentiableBackward(grads[0], idx, H, W)};
    return {Backward(grads[0], idx, H, W, ctx->saved_data["channelsLast"].toBool())};
  }
};

}  // namespace

bool MaxPool2x2Applies(const torch::Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                       const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, bool ceilMode) {
  const auto pair = [](const std::vector<int64_t>& v, int64_t a) { return v.size() == 2 && v[0] == a && v[1] == a; };
  if (!pair(kernel, 2) || !pair(stride, 2) || !pair(padding, 0) || !pair(dilation, 1)) return false;
  if (x.dim() != 4 || x.scalar_type() != at::kFloat || !x.device().is_cpu() || x.is_quantized() || x.is_mkldnn()) return false;
  if (x.size(0) < 1 || x.size(1) < 1 || x.size(2) < 2 || x.size(3) < 2) return false;
  if (ceilMode && (x.size(2) % 2 != 0 || x.size(3) % 2 != 0)) return false;
  return x.is_contiguous(x.suggest_memory_format());
}

torch::Tensor MaxPool2x2(const torch::Tensor& x) {
  if (x.requires_grad() && torch::GradMode::is_enabled()) return MaxPool2x2Function::apply(x);
  return Forward(x, false).first;
}

}  // namespace vg
