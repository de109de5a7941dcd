// Elementwise ops: unary, binary (tensor or scalar right-hand side), where,
// clamp, and the in-place updates used by optimizers and initialisers.
#include "common.h"
#include "threads.h"

namespace vg {

#define UNARY(NAME, EXPR)                                      \
  static Napi::Value NAME(const Napi::CallbackInfo& info) {    \
    const torch::Tensor& t = ArgTensor(info, 0, "input");      \
    return Wrap(info.Env(), EXPR);                             \
  }

UNARY(Neg, t.neg())
UNARY(Abs, t.abs())
UNARY(Sign, t.sign())
UNARY(Exp, t.exp())
UNARY(Log, t.log())
UNARY(Log1p, t.log1p())
UNARY(Sqrt, t.sqrt())
UNARY(Rsqrt, t.rsqrt())
UNARY(Square, t.square())
UNARY(Reciprocal, t.reciprocal())
UNARY(Relu, t.relu())
UNARY(Sigmoid, t.sigmoid())
UNARY(Tanh, t.tanh())
UNARY(Sin, t.sin())
UNARY(Cos, t.cos())
UNARY(Floor, t.floor())
UNARY(Ceil, t.ceil())
UNARY(Round, t.round())
UNARY(LogicalNot, t.logical_not())
UNARY(IsNan, t.isnan())
UNARY(Clone, t.clone())
UNARY(Contiguous, t.contiguous())
UNARY(Detach, t.detach())

static Napi::Value LeakyRelu(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::leaky_relu(ArgTensor(info, 0, "input"), ArgScalar(info, 1, "negativeSlope")));
}
static Napi::Value Softplus(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::softplus(ArgTensor(info, 0, "input"), ArgScalar(info, 1, "beta"), ArgScalar(info, 2, "threshold")));
}
static Napi::Value Hardtanh(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::hardtanh(ArgTensor(info, 0, "input"), ArgScalar(info, 1, "min"), ArgScalar(info, 2, "max")));
}
static Napi::Value Elu(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::elu(ArgTensor(info, 0, "input"), ArgScalar(info, 1, "alpha")));
}

#define BINARY(NAME, TT, TS)                                              \
  static Napi::Value NAME(const Napi::CallbackInfo& info) {               \
    const torch::Tensor& a = ArgTensor(info, 0, "input");                 \
    if (IsTensor(info[1])) {                                              \
      const torch::Tensor& b = ArgTensor(info, 1, "other");               \
      return Wrap(info.Env(), TT);                                        \
    }                                                                     \
    c10::Scalar s = ArgScalar(info, 1, "other");                          \
    return Wrap(info.Env(), TS);                                          \
  }

BINARY(Add, a.add(b), a.add(s))
BINARY(Sub, a.sub(b), a.sub(s))
BINARY(Mul, a.mul(b), a.mul(s))
BINARY(Div, a.div(b), a.div(s))
BINARY(Pow, a.pow(b), a.pow(s))
BINARY(Remainder, a.remainder(b), a.remainder(s))
BINARY(Maximum, torch::maximum(a, b), torch::clamp_min(a, s))
BINARY(Minimum, torch::minimum(a, b), torch::clamp_max(a, s))
BINARY(Eq, a.eq(b), a.eq(s))
BINARY(Ne, a.ne(b), a.ne(s))
BINARY(Lt, a.lt(b), a.lt(s))
BINARY(Le, a.le(b), a.le(s))
BINARY(Gt, a.gt(b), a.gt(s))
BINARY(Ge, a.ge(b), a.ge(s))
BINARY(LogicalAnd, a.logical_and(b), a.logical_and(torch::scalar_tensor(s, a.options())))
BINARY(LogicalOr, a.logical_or(b), a.logical_or(torch::scalar_tensor(s, a.options())))

static torch::Tensor TensorOrScalar(const Napi::CallbackInfo& info, size_t i, const char* name, const torch::Tensor& like) {
  if (IsTensor(info[i])) return ArgTensor(info, i, name);
  return torch::scalar_tensor(ArgScalar(info, i, name), like.options().requires_grad(false));
}

static Napi::Value Where(const Napi::CallbackInfo& info) {
  const torch::Tensor& cond = ArgTensor(info, 0, "condition");
  torch::Tensor like = IsTensor(info[1]) ? ArgTensor(info, 1, "input") : (IsTensor(info[2]) ? ArgTensor(info, 2, "other") : torch::empty({0}));
  torch::Tensor a = TensorOrScalar(info, 1, "input", like);
  torch::Tensor b = TensorOrScalar(info, 2, "other", like);
  return Wrap(info.Env(), torch::where(cond, a, b));
}

