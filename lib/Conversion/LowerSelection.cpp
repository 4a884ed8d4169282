//===- LowerSelection.cpp - gsa-lower-selection ---------------------------===//
//
// The selection pass of the GPU path: gsa.adaptive_topk (with the
// gsa.indexer it fuses) and any other gsa.indexer become tiled kernels in
// gpu.module @gsa_kernels and their launches. The kernels themselves are
// built by GPUSelection.cpp (sample, stats, vbar, finish, topk, indexer);
// this pass owns their options, checks them and each op's limits (located
// errors), names the kernels and replaces the ops.
//
// The selection tiles differently from gsa-tile's attention tiles: a tile of
// query rows sweeps every key up to its last row (all scores of a row feed
// its variance and its exact top-k), so its inner loop is over key chunks
// of the whole causal prefix rather than over gathered selections; the
// chunks are staged (cp.async / TMA rings) inside the stats kernel.
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include "GPUKernels.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSALOWERSELECTION
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

/// The indexer fused into `op`'s kernels, if any.
IndexerOp fusedIndexer(AdaptiveTopKOp op) {
  auto indexer = op.getScores().getDefiningOp<IndexerOp>();
  return indexer && isFusedIntoSelection(indexer) ? indexer : IndexerOp();
}

struct GSALowerSelectionPass
    : gsa::impl::GSALowerSelectionBase<GSALowerSelectionPass> {
  using GSALowerSelectionBase::GSALowerSelectionBase;

  /// Query rows per selection tile: the option, or with -1 chosen by the
  /// sequence length (operand 0 is qi [B, L, ..] or the scores [B, L, L]).
  /// Taller tiles serve more rows per key fragment but give fewer CTAs: on
  /// the H200, 12 rows beat 8 at 128K (whole call 61.6 -> 58.9 ms), were
  /// mixed at 64K and lost at 16K (select 2.5 -> 2.7 ms; perf-log).
  /// A fused indexer on the tensor cores with more than one unit of A
  /// fragments per mma tile (4 heads of d_I 64; more heads or a wider d_I):
  /// 4 rows, one mma tile of queries, since each unit adds 16 registers
  /// per tile to every thread (the sample kernel runs at its 128-register
  /// cap with 3 tiles of one unit). H_I 4 x d_I 128 at 64K, H100: fixed
  /// selection 19.8 -> 16.5-16.9 ms, inverse 21.1 -> 16.4-18.2 (8 / 12 rows
  /// had spilled in the sample and stats kernels; docs/perf-log.md).
  int64_t rowsPerTileOf(Operation *op) {
    if (selectRowsPerTile != -1)
      return selectRowsPerTile;
    IndexerOp fused = isa<AdaptiveTopKOp>(op)
                          ? fusedIndexer(cast<AdaptiveTopKOp>(op))
                          : dyn_cast<IndexerOp>(op);
    if (selectTensorCores && fused && isFusedIntoSelection(fused) &&
        selectionFragmentUnits(fused) > 1)
      return 4;
    auto type = dyn_cast<ShapedType>(op->getOperand(0).getType());
    bool longRows = type && type.hasRank() && type.getRank() > 1 &&
                    type.getDimSize(1) >= 98304;
    return longRows ? 12 : 8;
  }

  /// The options' ranges (the error located on `select`).
  LogicalResult checkOptions(AdaptiveTopKOp select) {
    if (selectWgmmaStages == 1 || selectWgmmaStages < 0 ||
        selectWgmmaStages > 6)
      return select->emitOpError(fmt::format(
          "the wgmma statistics sweep takes 2 to 6 stages (0: none), but "
          "select-wgmma-stages = {}",
          selectWgmmaStages.getValue()));
    if (selectWgmmaQueries != 16 && selectWgmmaQueries != 32)
      return select->emitOpError(fmt::format(
          "the wgmma statistics sweep takes 16 or 32 queries per "
          "warpgroup, but select-wgmma-queries = {}",
          selectWgmmaQueries.getValue()));
    if (selectTma < 0 || selectTma > 2)
      return select->emitOpError(fmt::format(
          "select-tma takes 0 (cp.async), 1 (TMA, slots freed by a CTA "
          "barrier) or 2 (TMA, slots freed by per-slot barriers), but is {}",
          selectTma.getValue()));
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    if (failed(requireDecomposed(module)))
      return signalPassFailure();

    // The fused ops in program order; kernels are named after the op's
    // place among them (`<function>_<n>_select_stats`, ...), attention ops
    // counted too, so the names do not depend on which pass lowers what.
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<IndexerOp, AdaptiveTopKOp, SparseAttentionOp>(op))
        ops.push_back(op);
    });
    bool anySelection = false;
    AdaptiveTopKOp firstSelection;
    for (Operation *op : ops) {
      LogicalResult ok = success();
      if (auto o = dyn_cast<IndexerOp>(op)) {
        ok = checkIndexerForGPU(o, rowsPerTileOf(o), selectTensorCores);
      } else if (auto o = dyn_cast<AdaptiveTopKOp>(op)) {
        ok = checkSelectionForGPU(o, rowsPerTileOf(op));
        if (!firstSelection)
          firstSelection = o;
      } else {
        continue;
      }
      if (failed(ok))
        return signalPassFailure();
      anySelection = true;
    }
    if (!anySelection)
      return;
    // The options are the same for every selection: checked once, the
    // error located on the first.
    if (firstSelection && failed(checkOptions(firstSelection)))
      return signalPassFailure();

    gpu::GPUModuleOp kernels = kernelModule(module);
    IRRewriter rewriter(ctx);
    for (auto [n, op] : llvm::enumerate(ops)) {
      auto parent = op->getParentOfType<FunctionOpInterface>();
      std::string prefix = fmt::format(
          "{}_{}", parent ? parent.getName().str() : std::string("gsa"), n);
      if (auto select = dyn_cast<AdaptiveTopKOp>(op)) {
        lowerSelectionToGPU(select, fusedIndexer(select), kernels, rewriter,
                            prefix, rowsPerTileOf(select), selectTensorCores,
                            selectSampled, selectMaxRegisters,
                            selectWgmmaStages, selectWgmmaQueries, selectTma,
                            selectDenseTiles);
      } else if (auto indexer = dyn_cast<IndexerOp>(op)) {
        // (A fused indexer is lowered, and erased, with its selection.)
        if (!isFusedIntoSelection(indexer))
          lowerIndexerToGPU(indexer, kernels, rewriter, prefix,
                            rowsPerTileOf(indexer));
      }
    }
  }
};

} // namespace
