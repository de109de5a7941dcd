// The tensor wrapper, argument conversion, creation and data access.
#include "common.h"
#include "threads.h"

#include <ATen/Parallel.h>
#include <cmath>
#include <cstring>
#include <limits>

namespace vg {

AddonData* Data(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

// Marks objects made by the NativeTensor constructor, so that a handle is told
// apart from a look-alike with one private-field lookup instead of instanceof.
static const napi_type_tag kTensorTag = {0x7661656775617264ULL, 0x74656e736f723031ULL};

static void Check(napi_env env, napi_status status, const char* what) {
  if (status != napi_ok) throw Napi::Error::New(env, std::string("NativeTensor: ") + what + " failed");
}

static bool Tagged(napi_env env, napi_value v) {
  bool tagged = false;
  return napi_check_object_type_tag(env, v, &kTensorTag, &tagged) == napi_ok && tagged;
}

static TensorBox* BoxOf(napi_env env, napi_value v) {
  void* p = nullptr;
  if (napi_unwrap(env, v, &p) != napi_ok) return nullptr;
  return static_cast<TensorBox*>(p);
}

static void ForgetBox(TensorBox* box) {
  box->data->liveTensors--;
  box->data->liveBytes -= box->bytes;
  delete box;
}

// Safety net only: a handle that was never disposed, collected by the GC.
static void FinalizeBox(napi_env env, void* p, void* hint) { ForgetBox(static_cast<TensorBox*>(p)); }

// Frees the tensor now; a second call finds no wrap and does nothing.
static void ReleaseHandle(napi_env env, napi_value obj) {
  if (!Tagged(env, obj)) return;
  void* p = nullptr;
  if (napi_remove_wrap(env, obj, &p) != napi_ok || p == nullptr) return;
  auto* box = static_cast<TensorBox*>(p);
  int64_t bytes = box->bytes;
  ForgetBox(box);
  if (bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(Napi::Env(env), -bytes);
}

static Napi::Value Construct(const Napi::CallbackInfo& info) {
  Check(info.Env(), napi_type_tag_object(info.Env(), info.This(), &kTensorTag), "type tag");
  return info.Env().Undefined();
}

static Napi::Value DisposeMethod(const Napi::CallbackInfo& info) {
  ReleaseHandle(info.Env(), info.This());
  return info.Env().Undefined();
}

static Napi::Value IsDisposedMethod(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), BoxOf(info.Env(), info.This()) == nullptr);
}

static napi_value CallbackOf(napi_env env, napi_callback_info cbinfo, Napi::Value (*fn)(const Napi::CallbackInfo&)) {
  return Napi::details::WrapCallback(env, [&] {
    Napi::CallbackInfo info(env, cbinfo);
    return fn(info);
  });
}

Napi::Function InitTensorClass(Napi::Env env) {
  // napi_define_class gives the methods a receiver check: calling them on
  // anything but a NativeTensor is a TypeError ("Illegal invocation").
  napi_property_descriptor methods[] = {
      {"dispose", nullptr,
       [](napi_env e, napi_callback_info i) { return CallbackOf(e, i, DisposeMethod); }, nullptr, nullptr, nullptr,
       napi_default, nullptr},
      {"isDisposed", nullptr,
       [](napi_env e, napi_callback_info i) { return CallbackOf(e, i, IsDisposedMethod); }, nullptr, nullptr,
       nullptr, napi_default, nullptr},
  };
  napi_value ctor = nullptr;
  Check(env,
        napi_define_class(env, "NativeTensor", NAPI_AUTO_LENGTH,
                          [](napi_env e, napi_callback_info i) { return CallbackOf(e, i, Construct); }, nullptr, 2,
                          methods, &ctor),
        "define class");
  return Napi::Function(env, ctor);
}

static int64_t ByteSize(const torch::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

Napi::Value Wrap(Napi::Env env, torch::Tensor t) {
  if (!t.defined()) return env.Undefined();
  AddonData* data = Data(env);
  Napi::Object obj = data->tensorCtor.New({});
  auto* box = new TensorBox{std::move(t), 0, data};
  box->bytes = ByteSize(box->tensor);
  napi_status status = napi_wrap(env, obj, box, FinalizeBox, nullptr, nullptr);
  if (status != napi_ok) {
    delete box;
    Check(env, status, "wrap");
  }
  data->liveTensors++;
  data->liveBytes += box->bytes;
  if (box->bytes > 0) Napi::MemoryManagement::AdjustExternalMemory(env, box->bytes);
  return obj;
}

Napi::Value WrapList(Napi::Env env, const std::vector<torch::Tensor>& ts) {
  Napi::Array arr = Napi::Array::New(env, ts.size());
  for (size_t i = 0; i < ts.size(); i++) arr.Set(static_cast<uint32_t>(i), Wrap(env, ts[i]));
  return arr;
}

// ---- argument conversion
static std::string Pos(size_t i, const char* name) {
  return std::string("argument ") + std::to_string(i) + " (" + name + ")";
}

bool IsTensor(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  if (Tagged(v.Env(), v)) return true;
  // Look-alikes made with Object.create(NativeTensor.prototype) count as
  // tensors here so that TensorOf can reject them by name.
  return v.As<Napi::Object>().InstanceOf(Data(v.Env())->tensorCtor.Value());
}

static torch::Tensor& TensorOf(const Napi::Value& v, const std::string& what) {
  if (!IsTensor(v)) throw ArgError("expected a tensor for " + what);
  if (!Tagged(v.Env(), v))
    throw ArgError("expected a tensor for " + what + " but received an object that only inherits from NativeTensor");
  TensorBox* box = BoxOf(v.Env(), v);
  if (box == nullptr) throw ArgError("tensor for " + what + " was disposed");
  return box->tensor;
}

torch::Tensor& ArgTensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return TensorOf(info[i], Pos(i, name));
}

c10::optional<torch::Tensor> ArgOptTensor(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return TensorOf(info[i], Pos(i, name));
}

std::vector<torch::Tensor> ArgTensorList(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsArray()) throw ArgError("expected an array of tensors for " + Pos(i, name));
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<torch::Tensor> out;
  out.reserve(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out.push_back(TensorOf(arr.Get(k), Pos(i, name) + "[" + std::to_string(k) + "]"));
  return out;
}

static int64_t IntOf(const Napi::Value& v, const std::string& what) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d == static_cast<double>(static_cast<int64_t>(d))) || d > 9.007199254740992e15 || d < -9.007199254740992e15)
      throw ArgError("expected an integer for " + what);
    return static_cast<int64_t>(d);
  }
  if (v.IsBigInt()) {
    bool lossless = false;
    int64_t r = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw ArgError("integer out of range for " + what);
    return r;
  }
  throw ArgError("expected an integer for " + what);
}

