//===- GSAOps.cpp - verifiers and helpers of the gsa ops -------------------===//
//
// The verifiers bind every symbolic dimension of SPEC (B, L, n_h, ...) the
// first time a static size is seen and report any later disagreement with
// both operands named, so that a user reads e.g.
//   'ki' dim 1 (L) is 300, but 'qi' dim 1 (L) is 256
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/LLVMIR/LLVMTypes.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringMap.h"

#include <cmath>
#include "mlir/Support/DebugStringHelper.h"

#include <fmt/format.h>

using namespace mlir;
using namespace gsa;

namespace {

/// Checks ranks, element types and symbolic dimensions of an op's tensors.
class ShapeChecker {
public:
  explicit ShapeChecker(Operation *op) : op(op) {}

  /// Binds a symbolic dimension to a value known from an attribute.
  void bind(StringRef dim, int64_t value, std::string source) {
    dims[dim] = {value, std::move(source)};
  }

  /// Checks that `value` (called `name`) is a ranked tensor whose dims are
  /// the symbols `dimNames` and whose element type is one of `elementTypes`
  /// (described by `elementDesc`).
  LogicalResult check(Value value, StringRef name,
                      ArrayRef<StringRef> dimNames,
                      function_ref<bool(Type)> elementOk,
                      StringRef elementDesc) {
    // ODS (AnyRankedTensor) has already rejected unranked tensors.
    auto type = cast<RankedTensorType>(value.getType());
    std::string layout = "[" + llvm::join(dimNames, ", ") + "]";
    if (type.getRank() != static_cast<int64_t>(dimNames.size()))
      return op->emitOpError(fmt::format(
          "'{}' must have rank {} {}, but got rank {} ({})", name.str(),
          dimNames.size(), layout, type.getRank(), debugString(type)));
    if (!elementOk(type.getElementType()))
      return op->emitOpError(fmt::format(
          "'{}' must have {} elements, but got {}", name.str(),
          elementDesc.str(), debugString(type.getElementType())));
    for (auto [i, dim] : llvm::enumerate(dimNames)) {
      int64_t size = type.getDimSize(i);
      if (ShapedType::isDynamic(size))
        continue;
      std::string here = fmt::format("'{}' dim {} ({})", name.str(), i,
                                     dim.str());
      auto it = dims.find(dim);
      if (it == dims.end()) {
        dims[dim] = {size, here};
        continue;
      }
      if (it->second.first != size)
        return op->emitOpError(fmt::format("{} is {}, but {} is {}", here,
                                           size, it->second.second,
                                           it->second.first));
    }
    return success();
  }

