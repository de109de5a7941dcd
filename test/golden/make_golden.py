#!/usr/bin/env python3
"""Golden values for the engine tests, computed with PyTorch 1.13 (Debian's python3-torch).

Run from anywhere:  /usr/bin/python3 test/golden/make_golden.py
It rewrites test/golden/{ops,nn,optim,random,state_dict_keys}.json next to
this script, then formats them with the repository's Prettier (when npx is
available) so that `prettier --check .` stays clean.

Every case stores its input tensors and the expected output tensors as
{"shape", "dtype", "data"} with data flattened row-major. Float inputs are
float32 values (exactly representable as doubles), so the TypeScript side
rebuilds bit-identical inputs. The non-tensor arguments of each case are
written out twice, here and in the test that reads the case; the case names
tie the two together.
"""
import json
import math
import os
import subprocess

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WRITTEN = []

torch.set_num_threads(1)
g = torch.Generator().manual_seed(20240601)


def rn(*shape):
    return torch.randn(*shape, generator=g)


def ru(lo, hi, *shape):
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def enc(t):
    t = t.detach().contiguous()
    dtype = str(t.dtype).replace("torch.", "")
    if t.dtype == torch.bool:
        data = [int(v) for v in t.flatten().tolist()]
    else:
        data = t.flatten().tolist()
    for v in data:
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("JSON cannot hold non-finite values")
    return {"shape": list(t.shape), "dtype": dtype, "data": data}


def make_case(store, name, inputs, fn):
    if name in store:
        raise KeyError(name)
    out = fn(**inputs)
    expected = {k: enc(v) for k, v in out.items()} if isinstance(out, dict) else {"out": enc(out)}
    store[name] = {"inputs": {k: enc(v) for k, v in inputs.items()}, "expected": expected}


def write(name, obj, key="cases"):
    path = os.path.join(HERE, name)
    with open(path, "w") as f:
        json.dump({"generator": "test/golden/make_golden.py", "torch": torch.__version__, key: obj}, f)
        f.write("\n")
    WRITTEN.append(path)


# ---------------------------------------------------------------- tensor ops
ops = {}
C = lambda name, inputs, fn: make_case(ops, name, inputs, fn)  # noqa: E731

a = rn(2, 3)
b = rn(3)
pos = ru(0.5, 2.0, 2, 3)
q = rn(2, 3)
C("add_broadcast", {"a": a, "b": b}, lambda a, b: a + b)
C("sub_broadcast", {"a": a, "b": b}, lambda a, b: a - b)
C("mul_broadcast", {"a": a, "b": b}, lambda a, b: a * b)
C("div_broadcast", {"a": a, "d": pos}, lambda a, d: a / d)
C("add_scalar", {"a": a}, lambda a: a + 2.5)
C("sub_scalar", {"a": a}, lambda a: a - 1.5)
C("mul_scalar", {"a": a}, lambda a: a * -3.0)
C("div_scalar", {"a": a}, lambda a: a / 4.0)
C("pow_scalar", {"p": pos}, lambda p: p**2.5)
C("pow_tensor", {"p": pos, "q": q}, lambda p, q: p**q)
C("maximum_tensor", {"a": a, "b": b}, lambda a, b: torch.maximum(a, b))
C("minimum_tensor", {"a": a, "b": b}, lambda a, b: torch.minimum(a, b))
C("maximum_scalar", {"a": a}, lambda a: torch.clamp_min(a, 0.1))
C("neg", {"a": a}, lambda a: -a)

