//===- GSATileOps.cpp - verifiers of the block-level gsa.tile ops ---------===//
//
// The tile ops are written by passes, but they are also the input of the
// next pass in lit tests and of anyone driving the stages by hand, so each
// verifier names the operand and the expected versus actual shape.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Matchers.h"

#include "mlir/Support/DebugStringHelper.h"

#include <fmt/format.h>

#include <cmath>

using namespace mlir;
using namespace gsa;

namespace {

bool isMmaElement(Type t) { return t.isBF16() || t.isF16(); }

/// `value` is a static tensor of rank `rank`.
LogicalResult expectRank(Operation *op, Value value, StringRef name,
                         int64_t rank) {
  auto type = cast<ShapedType>(value.getType());
  if (type.getRank() != rank)
    return op->emitOpError(fmt::format("'{}' must have rank {}, but got {}",
                                       name.str(), rank, debugString(type)));
  return success();
}

LogicalResult expectElement(Operation *op, Value value, StringRef name,
                            function_ref<bool(Type)> ok, StringRef what) {
  Type elem = cast<ShapedType>(value.getType()).getElementType();
  if (!ok(elem))
    return op->emitOpError(fmt::format("'{}' must have {} elements, but got {}",
                                       name.str(), what.str(), debugString(elem)));
  return success();
}

bool isI32(Type t) { return t.isInteger(32); }

/// The buffers are addressed as dense row-major arrays from their start.
LogicalResult expectDense(Operation *op, Value buffer, StringRef name) {
  auto type = cast<MemRefType>(buffer.getType());
  if (!type.getLayout().isIdentity())
    return op->emitOpError(fmt::format(
        "'{}' must be a dense row-major buffer (identity layout), but is {}",
        name.str(), debugString(type)));
  return success();
}
bool isF32(Type t) { return t.isF32(); }

/// A [rows] f32 row vector matching an [rows, n] tile.
LogicalResult expectRowVector(Operation *op, Value value, StringRef name,
                              int64_t rows) {
  if (failed(expectRank(op, value, name, 1)) ||
      failed(expectElement(op, value, name, isF32, "f32")))
    return failure();
  int64_t n = cast<ShapedType>(value.getType()).getDimSize(0);
  if (n != rows)
    return op->emitOpError(fmt::format(
        "'{}' must have one entry per tile row ({}), but has {}", name.str(),
        rows, n));
  return success();
}

/// The rows of a [queries x group, d] tile of a [B, L, n_h, d] tensor.
LogicalResult verifyQueryRows(Operation *op, Value tensor4d, StringRef name,
                              int64_t rows, int64_t cols, int64_t group) {
  if (failed(expectRank(op, tensor4d, name, 4)))
    return failure();
  auto type = cast<ShapedType>(tensor4d.getType());
  if (rows % group != 0)
    return op->emitOpError(fmt::format(
        "the tile's {} rows are not a whole number of queries of {} heads",
        rows, group));
  if (type.getDimSize(2) % group != 0)
    return op->emitOpError(fmt::format(
        "'{}' has {} heads, not a multiple of the group ({})", name.str(),
        type.getDimSize(2), group));
  if (cols != type.getDimSize(3))
    return op->emitOpError(fmt::format(
        "the tile has {} columns, but '{}' rows have {} (d_k)", cols,
        name.str(), type.getDimSize(3)));
  return success();
}

} // namespace

LogicalResult TileLoadQueriesOp::verify() {
  if (failed(expectRank(*this, getTile(), "tile", 2)) ||
      failed(expectElement(*this, getTile(), "tile", isMmaElement,
                           "bf16 or f16")) ||
      failed(expectDense(*this, getQ(), "q")))
    return failure();
  auto tile = getTile().getType();
  if (tile.getElementType() != getQ().getType().getElementType())
    return emitOpError("the tile's element type must be q's");
  return verifyQueryRows(*this, getQ(), "q", tile.getDimSize(0),
                         tile.getDimSize(1), getGroup());
}

LogicalResult TileGatherRowsOp::verify() {
  auto sourceType = getSource().getType();
  if (sourceType.getRank() != 3 && sourceType.getRank() != 4)
    return emitOpError(fmt::format(
        "'source' must be [B, L, n_kv, d] or [B, L, d] (one head), but got {}",
        debugString(sourceType)));
  if (failed(expectRank(*this, getTile(), "tile", 2)) ||
      failed(expectDense(*this, getSource(), "source")))
    return failure();
  // A [B, L, d] source has one head.
  APInt head;
  if (sourceType.getRank() == 3 && matchPattern(getKvHead(), m_ConstantInt(&head)) &&
      !head.isZero())
    return emitOpError(fmt::format(
        "a [B, L, d] source has one head, but kv_head is {}", head.getSExtValue()));
  if (getPositions() &&
      (failed(expectRank(*this, getPositions(), "positions", 1)) ||
       failed(expectElement(*this, getPositions(), "positions", isI32,
                            "i32")) ||
       failed(expectDense(*this, getPositions(), "positions"))))
    return failure();
  auto tile = getTile().getType();
  auto source = getSource().getType();
  if (tile.getElementType() != source.getElementType())
    return emitOpError("the tile's element type must be the source's");
  int64_t d = source.getDimSize(source.getRank() - 1);
  if (tile.getDimSize(1) != d)
    return emitOpError(fmt::format(
        "the tile has {} columns, but the source rows have {}",
        tile.getDimSize(1), d));
  return success();
}