  /// The bound static value of a symbolic dimension, if any.
  std::optional<int64_t> lookup(StringRef dim) const {
    auto it = dims.find(dim);
    if (it == dims.end())
      return std::nullopt;
    return it->second.first;
  }

private:
  Operation *op;
  llvm::StringMap<std::pair<int64_t, std::string>> dims;
};

bool isActivationFloat(Type t) { return t.isF16() || t.isBF16() || t.isF32(); }
bool isF32(Type t) { return t.isF32(); }
bool isI32(Type t) { return t.isSignlessInteger(32); }
constexpr StringLiteral kActivationFloats = "f16, bf16 or f32";

/// Checks a region that the op calls as a scalar function: one block whose
/// arguments have the given types and a gsa.yield of one compute-type value.
LogicalResult verifyScalarRegion(Operation *op, Region &region,
                                 StringRef regionName,
                                 ArrayRef<Type> argTypes,
                                 StringRef signature) {
  if (!region.hasOneBlock())
    return op->emitOpError(fmt::format(
        "region '{}' must have exactly one block, but has {}",
        regionName.str(), region.getBlocks().size()));
  Block &block = region.front();
  auto describe = [&]() {
    std::string got = "(";
    for (auto [i, arg] : llvm::enumerate(block.getArguments()))
      got += (i ? ", " : "") + debugString(arg.getType());
    return got + ")";
  };
  bool argsOk = block.getNumArguments() == argTypes.size();
  for (unsigned i = 0; argsOk && i < argTypes.size(); ++i)
    argsOk = block.getArgument(i).getType() == argTypes[i];
  if (!argsOk)
    return op->emitOpError(fmt::format(
        "region '{}' must take {}, but takes {}", regionName.str(),
        signature.str(), describe()));
  // verify() runs before the nested blocks are verified, so the block may
  // still lack a terminator here.
  auto yield = block.empty() ? YieldOp() : dyn_cast<YieldOp>(block.back());
  if (!yield)
    return op->emitOpError(fmt::format(
        "region '{}' must end with gsa.yield", regionName.str()));
  Type compute = getComputeType(op->getContext());
  if (yield.getValues().size() != 1 ||
      yield.getValues().front().getType() != compute)
    return yield.emitOpError(fmt::format(
        "in region '{}' must yield exactly one {}, but yields {} value(s)",
        regionName.str(), debugString(compute), yield.getValues().size()));
  return success();
}

LogicalResult verifyIndexerParts(Operation *op, ShapeChecker &shapes,
                                 Value qi, Value ki, Value wi, Value bi,
                                 Region &activation, Region &weighting) {
  if (failed(shapes.check(qi, "qi", {"B", "L", "H_I", "d_I"},
                          isActivationFloat, kActivationFloats)) ||
      failed(shapes.check(ki, "ki", {"B", "L", "d_I"}, isActivationFloat,
                          kActivationFloats)))
    return failure();
  if (wi && failed(shapes.check(wi, "wi", {"B", "L", "H_I"},
                                isActivationFloat, kActivationFloats)))
    return failure();
  if (bi && failed(shapes.check(bi, "bi", {"H_I"}, isActivationFloat,
                                kActivationFloats)))
    return failure();

  MLIRContext *ctx = op->getContext();
  Type f32 = getComputeType(ctx);
  Type index = IndexType::get(ctx);
  if (activation.empty())
    return op->emitOpError("needs an 'activation' region (the per-head "
                           "activation of the indexer, e.g. sigmoid)");
  if (failed(verifyScalarRegion(op, activation, "activation", {f32, index},
                                "(%x: f32, %head: index)")))
    return failure();
  if (wi && weighting.empty())
    return op->emitOpError("has indexer weights 'wi' but no 'weighting' "
                           "region (use the identity for raw weights)");
  if (!wi && !weighting.empty())
    return op->emitOpError("has a 'weighting' region but no indexer "
                           "weights 'wi' to apply it to");
  if (!weighting.empty() &&
      failed(verifyScalarRegion(op, weighting, "weighting", {f32, index},
                                "(%w: f32, %head: index)")))
    return failure();
  return success();
}

LogicalResult verifySelectionParts(Operation *op, SelectionPolicy policy,
                                   int64_t kBase, int64_t kMin, int64_t kMax,
                                   bool training,
                                   std::optional<float> momentum,
                                   Value runningVar, Value newRunningVar,
                                   Region &policyFn) {
  if (kMin < 1)
    return op->emitOpError(fmt::format("k_min must be at least 1, but is {}",
                                       kMin));
  if (!(kMin <= kBase && kBase <= kMax))
    return op->emitOpError(fmt::format(
        "needs k_min <= k_base <= k_max, but k_min = {}, k_base = {}, "
        "k_max = {}",
        kMin, kBase, kMax));
  if (kMax > std::numeric_limits<int32_t>::max())
    return op->emitOpError(fmt::format(
        "k_max = {} does not fit the i32 indices", kMax));
  if (momentum && !(*momentum >= 0.0f && *momentum < 1.0f))
    return op->emitOpError(fmt::format(
        "momentum must lie in [0, 1), but is {}", *momentum));
  auto isScalarF32 = [](Value v) {
    auto t = dyn_cast<RankedTensorType>(v.getType());
    return t && t.getRank() == 0 && t.getElementType().isF32();
  };
  if (runningVar && !isScalarF32(runningVar))
    return op->emitOpError(fmt::format(
        "'running_var' must be a tensor<f32>, but got {}",
        debugString(runningVar.getType())));
  if (newRunningVar && !isScalarF32(newRunningVar))
    return op->emitOpError(fmt::format(
        "result 'new_running_var' must be a tensor<f32>, but got {}",
        debugString(newRunningVar.getType())));
  if (!training) {
    if (policyNeedsReferenceVariance(policy) && !runningVar)
      return op->emitOpError(fmt::format(
          "with policy '{}' in inference mode needs a 'running_var' operand "
          "(the reference variance V_bar)",
          stringifySelectionPolicy(policy).str()));
    if (newRunningVar)
      return op->emitOpError(
          "returns 'new_running_var' in inference mode, where the running "
          "variance is read and never written");
  } else if (static_cast<bool>(runningVar) !=
             static_cast<bool>(newRunningVar)) {
    return op->emitOpError(
        "in training mode must take 'running_var' and return "
        "'new_running_var' together (or neither)");
  }
  bool custom = policy == SelectionPolicy::custom;
  if (custom && policyFn.empty())
    return op->emitOpError(
        "with policy 'custom' needs a 'policy_fn' region");
  if (!custom && !policyFn.empty())
    return op->emitOpError(fmt::format(
        "has a 'policy_fn' region but policy '{}' (use policy = custom)",
        stringifySelectionPolicy(policy).str()));
  if (custom) {
    MLIRContext *ctx = op->getContext();
    Type f32 = getComputeType(ctx);
    if (failed(verifyScalarRegion(
            op, policyFn, "policy_fn", {f32, f32, f32, IndexType::get(ctx)},
            "(%mean: f32, %var: f32, %v_bar: f32, %t: index)")))
      return failure();
  }
  return success();
}

/// The selection checks of an op with the adaptive top-k attributes
/// (gsa.adaptive_topk and gsa.gated_sparse_attention).
template <typename OpTy> LogicalResult verifySelection(OpTy op) {
  std::optional<float> momentum;
  if (auto m = op.getMomentum())
    momentum = m->convertToFloat();
  return verifySelectionParts(op, op.getPolicy(), op.getKBase(), op.getKMin(),
                              op.getKMax(), op.getTraining(), momentum,
                              op.getRunningVar(), op.getNewRunningVar(),
                              op.getPolicyFn());
}

/// A scale attribute, when given, is a finite number: NaN or an infinity
/// would turn every score (and so every output) into NaN without a word.
LogicalResult verifyFiniteScale(Operation *op, std::optional<APFloat> scale,
                                StringRef name) {
  if (!scale || scale->isFinite())
    return success();
  return op->emitOpError(fmt::format("{} must be a finite number, but is {}",
                                     name.str(),
                                     scale->isNaN() ? "NaN"
                                     : scale->isNegative() ? "-inf"
                                                           : "+inf"));
}

/// A scale attribute, else 1 / sqrt(dim) (NaN while dim is dynamic).
float scaleOrDefault(std::optional<APFloat> scale, int64_t dim) {
  if (scale)
    return scale->convertToFloat();
  return ShapedType::isDynamic(dim) ? NAN : 1.0f / std::sqrt(float(dim));
}

LogicalResult verifyAttentionParts(Operation *op, ShapeChecker &shapes,
                                   Value q, Value k, Value v, Value gv,
                                   Value go, Region &scoreMod, Value o,
                                   Value lse) {
  if (failed(shapes.check(q, "q", {"B", "L", "n_h", "d_k"},
                          isActivationFloat, kActivationFloats)) ||
      failed(shapes.check(k, "k", {"B", "L", "n_kv", "d_k"},
                          isActivationFloat, kActivationFloats)) ||
      failed(shapes.check(v, "v", {"B", "L", "n_kv", "d_k"},
                          isActivationFloat, kActivationFloats)))
    return failure();
  if (gv && failed(shapes.check(gv, "value_gate", {"B", "L", "n_kv", "d_k"},
                                isActivationFloat, kActivationFloats)))
    return failure();
  if (go && failed(shapes.check(go, "output_gate", {"B", "L", "n_h", "d_k"},
                                isActivationFloat, kActivationFloats)))
    return failure();
  auto nh = shapes.lookup("n_h"), nkv = shapes.lookup("n_kv");
  if (nh && nkv && (*nkv == 0 || *nh % *nkv != 0))
    return op->emitOpError(fmt::format(
        "needs the query heads n_h = {} to be a multiple of the key/value "
        "heads n_kv = {}",
        *nh, *nkv));
  Type qElement = cast<RankedTensorType>(q.getType()).getElementType();
  if (failed(shapes.check(
          o, "o", {"B", "L", "n_h", "d_k"},
          [&](Type t) { return t == qElement; },
          fmt::format("the element type of 'q' ({})", debugString(qElement)))))
    return failure();
  if (failed(shapes.check(lse, "lse", {"B", "L", "n_h"}, isF32, "f32")))
    return failure();
  if (!scoreMod.empty()) {
    MLIRContext *ctx = op->getContext();
    Type f32 = getComputeType(ctx), index = IndexType::get(ctx);
    if (failed(verifyScalarRegion(
            op, scoreMod, "score_mod", {f32, index, index, index, index},
            "(%score: f32, %b: index, %h: index, %t: index, %s: index)")))
      return failure();
  }
  return success();
}

} // namespace


