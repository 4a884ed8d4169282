//===- CUDADriver.h - the CUDA driver API, loaded at run time ---*- C++ -*-===//
//
// libcuda.so.1 is opened with dlopen on first use, so the runtime builds and
// its tests run on machines without a GPU or driver; every call's status is
// turned into a readable error.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_LIB_RUNTIME_CUDADRIVER_H
#define GSA_LIB_RUNTIME_CUDADRIVER_H

#include "llvm/Support/Error.h"

#include <cstdint>
#include <string>

namespace gsa::runtime::cuda {

using CUresult = int;
using CUdevice = int;
using CUcontext = void *;
using CUmodule = void *;
using CUfunction = void *;
using CUstream = void *;
using CUgraph = void *;
using CUgraphExec = void *;

/// The driver, or an error saying why it cannot be used.
class Driver {
public:
  static llvm::Expected<Driver *> get();

  /// The current context's device compute capability (major * 10 + minor).
  llvm::Expected<int> currentComputeCapability();
  llvm::Expected<CUmodule> loadPTX(const std::string &ptx);
  /// A module from a cubin (ptxas's output for this device).
  llvm::Expected<CUmodule> loadCubin(const std::string &cubin);
  llvm::Expected<CUfunction> function(CUmodule module, const std::string &name);
  /// Launches with `dynamicShared` bytes of dynamic shared memory.
  llvm::Error launch(CUfunction fn, const uint32_t grid[3],
                     const uint32_t block[3], uint32_t dynamicShared,
                     void **params, CUstream stream);
  /// Lets `fn` take `bytes` of dynamic shared memory (beyond the 48 KiB a
  /// launch gets without asking).
  llvm::Error allowDynamicShared(CUfunction fn, uint32_t bytes);
  llvm::Error check(CUresult status, const char *what);
  /// Stream-ordered device memory for the kernels' scratch buffers.
  llvm::Expected<void *> allocAsync(size_t bytes, CUstream stream);
  llvm::Error freeAsync(void *pointer, CUstream stream);
  /// Encodes a TMA tensor map (cuTensorMapEncodeTiled, tiled mode, no
  /// interleave, zero fill, 256-byte L2 promotion) into the 128 bytes at
  /// `map` (64-byte aligned): `rank` dims and strides innermost first (the
  /// first stride is that of dim 1), `swizzle` 0 / 32 / 64 / 128 bytes.
  llvm::Error encodeTensorMap(void *map, int dataType, unsigned rank,
                              void *address, const uint64_t *dims,
                              const uint64_t *strides, const uint32_t *box,
                              int swizzle);

  /// Whether this driver records and replays launches as CUDA graphs
  /// (stream capture, since CUDA 11.4).
  bool graphsAvailable() const;
  /// A non-blocking stream of the current context (for capturing launches).
  llvm::Expected<CUstream> createStream();
  /// Starts capturing `stream`'s work into a graph (relaxed mode: other
  /// threads' CUDA calls are not affected).
  llvm::Error beginCapture(CUstream stream);
  /// Ends the capture of `stream` and instantiates what it recorded.
  llvm::Expected<CUgraphExec> endCapture(CUstream stream);
  llvm::Error launchGraph(CUgraphExec exec, CUstream stream);
  /// Whether `stream` is capturing a graph (a caller's stream capture: a
  /// graph cannot be launched into it).
  llvm::Expected<bool> isCapturing(CUstream stream);
  void destroyGraph(CUgraphExec exec);
  void destroyStream(CUstream stream);

private:
  CUresult (*cuInit)(unsigned) = nullptr;
  CUresult (*cuCtxGetCurrent)(CUcontext *) = nullptr;
  CUresult (*cuCtxGetDevice)(CUdevice *) = nullptr;
  CUresult (*cuDeviceGetAttribute)(int *, int, CUdevice) = nullptr;
  CUresult (*cuModuleLoadDataEx)(CUmodule *, const void *, unsigned, int *,
                                 void **) = nullptr;
  CUresult (*cuModuleGetFunction)(CUfunction *, CUmodule, const char *) =
      nullptr;
  CUresult (*cuFuncSetAttribute)(CUfunction, int, int) = nullptr;
  CUresult (*cuLaunchKernel)(CUfunction, unsigned, unsigned, unsigned,
                             unsigned, unsigned, unsigned, unsigned, CUstream,
                             void **, void **) = nullptr;
  CUresult (*cuMemAllocAsync)(unsigned long long *, size_t, CUstream) =
      nullptr;
  CUresult (*cuMemFreeAsync)(unsigned long long, CUstream) = nullptr;
  CUresult (*cuTensorMapEncodeTiled)(void *, int, unsigned, void *,
                                     const uint64_t *, const uint64_t *,
                                     const uint32_t *, const uint32_t *, int,
                                     int, int, int) = nullptr;
  CUresult (*cuStreamCreate)(CUstream *, unsigned) = nullptr;
  CUresult (*cuStreamBeginCapture)(CUstream, int) = nullptr;
  CUresult (*cuStreamEndCapture)(CUstream, CUgraph *) = nullptr;
  CUresult (*cuGraphInstantiateWithFlags)(CUgraphExec *, CUgraph,
                                          unsigned long long) = nullptr;
  CUresult (*cuGraphLaunch)(CUgraphExec, CUstream) = nullptr;
  CUresult (*cuGraphDestroy)(CUgraph) = nullptr;
  CUresult (*cuGraphExecDestroy)(CUgraphExec) = nullptr;
  CUresult (*cuStreamDestroy)(CUstream) = nullptr;
  CUresult (*cuStreamIsCapturing)(CUstream, int *) = nullptr;
  CUresult (*cuGetErrorName)(CUresult, const char **) = nullptr;
  CUresult (*cuGetErrorString)(CUresult, const char **) = nullptr;
};

} // namespace gsa::runtime::cuda

#endif // GSA_LIB_RUNTIME_CUDADRIVER_H