ia = torch.tensor([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
ib = torch.tensor([2.0, 2.0, 2.0])
C("eq", {"a": ia, "b": ib}, lambda a, b: a == b)
C("ne", {"a": ia, "b": ib}, lambda a, b: a != b)
C("lt", {"a": ia, "b": ib}, lambda a, b: a < b)
C("le", {"a": ia, "b": ib}, lambda a, b: a <= b)
C("gt", {"a": ia, "b": ib}, lambda a, b: a > b)
C("ge", {"a": ia, "b": ib}, lambda a, b: a >= b)
C("gt_scalar", {"a": ia}, lambda a: a > 1.5)
C("eq_scalar", {"a": ia}, lambda a: a == 2)

b2 = rn(2, 3)
C("where_tensors", {"c": a > 0, "a": a, "b": b2}, lambda c, a, b: torch.where(c, a, b))
C("where_tensor_scalar", {"c": a > 0, "a": a}, lambda c, a: torch.where(c, a, torch.tensor(0.0)))
C("where_scalars", {"c": a > 0}, lambda c: torch.where(c, 1.0, -1.0))

lo = rn(3) * 0.3 - 0.5
hi = lo + 0.8
C("clamp_numbers", {"a": a}, lambda a: a.clamp(-0.5, 0.5))
C("clamp_min_only", {"a": a}, lambda a: a.clamp(min=0.0))
C("clamp_max_only", {"a": a}, lambda a: a.clamp(max=0.25))
C("clamp_tensors", {"a": a, "lo": lo, "hi": hi}, lambda a, lo, hi: torch.clamp(a, lo, hi))
C("clamp_tensor_min_number_max", {"a": a, "lo": lo}, lambda a, lo: torch.minimum(torch.maximum(a, lo), torch.tensor(0.5)))

u = torch.tensor([-2.0, 0.0, 3.5, -0.1, 0.7, -30.0, 25.0])
C("sign", {"u": u}, lambda u: u.sign())
C("abs", {"u": u}, lambda u: u.abs())
C("exp", {"a": a}, lambda a: a.exp())
C("log", {"p": pos}, lambda p: p.log())
C("sqrt", {"p": pos}, lambda p: p.sqrt())
C("relu", {"u": u}, lambda u: u.relu())
C("sigmoid", {"u": u}, lambda u: u.sigmoid())
C("tanh", {"u": u}, lambda u: u.tanh())
C("leaky_relu_default", {"u": u}, lambda u: F.leaky_relu(u))
C("leaky_relu_0.2", {"u": u}, lambda u: F.leaky_relu(u, 0.2))
C("softplus_default", {"u": u}, lambda u: F.softplus(u))
C("softplus_beta2_threshold5", {"u": u}, lambda u: F.softplus(u, beta=2.0, threshold=5.0))

r = rn(2, 3, 4)
C("sum_all", {"r": r}, lambda r: r.sum())
C("sum_dim1", {"r": r}, lambda r: r.sum(1))
C("sum_dims02_keepdim", {"r": r}, lambda r: r.sum((0, 2), keepdim=True))
C("mean_all", {"r": r}, lambda r: r.mean())
C("mean_dim_neg1", {"r": r}, lambda r: r.mean(-1))
C("mean_dims01_keepdim", {"r": r}, lambda r: r.mean((0, 1), keepdim=True))
C("max_all", {"r": r}, lambda r: r.max())
C("max_dim1_keepdim", {"r": r}, lambda r: r.amax(1, keepdim=True))
C("max_dims12", {"r": r}, lambda r: r.amax((1, 2)))
C("min_all", {"r": r}, lambda r: r.min())
C("min_dim0", {"r": r}, lambda r: r.amin(0))
C("max_dim_values_indices", {"r": r}, lambda r: dict(zip(("values", "indices"), r.max(2))))
C("argmax_all", {"r": r}, lambda r: r.argmax())
C("argmax_dim2", {"r": r}, lambda r: r.argmax(2))
C("argmax_dim1_keepdim", {"r": r}, lambda r: r.argmax(1, keepdim=True))
C("argmin_dim0", {"r": r}, lambda r: r.argmin(0))

x4 = rn(3, 2, 2, 2)
C("norm2_per_sample", {"x": x4}, lambda x: torch.linalg.vector_norm(x, 2, dim=(1, 2, 3)))
C("norminf_per_sample", {"x": x4}, lambda x: torch.linalg.vector_norm(x, math.inf, dim=(1, 2, 3)))
C("norm2_per_sample_keepdim", {"x": x4}, lambda x: torch.linalg.vector_norm(x, 2, dim=(1, 2, 3), keepdim=True))
C("norm2_all", {"x": x4}, lambda x: torch.linalg.vector_norm(x, 2))
C("norm1_dim1", {"x": x4}, lambda x: torch.linalg.vector_norm(x, 1, dim=1))

C("matmul_2d", {"a": rn(2, 3), "b": rn(3, 4)}, lambda a, b: a @ b)
C("matmul_batched", {"a": rn(2, 2, 3), "b": rn(3, 4)}, lambda a, b: a @ b)
C("matmul_vector", {"a": rn(2, 3), "v": rn(3)}, lambda a, v: a @ v)
C("matmul_batched_both", {"a": rn(2, 2, 3), "b": rn(2, 3, 2)}, lambda a, b: a @ b)

s = torch.arange(24.0).reshape(2, 3, 4)
s2 = 100 + torch.arange(8.0).reshape(2, 1, 4)
C("reshape_infer", {"s": s}, lambda s: s.reshape(4, -1))
C("permute", {"s": s}, lambda s: s.permute(2, 0, 1))
C("transpose", {"s": s}, lambda s: s.transpose(0, 2))
C("flatten_from1", {"s": s}, lambda s: s.flatten(1))
C("flatten_all", {"s": s}, lambda s: s.flatten())
C("flatten_0_1", {"s": s}, lambda s: s.flatten(0, 1))
C("cat_dim1", {"s": s, "s2": s2}, lambda s, s2: torch.cat([s, s2], 1))
C("cat_dim0", {"s": s}, lambda s: torch.cat([s, s + 50], 0))
C("cat_dim_neg1", {"s": s}, lambda s: torch.cat([s, s[..., :1]], -1))
C("stack_dim0", {"s": s}, lambda s: torch.stack([s, s * 2], 0))
C("stack_dim2", {"s": s}, lambda s: torch.stack([s, s * 2, s * 3], 2))
C("narrow", {"s": s}, lambda s: s.narrow(2, 1, 2))
C("slice_step2", {"s": s}, lambda s: s[:, 0::2])
C("slice_negative", {"s": s}, lambda s: s[:, :, -3:-1])
C("slice_start_end_step", {"s": s}, lambda s: s[:, :, 1:4:2])
C("index_select", {"s": s, "i": torch.tensor([2, 0, 2])}, lambda s, i: s.index_select(1, i))
C("pad_constant", {"s": s}, lambda s: F.pad(s, [1, 2], value=0.5))
C("pad_constant_2d", {"s": s}, lambda s: F.pad(s, [1, 0, 0, 2]))
C("pad_reflect", {"s": s}, lambda s: F.pad(s.unsqueeze(0), [2, 1, 1, 1], mode="reflect"))
C("pad_replicate", {"s": s}, lambda s: F.pad(s.unsqueeze(0), [1, 1, 2, 0], mode="replicate"))
C("pad_circular", {"s": s}, lambda s: F.pad(s.unsqueeze(0), [1, 2, 1, 0], mode="circular"))
C("expand", {"e": rn(3, 1)}, lambda e: e.expand(2, 3, 4))
C("expand_keep", {"e": rn(3, 1)}, lambda e: e.expand(-1, 5))
sq = rn(1, 3, 1, 2)
C("squeeze_all", {"t": sq}, lambda t: t.squeeze())
C("squeeze_dim2", {"t": sq}, lambda t: t.squeeze(2))
C("squeeze_noop_dim1", {"t": sq}, lambda t: t.squeeze(1))
C("unsqueeze_1", {"s": s}, lambda s: s.unsqueeze(1))
C("unsqueeze_neg1", {"s": s}, lambda s: s.unsqueeze(-1))
C("contiguous_of_transpose", {"s": s}, lambda s: s.transpose(1, 2).contiguous())
C("clone", {"s": s}, lambda s: s.clone())

write("ops.json", ops)

# ---------------------------------------------------------------- random numbers
rnd = {}
torch.manual_seed(1234)
rnd["seed1234"] = {
    "rand5": enc(torch.rand(5)),
    "randn5": enc(torch.randn(5)),
    "randn20": enc(torch.randn(20)),
    "randint_0_10": enc(torch.randint(0, 10, (12,))),
    "rand_2x3_float64": enc(torch.rand(2, 3, dtype=torch.float64)),
}
write("random.json", rnd)

# ---------------------------------------------------------------- nn functions
nn = {}
N = lambda name, inputs, fn: make_case(nn, name, inputs, fn)  # noqa: E731

x = rn(2, 4, 6, 6)
w = rn(3, 4, 3, 3)
bias = rn(3)
N("conv2d_basic", {"x": x, "w": w, "b": bias}, lambda x, w, b: F.conv2d(x, w, b))
N("conv2d_no_bias", {"x": x, "w": w}, lambda x, w: F.conv2d(x, w))
N("conv2d_stride2_pad1", {"x": x, "w": w, "b": bias}, lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1))
N(
    "conv2d_asymmetric",
    {"x": x, "w": rn(3, 4, 3, 2), "b": bias},
    lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(0, 2)),
)
N("conv2d_dilation2", {"x": x, "w": w, "b": bias}, lambda x, w, b: F.conv2d(x, w, b, padding=2, dilation=2))
N("conv2d_groups2", {"x": x, "w": rn(6, 2, 3, 3), "b": rn(6)}, lambda x, w, b: F.conv2d(x, w, b, groups=2))
N("conv2d_depthwise", {"x": x, "w": rn(4, 1, 3, 3)}, lambda x, w: F.conv2d(x, w, padding=1, groups=4))
N("conv2d_same_k3", {"x": x, "w": w, "b": bias}, lambda x, w, b: F.conv2d(x, w, b, padding="same"))
N("conv2d_same_k4", {"x": x, "w": rn(2, 4, 4, 4), "b": rn(2)}, lambda x, w, b: F.conv2d(x, w, b, padding="same"))
N("conv2d_same_k3_dil2", {"x": x, "w": w}, lambda x, w: F.conv2d(x, w, padding="same", dilation=2))
N("conv2d_same_k2x3", {"x": x, "w": rn(2, 4, 2, 3)}, lambda x, w: F.conv2d(x, w, padding="same"))