std::vector<int64_t> ArgInts(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsNumber()) return {IntOf(info[i], Pos(i, name))};
  if (!info[i].IsArray()) throw ArgError("expected an array of integers for " + Pos(i, name));
  Napi::Array arr = info[i].As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t k = 0; k < arr.Length(); k++) out[k] = IntOf(arr.Get(k), Pos(i, name));
  return out;
}

c10::optional<std::vector<int64_t>> ArgOptInts(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgInts(info, i, name);
}

int64_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* name) { return IntOf(info[i], Pos(i, name)); }

c10::optional<int64_t> ArgOptInt(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return IntOf(info[i], Pos(i, name));
}

double ArgDouble(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw ArgError("expected a number for " + Pos(i, name));
  return info[i].As<Napi::Number>().DoubleValue();
}

c10::optional<double> ArgOptDouble(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return c10::nullopt;
  return ArgDouble(info, i, name);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) throw ArgError("expected a boolean for " + Pos(i, name));
  return info[i].As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsString()) throw ArgError("expected a string for " + Pos(i, name));
  return info[i].As<Napi::String>().Utf8Value();
}

c10::Scalar ArgScalar(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const Napi::Value& v = info[i];
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsNumber()) {
    // JavaScript has one number type. An integral value becomes an integer
    // scalar, as the literal 1 is in PyTorch, so that int tensors stay
    // integral (int64 + 1 is int64, and int64.add_(1) is allowed); float
    // tensors are unaffected by type promotion. -0 stays a double.
    double d = v.As<Napi::Number>().DoubleValue();
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) <= 9007199254740992.0 && !(d == 0 && std::signbit(d)))
      return c10::Scalar(static_cast<int64_t>(d));
    return c10::Scalar(d);
  }
  if (v.IsBigInt()) return c10::Scalar(IntOf(v, Pos(i, name)));
  throw ArgError("expected a number for " + Pos(i, name));
}

