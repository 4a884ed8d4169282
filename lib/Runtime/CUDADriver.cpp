//===- CUDADriver.cpp - the CUDA driver API, loaded at run time ------------===//

#include "CUDADriver.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <mutex>

using namespace gsa::runtime::cuda;
using llvm::Error;
using llvm::Expected;

static Error makeError(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

Expected<Driver *> Driver::get() {
  static std::once_flag once;
  static Driver driver;
  static std::string failure;
  std::call_once(once, [] {
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char *why = dlerror();
      failure = fmt::format("the CUDA driver (libcuda.so.1) cannot be loaded: "
                            "{} (is this a machine with an NVIDIA GPU?)",
                            why ? why : "unknown reason");
      return;
    }
    auto bind = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(lib, name));
      if (!fn && failure.empty())
        failure = fmt::format("libcuda.so.1 lacks {}", name);
    };
    bind(driver.cuInit, "cuInit");
    bind(driver.cuCtxGetCurrent, "cuCtxGetCurrent");
    bind(driver.cuCtxGetDevice, "cuCtxGetDevice");
    bind(driver.cuDeviceGetAttribute, "cuDeviceGetAttribute");
    bind(driver.cuModuleLoadDataEx, "cuModuleLoadDataEx");
    bind(driver.cuModuleGetFunction, "cuModuleGetFunction");
    bind(driver.cuLaunchKernel, "cuLaunchKernel");
    bind(driver.cuFuncSetAttribute, "cuFuncSetAttribute");
    bind(driver.cuMemAllocAsync, "cuMemAllocAsync");
    bind(driver.cuMemFreeAsync, "cuMemFreeAsync");
    // Since CUDA 12.0; a driver without it fails the launches of kernels
    // that take tensor maps, with a message (encodeTensorMap).
    driver.cuTensorMapEncodeTiled =
        reinterpret_cast<decltype(driver.cuTensorMapEncodeTiled)>(
            dlsym(lib, "cuTensorMapEncodeTiled"));
    // Optional: without them every launch goes to the driver directly.
    auto optional = [&](auto &fn, const char *name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(
          dlsym(lib, name));
    };
    optional(driver.cuStreamCreate, "cuStreamCreate");
    optional(driver.cuStreamBeginCapture, "cuStreamBeginCapture_v2");
    optional(driver.cuStreamEndCapture, "cuStreamEndCapture");
    optional(driver.cuGraphInstantiateWithFlags, "cuGraphInstantiateWithFlags");
    optional(driver.cuGraphLaunch, "cuGraphLaunch");
    optional(driver.cuGraphDestroy, "cuGraphDestroy");
    optional(driver.cuGraphExecDestroy, "cuGraphExecDestroy");
    optional(driver.cuStreamDestroy, "cuStreamDestroy_v2");
    optional(driver.cuStreamIsCapturing, "cuStreamIsCapturing");
    bind(driver.cuGetErrorName, "cuGetErrorName");
    bind(driver.cuGetErrorString, "cuGetErrorString");
    if (failure.empty() && driver.cuInit(0) != 0)
      failure = "cuInit failed: no usable CUDA device";
  });
  if (!failure.empty())
    return makeError(failure);
  return &driver;
}

Error Driver::check(CUresult status, const char *what) {
  if (status == 0)
    return Error::success();
  const char *name = nullptr, *text = nullptr;
  cuGetErrorName(status, &name);
  cuGetErrorString(status, &text);
  return makeError(fmt::format("{} failed: {} ({}): {}", what,
                               name ? name : "CUDA_ERROR", status,
                               text ? text : "no description"));
}

Expected<int> Driver::currentComputeCapability() {
  CUcontext ctx = nullptr;
  if (Error err = check(cuCtxGetCurrent(&ctx), "cuCtxGetCurrent"))
    return std::move(err);
  if (!ctx)
    return makeError("no current CUDA context on this thread (create one, "
                     "e.g. by touching the GPU from PyTorch, before "
                     "launching)");
  CUdevice device;
  if (Error err = check(cuCtxGetDevice(&device), "cuCtxGetDevice"))
    return std::move(err);
  int major = 0, minor = 0;
  // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
  if (Error err = check(cuDeviceGetAttribute(&major, 75, device),
                        "cuDeviceGetAttribute"))
    return std::move(err);
  if (Error err = check(cuDeviceGetAttribute(&minor, 76, device),
                        "cuDeviceGetAttribute"))
    return std::move(err);
  return major * 10 + minor;
}

Expected<CUmodule> Driver::loadPTX(const std::string &ptx) {
  CUmodule module = nullptr;
  // CU_JIT_ERROR_LOG_BUFFER (5) and its size (6): keep the JIT's message.
  char log[4096] = {0};
  int options[] = {5, 6};
  void *values[] = {log, reinterpret_cast<void *>(uintptr_t(sizeof(log)))};
  CUresult status =
      cuModuleLoadDataEx(&module, ptx.c_str(), 2, options, values);
  if (status != 0) {
    Error err = check(status, "cuModuleLoadDataEx (PTX JIT)");
    return makeError(llvm::toString(std::move(err)) + "\n" + log);
  }
  return module;
}