//===----------------------------------------------------------------------===//
// Assembly helpers: `policy = inverse`
//===----------------------------------------------------------------------===//

static ParseResult parsePolicy(OpAsmParser &parser,
                               SelectionPolicyAttr &policy) {
  SMLoc loc = parser.getCurrentLocation();
  StringRef keyword;
  if (parser.parseKeyword(&keyword))
    return failure();
  std::optional<SelectionPolicy> value = symbolizeSelectionPolicy(keyword);
  if (!value)
    return parser.emitError(loc, fmt::format(
        "unknown selection policy '{}' (expected inverse, proportional, "
        "fixed or custom)", keyword.str()));
  policy = SelectionPolicyAttr::get(parser.getContext(), *value);
  return success();
}

static void printPolicy(OpAsmPrinter &printer, Operation *,
                        SelectionPolicyAttr policy) {
  printer << stringifySelectionPolicy(policy.getValue());
}

//===----------------------------------------------------------------------===//
// IndexerOp
//===----------------------------------------------------------------------===//

LogicalResult IndexerOp::verify() {
  if (failed(verifyFiniteScale(*this, getScale(), "scale")))
    return failure();
  ShapeChecker shapes(*this);
  if (failed(verifyIndexerParts(*this, shapes, getQi(), getKi(), getWi(),
                                getBi(), getActivation(), getWeighting())))
    return failure();
  return shapes.check(getScores(), "scores", {"B", "L", "L"}, isF32, "f32");
}

