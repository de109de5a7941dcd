// Running jobs side by side in worker threads of one process (threads.h):
// a generator per thread, tensors shared between threads without a copy, and
// OpenBLAS's thread count. Only vaeguard's concurrent runner uses them; a
// process that never calls them behaves as before.
#include "threads.h"

#include <ATen/CPUGeneratorImpl.h>

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "common.h"

// OpenBLAS keeps its own thread pool, sized from the environment at load;
// torch::set_num_threads leaves it alone. Weak: absent with another BLAS.
extern "C" {
void openblas_set_num_threads(int) __attribute__((weak));
int openblas_get_num_threads(void) __attribute__((weak));
}

namespace vg {

// ---- a generator per thread

namespace {

struct GeneratorState {
  at::mt19937 engine;
  c10::optional<float> nextFloatNormal;
  c10::optional<double> nextDoubleNormal;
};

std::mutex g_randomMutex;
// Set by ownGenerator(): this thread's generator state while no random op runs.
thread_local std::unique_ptr<GeneratorState> t_own;

at::CPUGeneratorImpl* DefaultImpl(const at::Generator& gen) { return at::check_generator<at::CPUGeneratorImpl>(gen); }

GeneratorState Read(at::CPUGeneratorImpl* g) {
  return {g->engine(), g->next_float_normal_sample(), g->next_double_normal_sample()};
}

void Write(at::CPUGeneratorImpl* g, const GeneratorState& s) {
  g->set_engine(s.engine);
  g->set_next_float_normal_sample(s.nextFloatNormal);
  g->set_next_double_normal_sample(s.nextDoubleNormal);
}

// The default generator's state while a thread with its own runs an op.
GeneratorState g_parked;

}  // namespace

RandomGuard::RandomGuard() : lock_(g_randomMutex) {
  if (!t_own) return;
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> g(gen.mutex());
  auto* impl = DefaultImpl(gen);
  g_parked = Read(impl);
  Write(impl, *t_own);
  swapped_ = true;
}

RandomGuard::~RandomGuard() {
  if (!swapped_) return;
  at::Generator gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> g(gen.mutex());
  auto* impl = DefaultImpl(gen);
  *t_own = Read(impl);
  Write(impl, g_parked);
}

// ownGenerator(): from now on this thread draws from its own generator, in
// the state a fresh process's default generator starts in (manualSeed seeds it).
static Napi::Value OwnGenerator(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_randomMutex);
  if (!t_own) {
    t_own = std::make_unique<GeneratorState>(
        GeneratorState{at::mt19937(c10::default_rng_seed_val), c10::nullopt, c10::nullopt});
  }
  return info.Env().Undefined();
}

// ---- tensors handed between threads

namespace {
std::mutex g_sharedMutex;
std::unordered_map<int64_t, torch::Tensor> g_shared;
int64_t g_nextShared = 1;
}  // namespace

// shareTensor(t) -> id: another thread takes the same storage with takeSharedTensor(id), no copy.
// Tensors in an autograd graph are refused: a graph belongs to the thread that records it.
static Napi::Value ShareTensor(const Napi::CallbackInfo& info) {
  const torch::Tensor& t = ArgTensor(info, 0, "tensor");
  if (t.requires_grad()) throw ArgError("a tensor that requires grad cannot be shared between threads");
  std::lock_guard<std::mutex> lock(g_sharedMutex);
  int64_t id = g_nextShared++;
  g_shared.emplace(id, t.detach());
  return Napi::Number::New(info.Env(), static_cast<double>(id));
}

static torch::Tensor TakeShared(int64_t id) {
  std::lock_guard<std::mutex> lock(g_sharedMutex);
  auto it = g_shared.find(id);
  if (it == g_shared.end()) throw ArgError("no shared tensor " + std::to_string(id) + " (taken already?)");
  torch::Tensor t = std::move(it->second);
  g_shared.erase(it);
  return t;
}

// takeSharedTensor(id) -> tensor, in this thread; the id is then spent.
static Napi::Value TakeSharedTensor(const Napi::CallbackInfo& info) {
  return Wrap(info.Env(), TakeShared(ArgInt(info, 0, "id")));
}

// dropSharedTensor(id): forget a shared tensor no thread took (its thread failed first).
static Napi::Value DropSharedTensor(const Napi::CallbackInfo& info) {
  int64_t id = ArgInt(info, 0, "id");
  std::lock_guard<std::mutex> lock(g_sharedMutex);
  g_shared.erase(id);
  return info.Env().Undefined();
}

// sharedTensorCount(): shared tensors not yet taken or dropped (tests prove none is left behind).
static Napi::Value SharedTensorCount(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_sharedMutex);
  return Napi::Number::New(info.Env(), static_cast<double>(g_shared.size()));
}

// ---- OpenBLAS threads

// setBlasThreads(n) -> whether the BLAS is OpenBLAS and took it. Process-wide:
// call it only while no other thread computes.
static Napi::Value SetBlasThreads(const Napi::CallbackInfo& info) {
  int64_t n = ArgInt(info, 0, "threads");
  if (n < 1 || n > 1 << 20) throw ArgError("threads must be between 1 and 1048576");
  if (!openblas_set_num_threads) return Napi::Boolean::New(info.Env(), false);
  openblas_set_num_threads(static_cast<int>(n));
  return Napi::Boolean::New(info.Env(), true);
}

// getBlasThreads() -> OpenBLAS's thread count, or null with another BLAS.
static Napi::Value GetBlasThreads(const Napi::CallbackInfo& info) {
  if (!openblas_get_num_threads) return info.Env().Null();
  return Napi::Number::New(info.Env(), openblas_get_num_threads());
}

void RegisterThreads(Napi::Env env, Napi::Object exports) {
  VG_EXPORT(exports, "ownGenerator", OwnGenerator);
  VG_EXPORT(exports, "shareTensor", ShareTensor);
  VG_EXPORT(exports, "takeSharedTensor", TakeSharedTensor);
  VG_EXPORT(exports, "dropSharedTensor", DropSharedTensor);
  VG_EXPORT(exports, "sharedTensorCount", SharedTensorCount);
  VG_EXPORT(exports, "setBlasThreads", SetBlasThreads);
  VG_EXPORT(exports, "getBlasThreads", GetBlasThreads);
}

}  // namespace vg