xt = rn(2, 4, 3, 3)
wt = rn(4, 3, 3, 3)
N("conv_transpose2d_basic", {"x": xt, "w": wt, "b": rn(3)}, lambda x, w, b: F.conv_transpose2d(x, w, b))
N(
    "conv_transpose2d_stride2_pad1_outpad1",
    {"x": xt, "w": wt, "b": rn(3)},
    lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
)
N("conv_transpose2d_groups2", {"x": xt, "w": rn(4, 2, 3, 3)}, lambda x, w: F.conv_transpose2d(x, w, groups=2))
N("conv_transpose2d_dilation2", {"x": xt, "w": wt}, lambda x, w: F.conv_transpose2d(x, w, dilation=2, padding=1))

xp = rn(2, 3, 6, 6)
xp5 = rn(1, 2, 5, 5)
N("max_pool2d_k2", {"x": xp}, lambda x: F.max_pool2d(x, 2))
N("max_pool2d_k3_s2_p1", {"x": xp}, lambda x: F.max_pool2d(x, 3, stride=2, padding=1))
N("max_pool2d_k2_s1_dil2", {"x": xp}, lambda x: F.max_pool2d(x, 2, stride=1, dilation=2))
N("max_pool2d_k2_ceil", {"x": xp5}, lambda x: F.max_pool2d(x, 2, ceil_mode=True))
N("max_pool2d_k2x3_s1x2", {"x": xp}, lambda x: F.max_pool2d(x, (2, 3), stride=(1, 2)))
N("avg_pool2d_k2", {"x": xp}, lambda x: F.avg_pool2d(x, 2))
N("avg_pool2d_k3_s2_p1", {"x": xp}, lambda x: F.avg_pool2d(x, 3, stride=2, padding=1))
N(
    "avg_pool2d_k3_s2_p1_exclude_pad",
    {"x": xp},
    lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
)
N("avg_pool2d_k2_ceil", {"x": xp5}, lambda x: F.avg_pool2d(x, 2, ceil_mode=True))