float IndexerOp::getScaleOrDefault() {
  return scaleOrDefault(getScale(), getQi().getType().getDimSize(3));
}

//===----------------------------------------------------------------------===//
// AdaptiveTopKOp
//===----------------------------------------------------------------------===//

LogicalResult AdaptiveTopKOp::verify() {
  if (failed(verifySelection(*this)))
    return failure();
  ShapeChecker shapes(*this);
  shapes.bind("k_max", getKMax(), "attribute k_max");
  if (failed(shapes.check(getScores(), "scores", {"B", "L", "L"}, isF32,
                          "f32")) ||
      failed(shapes.check(getIndices(), "indices", {"B", "L", "k_max"}, isI32,
                          "i32")) ||
      failed(shapes.check(getCounts(), "counts", {"B", "L"}, isI32, "i32")))
    return failure();
  return success();
}

float AdaptiveTopKOp::getMomentumOrDefault() {
  if (auto m = getMomentum())
    return m->convertToFloat();
  return kDefaultMomentum;
}

//===----------------------------------------------------------------------===//
// SparseAttentionOp
//===----------------------------------------------------------------------===//

LogicalResult SparseAttentionOp::verify() {
  if (failed(verifyFiniteScale(*this, getScale(), "scale")))
    return failure();
  ShapeChecker shapes(*this);
  if (failed(verifyAttentionParts(*this, shapes, getQ(), getK(), getV(),
                                  getValueGate(), getOutputGate(),
                                  getScoreMod(), getO(), getLse())))
    return failure();
  if (failed(shapes.check(getIndices(), "indices", {"B", "L", "K"}, isI32,
                          "i32")) ||
      failed(shapes.check(getCounts(), "counts", {"B", "L"}, isI32, "i32")))
    return failure();
  return success();
}