// clamp(t, min, max): each bound is a number, a tensor, or null.
static Napi::Value Clamp(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "input");
  bool tmin = IsTensor(info[1]), tmax = IsTensor(info[2]);
  if (tmin || tmax) {
    c10::optional<torch::Tensor> lo = tmin ? c10::optional<torch::Tensor>(ArgTensor(info, 1, "min")) : c10::nullopt;
    c10::optional<torch::Tensor> hi = tmax ? c10::optional<torch::Tensor>(ArgTensor(info, 2, "max")) : c10::nullopt;
    if (!tmin && !(info[1].IsNull() || info[1].IsUndefined())) lo = torch::scalar_tensor(ArgScalar(info, 1, "min"), t.options());
    if (!tmax && !(info[2].IsNull() || info[2].IsUndefined())) hi = torch::scalar_tensor(ArgScalar(info, 2, "max"), t.options());
    return Wrap(info.Env(), torch::clamp(t, lo, hi));
  }
  c10::optional<c10::Scalar> lo, hi;
  if (!(info[1].IsNull() || info[1].IsUndefined())) lo = ArgScalar(info, 1, "min");
  if (!(info[2].IsNull() || info[2].IsUndefined())) hi = ArgScalar(info, 2, "max");
  return Wrap(info.Env(), torch::clamp(t, lo, hi));
}

static Napi::Value Lerp(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::lerp(ArgTensor(info, 0, "input"), ArgTensor(info, 1, "end"), ArgScalar(info, 2, "weight")));
}

static Napi::Value ToDtype(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").to(ArgDtype(info, 1, "dtype")));
}
static Napi::Value ToDevice(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), ArgTensor(info, 0, "input").to(ArgDevice(info, 1, "device")));
}

// ---- in-place updates: they return nothing; the JS object keeps its handle.
#define INPLACE_BINARY(NAME, TT, TS)                                      \
  static Napi::Value NAME(const Napi::CallbackInfo& info) {               \
    torch::Tensor& a = ArgTensor(info, 0, "input");                       \
    if (IsTensor(info[1])) {                                              \
      const torch::Tensor& b = ArgTensor(info, 1, "other");               \
      TT;                                                                 \
    } else {                                                              \
      c10::Scalar s = ArgScalar(info, 1, "other");                        \
      TS;                                                                 \
    }                                                                     \
    return info.Env().Undefined();                                        \
  }

static c10::Scalar ArgAlpha(const Napi::CallbackInfo& info) {
  return info[2].IsUndefined() ? c10::Scalar(1) : ArgScalar(info, 2, "alpha");
}

// alpha scales `other` whether it is a tensor or a scalar, as in PyTorch.
INPLACE_BINARY(AddInplace, a.add_(b, ArgAlpha(info)), a.add_(s, ArgAlpha(info)))
INPLACE_BINARY(SubInplace, a.sub_(b, ArgAlpha(info)), a.sub_(s, ArgAlpha(info)))
INPLACE_BINARY(MulInplace, a.mul_(b), a.mul_(s))
INPLACE_BINARY(DivInplace, a.div_(b), a.div_(s))
INPLACE_BINARY(LerpInplace, a.lerp_(b, ArgScalar(info, 2, "weight")), (void)s; throw ArgError("lerp_ needs a tensor end"))

static Napi::Value AddcmulInplace(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").addcmul_(ArgTensor(info, 1, "tensor1"), ArgTensor(info, 2, "tensor2"), ArgScalar(info, 3, "value"));
  return info.Env().Undefined();
}
static Napi::Value AddcdivInplace(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").addcdiv_(ArgTensor(info, 1, "tensor1"), ArgTensor(info, 2, "tensor2"), ArgScalar(info, 3, "value"));
  return info.Env().Undefined();
}
static Napi::Value CopyInplace(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").copy_(ArgTensor(info, 1, "source"));
  return info.Env().Undefined();
}
static Napi::Value ZeroInplace(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").zero_();
  return info.Env().Undefined();
}
static Napi::Value FillInplace(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").fill_(ArgScalar(info, 1, "value"));
  return info.Env().Undefined();
}
static Napi::Value UniformInplace(const Napi::CallbackInfo& info) {
  RandomGuard random;
  ArgTensor(info, 0, "input").uniform_(ArgDouble(info, 1, "from"), ArgDouble(info, 2, "to"));
  return info.Env().Undefined();
}
static Napi::Value NormalInplace(const Napi::CallbackInfo& info) {
  RandomGuard random;
  ArgTensor(info, 0, "input").normal_(ArgDouble(info, 1, "mean"), ArgDouble(info, 2, "std"));
  return info.Env().Undefined();
}
static Napi::Value ClampInplace(const Napi::CallbackInfo& info) {
  c10::optional<c10::Scalar> lo, hi;
  if (!(info[1].IsNull() || info[1].IsUndefined())) lo = ArgScalar(info, 1, "min");
  if (!(info[2].IsNull() || info[2].IsUndefined())) hi = ArgScalar(info, 2, "max");
  ArgTensor(info, 0, "input").clamp_(lo, hi);
  return info.Env().Undefined();
}
static Napi::Value SqrtInplace(const Napi::CallbackInfo& info) {
  ArgTensor(info, 0, "input").sqrt_();
  return info.Env().Undefined();
}

