//===- GPUPipeline.cpp - gsa program -> kernels -> PTX ---------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Conversion/GPUToNVVM/GPUToNVVMPass.h"
#include "mlir/Conversion/MathToLLVM/MathToLLVM.h"
#include "mlir/Conversion/NVVMToLLVM/NVVMToLLVM.h"
#include "mlir/Conversion/ReconcileUnrealizedCasts/ReconcileUnrealizedCasts.h"
#include "mlir/Conversion/SCFToControlFlow/SCFToControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/LLVMIR/Transforms/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

#include "llvm/Support/FileSystem.h"

#include <string>
#include <type_traits>

using namespace mlir;

std::string gsa::defaultLibdevicePath() {
#ifdef GSA_LIBDEVICE
  if (llvm::sys::fs::exists(GSA_LIBDEVICE))
    return GSA_LIBDEVICE;
#endif
  return "";
}

/// The reason when `value` is out of the switch `name`'s range [lowest,
/// highest] (0 or 1 for the bool switches), else nullopt: the one message
/// of the runtime's parser and of the pipeline's own check.
static std::optional<std::string> outOfRange(llvm::StringRef name, bool isBool,
                                             int64_t lowest, int64_t highest,
                                             int64_t value) {
  if (value >= lowest && value <= highest)
    return std::nullopt;
  if (isBool)
    return "'" + name.str() + "' takes 0 or 1, not " + std::to_string(value);
  return "'" + name.str() + "' takes " + std::to_string(lowest) + " to " +
         std::to_string(highest) + ", not " + std::to_string(value);
}

std::optional<std::string>
gsa::checkGPUPipelineOptions(const GPUPipelineOptions &options) {
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  if (auto reason = outOfRange(Name, std::is_same_v<Type, bool>, Lowest,      \
                               Highest, int64_t(options.Field)))              \
    return reason;
#include "gsa/Conversion/GPUPipelineOptions.def"
  return std::nullopt;
}

namespace {
/// Stands first in a pipeline built from options out of their ranges
/// (GPUPipelineOptions.def): the run fails with the reason, located at the
/// module, before any pass sees the options (gsa-opt's and gsa-compile's
/// flags take any integer; the runtime checks GSA_GPU_OPTIONS as it parses).
struct RejectGPUPipelineOptions
    : PassWrapper<RejectGPUPipelineOptions, OperationPass<ModuleOp>> {
  MLIR_DEFINE_EXPLICIT_INTERNAL_INLINE_TYPE_ID(RejectGPUPipelineOptions)
  explicit RejectGPUPipelineOptions(std::string reason)
      : reason(std::move(reason)) {}
  StringRef getArgument() const override {
    return "gsa-reject-gpu-pipeline-options";
  }
  void runOnOperation() override {
    getOperation().emitError("gsa-gpu-pipeline: " + reason);
    signalPassFailure();
  }
  std::string reason;
};
} // namespace

