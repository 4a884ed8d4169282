//===- TileAttention.cpp - gsa-tile: sparse attention into query tiles ----===//
//
// The first stage of the GPU lowering (see GSAPasses.td and
// docs/design.md). A gsa.sparse_attention becomes three gpu.launch ops:
// the value gate (v' = v * sigmoid(gv) once per key row), the union of
// each query tile's selections, and the tile attention whose body is
// written on block-level gsa.tile ops: whole-tile values that the next
// stages stage in shared memory (gsa-stage-shared) and map onto mma.sync
// (gsa-map-tensor-cores).
//
// Why query tiles: nearby queries of a trained model share most of their
// selections (local window, sinks, topics), so loading each distinct key
// row once per tile and KV head instead of once per query cuts the bytes,
// and the tile's rows (queries x the G heads of a KV group) make the M of
// a tensor-core product.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Interfaces/FunctionInterfaces.h"
#include "mlir/IR/PatternMatch.h"

#include "GPUEmitter.h"
#include "GPUKernels.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSATILE
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

gpu::LaunchOp gsa::detail::buildNamedLaunch(
    OpBuilder &host, Location loc, StringRef name, int64_t gx, int64_t gy,
    int64_t gz, int64_t threads,
    function_ref<void(OpBuilder &, const SharedAllocator &)> body) {
  Emitter e(host, loc);
  auto op = gpu::LaunchOp::create(host, loc, e.index(gx), e.index(gy),
                                  e.index(gz), e.index(threads), e.index(1),
                                  e.index(1));
  op->setAttr(kKernelNameAttr, host.getStringAttr(name));
  Block &block = op.getBody().front();
  OpBuilder b = OpBuilder::atBlockEnd(&block);
  MLIRContext *ctx = host.getContext();
  SharedAllocator shared = [&, op](Type elem, int64_t n) mutable -> Value {
    auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    auto type = MemRefType::get({n}, elem, MemRefLayoutAttrInterface(), workgroup);
    return op.addWorkgroupAttribution(type, loc);
  };
  body(b, shared);
  gpu::TerminatorOp::create(b, loc);
  return op;
}