xa = rn(2, 3, 5, 7)
N("adaptive_avg_pool2d_2x3", {"x": xa}, lambda x: F.adaptive_avg_pool2d(x, (2, 3)))
N("adaptive_avg_pool2d_1", {"x": xa}, lambda x: F.adaptive_avg_pool2d(x, 1))
N("adaptive_avg_pool2d_4x4", {"x": xa}, lambda x: F.adaptive_avg_pool2d(x, 4))

xi = rn(1, 2, 3, 4)
N("interpolate_nearest_6x9", {"x": xi}, lambda x: F.interpolate(x, size=(6, 9), mode="nearest"))
N("interpolate_nearest_down_2x3", {"x": xi}, lambda x: F.interpolate(x, size=(2, 3), mode="nearest"))
N("interpolate_nearest_scale2", {"x": xi}, lambda x: F.interpolate(x, scale_factor=2, mode="nearest"))
N(
    "interpolate_bilinear_5x7",
    {"x": xi},
    lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=False),
)
N(
    "interpolate_bilinear_5x7_align",
    {"x": xi},
    lambda x: F.interpolate(x, size=(5, 7), mode="bilinear", align_corners=True),
)
N(
    "interpolate_bilinear_scale2",
    {"x": xi},
    lambda x: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False),
)
# 3 * 1.5 = 4.5 is not an integer: PyTorch then samples with the scale factor,
# not with the rounded output size.
N(
    "interpolate_bilinear_scale1.5",
    {"x": xi},
    lambda x: F.interpolate(x, scale_factor=1.5, mode="bilinear", align_corners=False),
)
N("interpolate_nearest_scale1.5", {"x": xi}, lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest"))


def bn_train(x, w, b, rm, rv, momentum, eps):
    rm, rv = rm.clone(), rv.clone()
    out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=momentum, eps=eps)
    return {"out": out, "running_mean": rm, "running_var": rv}