c10::ScalarType DtypeFromString(const std::string& s) {
  if (s == "float32") return torch::kFloat32;
  if (s == "float64") return torch::kFloat64;
  if (s == "float16") return torch::kFloat16;
  if (s == "bfloat16") return torch::kBFloat16;
  if (s == "int64") return torch::kInt64;
  if (s == "int32") return torch::kInt32;
  if (s == "int16") return torch::kInt16;
  if (s == "int8") return torch::kInt8;
  if (s == "uint8") return torch::kUInt8;
  if (s == "bool") return torch::kBool;
  throw ArgError("unknown dtype '" + s + "'");
}

std::string DtypeToString(c10::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return "float32";
    case torch::kFloat64: return "float64";
    case torch::kFloat16: return "float16";
    case torch::kBFloat16: return "bfloat16";
    case torch::kInt64: return "int64";
    case torch::kInt32: return "int32";
    case torch::kInt16: return "int16";
    case torch::kInt8: return "int8";
    case torch::kUInt8: return "uint8";
    case torch::kBool: return "bool";
    default: return std::string(c10::toString(t));
  }
}

c10::ScalarType ArgDtype(const Napi::CallbackInfo& info, size_t i, const char* name) {
  return DtypeFromString(ArgString(info, i, name));
}

torch::Device ArgDevice(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return torch::Device(torch::kCPU);
  return torch::Device(ArgString(info, i, name));
}

int64_t ArgReduction(const Napi::CallbackInfo& info, size_t i, const char* name) {
  std::string r = info[i].IsUndefined() ? "mean" : ArgString(info, i, name);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  throw ArgError("reduction must be 'mean', 'sum' or 'none' but received '" + r + "'");
}

// ---- creation
static torch::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  auto o = torch::TensorOptions().dtype(ArgDtype(info, dtypeArg, "dtype"));
  return o.device(ArgDevice(info, deviceArg, "device"));
}

static size_t ElementSize(c10::ScalarType t) { return c10::elementSize(t); }

// fromBuffer(typedArray, shape, dtype, device)
static Napi::Value FromBuffer(const Napi::CallbackInfo& info) {
  if (!info[0].IsTypedArray() && !info[0].IsArrayBuffer() && !info[0].IsBuffer())
    throw ArgError("expected a typed array for argument 0 (data)");
  auto shape = ArgInts(info, 1, "shape");
  auto dtype = ArgDtype(info, 2, "dtype");
  auto device = ArgDevice(info, 3, "device");
  const uint8_t* ptr = nullptr;
  size_t bytes = 0;
  if (info[0].IsArrayBuffer()) {
    auto ab = info[0].As<Napi::ArrayBuffer>();
    ptr = static_cast<const uint8_t*>(ab.Data());
    bytes = ab.ByteLength();
  } else {
    auto ta = info[0].As<Napi::TypedArray>();
    ptr = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    bytes = ta.ByteLength();
  }
  int64_t numel = 1;
  for (auto d : shape) {
    if (d < 0) throw ArgError("negative dimension in shape");
    numel *= d;
  }
  size_t need = static_cast<size_t>(numel) * ElementSize(dtype);
  if (need != bytes)
    throw ArgError("data has " + std::to_string(bytes) + " bytes but shape and dtype need " + std::to_string(need));
  torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dtype));
  if (bytes > 0) std::memcpy(t.data_ptr(), ptr, bytes);
  if (device != torch::Device(torch::kCPU)) t = t.to(device);
  return Wrap(info.Env(), t);
}

static Napi::Value ToBuffer(const Napi::CallbackInfo& info) {
  torch::Tensor t = ArgTensor(info, 0, "tensor").detach().to(torch::kCPU).contiguous();
  size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), bytes);
  if (bytes > 0) std::memcpy(ab.Data(), t.data_ptr(), bytes);
  return ab;
}