namespace {

/// A tile attention's shape; a tile's rows are (query, head) pairs, 16 per
/// warp (mma's M).
struct AttentionShape {
  int64_t B, L, NH, NKV, D, K, G;
  /// Rows (query, head) and queries per tile, tiles per sequence.
  int64_t rows, T, numTiles;
};

AttentionShape shapeOf(SparseAttentionOp op, int64_t warps) {
  auto qType = op.getQ().getType();
  AttentionShape s;
  s.B = qType.getDimSize(0);
  s.L = qType.getDimSize(1);
  s.NH = qType.getDimSize(2);
  s.D = qType.getDimSize(3);
  s.NKV = op.getK().getType().getDimSize(2);
  s.K = op.getIndices().getType().getDimSize(2);
  s.G = s.NH / s.NKV;
  s.rows = warps * kRowsPerWarp;
  s.T = s.rows / s.G;
  s.numTiles = (s.L + s.T - 1) / s.T;
  return s;
}

/// Whether `op` runs over query tiles: static shapes, bf16/f16 operands of
/// one type, d_k 64 or 128 (whole 128-byte rows for the swizzled staging),
/// a GQA group of 2 to 16 heads dividing a warp's 16 rows, and a value gate
/// only if it is applied beforehand.
bool tileable(SparseAttentionOp op, bool pregate) {
  for (Value v : op->getOperands())
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return false;
  Type elem = op.getQ().getType().getElementType();
  int64_t D = op.getQ().getType().getDimSize(3);
  int64_t NH = op.getQ().getType().getDimSize(2);
  int64_t NKV = op.getK().getType().getDimSize(2);
  if (NKV == 0 || NH % NKV != 0)
    return false;
  int64_t G = NH / NKV;
  bool sameTypes = llvm::all_of(
      ValueRange{op.getK(), op.getV()}, [&](Value v) {
        return cast<RankedTensorType>(v.getType()).getElementType() == elem;
      });
  if (op.getOutputGate() &&
      op.getOutputGate().getType().getElementType() != elem)
    return false;
  if (op.getValueGate() &&
      op.getValueGate().getType().getElementType() != elem)
    return false;
  return (elem.isBF16() || elem.isF16()) && sameTypes &&
         (D == 64 || D == 128) && G >= 2 && kRowsPerWarp % G == 0 &&
         (!op.getValueGate() || pregate);
}

/// The tile attention body: loads, the loop over the union's chunks, the
/// store (see the pass description).
void buildTileAttentionBody(OpBuilder &b, SparseAttentionOp op,
                            const AttentionShape &s, int64_t keyChunk,
                            Value q, Value k, Value v, Value unionKeys,
                            Value unionMasks, Value unionSizes, Value gate,
                            Value out, Value lse) {
  Location loc = op.getLoc();
  Emitter e(b, loc);
  MLIRContext *ctx = b.getContext();
  Type elem = op.getQ().getType().getElementType();
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value kvHead = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value firstQuery = e.mul(tile, e.index(s.T));
  auto group = b.getI64IntegerAttr(s.G);

  auto queryType = RankedTensorType::get({s.rows, s.D}, elem);
  Value queries = TileLoadQueriesOp::create(b, loc, queryType, q, batch,
                                            firstQuery, kvHead, group);
  Value tileIndex = e.add(e.mul(batch, e.index(s.numTiles)), tile);
  Value unionBase = e.mul(tileIndex, e.index(s.T * s.K));
  Value unionSize = e.i32ToIndex(e.load(unionSizes, {tileIndex}));
  Value chunks = arith::CeilDivUIOp::create(b, loc, unionSize,
                                            e.index(keyChunk));

  auto rowType = RankedTensorType::get({s.rows}, f32);
  auto accType = RankedTensorType::get({s.rows, s.D}, f32);
  auto splat = [&](RankedTensorType type, float x) -> Value {
    return arith::ConstantOp::create(
        b, loc, type, DenseElementsAttr::get(type, b.getF32FloatAttr(x)));
  };
  SmallVector<Value> init = {splat(rowType, -kInf), splat(rowType, 0.0f),
                             splat(accType, 0.0f)};
  auto loop = scf::ForOp::create(b, loc, e.index(0), chunks, e.index(1), init);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(loop.getBody());
    Value chunk = loop.getInductionVar();
    Value max = loop.getRegionIterArg(0), sum = loop.getRegionIterArg(1),
          acc = loop.getRegionIterArg(2);
    Value start = e.mul(chunk, e.index(keyChunk));
    Value offset = e.add(unionBase, start);
    Value count = e.sub(unionSize, start);
    auto rowsType = RankedTensorType::get({keyChunk, s.D}, elem);
    auto wordsType = RankedTensorType::get({keyChunk}, i32);
    Value keys = TileGatherRowsOp::create(b, loc, rowsType, k, batch, kvHead,
                                          unionKeys, offset, count);
    Value values = TileGatherRowsOp::create(b, loc, rowsType, v, batch, kvHead,
                                            unionKeys, offset, count);
    Value members = TileGatherWordsOp::create(b, loc, wordsType, unionMasks,
                                              offset, count);
    bool hasScoreMod = !op.getScoreMod().empty();
    Value positions =
        hasScoreMod ? TileGatherWordsOp::create(b, loc, wordsType, unionKeys,
                                                offset, count)
                          .getResult()
                    : Value();
    auto scoreType = RankedTensorType::get({s.rows, keyChunk}, f32);
    Value products = TileDotOp::create(b, loc, scoreType, queries, keys,
                                       /*acc=*/Value(), UnitAttr::get(ctx));
    auto scores = TileScoresOp::create(
        b, loc, scoreType, products, members, positions, batch, firstQuery,
        kvHead, b.getF32FloatAttr(op.getScaleOrDefault()), group);
    if (hasScoreMod) {
      IRMapping mapping;
      op.getScoreMod().cloneInto(&scores.getScoreMod(), mapping);
    }
    auto probsType = RankedTensorType::get({s.rows, keyChunk}, elem);
    auto softmax = TileOnlineSoftmaxOp::create(
        b, loc, TypeRange{probsType, rowType, rowType, rowType},
        scores.getResult(), max, sum);
    Value rescaled =
        TileRescaleOp::create(b, loc, accType, acc, softmax.getRescale());
    Value next = TileDotOp::create(b, loc, accType, softmax.getProbs(), values,
                                   rescaled, /*transpose_rhs=*/UnitAttr());
    scf::YieldOp::create(b, loc, ValueRange{softmax.getNewMax(),
                                            softmax.getNewSum(), next});
  }
  TileStoreOutputOp::create(b, loc, loop.getResult(2), loop.getResult(0),
                            loop.getResult(1), out, lse, batch, firstQuery,
                            kvHead, gate, group);
}

/// Whether tile `tile` (of `s`, batch `batch`) runs as two half tiles (the
/// union kernel's decision, TileSplit).
Value splitDecision(OpBuilder &b, Location loc, const AttentionShape &s,
                    Value splitFlags, Value batch, Value tile) {
  Emitter e(b, loc);
  Value flag =
      e.load(splitFlags, {e.add(e.mul(batch, e.index(s.numTiles)), tile)});
  return e.cmpi(arith::CmpIPredicate::ne, flag, e.i32(0));
}