float SparseAttentionOp::getScaleOrDefault() {
  return scaleOrDefault(getScale(), getQ().getType().getDimSize(3));
}

//===----------------------------------------------------------------------===//
// GatedSparseAttentionOp
//===----------------------------------------------------------------------===//

LogicalResult GatedSparseAttentionOp::verify() {
  if (failed(verifySelection(*this)) ||
      failed(verifyFiniteScale(*this, getScale(), "scale")) ||
      failed(verifyFiniteScale(*this, getIndexScale(), "index_scale")))
    return failure();
  ShapeChecker shapes(*this);
  shapes.bind("k_max", getKMax(), "attribute k_max");
  if (failed(verifyIndexerParts(*this, shapes, getQi(), getKi(), getWi(),
                                getBi(), getActivation(), getWeighting())) ||
      failed(verifyAttentionParts(*this, shapes, getQ(), getK(), getV(),
                                  getValueGate(), getOutputGate(),
                                  getScoreMod(), getO(), getLse())))
    return failure();
  if (failed(shapes.check(getIndices(), "indices", {"B", "L", "k_max"}, isI32,
                          "i32")) ||
      failed(shapes.check(getCounts(), "counts", {"B", "L"}, isI32, "i32")))
    return failure();
  return success();
}

#define GET_OP_CLASSES
#include "gsa/Dialect/GSAOps.cpp.inc"

//===----------------------------------------------------------------------===//
// TensorMapOp
//===----------------------------------------------------------------------===//

// The limits are those of cuTensorMapEncodeTiled (tiled mode): a map the
// driver would refuse at launch is refused here, where it is located.
LogicalResult TensorMapOp::verify() {
  if (!isa<LLVM::LLVMPointerType>(getMap().getType()))
    return emitOpError(fmt::format("result must be !llvm.ptr (the kernel "
                                   "argument), but got {}",
                                   debugString(getMap().getType())));
  auto source = cast<MemRefType>(getSource().getType());
  Type elem = source.getElementType();
  if (!(elem.isBF16() || elem.isF16() || elem.isF32() ||
        elem.isInteger(32)))
    return emitOpError(fmt::format(
        "copies bf16, f16, f32 or i32 elements, but the source holds {}",
        debugString(elem)));
  ArrayRef<int64_t> shape = getShape(), box = getBox();
  if (shape.empty() || shape.size() > 5)
    return emitOpError(fmt::format("shape must have rank 1 to 5, but has {}",
                                   shape.size()));
  if (box.size() != shape.size())
    return emitOpError(fmt::format("box has rank {} but shape has rank {}",
                                   box.size(), shape.size()));
  int64_t elements = 1;
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (d < 1 || d > (int64_t(1) << 32))
      return emitOpError(fmt::format(
          "shape dim {} is {}; it must be 1 to 2^32", i, d));
    elements *= d;
  }
  if (elements != source.getNumElements())
    return emitOpError(fmt::format(
        "shape holds {} elements but the source {}", elements,
        source.getNumElements()));
  for (auto [i, d] : llvm::enumerate(box))
    if (d < 1 || d > 256)
      return emitOpError(
          fmt::format("box dim {} is {}; it must be 1 to 256", i, d));
  int64_t bytes = elem.getIntOrFloatBitWidth() / 8;
  int64_t rowBytes = box.back() * bytes;
  if (rowBytes % 16)
    return emitOpError(fmt::format(
        "the box's innermost dim spans {} bytes; it must be a multiple of "
        "16",
        rowBytes));
  if (shape.back() * bytes % 16)
    return emitOpError(fmt::format(
        "rows of the shape's innermost dim span {} bytes; the strides must "
        "be multiples of 16",
        shape.back() * bytes));
  int64_t swizzle = getSwizzle();
  if (swizzle != 0 && swizzle != 32 && swizzle != 64 && swizzle != 128)
    return emitOpError(fmt::format(
        "swizzle must be 0, 32, 64 or 128 bytes, but is {}", swizzle));
  if (swizzle && rowBytes > swizzle)
    return emitOpError(fmt::format(
        "the box's innermost dim spans {} bytes, more than the {}-byte "
        "swizzle",
        rowBytes, swizzle));
  return success();
}