xb = rn(4, 3, 2, 2) * 2 + 0.5
wb = ru(0.5, 1.5, 3)
bb = rn(3)
rm0 = rn(3) * 0.1
rv0 = ru(0.5, 1.5, 3)
N(
    "batch_norm_train",
    {"x": xb, "w": wb, "b": bb, "rm": rm0, "rv": rv0},
    lambda x, w, b, rm, rv: bn_train(x, w, b, rm, rv, 0.1, 1e-5),
)
N(
    "batch_norm_train_momentum0.3_eps1e-3",
    {"x": xb, "w": wb, "b": bb, "rm": rm0, "rv": rv0},
    lambda x, w, b, rm, rv: bn_train(x, w, b, rm, rv, 0.3, 1e-3),
)
N(
    "batch_norm_train_no_affine",
    {"x": xb, "rm": rm0, "rv": rv0},
    lambda x, rm, rv: bn_train(x, None, None, rm, rv, 0.1, 1e-5),
)
N(
    "batch_norm_train_2d_input",
    {"x": rn(5, 3), "w": wb, "b": bb, "rm": rm0, "rv": rv0},
    lambda x, w, b, rm, rv: bn_train(x, w, b, rm, rv, 0.1, 1e-5),
)
N(
    "batch_norm_eval",
    {"x": xb, "w": wb, "b": bb, "rm": rm0, "rv": rv0},
    lambda x, w, b, rm, rv: F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-5),
)

xl = rn(5, 4)
wl = rn(3, 4)
bl = rn(3)
N("linear", {"x": xl, "w": wl, "b": bl}, lambda x, w, b: F.linear(x, w, b))
N("linear_no_bias", {"x": xl, "w": wl}, lambda x, w: F.linear(x, w))
N("linear_3d_input", {"x": rn(2, 5, 4), "w": wl, "b": bl}, lambda x, w, b: F.linear(x, w, b))

xs = rn(3, 5)
N("softmax_last", {"x": xs}, lambda x: F.softmax(x, -1))
N("softmax_dim0", {"x": xs}, lambda x: F.softmax(x, 0))
N("log_softmax_dim1", {"x": xs}, lambda x: F.log_softmax(x, 1))
N("log_softmax_3d_dim1", {"x": rn(2, 3, 4)}, lambda x: F.log_softmax(x, 1))

logits = rn(4, 5) * 2
target = torch.tensor([1, 0, 4, 2])
probs = F.softmax(rn(4, 5), 1)
N("cross_entropy_mean", {"x": logits, "t": target}, lambda x, t: F.cross_entropy(x, t))
N("cross_entropy_sum", {"x": logits, "t": target}, lambda x, t: F.cross_entropy(x, t, reduction="sum"))
N("cross_entropy_none", {"x": logits, "t": target}, lambda x, t: F.cross_entropy(x, t, reduction="none"))
N(
    "cross_entropy_label_smoothing0.1",
    {"x": logits, "t": target},
    lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
)
N("cross_entropy_probabilities", {"x": logits, "t": probs}, lambda x, t: F.cross_entropy(x, t))
N(
    "cross_entropy_spatial",
    {"x": rn(2, 3, 2, 2), "t": torch.tensor([[[0, 1], [2, 0]], [[1, 1], [2, 2]]])},
    lambda x, t: F.cross_entropy(x, t),
)
logp = F.log_softmax(logits, 1)
N("nll_loss_mean", {"x": logp, "t": target}, lambda x, t: F.nll_loss(x, t))
N("nll_loss_sum", {"x": logp, "t": target}, lambda x, t: F.nll_loss(x, t, reduction="sum"))
N("nll_loss_none", {"x": logp, "t": target}, lambda x, t: F.nll_loss(x, t, reduction="none"))

