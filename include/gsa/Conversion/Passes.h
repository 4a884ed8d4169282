//===- Passes.h - lowerings of the gsa dialect ------------------*- C++ -*-===//

#ifndef GSA_CONVERSION_PASSES_H
#define GSA_CONVERSION_PASSES_H

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

#include <cstdint>
#include <optional>
#include <string>

namespace gsa {

/// Builds the CPU reference pipeline: decompose, lower the fused ops to
/// loops, bufferize, free temporaries, and lower everything to the LLVM
/// dialect. Functions that should be callable from C (the runtime) carry
/// `llvm.emit_c_interface` before the pipeline runs.
void buildCPUPipeline(mlir::OpPassManager &pm);

/// Registers `gsa-cpu-pipeline` with the pass registry (for gsa-opt).
void registerCPUPipeline();

/// Options of the GPU pipeline.
struct GPUPipelineOptions {
  std::string chip = "sm_90a";
  /// PTX ISA 8.0 is the first with sm_90a.
  std::string features = "+ptx80";
  unsigned optLevel = 3;
  /// libdevice bitcode, linked when user regions call math functions that
  /// NVVM lowers to __nv_* (tanh, log, ...). Empty: not linked.
  std::string libdevice;
  /// gsa-serialize-kernels' report-times: each kernel's LLVM / NVPTX time
  /// to stderr (the runtime's GSA_COMPILE_TIMES; not a lowering choice, so
  /// not in the cache key).
  bool reportTimes = false;
  /// gsa-serialize-kernels' ptxas: each kernel assembled on its thread
  /// right after LLVM (cubins in gsa.cubins); empty: none.
  std::string ptxas;
  /// The lowering's switches, one field per line of
  /// GPUPipelineOptions.def (defaults, ranges and meaning there).
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  Type Field = Default;
#include "gsa/Conversion/GPUPipelineOptions.def"
};

/// Sets the switch `name` (a GPUPipelineOptions.def name) of `options` to
/// `value` (0 or 1 for the bool ones); the reason when `name` is unknown
/// or `value` out of its range, else nullopt.
std::optional<std::string> setGPUPipelineOption(GPUPipelineOptions &options,
                                                llvm::StringRef name,
                                                int64_t value);

/// The reason when a switch of `options` is out of its range
/// (GPUPipelineOptions.def), else nullopt. buildGPUPipeline checks it.
std::optional<std::string>
checkGPUPipelineOptions(const GPUPipelineOptions &options);

/// The switches' names with their values, for messages
/// ("select-tensor-cores=0|1, select-rows-per-tile=N, ...").
std::string describeGPUPipelineOptions();

/// Builds the GPU pipeline: decompose, lower sparse attention to kernels
/// and launches, lower the kernels to NVVM, and serialise the gpu.module to
/// PTX in process through LLVM's NVPTX backend (a gpu.binary holding the
/// PTX text). The host function keeps its gpu.launch_func ops: the launch
/// manifest.
void buildGPUPipeline(mlir::OpPassManager &pm,
                      const GPUPipelineOptions &options = {});

/// Registers `gsa-gpu-pipeline` (for gsa-opt).
void registerGPUPipeline();

/// The libdevice found at build time (GSA_LIBDEVICE), or empty.
std::string defaultLibdevicePath();

} // namespace gsa

#endif // GSA_CONVERSION_PASSES_H