/// `body` under `condition` (uniform over the thread block).
void guarded(OpBuilder &b, Location loc, Value condition,
             function_ref<void()> body) {
  Emitter e(b, loc);
  e.ifThen(condition, body);
}

void tileAttention(SparseAttentionOp op, ModuleOp module, int64_t warps,
                   int64_t keyChunk, int64_t splitShare, bool unionStream,
                   int64_t maxRegisters) {
  Location loc = op.getLoc();
  IRRewriter rewriter(op.getContext());
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, loc);
  AttentionShape s = shapeOf(op, warps);
  // Half tiles (warps / 2, T / 2 queries) for the tiles the split decision
  // picks; numbered so that half tile 2i + h owns the first (h = 0) or
  // second (h = 1) half of tile i's union region (the half-tile union overwrites it after the
  // full-tile attention has skipped that tile).
  bool split = splitShare > 0 && warps % 2 == 0;
  AttentionShape half = s;
  if (split) {
    half = shapeOf(op, warps / 2);
    half.numTiles = 2 * s.numTiles;
  }
  auto parent = op->getParentOfType<FunctionOpInterface>();
  std::string name = freeKernelName(
      module, (parent ? parent.getName().str() : std::string("gsa")) +
                  "_sparse_attention_");

  Value q = e.toBuffer(op.getQ()), k = e.toBuffer(op.getK()),
        v = e.toBuffer(op.getV());
  if (op.getValueGate()) {
    // v' = v * sigmoid(gv) once per key row: the tile loop then gathers K
    // and v' only (2/3 of the bytes of gathering gv too).
    Value gated = memref::AllocOp::create(rewriter, loc,
                                          cast<MemRefType>(v.getType()));
    Value flatV = collapse(rewriter, loc, v);
    Value flatGV = flatBuffer(e, op.getValueGate());
    Value flatOut = collapse(rewriter, loc, gated);
    int64_t n = cast<MemRefType>(flatV.getType()).getNumElements();
    int64_t perBlock = kValueGateThreads * kValueGateWidth;
    buildNamedLaunch(rewriter, loc, name + "_value_gate", (n + perBlock - 1) / perBlock,
           1, 1, kValueGateThreads,
           [&](OpBuilder &b, const SharedAllocator &) {
             buildValueGate(b, loc, flatV, flatGV, flatOut, n);
           });
    v = gated;
  }

  Type i32 = rewriter.getI32Type();
  int64_t capacity = s.B * s.numTiles * s.T * s.K;
  auto scratch = [&](int64_t n) -> Value {
    return memref::AllocOp::create(rewriter, loc, MemRefType::get({n}, i32));
  };
  Value unionKeys = scratch(capacity), unionMasks = scratch(capacity),
        unionSizes = scratch(s.B * s.numTiles);
  TileSplit splitFlags;
  if (split)
    splitFlags = {scratch(s.B * s.numTiles), splitShare};
  Value indices = flatBuffer(e, op.getIndices());
  Value counts = flatBuffer(e, op.getCounts());
  buildNamedLaunch(rewriter, loc, name + "_query_tiles", s.numTiles, s.B, 1,
         kUnionThreads, [&](OpBuilder &b, const SharedAllocator &shared) {
           buildTileUnion(b, loc, shared,
                          TileUnionShape{s.B, s.L, s.K, s.T, s.numTiles},
                          indices, counts, unionKeys, unionMasks, unionSizes,
                          splitFlags, unionStream);
         });

  Value gate = op.getOutputGate() ? e.toBuffer(op.getOutputGate()) : Value();
  Value out = e.alloc(op.getO().getType(), {});
  Value lse = e.alloc(op.getLse().getType(), {});
  // The tile kernels' register cap, where asked for (gsa-outline-kernels
  // puts it on the kernel as .maxnreg).
  auto capRegisters = [&](gpu::LaunchOp launchOp) {
    if (maxRegisters > 0)
      launchOp->setAttr(kMaxRegistersAttr,
                     rewriter.getI32IntegerAttr(int32_t(maxRegisters)));
  };
  gpu::LaunchOp tiles = buildNamedLaunch(
      rewriter, loc, name, s.numTiles, s.NKV, s.B, warps * kWarpSize,
      [&](OpBuilder &b, const SharedAllocator &) {
           auto body = [&]() {
             buildTileAttentionBody(b, op, s, keyChunk, q, k, v, unionKeys,
                                    unionMasks, unionSizes, gate, out, lse);
           };
           if (!split)
             return body();
           Value tile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
           Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
           Value whole = arith::XOrIOp::create(
               b, loc,
               splitDecision(b, loc, s, splitFlags.flags, batch, tile),
               arith::ConstantIntOp::create(b, loc, 1, 1));
           guarded(b, loc, whole, body);
      });
  capRegisters(tiles);
  if (split) {
    // The split tiles: their halves' unions (into the tile's region), then
    // the half-tile attention.
    Value halfSizes = scratch(half.B * half.numTiles);
    auto decideParent = [&](OpBuilder &b, Value halfTile, Value batch) {
      Value tile = arith::DivUIOp::create(
          b, loc, halfTile,
          arith::ConstantIndexOp::create(b, loc, 2));
      return splitDecision(b, loc, s, splitFlags.flags, batch, tile);
    };
    buildNamedLaunch(rewriter, loc, name + "_half_query_tiles", half.numTiles, half.B, 1,
           kUnionThreads, [&](OpBuilder &b, const SharedAllocator &shared) {
             Value halfTile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
             Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
             guarded(b, loc, decideParent(b, halfTile, batch), [&]() {
               buildTileUnion(
                   b, loc, shared,
                   TileUnionShape{half.B, half.L, half.K, half.T, half.numTiles},
                   indices, counts, unionKeys, unionMasks, halfSizes,
                   TileSplit(), unionStream);
             });
           });
    gpu::LaunchOp halfTiles = buildNamedLaunch(
        rewriter, loc, name + "_half", half.numTiles, half.NKV, half.B,
        (warps / 2) * kWarpSize, [&](OpBuilder &b, const SharedAllocator &) {
             Value halfTile = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
             Value batch = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
             guarded(b, loc, decideParent(b, halfTile, batch), [&]() {
               buildTileAttentionBody(b, op, half, keyChunk, q, k, v,
                                      unionKeys, unionMasks, halfSizes, gate,
                                      out, lse);
             });
        });
    capRegisters(halfTiles);
  }
  Value oTensor = e.toTensor(out, op.getO().getType());
  Value lseTensor = e.toTensor(lse, op.getLse().getType());
  rewriter.replaceOp(op, {oTensor, lseTensor});
}

