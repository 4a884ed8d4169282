//===- Decompose.cpp - gsa.gated_sparse_attention into its three parts ----===//
//
// The composite op is what a model writes; the three fused ops are what the
// backends implement. Regions are moved, not copied, to the op that calls
// them, so user code appears exactly once in the output.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace gsa {
#define GEN_PASS_DEF_GSADECOMPOSE
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;

namespace {

struct DecomposeGatedSparseAttention
    : OpRewritePattern<GatedSparseAttentionOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(GatedSparseAttentionOp op,
                                PatternRewriter &rewriter) const override {
    Location loc = op.getLoc();
    auto qiType = op.getQi().getType();
    // The score matrix I is [B, L, L] in the compute type.
    auto scoresType = RankedTensorType::get(
        {qiType.getDimSize(0), qiType.getDimSize(1), qiType.getDimSize(1)},
        getComputeType(getContext()));

    auto indexer = IndexerOp::create(rewriter, loc, scoresType, op.getQi(),
                                     op.getKi(), op.getWi(), op.getBi(),
                                     op.getIndexScaleAttr());
    rewriter.inlineRegionBefore(op.getActivation(), indexer.getActivation(),
                                indexer.getActivation().end());
    rewriter.inlineRegionBefore(op.getWeighting(), indexer.getWeighting(),
                                indexer.getWeighting().end());

    Type newVarType =
        op.getNewRunningVar() ? op.getNewRunningVar().getType() : Type();
    auto select = AdaptiveTopKOp::create(
        rewriter, loc, op.getIndices().getType(), op.getCounts().getType(),
        newVarType, indexer.getScores(), op.getRunningVar(),
        op.getPolicyAttr(), op.getKBaseAttr(), op.getKMinAttr(),
        op.getKMaxAttr(), op.getTrainingAttr(), op.getMomentumAttr());
    rewriter.inlineRegionBefore(op.getPolicyFn(), select.getPolicyFn(),
                                select.getPolicyFn().end());

    auto attention = SparseAttentionOp::create(
        rewriter, loc, op.getO().getType(), op.getLse().getType(), op.getQ(),
        op.getK(), op.getV(), select.getIndices(), select.getCounts(),
        op.getValueGate(), op.getOutputGate(), op.getScaleAttr());
    rewriter.inlineRegionBefore(op.getScoreMod(), attention.getScoreMod(),
                                attention.getScoreMod().end());

    SmallVector<Value> replacements = {attention.getO(), attention.getLse(),
                                       select.getIndices(),
                                       select.getCounts()};
    if (op.getNewRunningVar())
      replacements.push_back(select.getNewRunningVar());
    rewriter.replaceOp(op, replacements);
    return success();
  }
};

struct GSADecomposePass : gsa::impl::GSADecomposeBase<GSADecomposePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DecomposeGatedSparseAttention>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};

} // namespace