void gsa::buildGPUPipeline(OpPassManager &pm,
                           const GPUPipelineOptions &options) {
  if (std::optional<std::string> reason = checkGPUPipelineOptions(options)) {
    pm.addPass(std::make_unique<RejectGPUPipelineOptions>(*reason));
    return;
  }
  // gsa: the composite op into its parts.
  pm.addPass(createGSADecompose());
  // Sparse attention over query tiles, in stages: tiles on block-level ops,
  // their chunk gathers staged in shared memory, the tiles mapped onto the
  // lanes and tensor cores; then the launches outlined into @gsa_kernels.
  // A standalone indexer (its scores kept) goes the same way: its key
  // chunks staged, its products on the tensor cores.
  if (options.attentionQueryTiles || options.indexerQueryTiles) {
    bool wgmma = options.attentionWgmma && options.chip == "sm_90a";
    // The tiles whose products gsa-map-tensor-cores puts on wgmma: those of
    // whole warpgroups.
    bool wgmmaTiles = wgmma && options.attentionWarps % 4 == 0;
    GSATileOptions tile;
    // 64-key chunks halve the loop's iterations (barriers, softmax
    // reductions) and give wgmma N = 64; at d_k 128 their two stages take
    // 64 KiB of dynamic shared memory. 128K structured: tile attention
    // 22.9 -> 20.9 ms on the H200 (perf-log). mma.sync keeps 32 (its
    // register use grows with the chunk).
    bool wideChunks = wgmmaTiles && options.attentionDynamicShared;
    tile.keyChunk = options.attentionKeyChunk > 0 ? options.attentionKeyChunk
                    : wideChunks                  ? 64
                                                  : 32;
    tile.warps = options.attentionWarps;
    // Half tiles (for tiles whose queries share few selections) halve the
    // masked mma.sync work on a union; with the full tile on wgmma that
    // work is cheap and one full tile beats two halves with their own
    // unions (128K random inputs: 219 -> 204 ms per call on the H200,
    // perf-log), so by default the tiles split only without wgmma.
    tile.splitShare = options.attentionSplitShare >= 0
                          ? options.attentionSplitShare
                          : (wgmmaTiles ? 0 : 3);
    tile.pregateValues = options.attentionPregateValues;
    tile.unionStream = options.attentionUnionStream;
    tile.maxRegisters = options.attentionMaxRegisters;
    tile.attention = options.attentionQueryTiles;
    tile.indexers = options.indexerQueryTiles;
    tile.indexerKeySpan = options.indexerKeySpan;
    pm.addPass(createGSATile(tile));
    GSAStageSharedOptions staging;
    staging.stages = options.attentionStages;
    staging.dynamicShared = options.attentionDynamicShared;
    staging.asyncPositions = options.attentionAsyncPositions;
    // TMA needs sm_90: a chunk of consecutive key rows is one box per
    // 128-byte column block issued by one thread, instead of a 16-byte
    // cp.async per thread and piece.
    staging.tma = options.indexerTma >= 0 ? options.indexerTma != 0
                                          : options.chip == "sm_90a";
    pm.addPass(createGSAStageShared(staging));
    GSAMapTensorCoresOptions mapping;
    mapping.wgmma = wgmma;
    mapping.sharedQueries = options.attentionSharedQueries;
    pm.addPass(createGSAMapTensorCores(mapping));
  }
  pm.addPass(createGSAOutlineKernels());
  // The selection (adaptive top-k with its fused indexer, any other
  // indexer) into its tiled kernels.
  GSALowerSelectionOptions selection;
  selection.selectRowsPerTile = options.selectRowsPerTile;
  selection.selectTensorCores = options.selectTensorCores;
  selection.selectSampled = options.selectSampled;
  selection.selectDenseTiles = options.selectDenseTiles;
  selection.selectMaxRegisters = options.selectMaxRegisters;
  selection.selectWgmmaStages =
      options.selectWgmmaStages >= 0 ? options.selectWgmmaStages
                                     : (options.chip == "sm_90a" ? 6 : 0);
  selection.selectWgmmaQueries =
      options.selectWgmmaQueries >= 0 ? options.selectWgmmaQueries : 16;
  // TMA copies of the stats sweep's key chunks (sm_90a): stats 14.01 ->
  // 13.17 ms fixed, 18.34 -> 17.31 inverse at 128K (docs/perf-log.md);
  // select-tma=2 for the sweeps with moments measured 15.32 vs 15.53 ms,
  // then 15.23-15.25 vs 15.17 (eighth session): not kept.
  selection.selectTma = options.selectTma >= 0
                            ? options.selectTma
                            : (options.chip == "sm_90a" ? 1 : 0);
  pm.addPass(createGSALowerSelection(selection));
  // The attention ops gsa-tile left (shapes outside the query tiles) into
  // per-query kernels; gsa.sigmoid in every kernel.
  ConvertGSAToGPUOptions lowering;
  lowering.attentionRowsInFlight = options.attentionRowsInFlight;
  lowering.attentionTensorCores = options.attentionTensorCores;
  lowering.attentionPregateValues = options.attentionPregateValues;
  pm.addPass(createConvertGSAToGPU(lowering));
  // Debugging: a bounds check before every access of every kernel.
  if (options.checkBounds)
    pm.addPass(createGSACheckBounds());
  // One module per kernel: the nested pipeline below lowers them in
  // parallel (gsa-serialize-kernels joins them into one binary again).
  pm.addPass(createGSASplitKernelModules());

  // The kernels: structured control flow, then NVVM (memrefs as bare
  // pointers: the kernels take flat, statically shaped buffers).
  OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
  kernels.addPass(createCanonicalizerPass());
  kernels.addPass(createCSEPass());
  // Views of kernel buffers (the tile stages index [B, L, n_h, d_k]
  // buffers flat) as pointer arithmetic the LLVM lowering takes.
  kernels.addPass(memref::createExpandStridedMetadataPass());
  kernels.addPass(createSCFToControlFlowPass());
  ConvertGpuOpsToNVVMOpsOptions nvvm;
  nvvm.useBarePtrCallConv = true;
  kernels.addPass(createConvertGpuOpsToNVVMOps(nvvm));
  // Tensor maps by value, in parameter space.
  kernels.addPass(createGSAGridConstantParams());
  // nvvm.inline_ptx (ex2/lg2/tanh.approx) into llvm.inline_asm.
  kernels.addPass(createConvertNVVMToLLVMPass());
  kernels.addPass(createReconcileUnrealizedCastsPass());

  // PTX for the chip, in process through LLVM's NVPTX backend.
  GpuNVVMAttachTargetOptions target;
  target.chip = options.chip;
  target.features = options.features;
  target.optLevel = options.optLevel;
  if (!options.libdevice.empty())
    target.linkLibs.push_back(options.libdevice);
  pm.addPass(createGpuNVVMAttachTarget(target));
  // Kernel by kernel on the context's threads (gsa-serialize-kernels).
  GSASerializeKernelsOptions binary;
  binary.compilationTarget = "isa";
  binary.reportTimes = options.reportTimes;
  binary.ptxas = options.ptxas;
  pm.addPass(createGSASerializeKernels(binary));
}

