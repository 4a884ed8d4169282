//===- Emitter.h - scalar and loop IR building blocks -----------*- C++ -*-===//
//
// Shared by the CPU (loops) and GPU lowerings of the gsa ops: small helpers
// that emit arith/math/memref/scf code at a builder's insertion point, so
// the lowerings read like the formulas of SPEC.md.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_LIB_CONVERSION_EMITTER_H
#define GSA_LIB_CONVERSION_EMITTER_H

#include "gsa/Dialect/GSADialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"

#include <limits>

namespace gsa::detail {

using namespace mlir;


/// Builds the scalar loop code of the lowerings. Every helper emits at the
/// builder's insertion point.
class Emitter {
public:
  Emitter(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  OpBuilder &builder() { return b; }
  Location location() { return loc; }

  Value index(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value f32(double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }
  Value f64(double v) {
    return arith::ConstantOp::create(b, loc, b.getF64FloatAttr(v));
  }
  Value i32(int64_t v) {
    return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v));
  }

  Value dim(Value memref, int64_t i) {
    return memref::DimOp::create(b, loc, memref, i);
  }
  Value load(Value memref, ValueRange ivs) {
    return memref::LoadOp::create(b, loc, memref, ivs);
  }
  /// Loads an element and extends it to f32, the compute type.
  Value loadF32(Value memref, ValueRange ivs) {
    return toF32(load(memref, ivs));
  }
  Value toF32(Value v) {
    if (v.getType().isF32())
      return v;
    return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
  }
  Value f32ToF64(Value v) {
    return arith::ExtFOp::create(b, loc, b.getF64Type(), v);
  }
  /// Stores an f32 value, rounding it to the memref's element type.
  void storeF32(Value v, Value memref, ValueRange ivs) {
    Type elem = cast<MemRefType>(memref.getType()).getElementType();
    if (elem != v.getType())
      v = arith::TruncFOp::create(b, loc, elem, v);
    memref::StoreOp::create(b, loc, v, memref, ivs);
  }
  void store(Value v, Value memref, ValueRange ivs) {
    memref::StoreOp::create(b, loc, v, memref, ivs);
  }