static Napi::Value Zeros(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::zeros(ArgInts(info, 0, "shape"), Opts(info, 1, 2)));
}
static Napi::Value Ones(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::ones(ArgInts(info, 0, "shape"), Opts(info, 1, 2)));
}
static Napi::Value Full(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::full(ArgInts(info, 0, "shape"), ArgScalar(info, 1, "value"), Opts(info, 2, 3)));
}
static Napi::Value Rand(const Napi::CallbackInfo& info) {
  RandomGuard random;
  return Wrap(info.Env(), torch::rand(ArgInts(info, 0, "shape"), Opts(info, 1, 2)));
}
static Napi::Value Randn(const Napi::CallbackInfo& info) {
  RandomGuard random;
  return Wrap(info.Env(), torch::randn(ArgInts(info, 0, "shape"), Opts(info, 1, 2)));
}
static Napi::Value Randint(const Napi::CallbackInfo& info) {
  RandomGuard random;
  return Wrap(info.Env(), torch::randint(ArgInt(info, 0, "low"), ArgInt(info, 1, "high"), ArgInts(info, 2, "shape"),
                                         Opts(info, 3, 4)));
}
static Napi::Value Randperm(const Napi::CallbackInfo& info) {
  RandomGuard random;
  return Wrap(info.Env(), torch::randperm(ArgInt(info, 0, "n"), Opts(info, 1, 2)));
}
static Napi::Value Arange(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), torch::arange(ArgScalar(info, 0, "start"), ArgScalar(info, 1, "end"), ArgScalar(info, 2, "step"),
                                        Opts(info, 3, 4)));
}

// ---- information
static Napi::Value Shape(const Napi::CallbackInfo& info) {
  auto& t = ArgTensor(info, 0, "tensor");
  Napi::Array arr = Napi::Array::New(info.Env(), t.dim());
  for (int64_t k = 0; k < t.dim(); k++) arr.Set(static_cast<uint32_t>(k), Napi::Number::New(info.Env(), static_cast<double>(t.size(k))));
  return arr;
}
static Napi::Value Dtype(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DtypeToString(ArgTensor(info, 0, "tensor").scalar_type()));
}
static Napi::Value DeviceOf(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ArgTensor(info, 0, "tensor").device().str());
}
static Napi::Value Numel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(ArgTensor(info, 0, "tensor").numel()));
}
static Napi::Value Item(const Napi::CallbackInfo& info) {
  auto& t = ArgTensor(info, 0, "tensor");
  if (t.numel() != 1) throw ArgError("item() needs a tensor with one element but it has " + std::to_string(t.numel()));
  if (t.scalar_type() == torch::kBool) return Napi::Boolean::New(info.Env(), t.item<bool>());
  return Napi::Number::New(info.Env(), t.item<double>());
}

// ---- process-wide settings
static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  int64_t n = ArgInt(info, 0, "threads");
  // Checked before the narrowing to int, which would turn 2^32 + 1 into 1.
  if (n < 1 || n > std::numeric_limits<int>::max()) throw ArgError("threads must be between 1 and 2147483647");
  torch::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}
static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), torch::get_num_threads());
}
static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  // Seeds this thread's own generator when it has one (threads.h).
  RandomGuard random;
  torch::manual_seed(static_cast<uint64_t>(ArgInt(info, 0, "seed")));
  return info.Env().Undefined();
}
static Napi::Value Versions(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("torch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                     std::to_string(TORCH_VERSION_PATCH));
  o.Set("config", at::show_config());
  o.Set("parallel", at::get_parallel_info());
  o.Set("cuda", torch::cuda::is_available());
  o.Set("cudaDevices", static_cast<double>(torch::cuda::device_count()));
  return o;
}
static Napi::Value LiveTensors(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("tensors", static_cast<double>(Data(info.Env())->liveTensors));
  o.Set("bytes", static_cast<double>(Data(info.Env())->liveBytes));
  return o;
}

void RegisterTensor(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "fromBuffer", FromBuffer);
  VG_EXPORT(exports, "toBuffer", ToBuffer);
  VG_EXPORT(exports, "zeros", Zeros);
  VG_EXPORT(exports, "ones", Ones);
  VG_EXPORT(exports, "full", Full);
  VG_EXPORT(exports, "rand", Rand);
  VG_EXPORT(exports, "randn", Randn);
  VG_EXPORT(exports, "randint", Randint);
  VG_EXPORT(exports, "randperm", Randperm);
  VG_EXPORT(exports, "arange", Arange);
  VG_EXPORT(exports, "shape", Shape);
  VG_EXPORT(exports, "dtype", Dtype);
  VG_EXPORT(exports, "device", DeviceOf);
  VG_EXPORT(exports, "numel", Numel);
  VG_EXPORT(exports, "item", Item);
  VG_EXPORT(exports, "setNumThreads", SetNumThreads);
  VG_EXPORT(exports, "getNumThreads", GetNumThreads);
  VG_EXPORT(exports, "manualSeed", ManualSeed);
  VG_EXPORT(exports, "versions", Versions);
  VG_EXPORT(exports, "liveTensors", LiveTensors);
}

}  // namespace vg