LogicalResult TileGatherWordsOp::verify() {
  if (failed(expectRank(*this, getSource(), "source", 1)) ||
      failed(expectRank(*this, getTile(), "tile", 1)) ||
      failed(expectElement(*this, getSource(), "source", isI32, "i32")) ||
      failed(expectElement(*this, getTile(), "tile", isI32, "i32")) ||
      failed(expectDense(*this, getSource(), "source")))
    return failure();
  return success();
}

LogicalResult TileSharedTileOp::verify() {
  auto ring = getRing().getType();
  auto tile = getTile().getType();
  auto space = dyn_cast_or_null<gpu::AddressSpaceAttr>(ring.getMemorySpace());
  if (!space || space.getValue() != gpu::AddressSpace::Workgroup)
    return emitOpError(fmt::format(
        "the ring must be workgroup (shared) memory, but is {}", debugString(ring)));
  if (failed(expectDense(*this, getRing(), "ring")))
    return failure();
  if (ring.getRank() != tile.getRank() + 1)
    return emitOpError(fmt::format(
        "the ring must be [stages] x the tile's shape, but got {} for a {}",
        debugString(ring), debugString(tile)));
  if (ring.getElementType() != tile.getElementType())
    return emitOpError("the tile's element type must be the ring's");
  for (int64_t i = 0; i < tile.getRank(); ++i)
    if (ring.getDimSize(i + 1) != tile.getDimSize(i))
      return emitOpError(fmt::format(
          "the ring must be [stages] x the tile's shape, but got {} for a {}",
          debugString(ring), debugString(tile)));
  if (getSwizzled()) {
    int64_t rowBytes = tile.getRank() == 2
                           ? tile.getDimSize(1) *
                                 tile.getElementTypeBitWidth() / 8
                           : 0;
    if (rowBytes < 128 || rowBytes % 128 != 0)
      return emitOpError(fmt::format(
          "a swizzled tile needs rows of a multiple of 128 bytes (8 pieces "
          "of 16), but has {}",
          debugString(tile)));
  }
  return success();
}

LogicalResult TileDotOp::verify() {
  if (failed(expectRank(*this, getLhs(), "lhs", 2)) ||
      failed(expectRank(*this, getRhs(), "rhs", 2)) ||
      failed(expectRank(*this, getResult(), "result", 2)) ||
      failed(expectElement(*this, getResult(), "result", isF32, "f32")) ||
      failed(expectElement(*this, getLhs(), "lhs", isMmaElement, "bf16 or f16")))
    return failure();
  auto lhs = getLhs().getType(), rhs = getRhs().getType();
  auto result = getResult().getType();
  if (lhs.getElementType() != rhs.getElementType())
    return emitOpError(fmt::format("lhs ({}) and rhs ({}) must have one "
                                   "element type",
                                   debugString(lhs.getElementType()),
                                   debugString(rhs.getElementType())));
  int64_t k = lhs.getDimSize(1);
  int64_t rhsK = getTransposeRhs() ? rhs.getDimSize(1) : rhs.getDimSize(0);
  int64_t n = getTransposeRhs() ? rhs.getDimSize(0) : rhs.getDimSize(1);
  if (rhsK != k)
    return emitOpError(fmt::format(
        "contracts lhs's {} columns with {} of rhs ({}{})", k, rhsK, debugString(rhs),
        getTransposeRhs() ? ", transposed" : ""));
  if (result.getDimSize(0) != lhs.getDimSize(0) || result.getDimSize(1) != n)
    return emitOpError(fmt::format("the result must be {}x{}, but is {}",
                                   lhs.getDimSize(0), n, debugString(result)));
  if (getAcc() && getAcc().getType() != result)
    return emitOpError(fmt::format("acc ({}) must have the result's type ({})",
                                   debugString(getAcc().getType()), debugString(result)));
  return success();
}

