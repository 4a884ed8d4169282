//===- DialectTest.cpp - C++ API of the gsa dialect ------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include <gtest/gtest.h>

using namespace mlir;
using namespace gsa;

namespace {

class GSADialectTest : public ::testing::Test {
protected:
  GSADialectTest() {
    ctx.loadDialect<GSADialect, arith::ArithDialect, func::FuncDialect,
                    math::MathDialect>();
  }

  RankedTensorType tensor(ArrayRef<int64_t> shape, Type elem = {}) {
    return RankedTensorType::get(shape, elem ? elem : Float32Type::get(&ctx));
  }

  /// Fills `region` with `^bb0(%x: f32, %j: index): gsa.yield %x`.
  void identityRegion(Region &region, ArrayRef<Type> extraArgs) {
    OpBuilder b(&ctx);
    Block *block = new Block();
    region.push_back(block);
    block->addArgument(Float32Type::get(&ctx), UnknownLoc::get(&ctx));
    for (Type t : extraArgs)
      block->addArgument(t, UnknownLoc::get(&ctx));
    b.setInsertionPointToEnd(block);
    YieldOp::create(b, UnknownLoc::get(&ctx), block->getArgument(0));
  }

  MLIRContext ctx;

  /// A module with one function running a gsa.indexer on qi [2, 16, 4, 64]
  /// and ki [2, kiLength, 64] (identity activation).
  OwningOpRef<ModuleOp> indexerModule(int64_t kiLength, IndexerOp &indexer) {
    OpBuilder b(&ctx);
    Location loc = UnknownLoc::get(&ctx);
    OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
    auto fnType = b.getFunctionType(
        {tensor({2, 16, 4, 64}), tensor({2, kiLength, 64})}, {});
    b.setInsertionPointToEnd(module->getBody());
    auto fn = func::FuncOp::create(b, loc, "f", fnType);
    Block *entry = fn.addEntryBlock();
    b.setInsertionPointToEnd(entry);
    indexer = IndexerOp::create(b, loc, tensor({2, 16, 16}),
                                entry->getArgument(0), entry->getArgument(1),
                                Value(), Value(), FloatAttr());
    identityRegion(indexer.getActivation(), {b.getIndexType()});
    func::ReturnOp::create(b, loc);
    return module;
  }
};

TEST_F(GSADialectTest, BuildsAndVerifiesIndexer) {
  IndexerOp indexer;
  OwningOpRef<ModuleOp> module = indexerModule(16, indexer);
  EXPECT_TRUE(succeeded(mlir::verify(*module)));
  // Default indexer scale is 1/sqrt(d_I) = 1/8.
  EXPECT_FLOAT_EQ(indexer.getScaleOrDefault(), 0.125f);
  indexer.setScaleAttr(Builder(&ctx).getF32FloatAttr(0.5f));
  EXPECT_FLOAT_EQ(indexer.getScaleOrDefault(), 0.5f);
}

TEST_F(GSADialectTest, VerifierRejectsMismatchedSequenceLength) {
  IndexerOp indexer;
  OwningOpRef<ModuleOp> module = indexerModule(15, indexer);
  std::string message;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    message = diag.str();
    return success();
  });
  EXPECT_TRUE(failed(mlir::verify(*module)));
  EXPECT_NE(message.find("'ki' dim 1 (L) is 15, but 'qi' dim 1 (L) is 16"),
            std::string::npos)
      << message;
}

TEST_F(GSADialectTest, PolicyEnumRoundTripsThroughStrings) {
  for (auto policy : {SelectionPolicy::inverse, SelectionPolicy::proportional,
                      SelectionPolicy::fixed, SelectionPolicy::custom}) {
    auto parsed = symbolizeSelectionPolicy(stringifySelectionPolicy(policy));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, policy);
  }
  EXPECT_FALSE(symbolizeSelectionPolicy("topp").has_value());
  EXPECT_FALSE(policyNeedsReferenceVariance(SelectionPolicy::fixed));
  EXPECT_TRUE(policyNeedsReferenceVariance(SelectionPolicy::inverse));
}

TEST_F(GSADialectTest, DecomposeProducesTheThreeFusedOps) {
  const char *source = R"mlir(
func.func @core(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>,
                %v: tensor<1x8x2x16xf32>, %qi: tensor<1x8x2x8xf32>,
                %ki: tensor<1x8x8xf32>)
    -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>,
        tensor<1x8xi32>) {
  %o, %lse, %idx, %cnt = gsa.gated_sparse_attention q(%q) k(%k) v(%v)
      indexer(%qi, %ki) policy = fixed k = 4 in [2, 4]
      activation {
      ^bb0(%x: f32, %j: index):
        gsa.yield %x : f32
      } : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>,
           tensor<1x8x2x8xf32>, tensor<1x8x8xf32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>,
            tensor<1x8xi32>)
  return %o, %lse, %idx, %cnt : tensor<1x8x4x16xf32>, tensor<1x8x4xf32>,
      tensor<1x8x4xi32>, tensor<1x8xi32>
}
)mlir";
  OwningOpRef<ModuleOp> module = parseSourceString<ModuleOp>(source, &ctx);
  ASSERT_TRUE(module);
  PassManager pm(&ctx);
  pm.addPass(createGSADecompose());
  ASSERT_TRUE(succeeded(pm.run(*module)));
  int indexers = 0, selects = 0, attentions = 0, composites = 0;
  module->walk([&](Operation *op) {
    indexers += isa<IndexerOp>(op);
    selects += isa<AdaptiveTopKOp>(op);
    attentions += isa<SparseAttentionOp>(op);
    composites += isa<GatedSparseAttentionOp>(op);
  });
  EXPECT_EQ(indexers, 1);
  EXPECT_EQ(selects, 1);
  EXPECT_EQ(attentions, 1);
  EXPECT_EQ(composites, 0);
  module->walk([&](AdaptiveTopKOp select) {
    EXPECT_EQ(select.getPolicy(), SelectionPolicy::fixed);
    EXPECT_EQ(select.getKBase(), 4);
    EXPECT_EQ(select.getKMin(), 2);
    // The score matrix between indexer and selection is [B, L, L] f32.
    EXPECT_EQ(select.getScores().getType(),
              RankedTensorType::get({1, 8, 8}, Float32Type::get(&ctx)));
  });
}

} // namespace
