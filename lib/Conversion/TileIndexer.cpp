//===- TileIndexer.cpp - gsa-tile: a standalone indexer into query tiles --===//
//
// gsa-tile's second kind of op (the pass itself is in TileAttention.cpp). A
// gsa.indexer whose scores the program keeps (one not fused into a
// selection, whose kernels recompute the scores) becomes one gpu.launch of
// (query tile, batch) blocks written on gsa.tile ops, so that the generic
// stages stage its key chunks (gsa-stage-shared) and put its products on
// the tensor cores (gsa-map-tensor-cores) as they do the attention's.
//
// A tile's rows are (query, indexer head) pairs, like the attention's
// (query, head) rows with the H_I indexer heads as the group: the qi . ki
// products of a chunk are one [rows, keys] product of the query block with
// the chunk's key rows, and the head sum is a reduction inside each
// query's rows (gsa.tile.indexer_scores).
//
// The key loop stops at the tile's last query (keys past it are masked for
// every query of the tile), and the rest of each row is written -inf by
// plain stores: half the L x L products of a causal matrix are never
// computed.
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/IR/PatternMatch.h"

#include "GPUEmitter.h"
#include "GPUKernels.h"

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

bool gsa::detail::indexerTileable(IndexerOp op) {
  if (isFusedIntoSelection(op))
    return false;
  for (Value v : op->getOperands())
    if (!cast<ShapedType>(v.getType()).hasStaticShape())
      return false;
  auto scores = cast<ShapedType>(op.getScores().getType());
  if (!scores.hasStaticShape() || !scores.getElementType().isF32())
    return false;
  auto qi = cast<ShapedType>(op.getQi().getType());
  auto ki = cast<ShapedType>(op.getKi().getType());
  Type elem = qi.getElementType();
  if (!(elem.isBF16() || elem.isF16()) || ki.getElementType() != elem)
    return false;
  int64_t H = qi.getDimSize(2), DI = qi.getDimSize(3);
  // 16-bit elements: a multiple of 64 makes whole 128-byte rows (the
  // swizzled staging) and whole 32-column k-step pairs (the product); up to
  // 256, since each lane holds d_I / 4 registers of the query block (and a
  // ring of 2 x 64 keys of 512 bytes still fits a block's shared memory).
  return llvm::isPowerOf2_64(H) && H <= kRowsPerWarp && DI > 0 &&
         DI % 64 == 0 && DI <= 256;
}

void gsa::detail::tileIndexer(IndexerOp op, ModuleOp module, int64_t warps,
                              int64_t keyChunk) {
  Location loc = op.getLoc();
  IRRewriter rewriter(op.getContext());
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, loc);
  auto qiType = cast<RankedTensorType>(op.getQi().getType());
  int64_t B = qiType.getDimSize(0), L = qiType.getDimSize(1),
          H = qiType.getDimSize(2), DI = qiType.getDimSize(3);
  int64_t rows = warps * kRowsPerWarp, T = rows / H;
  int64_t numTiles = (L + T - 1) / T;
  Type elem = qiType.getElementType();
  auto parent = op->getParentOfType<FunctionOpInterface>();
  std::string name = freeKernelName(
      module,
      (parent ? parent.getName().str() : std::string("gsa")) + "_indexer_");

  Value qi = e.toBuffer(op.getQi()), ki = e.toBuffer(op.getKi());
  Value wi = op.getWi() ? e.toBuffer(op.getWi()) : Value();
  Value bi = op.getBi() ? e.toBuffer(op.getBi()) : Value();
  auto scoresType = cast<RankedTensorType>(op.getScores().getType());
  Value out = e.alloc(scoresType, {});
  float scale = op.getScaleOrDefault();

  buildNamedLaunch(
      rewriter, loc, name, numTiles, B, 1, warps * kWarpSize,
      [&](OpBuilder &b, const SharedAllocator &) {
        Emitter k(b, loc);
        // Longest tiles first: tile i sweeps i + 1 chunks of keys, so the
        // last tiles are the longest, and started last they would run on
        // alone at the end of the grid.
        Value tile = k.sub(k.index(numTiles - 1),
                           gpu::BlockIdOp::create(b, loc, gpu::Dimension::x));
        Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
        Value firstQuery = k.mul(tile, k.index(T));
        auto heads = b.getI64IntegerAttr(H);
        Value queries = TileLoadQueriesOp::create(
            b, loc, RankedTensorType::get({rows, DI}, elem), qi, batch,
            firstQuery, k.index(0), heads);
        auto rowType = RankedTensorType::get({rows}, b.getF32Type());
        auto headTerms = TileIndexerHeadsOp::create(
            b, loc, rowType, rowType, wi, bi, batch, firstQuery, heads);
        if (wi) {
          IRMapping mapping;
          op.getWeighting().cloneInto(&headTerms.getWeighting(), mapping);
        }
        // Chunks up to the tile's last query (its causal limit).
        Value keyEnd = k.minui(k.add(firstQuery, k.index(T)), k.index(L));
        Value chunks =
            arith::CeilDivUIOp::create(b, loc, keyEnd, k.index(keyChunk));
        k.loopStep(k.index(0), chunks, k.index(1), [&](Value chunk) {
          Value start = k.mul(chunk, k.index(keyChunk));
          Value count = k.sub(k.index(L), start);
          Value keys = TileGatherRowsOp::create(
              b, loc, RankedTensorType::get({keyChunk, DI}, elem), ki, batch,
              k.index(0), /*positions=*/Value(), start, count);
          auto productType =
              RankedTensorType::get({rows, keyChunk}, b.getF32Type());
          Value products = TileDotOp::create(b, loc, productType, queries,
                                             keys, /*acc=*/Value(),
                                             b.getUnitAttr());
          auto scores = TileIndexerScoresOp::create(
              b, loc, RankedTensorType::get({T, keyChunk}, b.getF32Type()),
              products, headTerms.getWeight(), headTerms.getBias(),
              firstQuery, start, b.getF32FloatAttr(scale), heads);
          IRMapping mapping;
          op.getActivation().cloneInto(&scores.getActivation(), mapping);
          TileStoreScoresOp::create(b, loc, scores.getResult(), out, batch,
                                    firstQuery, start);
        });
        // The keys past the loop's chunks: -inf in every row of the tile,
        // consecutive keys on consecutive threads.
        Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
        Value fillFrom = k.mul(chunks, k.index(keyChunk));
        Value cL = k.index(L);
        k.loopStep(k.index(0), k.index(T), k.index(1), [&](Value r) {
          Value t = k.add(firstQuery, r);
          k.ifThen(k.cmpi(arith::CmpIPredicate::ult, t, cL), [&]() {
            k.loopStep(k.add(fillFrom, tid), cL, k.index(warps * kWarpSize),
                       [&](Value s) {
                         k.store(k.f32(-kInf), out, {batch, t, s});
                       });
          });
        });
      });
  rewriter.replaceOp(op, e.toTensor(out, scoresType));
}