void RegisterElementwise(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "neg", Neg);
  VG_EXPORT(exports, "abs", Abs);
  VG_EXPORT(exports, "sign", Sign);
  VG_EXPORT(exports, "exp", Exp);
  VG_EXPORT(exports, "log", Log);
  VG_EXPORT(exports, "log1p", Log1p);
  VG_EXPORT(exports, "sqrt", Sqrt);
  VG_EXPORT(exports, "rsqrt", Rsqrt);
  VG_EXPORT(exports, "square", Square);
  VG_EXPORT(exports, "reciprocal", Reciprocal);
  VG_EXPORT(exports, "relu", Relu);
  VG_EXPORT(exports, "sigmoid", Sigmoid);
  VG_EXPORT(exports, "tanh", Tanh);
  VG_EXPORT(exports, "sin", Sin);
  VG_EXPORT(exports, "cos", Cos);
  VG_EXPORT(exports, "floor", Floor);
  VG_EXPORT(exports, "ceil", Ceil);
  VG_EXPORT(exports, "round", Round);
  VG_EXPORT(exports, "logicalNot", LogicalNot);
  VG_EXPORT(exports, "isnan", IsNan);
  VG_EXPORT(exports, "clone", Clone);
  VG_EXPORT(exports, "contiguous", Contiguous);
  VG_EXPORT(exports, "detach", Detach);
  VG_EXPORT(exports, "leakyRelu", LeakyRelu);
  VG_EXPORT(exports, "softplus", Softplus);
  VG_EXPORT(exports, "hardtanh", Hardtanh);
  VG_EXPORT(exports, "elu", Elu);
  VG_EXPORT(exports, "add", Add);
  VG_EXPORT(exports, "sub", Sub);
  VG_EXPORT(exports, "mul", Mul);
  VG_EXPORT(exports, "div", Div);
  VG_EXPORT(exports, "pow", Pow);
  VG_EXPORT(exports, "remainder", Remainder);
  VG_EXPORT(exports, "maximum", Maximum);
  VG_EXPORT(exports, "minimum", Minimum);
  VG_EXPORT(exports, "eq", Eq);
  VG_EXPORT(exports, "ne", Ne);
  VG_EXPORT(exports, "lt", Lt);
  VG_EXPORT(exports, "le", Le);
  VG_EXPORT(exports, "gt", Gt);
  VG_EXPORT(exports, "ge", Ge);
  VG_EXPORT(exports, "logicalAnd", LogicalAnd);
  VG_EXPORT(exports, "logicalOr", LogicalOr);
  VG_EXPORT(exports, "where", Where);
  VG_EXPORT(exports, "clamp", Clamp);
  VG_EXPORT(exports, "lerp", Lerp);
  VG_EXPORT(exports, "toDtype", ToDtype);
  VG_EXPORT(exports, "toDevice", ToDevice);
  VG_EXPORT(exports, "add_", AddInplace);
  VG_EXPORT(exports, "sub_", SubInplace);
  VG_EXPORT(exports, "mul_", MulInplace);
  VG_EXPORT(exports, "div_", DivInplace);
  VG_EXPORT(exports, "lerp_", LerpInplace);
  VG_EXPORT(exports, "addcmul_", AddcmulInplace);
  VG_EXPORT(exports, "addcdiv_", AddcdivInplace);
  VG_EXPORT(exports, "copy_", CopyInplace);
  VG_EXPORT(exports, "zero_", ZeroInplace);
  VG_EXPORT(exports, "fill_", FillInplace);
  VG_EXPORT(exports, "uniform_", UniformInplace);
  VG_EXPORT(exports, "normal_", NormalInplace);
  VG_EXPORT(exports, "clamp_", ClampInplace);
  VG_EXPORT(exports, "sqrt_", SqrtInplace);
}

}  // namespace vg
