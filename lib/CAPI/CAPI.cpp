//===- CAPI.cpp - the C API over the runtime -------------------------------===//

#include "gsa-c/gsa.h"
#include "gsa/Runtime/Runtime.h"

#include <cstring>
#include <memory>
#include <string>

using namespace gsa::runtime;

struct gsa_context {
  Runtime runtime;
};

struct gsa_kernel {
  std::shared_ptr<Kernel> kernel;
};

namespace {

thread_local std::string lastError;

void setError(std::string message) { lastError = std::move(message); }
void setError(llvm::Error err) { lastError = llvm::toString(std::move(err)); }

bool toDType(gsa_dtype d, DType &out) {
  switch (d) {
  case GSA_F16: out = DType::f16; return true;
  case GSA_BF16: out = DType::bf16; return true;
  case GSA_F32: out = DType::f32; return true;
  case GSA_F64: out = DType::f64; return true;
  case GSA_I32: out = DType::i32; return true;
  }
  return false;
}

gsa_dtype fromDType(DType d) {
  switch (d) {
  case DType::f16: return GSA_F16;
  case DType::bf16: return GSA_BF16;
  case DType::f32: return GSA_F32;
  case DType::f64: return GSA_F64;
  case DType::i32: return GSA_I32;
  }
  return GSA_F32;
}

int describe(const TensorSpec &spec, gsa_tensor_desc *out) {
  if (!out || spec.shape.size() > GSA_MAX_RANK)
    return 1;
  out->dtype = fromDType(spec.dtype);
  out->rank = int32_t(spec.shape.size());
  for (size_t i = 0; i < spec.shape.size(); ++i)
    out->shape[i] = spec.shape[i];
  return 0;
}

} // namespace

extern "C" {

const char *gsa_last_error(void) { return lastError.c_str(); }
const char *gsa_version(void) { return Runtime::version().data(); }

gsa_context *gsa_context_create(void) { return new gsa_context(); }
void gsa_context_destroy(gsa_context *ctx) { delete ctx; }

gsa_kernel *gsa_compile(gsa_context *ctx, const char *program,
                        const char *entry, gsa_backend backend, int32_t n,
                        const gsa_tensor_desc *inputs) {
  if (!ctx || !program || (n > 0 && !inputs) || n < 0) {
    setError("gsa_compile: null context, program or inputs");
    return nullptr;
  }
  std::vector<TensorSpec> specs;
  for (int32_t i = 0; i < n; ++i) {
    TensorSpec spec;
    if (!toDType(inputs[i].dtype, spec.dtype) || inputs[i].rank < 0 ||
        inputs[i].rank > GSA_MAX_RANK) {
      setError("gsa_compile: input #" + std::to_string(i) +
               " has an unknown dtype or a rank outside [0, 8]");
      return nullptr;
    }
    spec.shape.assign(inputs[i].shape, inputs[i].shape + inputs[i].rank);
    specs.push_back(spec);
  }
  CompileOptions options;
  options.entry = entry ? entry : "";
  if (backend != GSA_BACKEND_CPU && backend != GSA_BACKEND_CUDA) {
    setError("gsa_compile: unknown backend");
    return nullptr;
  }
  options.backend = backend == GSA_BACKEND_CUDA ? Backend::CUDA : Backend::CPU;
  auto kernel = ctx->runtime.compile(program, specs, options);
  if (!kernel) {
    setError(kernel.takeError());
    return nullptr;
  }
  return new gsa_kernel{std::move(*kernel)};
}

void gsa_kernel_release(gsa_kernel *kernel) { delete kernel; }

int32_t gsa_kernel_num_inputs(const gsa_kernel *kernel) {
  return kernel ? int32_t(kernel->kernel->inputs().size()) : -1;
}
int32_t gsa_kernel_num_results(const gsa_kernel *kernel) {
  return kernel ? int32_t(kernel->kernel->results().size()) : -1;
}

int gsa_kernel_input(const gsa_kernel *kernel, int32_t i, gsa_tensor_desc *out) {
  if (!kernel || i < 0 || i >= gsa_kernel_num_inputs(kernel)) {
    setError("gsa_kernel_input: no such input");
    return 1;
  }
  return describe(kernel->kernel->inputs()[i], out);
}

int gsa_kernel_result(const gsa_kernel *kernel, int32_t i, gsa_tensor_desc *out) {
  if (!kernel || i < 0 || i >= gsa_kernel_num_results(kernel)) {
    setError("gsa_kernel_result: no such result");
    return 1;
  }
  return describe(kernel->kernel->results()[i], out);
}

uint64_t gsa_kernel_workspace_size(const gsa_kernel *kernel) {
  return kernel ? kernel->kernel->workspaceBytes() : 0;
}

int gsa_launch_with_workspace(gsa_kernel *kernel, void *const *inputs,
                              void *const *outputs, void *workspace,
                              uint64_t workspace_bytes, void *stream) {
  if (!kernel) {
    setError("gsa_launch: null kernel");
    return 1;
  }
  size_t nIn = kernel->kernel->inputs().size();
  size_t nOut = kernel->kernel->results().size();
  if ((nIn && !inputs) || (nOut && !outputs)) {
    setError("gsa_launch: null input or output array");
    return 1;
  }
  std::vector<void *> in(inputs, inputs + nIn), out(outputs, outputs + nOut);
  if (llvm::Error err = kernel->kernel->launch(in, out, stream, workspace,
                                               workspace_bytes)) {
    setError(std::move(err));
    return 1;
  }
  return 0;
}

int gsa_launch(gsa_kernel *kernel, void *const *inputs, void *const *outputs,
               void *stream) {
  return gsa_launch_with_workspace(kernel, inputs, outputs, nullptr, 0,
                                   stream);
}

void gsa_cache_stats(const gsa_context *ctx, uint64_t *hits, uint64_t *misses,
                     uint64_t *disk_hits) {
  CacheStats stats = ctx ? ctx->runtime.cacheStats() : CacheStats();
  if (hits) *hits = stats.hits;
  if (misses) *misses = stats.misses;
  if (disk_hits) *disk_hits = stats.diskHits;
}

} // extern "C"