LogicalResult TileScoresOp::verify() {
  if (failed(expectRank(*this, getAcc(), "acc", 2)) ||
      failed(expectElement(*this, getAcc(), "acc", isF32, "f32")) ||
      failed(expectRank(*this, getMembers(), "members", 1)) ||
      failed(expectElement(*this, getMembers(), "members", isI32, "i32")))
    return failure();
  auto acc = getAcc().getType();
  if (getResult().getType() != acc)
    return emitOpError("the result must have the scores' type");
  int64_t n = acc.getDimSize(1);
  if (cast<ShapedType>(getMembers().getType()).getDimSize(0) != n)
    return emitOpError(fmt::format("'members' must have one word per key "
                                   "({})",
                                   n));
  if (acc.getDimSize(0) % getGroup() != 0)
    return emitOpError(fmt::format(
        "the tile's {} rows are not a whole number of queries of {} heads",
        acc.getDimSize(0), getGroup()));
  if (acc.getDimSize(0) / getGroup() > 32)
    return emitOpError(fmt::format(
        "a members word holds 32 queries, but the tile has {}",
        acc.getDimSize(0) / getGroup()));
  bool hasMod = !getScoreMod().empty();
  if (hasMod != static_cast<bool>(getPositions()))
    return emitOpError(hasMod ? "a score_mod needs the keys' 'positions'"
                              : "'positions' serve only a score_mod");
  if (getPositions() && getPositions().getType() != getMembers().getType())
    return emitOpError("'positions' must have the type of 'members'");
  if (hasMod) {
    Block &body = getScoreMod().front();
    Builder b(getContext());
    SmallVector<Type> expected = {b.getF32Type(), b.getIndexType(),
                                  b.getIndexType(), b.getIndexType(),
                                  b.getIndexType()};
    if (body.getArgumentTypes() != ArrayRef<Type>(expected))
      return emitOpError("the score_mod region takes (f32, index, index, "
                         "index, index)");
    auto yield = body.empty() ? YieldOp() : dyn_cast<YieldOp>(body.back());
    if (!yield || yield.getValues().size() != 1 ||
        !yield.getValues()[0].getType().isF32())
      return emitOpError("the score_mod region must yield one f32");
  }
  return success();
}

LogicalResult TileOnlineSoftmaxOp::verify() {
  if (failed(expectRank(*this, getScores(), "scores", 2)) ||
      failed(expectElement(*this, getScores(), "scores", isF32, "f32")))
    return failure();
  auto scores = getScores().getType();
  auto probs = getProbs().getType();
  if (probs.getShape() != scores.getShape() ||
      !isMmaElement(probs.getElementType()))
    return emitOpError(fmt::format(
        "the probabilities must be bf16 or f16 of the scores' shape, but are "
        "{}",
        debugString(probs)));
  return expectRowVector(*this, getMax(), "max", scores.getDimSize(0));
}

LogicalResult TileRescaleOp::verify() {
  if (failed(expectRank(*this, getAcc(), "acc", 2)) ||
      failed(expectElement(*this, getAcc(), "acc", isF32, "f32")))
    return failure();
  return expectRowVector(*this, getFactor(), "factor",
                         cast<ShapedType>(getAcc().getType()).getDimSize(0));
}

LogicalResult TileStoreOutputOp::verify() {
  if (failed(expectRank(*this, getAcc(), "acc", 2)) ||
      failed(expectElement(*this, getAcc(), "acc", isF32, "f32")))
    return failure();
  auto acc = cast<ShapedType>(getAcc().getType());
  if (failed(expectRowVector(*this, getMax(), "max", acc.getDimSize(0))) ||
      failed(verifyQueryRows(*this, getOut(), "out", acc.getDimSize(0),
                             acc.getDimSize(1), getGroup())) ||
      failed(expectRank(*this, getLse(), "lse", 3)))
    return failure();
  if (failed(expectElement(*this, getLse(), "lse", isF32, "f32")) ||
      failed(expectElement(*this, getOut(), "out",
                           [](Type t) { return isa<FloatType>(t); }, "float")) ||
      failed(expectDense(*this, getOut(), "out")) ||
      failed(expectDense(*this, getLse(), "lse")))
    return failure();
  if (getGate() &&
      (failed(expectElement(*this, getGate(), "gate",
                            [](Type t) { return isa<FloatType>(t); }, "float")) ||
       failed(expectDense(*this, getGate(), "gate"))))
    return failure();
  auto out = getOut().getType();
  auto lse = getLse().getType();
  if (lse.getShape() != out.getShape().drop_back())
    return emitOpError(fmt::format("'lse' must be [B, L, n_h] of 'out' ({}), "
                                   "but is {}",
                                   debugString(out), debugString(lse)));
  if (getGate() && getGate().getType().getShape() != out.getShape())
    return emitOpError(fmt::format("'gate' must have the shape of 'out' "
                                   "({}), but is {}",
                                   debugString(out), debugString(getGate().getType())));
  return success();
}