struct GSATilePass : gsa::impl::GSATileBase<GSATilePass> {
  using GSATileBase::GSATileBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto badChunk = [&](StringRef option, int64_t chunk) {
      if (chunk >= 16 && chunk <= 64 && chunk % 16 == 0)
        return false;
      module.emitError(fmt::format(
          "gsa-tile: {} must be 16, 32, 48 or 64 (whole mma k-steps of the "
          "P V product), but is {}",
          option.str(), chunk));
      return true;
    };
    // (score-mod-key-chunk 0: ops with a score_mod take key-chunk.)
    if (badChunk("key-chunk", keyChunk) ||
        (scoreModKeyChunk != 0 &&
         badChunk("score-mod-key-chunk", scoreModKeyChunk)))
      return signalPassFailure();
    if (maxRegisters < 0 || maxRegisters > 255) {
      module.emitError(fmt::format(
          "gsa-tile: max-registers must be 0 (none) to 255, but is {}",
          int64_t(maxRegisters)));
      return signalPassFailure();
    }
    if (indexerKeySpan < 0) {
      module.emitError(fmt::format(
          "gsa-tile: indexer-key-span must be 0 (whole rows) or a number "
          "of keys, but is {}",
          int64_t(indexerKeySpan)));
      return signalPassFailure();
    }
    if (warps < 1 || warps > 8) {
      module.emitError(fmt::format(
          "gsa-tile: warps must be 1 to 8, but is {}", int64_t(warps)));
      return signalPassFailure();
    }
    SmallVector<SparseAttentionOp> ops;
    if (attention)
      module.walk([&](SparseAttentionOp op) {
        if (tileable(op, pregateValues))
          ops.push_back(op);
      });
    for (SparseAttentionOp op : ops) {
      AttentionShape s = shapeOf(op, warps);
      if (s.T > 32) {
        // The union's per-entry query masks are 32-bit words.
        op.emitOpError(fmt::format(
            "gsa-tile: {} warps x 16 rows / {} heads per KV head make {} "
            "queries per tile, more than the 32 a query mask holds (use "
            "fewer warps)",
            int64_t(warps), s.G, s.T));
        return signalPassFailure();
      }
      bool scoreMod = !op.getScoreMod().empty();
      int64_t chunk =
          scoreMod && scoreModKeyChunk > 0 ? scoreModKeyChunk : keyChunk;
      tileAttention(op, module, warps, chunk, splitShare, unionStream,
                    maxRegisters);
    }
    SmallVector<IndexerOp> indexerOps;
    if (indexers)
      module.walk([&](IndexerOp op) {
        if (indexerTileable(op))
          indexerOps.push_back(op);
      });
    for (IndexerOp op : indexerOps)
      tileIndexer(op, module, warps, keyChunk, indexerKeySpan);
  }
};

} // namespace