std::optional<std::string>
gsa::setGPUPipelineOption(GPUPipelineOptions &options, llvm::StringRef name,
                          int64_t value) {
  // (A generic lambda: `if constexpr` discards the other type's branch.)
  auto assign = [&](auto &field, int64_t lowest,
                    int64_t highest) -> std::optional<std::string> {
    constexpr bool isBool =
        std::is_same_v<std::decay_t<decltype(field)>, bool>;
    if (auto reason = outOfRange(name, isBool, lowest, highest, value))
      return reason;
    if constexpr (isBool)
      field = value == 1;
    else
      field = value;
    return std::nullopt;
  };
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  if (name == Name)                                                            \
    return assign(options.Field, Lowest, Highest);
#include "gsa/Conversion/GPUPipelineOptions.def"
  return "unknown option '" + name.str() + "'";
}

std::string gsa::describeGPUPipelineOptions() {
  std::string text;
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  text += std::string(text.empty() ? "" : ", ") + Name +                       \
          (std::is_same_v<Type, bool> ? "=0|1" : "=N");
#include "gsa/Conversion/GPUPipelineOptions.def"
  return text;
}

namespace {
/// gsa-gpu-pipeline's options in gsa-opt: GPUPipelineOptions.def's
/// switches under their names.
struct GPUPipelineCLOptions
    : public PassPipelineOptions<GPUPipelineCLOptions> {
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  Option<Type> Field{*this, Name, llvm::cl::desc(Help),                        \
                     llvm::cl::init(Default)};
#include "gsa/Conversion/GPUPipelineOptions.def"
};
} // namespace

void gsa::registerGPUPipeline() {
  PassPipelineRegistration<GPUPipelineCLOptions>(
      "gsa-gpu-pipeline",
      "lower a gsa program to GPU kernels and PTX for sm_90a",
      [](OpPassManager &pm, const GPUPipelineCLOptions &cl) {
        GPUPipelineOptions options;
        options.libdevice = defaultLibdevicePath();
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  options.Field = cl.Field;
#include "gsa/Conversion/GPUPipelineOptions.def"
        buildGPUPipeline(pm, options);
      });
}
