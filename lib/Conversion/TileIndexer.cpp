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
// A block takes one span of `keySpan` keys of its tile's rows (a grid of
// (query tile, key span) x batch blocks): its key loop stops at the span's
// end or the tile's last query (keys past it are masked for every query of
// the tile), and it writes -inf to the rest of its span, so that half the
// L x L products of a causal matrix are never computed. Spans rather than
// whole rows: a row's blocks are independent (each writes its own keys'
// scores), and the grid of whole rows was one wave whose time was its
// longest tile's chain of chunks (L / 16 tiles of 4 warps fit the SMs at
// once; the last tile sweeps every chunk of its row).
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
                              int64_t keyChunk, int64_t keySpan) {
  Location loc = op.getLoc();
  IRRewriter rewriter(op.getContext());
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, loc);
  auto qiType = cast<RankedTensorType>(op.getQi().getType());
  int64_t B = qiType.getDimSize(0), L = qiType.getDimSize(1),
          H = qiType.getDimSize(2), DI = qiType.getDimSize(3);
  int64_t rows = warps * kRowsPerWarp, T = rows / H;
  int64_t numTiles = (L + T - 1) / T;
  // Whole chunks per span (0, or more than L: the whole row).
  int64_t span = llvm::divideCeil(keySpan > 0 ? std::min(keySpan, L) : L,
                                  keyChunk) *
                 keyChunk;
  int64_t spans = llvm::divideCeil(L, span);
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
      rewriter, loc, name, numTiles * spans, B, 1, warps * kWarpSize,
      [&](OpBuilder &b, const SharedAllocator &) {
        Emitter k(b, loc);
        // Block x is (tile, span), the spans of a tile adjacent; the
        // longest tiles first (with whole-row spans, the last tiles have
        // the most keys below their queries, and started last they would
        // run on alone at the end of the grid).
        Value bx = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
        Value tile = k.sub(
            k.index(numTiles - 1),
            arith::DivUIOp::create(b, loc, bx, k.index(spans)));
        Value spanStart = k.mul(
            arith::RemUIOp::create(b, loc, bx, k.index(spans)), k.index(span));
        Value spanEnd = k.minui(k.add(spanStart, k.index(span)), k.index(L));
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
        // Chunks from the span's start up to its end or the tile's last
        // query (its causal limit), none for a span past that query.
        Value keyEnd = k.minui(spanEnd, k.add(firstQuery, k.index(T)));
        Value chunks = arith::CeilDivUIOp::create(
            b, loc, k.sub(k.maxui(keyEnd, spanStart), spanStart),
            k.index(keyChunk));
        k.loopStep(k.index(0), chunks, k.index(1), [&](Value chunk) {
          Value start = k.add(spanStart, k.mul(chunk, k.index(keyChunk)));
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
        // The span's keys past the loop's chunks: -inf in every row of the
        // tile, consecutive keys on consecutive threads; 16-byte stores
        // when L % 4 == 0 (the rows start, and the spans and chunks end, on
        // multiples of 4 keys).
        Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
        Value fillFrom = k.add(spanStart, k.mul(chunks, k.index(keyChunk)));
        Value cL = k.index(L);
        int64_t vec = L % 4 == 0 ? 4 : 1;
        Value flat = vec > 1 ? collapse(b, loc, out) : Value();
        SmallVector<Value> negInf(vec, k.f32(-kInf));
        k.loopStep(k.index(0), k.index(T), k.index(1), [&](Value r) {
          Value t = k.add(firstQuery, r);
          k.ifThen(k.cmpi(arith::CmpIPredicate::ult, t, cL), [&]() {
            k.loopStep(
                k.add(fillFrom, k.mul(tid, k.index(vec))), spanEnd,
                k.index(warps * kWarpSize * vec), [&](Value s) {
                  if (vec == 1) {
                    k.store(negInf[0], out, {batch, t, s});
                    return;
                  }
                  Value at = k.add(k.mul(k.add(k.mul(batch, cL), t), cL), s);
                  storeLaneRow(b, loc, negInf, flat, at);
                });
          });
        });
      });
  rewriter.replaceOp(op, e.toTensor(out, scoresType));
}