namespace {

/// A region of `(f32, index)` yielding one f32 (the indexer's activation
/// and weighting).
LogicalResult verifyHeadRegion(Operation *op, Region &region, StringRef name) {
  Block &body = region.front();
  Builder b(op->getContext());
  SmallVector<Type> expected = {b.getF32Type(), b.getIndexType()};
  if (body.getArgumentTypes() != ArrayRef<Type>(expected))
    return op->emitOpError(
        fmt::format("the {} region takes (f32, index)", name.str()));
  auto yield = body.empty() ? YieldOp() : dyn_cast<YieldOp>(body.back());
  if (!yield || yield.getValues().size() != 1 ||
      !yield.getValues()[0].getType().isF32())
    return op->emitOpError(
        fmt::format("the {} region must yield one f32", name.str()));
  return success();
}

bool isFloat(Type t) { return isa<FloatType>(t); }

/// The tile's rows are whole queries of `heads` heads, a power of two up
/// to 16 (the heads of a query share one lane quad's rows of a warp).
LogicalResult expectHeads(Operation *op, int64_t rows, int64_t heads) {
  if (!llvm::isPowerOf2_64(heads) || heads > 16)
    return op->emitOpError(fmt::format(
        "takes 1, 2, 4, 8 or 16 heads, but has {}", heads));
  if (rows % heads != 0)
    return op->emitOpError(fmt::format(
        "the tile's {} rows are not a whole number of queries of {} heads",
        rows, heads));
  return success();
}

} // namespace

LogicalResult TileIndexerHeadsOp::verify() {
  if (failed(expectRank(*this, getWeight(), "weight", 1)) ||
      failed(expectElement(*this, getWeight(), "weight", isF32, "f32")))
    return failure();
  int64_t heads = getHeads();
  if (failed(expectHeads(*this, getWeight().getType().getDimSize(0), heads)))
    return failure();
  if (Value w = getWeights()) {
    if (failed(expectRank(*this, w, "weights", 3)) ||
        failed(expectElement(*this, w, "weights", isFloat, "float")) ||
        failed(expectDense(*this, w, "weights")))
      return failure();
    if (cast<ShapedType>(w.getType()).getDimSize(2) != heads)
      return emitOpError(fmt::format(
          "'weights' must be [B, L, {}] (one logit per head), but is {}",
          heads, debugString(w.getType())));
    if (getWeighting().empty())
      return emitOpError("'weights' need a weighting region");
    if (failed(verifyHeadRegion(*this, getWeighting(), "weighting")))
      return failure();
  } else if (!getWeighting().empty()) {
    return emitOpError("a weighting region needs 'weights'");
  }
  if (Value bias = getBiasList()) {
    if (failed(expectRank(*this, bias, "bias", 1)) ||
        failed(expectElement(*this, bias, "bias", isFloat, "float")))
      return failure();
    if (cast<ShapedType>(bias.getType()).getDimSize(0) != heads)
      return emitOpError(fmt::format(
          "'bias' must have one entry per head ({}), but is {}", heads,
          debugString(bias.getType())));
  }
  return success();
}

LogicalResult TileIndexerScoresOp::verify() {
  if (failed(expectRank(*this, getAcc(), "acc", 2)) ||
      failed(expectElement(*this, getAcc(), "acc", isF32, "f32")) ||
      failed(expectRank(*this, getResult(), "result", 2)) ||
      failed(expectElement(*this, getResult(), "result", isF32, "f32")))
    return failure();
  auto acc = getAcc().getType();
  int64_t rows = acc.getDimSize(0), heads = getHeads();
  if (failed(expectHeads(*this, rows, heads)) ||
      failed(expectRowVector(*this, getWeight(), "weights", rows)) ||
      failed(expectRowVector(*this, getBias(), "bias", rows)))
    return failure();
  auto result = getResult().getType();
  if (result.getDimSize(0) != rows / heads ||
      result.getDimSize(1) != acc.getDimSize(1))
    return emitOpError(fmt::format(
        "the result must be [{} queries, {} keys], but is {}", rows / heads,
        acc.getDimSize(1), debugString(result)));
  if (!std::isfinite(getScale().convertToFloat()))
    return emitOpError("the scale must be finite");
  return verifyHeadRegion(*this, getActivation(), "activation");
}

LogicalResult TileStoreScoresOp::verify() {
  if (failed(expectRank(*this, getTile(), "tile", 2)) ||
      failed(expectElement(*this, getTile(), "tile", isF32, "f32")) ||
      failed(expectRank(*this, getScores(), "scores", 3)) ||
      failed(expectElement(*this, getScores(), "scores", isF32, "f32")) ||
      failed(expectDense(*this, getScores(), "scores")))
    return failure();
  auto scores = getScores().getType();
  if (scores.getDimSize(1) != scores.getDimSize(2))
    return emitOpError(fmt::format(
        "'scores' must be the [B, L, L] score matrix, but is {}",
        debugString(scores)));
  return success();
}
