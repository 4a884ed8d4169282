//===- Passes.h - lowerings of the gsa dialect ------------------*- C++ -*-===//

#ifndef GSA_CONVERSION_PASSES_H
#define GSA_CONVERSION_PASSES_H

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

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
  /// convert-gsa-to-gpu's options (see GSAPasses.td). Selection tiles
  /// chosen by length (-1): 12 query rows from L = 98304 on, else the pass's
  /// 8; on the H200 12 rows serve 1.5x the rows per key fragment (128K:
  /// stats 21.3 -> 19.3 ms, sample 7.2 -> 6.0) but give fewer CTAs (16K:
  /// select 2.5 -> 2.7 ms); 16 rows was slower at 128K (perf-log).
  int64_t selectRowsPerTile = -1;
  bool selectTensorCores = true;
  bool selectSampled = true;
  int64_t selectMaxRegisters = 0;
  int64_t attentionRowsInFlight = 4;
  bool attentionTensorCores = false;
  bool attentionPregateValues = true;
  bool attentionQueryTiles = true;
  /// gsa-tile's key-chunk and warps, gsa-stage-shared's stages.
  /// (key-chunk -1: 64 when the tiles run on wgmma, else 32; see
  /// buildGPUPipeline.)
  int64_t attentionKeyChunk = -1;
  int64_t attentionWarps = 4;
  /// gsa-tile's split-share (0: no half tiles; -1: chosen with the
  /// products' instructions, see buildGPUPipeline).
  int64_t attentionSplitShare = -1;
  int64_t attentionStages = 2;
  /// gsa-stage-shared's dynamic-shared.
  bool attentionDynamicShared = true;
  /// gsa-map-tensor-cores' wgmma (taken only when `chip` is sm_90a, the
  /// one target with wgmma).
  bool attentionWgmma = true;
};

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