  Value add(Value x, Value y) {
    if (isa<FloatType>(x.getType()))
      return arith::AddFOp::create(b, loc, x, y);
    return arith::AddIOp::create(b, loc, x, y);
  }
  Value sub(Value x, Value y) {
    if (isa<FloatType>(x.getType()))
      return arith::SubFOp::create(b, loc, x, y);
    return arith::SubIOp::create(b, loc, x, y);
  }
  Value mul(Value x, Value y) {
    if (isa<FloatType>(x.getType()))
      return arith::MulFOp::create(b, loc, x, y);
    return arith::MulIOp::create(b, loc, x, y);
  }
  Value div(Value x, Value y) {
    if (isa<FloatType>(x.getType()))
      return arith::DivFOp::create(b, loc, x, y);
    return arith::DivUIOp::create(b, loc, x, y);
  }
  Value exp(Value x) { return math::ExpOp::create(b, loc, x); }
  Value select(Value c, Value x, Value y) {
    return arith::SelectOp::create(b, loc, c, x, y);
  }
  Value cmpf(arith::CmpFPredicate p, Value x, Value y) {
    return arith::CmpFOp::create(b, loc, p, x, y);
  }
  Value cmpi(arith::CmpIPredicate p, Value x, Value y) {
    return arith::CmpIOp::create(b, loc, p, x, y);
  }
  Value minui(Value x, Value y) { return arith::MinUIOp::create(b, loc, x, y); }
  Value minsi(Value x, Value y) { return arith::MinSIOp::create(b, loc, x, y); }
  Value maxui(Value x, Value y) { return arith::MaxUIOp::create(b, loc, x, y); }
  Value fma(Value x, Value y, Value z) {
    return math::FmaOp::create(b, loc, x, y, z);
  }
  Value andi(Value x, Value y) { return arith::AndIOp::create(b, loc, x, y); }
  Value ori(Value x, Value y) { return arith::OrIOp::create(b, loc, x, y); }
  Value indexToF64(Value i) {
    Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), i);
    return arith::SIToFPOp::create(b, loc, b.getF64Type(), i64);
  }
  Value indexToF32(Value i) {
    Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), i);
    return arith::SIToFPOp::create(b, loc, b.getF32Type(), i64);
  }
  Value indexToI32(Value i) {
    return arith::IndexCastOp::create(b, loc, b.getI32Type(), i);
  }
  Value i32ToIndex(Value i) {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), i);
  }
  /// sigmoid(x) as the op, lowered with every other gsa.sigmoid below.
  Value sigmoid(Value x) { return SigmoidOp::create(b, loc, x); }

  /// `for iv in [lb, ub)` with no loop-carried values.
  void loop(Value lb, Value ub, function_ref<void(Value)> body) {
    loopStep(lb, ub, index(1), body);
  }

  /// `for iv = lb; iv < ub; iv += step` with no loop-carried values.
  void loopStep(Value lb, Value ub, Value step, function_ref<void(Value)> body) {
    scf::ForOp::create(b, loc, lb, ub, step, ValueRange{},
                       [&](OpBuilder &nested, Location, Value iv, ValueRange) {
                         OpBuilder::InsertionGuard guard(b);
                         b.setInsertionPoint(nested.getInsertionBlock(),
                                             nested.getInsertionPoint());
                         body(iv);
                         scf::YieldOp::create(b, loc);
                       });
  }

  /// The strided form of loopCarry.
  SmallVector<Value>
  loopStepCarry(Value lb, Value ub, Value step, ValueRange inits,
                function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto forOp = scf::ForOp::create(
        b, loc, lb, ub, step, inits,
        [&](OpBuilder &nested, Location, Value iv, ValueRange carried) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          SmallVector<Value> next = body(iv, carried);
          scf::YieldOp::create(b, loc, next);
        });
    return SmallVector<Value>(forOp.getResults());
  }

  /// `for iv in [lb, ub)` carrying `inits`; `body` returns the next values.
  SmallVector<Value>
  loopCarry(Value lb, Value ub, ValueRange inits,
            function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    return loopStepCarry(lb, ub, index(1), inits, body);
  }

  /// `sum_{iv in [lb, ub)} term(iv)` starting from `init`.
  Value sum(Value lb, Value ub, Value init, function_ref<Value(Value)> term) {
    return loopCarry(lb, ub, init, [&](Value iv, ValueRange acc) {
             return SmallVector<Value>{add(acc[0], term(iv))};
           })[0];
  }

  /// Number of iv in [lb, ub) for which `pred(iv)` holds, as index.
  Value count(Value lb, Value ub, function_ref<Value(Value)> pred) {
    return loopCarry(lb, ub, index(0), [&](Value iv, ValueRange acc) {
             Value next = add(acc[0], index(1));
             return SmallVector<Value>{select(pred(iv), next, acc[0])};
           })[0];
  }

  void ifThen(Value cond, function_ref<void()> then) {
    scf::IfOp::create(b, loc, cond, [&](OpBuilder &nested, Location) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(nested.getInsertionBlock(),
                          nested.getInsertionPoint());
      then();
      scf::YieldOp::create(b, loc);
    });
  }

  SmallVector<Value> ifElse(Value cond,
                            function_ref<SmallVector<Value>()> thenFn,
                            function_ref<SmallVector<Value>()> elseFn) {
    auto ifOp = scf::IfOp::create(
        b, loc, cond,
        [&](OpBuilder &nested, Location) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          scf::YieldOp::create(b, loc, thenFn());
        },
        [&](OpBuilder &nested, Location) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(nested.getInsertionBlock(),
                              nested.getInsertionPoint());
          scf::YieldOp::create(b, loc, elseFn());
        });
    return SmallVector<Value>(ifOp.getResults());
  }

  /// Inlines a gsa scalar region at the insertion point and returns the
  /// value it yields. Regions are isolated from above, so every value they
  /// use is a block argument or defined inside.
  Value inlineRegion(Region &region, ValueRange args) {
    Block &block = region.front();
    IRMapping mapping;
    for (auto [arg, value] : llvm::zip(block.getArguments(), args))
      mapping.map(arg, value);
    for (Operation &op : block.without_terminator())
      b.clone(op, mapping);
    auto yield = cast<YieldOp>(block.getTerminator());
    return mapping.lookupOrDefault(yield.getValues().front());
  }

  /// The operand as a memref (identity layout) for the loops to read.
  Value toBuffer(Value tensor) {
    auto type = cast<RankedTensorType>(tensor.getType());
    auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
    return bufferization::ToBufferOp::create(b, loc, memrefType, tensor,
                                             /*read_only=*/true);
  }

  /// Allocates the buffer of a result of type `type`; `sizes` gives the
  /// value of every dimension (used where the type's dimension is dynamic).
  Value alloc(RankedTensorType type, ArrayRef<Value> sizes) {
    auto memrefType = MemRefType::get(type.getShape(), type.getElementType());
    SmallVector<Value> dynamic;
    for (auto [i, size] : llvm::enumerate(type.getShape()))
      if (ShapedType::isDynamic(size))
        dynamic.push_back(sizes[i]);
    return memref::AllocOp::create(b, loc, memrefType, dynamic);
  }
  /// A temporary of the given element type and sizes. It is not freed
  /// here: the buffer-deallocation pipeline that follows bufferization
  /// frees every buffer that does not escape (and rejects explicit frees).
  Value allocTemp(Type elem, ArrayRef<Value> sizes) {
    SmallVector<int64_t> shape(sizes.size(), ShapedType::kDynamic);
    return memref::AllocOp::create(b, loc, MemRefType::get(shape, elem),
                                   sizes);
  }

  Value toTensor(Value memref, Type tensorType) {
    return bufferization::ToTensorOp::create(b, loc, tensorType, memref,
                                             /*restrict=*/true,
                                             /*writable=*/true);
  }

  /// The scale attribute, else 1 / sqrt(dimension) computed from the
  /// (possibly dynamic) dimension.
  Value scaleOr(std::optional<APFloat> attr, Value dimension) {
    if (attr)
      return f32(attr->convertToFloat());
    Value d = indexToF32(dimension);
    Value root = math::SqrtOp::create(b, loc, d);
    return arith::DivFOp::create(b, loc, f32(1.0), root);
  }