Expected<CUmodule> Driver::loadCubin(const std::string &cubin) {
  CUmodule module = nullptr;
  if (Error err = check(cuModuleLoadDataEx(&module, cubin.data(), 0, nullptr,
                                           nullptr),
                        "cuModuleLoadDataEx (cubin)"))
    return std::move(err);
  return module;
}

Expected<CUfunction> Driver::function(CUmodule module,
                                      const std::string &name) {
  CUfunction fn = nullptr;
  if (Error err = check(cuModuleGetFunction(&fn, module, name.c_str()),
                        "cuModuleGetFunction"))
    return std::move(err);
  return fn;
}

Error Driver::launch(CUfunction fn, const uint32_t grid[3],
                     const uint32_t block[3], uint32_t dynamicShared,
                     void **params, CUstream stream) {
  return check(cuLaunchKernel(fn, grid[0], grid[1], grid[2], block[0],
                              block[1], block[2], dynamicShared, stream,
                              params, nullptr),
               "cuLaunchKernel");
}

Error Driver::encodeTensorMap(void *map, int dataType, unsigned rank,
                              void *address, const uint64_t *dims,
                              const uint64_t *strides, const uint32_t *box,
                              int swizzle) {
  if (!cuTensorMapEncodeTiled)
    return makeError("this CUDA driver lacks cuTensorMapEncodeTiled (CUDA "
                     "12.0 or newer), which the kernels' TMA copies need; "
                     "GSA_GPU_OPTIONS=select-tma=0 builds kernels without");
  uint32_t elementStrides[5] = {1, 1, 1, 1, 1};
  // CU_TENSOR_MAP_SWIZZLE_NONE / 32B / 64B / 128B
  int swizzleKind = swizzle == 128 ? 3 : swizzle == 64 ? 2 : swizzle == 32 ? 1 : 0;
  constexpr int kInterleaveNone = 0, kL2Promotion256B = 3, kOobFillZero = 0;
  return check(cuTensorMapEncodeTiled(map, dataType, rank, address, dims,
                                      strides, box, elementStrides,
                                      kInterleaveNone, swizzleKind,
                                      kL2Promotion256B, kOobFillZero),
               "cuTensorMapEncodeTiled");
}

Error Driver::allowDynamicShared(CUfunction fn, uint32_t bytes) {
  // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
  constexpr int kMaxDynamicSharedSizeBytes = 8;
  return check(cuFuncSetAttribute(fn, kMaxDynamicSharedSizeBytes, int(bytes)),
               "cuFuncSetAttribute (dynamic shared memory)");
}

Expected<void *> Driver::allocAsync(size_t bytes, CUstream stream) {
  unsigned long long pointer = 0;
  if (Error err = check(cuMemAllocAsync(&pointer, bytes, stream),
                        "cuMemAllocAsync (kernel scratch)"))
    return std::move(err);
  return reinterpret_cast<void *>(pointer);
}

Error Driver::freeAsync(void *pointer, CUstream stream) {
  return check(cuMemFreeAsync(reinterpret_cast<uintptr_t>(pointer), stream),
               "cuMemFreeAsync (kernel scratch)");
}

bool Driver::graphsAvailable() const {
  return cuStreamCreate && cuStreamBeginCapture && cuStreamEndCapture &&
         cuGraphInstantiateWithFlags && cuGraphLaunch && cuGraphDestroy &&
         cuGraphExecDestroy && cuStreamDestroy && cuStreamIsCapturing;
}

Expected<CUstream> Driver::createStream() {
  CUstream stream = nullptr;
  // CU_STREAM_NON_BLOCKING: no implicit order with the legacy stream.
  if (Error err = check(cuStreamCreate(&stream, 1), "cuStreamCreate"))
    return std::move(err);
  return stream;
}

Error Driver::beginCapture(CUstream stream) {
  // CU_STREAM_CAPTURE_MODE_RELAXED
  return check(cuStreamBeginCapture(stream, 2), "cuStreamBeginCapture");
}

Expected<CUgraphExec> Driver::endCapture(CUstream stream) {
  CUgraph graph = nullptr;
  if (Error err = check(cuStreamEndCapture(stream, &graph),
                        "cuStreamEndCapture"))
    return std::move(err);
  CUgraphExec exec = nullptr;
  Error err = check(cuGraphInstantiateWithFlags(&exec, graph, 0),
                    "cuGraphInstantiateWithFlags");
  cuGraphDestroy(graph);
  if (err)
    return std::move(err);
  return exec;
}

Error Driver::launchGraph(CUgraphExec exec, CUstream stream) {
  return check(cuGraphLaunch(exec, stream), "cuGraphLaunch");
}

void Driver::destroyGraph(CUgraphExec exec) { cuGraphExecDestroy(exec); }

void Driver::destroyStream(CUstream stream) { cuStreamDestroy(stream); }

Expected<bool> Driver::isCapturing(CUstream stream) {
  int status = 0; // CU_STREAM_CAPTURE_STATUS_NONE
  if (Error err = check(cuStreamIsCapturing(stream, &status),
                        "cuStreamIsCapturing"))
    return std::move(err);
  return status != 0;
}