ym = rn(3, 4)
tm = rn(3, 4)
N("mse_loss_mean", {"x": ym, "t": tm}, lambda x, t: F.mse_loss(x, t))
N("mse_loss_sum", {"x": ym, "t": tm}, lambda x, t: F.mse_loss(x, t, reduction="sum"))
N("mse_loss_none", {"x": ym, "t": tm}, lambda x, t: F.mse_loss(x, t, reduction="none"))
pb = torch.sigmoid(rn(3, 4))
tb = torch.rand(3, 4, generator=g)
N("bce_loss_mean", {"x": pb, "t": tb}, lambda x, t: F.binary_cross_entropy(x, t))
N("bce_loss_sum", {"x": pb, "t": tb}, lambda x, t: F.binary_cross_entropy(x, t, reduction="sum"))
N("bce_loss_none", {"x": pb, "t": tb}, lambda x, t: F.binary_cross_entropy(x, t, reduction="none"))
N("bce_with_logits_mean", {"x": rn(3, 4) * 3, "t": tb}, lambda x, t: F.binary_cross_entropy_with_logits(x, t))

xu = rn(1, 2, 4, 5)
N("unfold_k2", {"x": xu}, lambda x: F.unfold(x, 2))
N("unfold_k3_p1_s2", {"x": xu}, lambda x: F.unfold(x, 3, padding=1, stride=2))
N("unfold_k2x3_dil2x1", {"x": xu}, lambda x: F.unfold(x, (2, 3), dilation=(2, 1)))
N("fold_k2", {"c": rn(1, 8, 12)}, lambda c: F.fold(c, (4, 5), 2))
N("fold_k3_p1_s2", {"c": rn(1, 18, 9)}, lambda c: F.fold(c, (5, 5), 3, padding=1, stride=2))
N("fold_unfold_counts", {"x": torch.ones(1, 1, 4, 4)}, lambda x: F.fold(F.unfold(x, 2), (4, 4), 2))


def torch_state_dict_keys():
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 10)),
    )
    return [[k, list(v.shape)] for k, v in m.state_dict().items()]


write("nn.json", nn)
write("state_dict_keys.json", torch_state_dict_keys(), key="keys")

# ---------------------------------------------------------------- optimizers
# A fixed least-squares problem in float64: loss = mse(x @ w + b, y).
# Every configuration starts from the same w0, b0 and takes 5 steps.
xo = torch.randn(6, 3, generator=g, dtype=torch.float64)
yo = torch.randn(6, 2, generator=g, dtype=torch.float64)
w0 = torch.randn(3, 2, generator=g, dtype=torch.float64)
b0 = torch.randn(2, generator=g, dtype=torch.float64)

OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1),
    "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
    "sgd_momentum_dampening": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, dampening=0.3),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "sgd_weight_decay": lambda p: torch.optim.SGD(p, lr=0.1, weight_decay=0.05),
    "sgd_momentum_weight_decay": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, weight_decay=0.1),
    "adam": lambda p: torch.optim.Adam(p, lr=0.1),
    "adam_betas_eps": lambda p: torch.optim.Adam(p, lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    "adam_weight_decay": lambda p: torch.optim.Adam(p, lr=0.1, weight_decay=0.1),
}

optim = {"problem": {"x": enc(xo), "y": enc(yo), "w0": enc(w0), "b0": enc(b0)}, "runs": {}}
for name, make in OPTIMIZERS.items():
    w_ = w0.clone().requires_grad_(True)
    b_ = b0.clone().requires_grad_(True)
    opt = make([w_, b_])
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = F.mse_loss(xo @ w_ + b_, yo)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    optim["runs"][name] = {"losses": losses, "w": enc(w_), "b": enc(b_)}
write("optim.json", optim)

try:
    subprocess.run(["npx", "prettier", "--write", *WRITTEN], cwd=ROOT, check=True, capture_output=True)
except (OSError, subprocess.CalledProcessError) as e:
    print("note: could not format the JSON files with prettier:", e)

print("wrote ops.json (%d cases), nn.json (%d cases), optim.json (%d runs), random.json, state_dict_keys.json"
      % (len(ops), len(nn), len(optim["runs"])))