private:
  OpBuilder &b;
  Location loc;
};

constexpr double kInf = std::numeric_limits<double>::infinity();

//===----------------------------------------------------------------------===//
// Selection arithmetic shared by the CPU and GPU lowerings of adaptive_topk
//===----------------------------------------------------------------------===//

/// Maps an f32 to an i32 whose unsigned order is the float order
/// (-inf < ... < -0 < +0 < ... < +inf): flip every bit of negatives, only
/// the sign bit of the rest.
inline Value orderKey(Emitter &e, Value f) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Value bits = arith::BitcastOp::create(b, loc, b.getI32Type(), f);
  Value sign = arith::ShRSIOp::create(b, loc, bits, e.i32(31));
  Value mask = e.ori(sign, e.i32(std::numeric_limits<int32_t>::min()));
  return arith::XOrIOp::create(b, loc, bits, mask);
}

/// The f32 a cut key stands for, for a float comparison `score >= it` that
/// takes the keys >= `key` (orderKey's inverse; a key below -inf's gives
/// -inf, so every non-NaN score passes). Exact for every non-NaN score
/// except at the key of +0.0, where the float test would also take -0.0:
/// the sample kernel never stores that key as a cut.
inline Value cutFloat(Emitter &e, Value key) {
  OpBuilder &b = e.builder();
  Location loc = e.location();
  // orderKey's mask again: the sign bit of a non-negative score's key
  // (>= 2^31), every bit of a negative one's.
  Value nonNegative = e.cmpi(arith::CmpIPredicate::uge, key,
                             e.i32(std::numeric_limits<int32_t>::min()));
  Value mask = e.select(nonNegative,
                        e.i32(std::numeric_limits<int32_t>::min()), e.i32(-1));
  Value f = arith::BitcastOp::create(b, loc, b.getF32Type(),
                                     arith::XOrIOp::create(b, loc, key, mask));
  // Keys below -inf's (~0xff800000) are NaNs' with the sign set.
  Value belowInf = e.cmpi(arith::CmpIPredicate::ult, key, e.i32(0x007fffff));
  return e.select(belowInf, e.f32(-kInf), f);
}

/// The budget k_t (index) of one row from its statistics, per SPEC 2.
inline Value rowBudget(Emitter &e, AdaptiveTopKOp op, Value mean, Value var,
                Value vBar, Value t) {
  int64_t kBase = op.getKBase(), kMin = op.getKMin(), kMax = op.getKMax();
  Value budget; // the real k_base * r_t, in f64
  switch (op.getPolicy()) {
  case SelectionPolicy::fixed:
    budget = e.f64(double(kBase));
    break;
  case SelectionPolicy::inverse: {
    // var_t = 0 is the most uncertain row: k_max, whatever V_bar is.
    Value ratio = e.div(vBar, var);
    Value isZero = e.cmpf(arith::CmpFPredicate::OEQ, var, e.f64(0.0));
    Value scaled = e.mul(e.f64(double(kBase)), ratio);
    budget = e.select(isZero, e.f64(kInf), scaled);
    break;
  }
  case SelectionPolicy::proportional: {
    Value ratio = e.div(var, vBar);
    Value isZero = e.cmpf(arith::CmpFPredicate::OEQ, var, e.f64(0.0));
    Value scaled = e.mul(e.f64(double(kBase)), ratio);
    budget = e.select(isZero, e.f64(-kInf), scaled);
    break;
  }
  case SelectionPolicy::custom: {
    OpBuilder &b = e.builder();
    Location loc = e.location();
    auto toF32 = [&](Value v) {
      return arith::TruncFOp::create(b, loc, b.getF32Type(), v).getResult();
    };
    Value mean32 = toF32(mean);
    Value var32 = toF32(var);
    Value vBar32 = toF32(vBar);
    Value yielded =
        e.inlineRegion(op.getPolicyFn(), {mean32, var32, vBar32, t});
    budget = e.f32ToF64(yielded);
    break;
  }
  }
  // floor, clamp to [k_min, k_max] (in float, so +-inf clamp cleanly); a
  // NaN budget from a user policy gives k_max.
  OpBuilder &b = e.builder();
  Location loc = e.location();
  Value floored = math::FloorOp::create(b, loc, budget);
  Value lo = e.f64(double(kMin));
  Value hi = e.f64(double(kMax));
  Value raised = arith::MaximumFOp::create(b, loc, floored, lo);
  Value clamped = arith::MinimumFOp::create(b, loc, raised, hi);
  Value isNaN = e.cmpf(arith::CmpFPredicate::UNO, budget, budget);
  clamped = e.select(isNaN, hi, clamped);
  Value k64 = arith::FPToSIOp::create(b, loc, b.getI64Type(), clamped);
  return arith::IndexCastOp::create(b, loc, b.getIndexType(), k64);
}

} // namespace gsa::detail

#endif // GSA_LIB_CONVERSION_EMITTER_H
