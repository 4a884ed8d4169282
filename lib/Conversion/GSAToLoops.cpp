//===- GSAToLoops.cpp - the CPU reference lowering of the gsa ops ---------===//
//
// Each fused op becomes plain loop nests on memrefs that follow SPEC.md to
// the letter. This is the ground truth for the GPU kernels and the path CI
// runs, so it favours obviousness over speed: one output element per loop
// iteration, f32 accumulation (f64 for the selection statistics), and the
// user's regions inlined exactly where SPEC applies them.
//
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"

#include "Emitter.h"

#include <limits>

namespace gsa {
#define GEN_PASS_DEF_CONVERTGSATOLOOPS
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using gsa::detail::Emitter;
using gsa::detail::kInf;

namespace {


//===----------------------------------------------------------------------===//
// gsa.indexer
//===----------------------------------------------------------------------===//

void lowerIndexer(IndexerOp op, IRRewriter &rewriter) {
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, op.getLoc());
  Value qi = e.toBuffer(op.getQi());
  Value ki = e.toBuffer(op.getKi());
  Value wi = op.getWi() ? e.toBuffer(op.getWi()) : Value();
  Value bi = op.getBi() ? e.toBuffer(op.getBi()) : Value();
  Value B = e.dim(qi, 0);
  Value L = e.dim(qi, 1);
  Value H = e.dim(qi, 2);
  Value D = e.dim(qi, 3);
  Value scale = e.scaleOr(op.getScale(), D);
  Value zero = e.index(0);
  Value one = e.index(1);
  Value negInf = e.f32(-kInf);

  Value scores = e.alloc(op.getScores().getType(), {B, L, L});
  // The head weights of one query row, computed once per row.
  Value weights = e.allocTemp(e.builder().getF32Type(), {H});

  e.loop(zero, B, [&](Value b) {
    e.loop(zero, L, [&](Value t) {
      e.loop(zero, H, [&](Value j) {
        Value w = e.f32(1.0);
        if (wi) {
          Value raw = e.loadF32(wi, {b, t, j});
          w = e.inlineRegion(op.getWeighting(), {raw, j});
        }
        e.store(w, weights, {j});
      });
      Value visibleEnd = e.add(t, one);
      e.loop(zero, visibleEnd, [&](Value s) {
        Value score = e.sum(zero, H, e.f32(0.0), [&](Value j) {
          Value dot = e.sum(zero, D, e.f32(0.0), [&](Value d) {
            Value x = e.loadF32(qi, {b, t, j, d});
            Value y = e.loadF32(ki, {b, s, d});
            return e.mul(x, y);
          });
          Value x = e.mul(scale, dot);
          if (bi)
            x = e.add(x, e.loadF32(bi, {j}));
          Value act = e.inlineRegion(op.getActivation(), {x, j});
          Value w = e.load(weights, {j});
          return e.mul(w, act);
        });
        e.store(score, scores, {b, t, s});
      });
      // Causal mask: positions after t are never candidates.
      e.loop(visibleEnd, L, [&](Value s) { e.store(negInf, scores, {b, t, s}); });
    });
  });
  rewriter.replaceOp(op, e.toTensor(scores, op.getScores().getType()));
}

//===----------------------------------------------------------------------===//
// gsa.adaptive_topk
//===----------------------------------------------------------------------===//

void lowerAdaptiveTopK(AdaptiveTopKOp op, IRRewriter &rewriter) {
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, op.getLoc());
  OpBuilder &b = e.builder();
  Location loc = op.getLoc();
  Value scores = e.toBuffer(op.getScores());
  Value runningVar =
      op.getRunningVar() ? e.toBuffer(op.getRunningVar()) : Value();
  Value B = e.dim(scores, 0);
  Value L = e.dim(scores, 1);
  Value K = e.index(op.getKMax());
  Value zero = e.index(0);
  Value one = e.index(1);
  Type f64 = b.getF64Type();

  Value indices = e.alloc(op.getIndices().getType(), {B, L, K});
  Value counts = e.alloc(op.getCounts().getType(), {B, L});
  Value means = e.allocTemp(f64, {B, L});
  Value vars = e.allocTemp(f64, {B, L});

  // Pass 1: mean and population variance of every row (two-pass, in f64).
  e.loop(zero, B, [&](Value bi) {
    e.loop(zero, L, [&](Value t) {
      Value n = e.add(t, one);
      Value nf = e.indexToF64(n);
      Value total = e.sum(zero, n, e.f64(0.0), [&](Value s) {
        return e.f32ToF64(e.load(scores, {bi, t, s}));
      });
      Value mean = e.div(total, nf);
      Value squares = e.sum(zero, n, e.f64(0.0), [&](Value s) {
        Value dev = e.sub(e.f32ToF64(e.load(scores, {bi, t, s})), mean);
        return e.mul(dev, dev);
      });
      e.store(mean, means, {bi, t});
      Value var = e.div(squares, nf);
      e.store(var, vars, {bi, t});
    });
  });

  // The reference variance: the batch's own mean in training mode, the
  // running value in inference mode.
  Value vBar;
  if (op.getTraining()) {
    Value total = e.sum(zero, B, e.f64(0.0), [&](Value bi) {
      return e.sum(zero, L, e.f64(0.0),
                   [&](Value t) { return e.load(vars, {bi, t}); });
    });
    Value rows = e.indexToF64(e.mul(B, L));
    vBar = e.div(total, rows);
  } else if (runningVar) {
    vBar = e.f32ToF64(e.load(runningVar, {}));
  } else {
    vBar = e.f64(0.0); // policy fixed: V_bar is never read
  }

  Value newRunningVar;
  if (op.getNewRunningVar()) {
    // V_run <- m V_run + (1 - m) V_bar; the first update (V_run == 0) sets it.
    double m = op.getMomentumOrDefault();
    Value old = e.f32ToF64(e.load(runningVar, {}));
    Value keep = e.mul(e.f64(m), old);
    Value blend = e.mul(e.f64(1.0 - m), vBar);
    Value blended = e.add(keep, blend);
    Value first = e.cmpf(arith::CmpFPredicate::OEQ, old, e.f64(0.0));
    Value updated = e.select(first, vBar, blended);
    newRunningVar = memref::AllocOp::create(
        b, loc, MemRefType::get({}, b.getF32Type()), ValueRange{});
    e.store(arith::TruncFOp::create(b, loc, b.getF32Type(), updated),
            newRunningVar, {});
  }

  // Pass 2: budget and selection of every row.
  Value minusOne = e.i32(-1);
  e.loop(zero, B, [&](Value bi) {
    e.loop(zero, L, [&](Value t) {
      Value n = e.add(t, one);
      Value mean = e.load(means, {bi, t});
      Value var = e.load(vars, {bi, t});
      Value budget = rowBudget(e, op, mean, var, vBar, t);
      Value k = arith::MinUIOp::create(b, loc, budget, n);
      e.store(e.indexToI32(k), counts, {bi, t});
      auto keyAt = [&](Value s) {
        return orderKey(e, e.load(scores, {bi, t, s}));
      };

      Value all = e.cmpi(arith::CmpIPredicate::eq, k, n);
      Value written = e.ifElse(
          all,
          [&]() -> SmallVector<Value> {
            // Every visible position is selected.
            e.loop(zero, n, [&](Value s) {
              e.store(e.indexToI32(s), indices, {bi, t, s});
            });
            return {n};
          },
          [&]() -> SmallVector<Value> {
            // T = the largest key with #{key >= T} >= k: the k-th largest
            // score, found bit by bit from the most significant.
            Value bits = e.index(32);
            Value noBits = e.i32(0);
            Value threshold = e.loopCarry(
                zero, bits, noBits,
                [&](Value bit, ValueRange prefix) -> SmallVector<Value> {
                  Value shift = e.indexToI32(e.sub(e.index(31), bit));
                  Value bitValue =
                      arith::ShLIOp::create(b, loc, e.i32(1), shift);
                  Value candidate = e.ori(prefix[0], bitValue);
                  Value atLeast = e.count(zero, n, [&](Value s) {
                    return e.cmpi(arith::CmpIPredicate::uge, keyAt(s),
                                  candidate);
                  });
                  Value enough =
                      e.cmpi(arith::CmpIPredicate::uge, atLeast, k);
                  return {e.select(enough, candidate, prefix[0])};
                })[0];
            // All keys above T are in; of those equal to T, the `need`
            // largest positions are (ties go to the more recent position).
            Value above = e.count(zero, n, [&](Value s) {
              return e.cmpi(arith::CmpIPredicate::ugt, keyAt(s), threshold);
            });
            Value need = e.sub(k, above);
            Value cut = e.loopCarry(
                zero, n, ValueRange{zero, n},
                [&](Value i, ValueRange carried) -> SmallVector<Value> {
                  Value last = e.sub(n, one);
                  Value s = e.sub(last, i);
                  Value isTie =
                      e.cmpi(arith::CmpIPredicate::eq, keyAt(s), threshold);
                  Value wanted =
                      e.cmpi(arith::CmpIPredicate::ult, carried[0], need);
                  Value take = e.andi(isTie, wanted);
                  Value found = e.add(carried[0], one);
                  Value nextFound = e.select(take, found, carried[0]);
                  Value nextCut = e.select(take, s, carried[1]);
                  return {nextFound, nextCut};
                })[1];
            // Write the selected positions in ascending order.
            return {e.loopCarry(
                zero, n, zero,
                [&](Value s, ValueRange pos) -> SmallVector<Value> {
                  Value key = keyAt(s);
                  Value isAbove =
                      e.cmpi(arith::CmpIPredicate::ugt, key, threshold);
                  Value isTie =
                      e.cmpi(arith::CmpIPredicate::eq, key, threshold);
                  Value pastCut = e.cmpi(arith::CmpIPredicate::uge, s, cut);
                  Value isTakenTie = e.andi(isTie, pastCut);
                  Value selected = e.ori(isAbove, isTakenTie);
                  e.ifThen(selected, [&]() {
                    e.store(e.indexToI32(s), indices, {bi, t, pos[0]});
                  });
                  Value next = e.add(pos[0], one);
                  return {e.select(selected, next, pos[0])};
                })[0]};
          })[0];
      // Pad the rest of the row with -1.
      e.loop(written, K, [&](Value j) { e.store(minusOne, indices, {bi, t, j}); });
    });
  });

  SmallVector<Value> results;
  results.push_back(e.toTensor(indices, op.getIndices().getType()));
  results.push_back(e.toTensor(counts, op.getCounts().getType()));
  if (newRunningVar)
    results.push_back(
        e.toTensor(newRunningVar, op.getNewRunningVar().getType()));
  rewriter.replaceOp(op, results);
}

//===----------------------------------------------------------------------===//
// gsa.sparse_attention
//===----------------------------------------------------------------------===//

void lowerSparseAttention(SparseAttentionOp op, IRRewriter &rewriter) {
  rewriter.setInsertionPoint(op);
  Emitter e(rewriter, op.getLoc());
  OpBuilder &b = e.builder();
  Location loc = op.getLoc();
  Value q = e.toBuffer(op.getQ());
  Value k = e.toBuffer(op.getK());
  Value v = e.toBuffer(op.getV());
  Value indices = e.toBuffer(op.getIndices());
  Value counts = e.toBuffer(op.getCounts());
  Value gv = op.getValueGate() ? e.toBuffer(op.getValueGate()) : Value();
  Value go = op.getOutputGate() ? e.toBuffer(op.getOutputGate()) : Value();
  Value B = e.dim(q, 0);
  Value L = e.dim(q, 1);
  Value NH = e.dim(q, 2);
  Value D = e.dim(q, 3);
  Value NKV = e.dim(k, 2);
  Value K = e.dim(indices, 2);
  Value group = arith::DivUIOp::create(b, loc, NH, NKV);
  Value scale = e.scaleOr(op.getScale(), D);
  Value zero = e.index(0);
  bool hasScoreMod = !op.getScoreMod().empty();

  Value out = e.alloc(op.getO().getType(), {B, L, NH, D});
  Value lse = e.alloc(op.getLse().getType(), {B, L, NH});
  Value acc = e.allocTemp(b.getF32Type(), {D});

  e.loop(zero, B, [&](Value bi) {
    e.loop(zero, L, [&](Value t) {
      // counts outside [0, K] are clamped to it.
      Value rawCount = e.i32ToIndex(e.load(counts, {bi, t}));
      Value capped = arith::MinSIOp::create(b, loc, rawCount, K);
      Value count = arith::MaxSIOp::create(b, loc, capped, zero);
      e.loop(zero, NH, [&](Value h) {
        Value kvh = arith::DivUIOp::create(b, loc, h, group);
        e.loop(zero, D, [&](Value d) { e.store(e.f32(0.0), acc, {d}); });
        // Online softmax over the selected positions: running max m and
        // running sum l, acc rescaled whenever m grows.
        SmallVector<Value> ml = e.loopCarry(
            zero, count, ValueRange{e.f32(-kInf), e.f32(0.0)},
            [&](Value j, ValueRange carried) -> SmallVector<Value> {
              Value m = carried[0], l = carried[1];
              Value s = e.i32ToIndex(e.load(indices, {bi, t, j}));
              // Only visible positions 0 <= s <= t count; -1 padding and
              // anything else is skipped.
              Value nonNegative = e.cmpi(arith::CmpIPredicate::sge, s, zero);
              Value causal = e.cmpi(arith::CmpIPredicate::sle, s, t);
              Value visible = e.andi(nonNegative, causal);
              return e.ifElse(
                  visible,
                  [&]() -> SmallVector<Value> {
                    Value dot = e.sum(zero, D, e.f32(0.0), [&](Value d) {
                      Value x = e.loadF32(q, {bi, t, h, d});
                      Value y = e.loadF32(k, {bi, s, kvh, d});
                      return e.mul(x, y);
                    });
                    Value score = e.mul(scale, dot);
                    if (hasScoreMod)
                      score = e.inlineRegion(op.getScoreMod(),
                                             {score, bi, h, t, s});
                    // A score of -inf (masked by score_mod) has weight 0.
                    Value masked = e.cmpf(arith::CmpFPredicate::OEQ, score,
                                          e.f32(-kInf));
                    return e.ifElse(
                        masked, [&]() -> SmallVector<Value> { return {m, l}; },
                        [&]() -> SmallVector<Value> {
                          Value mNew = arith::MaximumFOp::create(b, loc, m, score);
                          Value alpha = e.exp(e.sub(m, mNew));
                          Value shifted = e.sub(score, mNew);
                          Value p = e.exp(shifted);
                          e.loop(zero, D, [&](Value d) {
                            Value value = e.loadF32(v, {bi, s, kvh, d});
                            if (gv) {
                              Value gate =
                                  e.sigmoid(e.loadF32(gv, {bi, s, kvh, d}));
                              value = e.mul(value, gate);
                            }
                            Value old = e.load(acc, {d});
                            Value kept = e.mul(old, alpha);
                            Value added = e.mul(p, value);
                            e.store(e.add(kept, added), acc, {d});
                          });
                          Value lKept = e.mul(l, alpha);
                          return {mNew, e.add(lKept, p)};
                        });
                  },
                  [&]() -> SmallVector<Value> { return {m, l}; });
            });
        Value m = ml[0], l = ml[1];
        Value empty = e.cmpf(arith::CmpFPredicate::OEQ, l, e.f32(0.0));
        Value invL = e.div(e.f32(1.0), l);
        e.loop(zero, D, [&](Value d) {
          Value normalised = e.mul(e.load(acc, {d}), invL);
          Value value = e.select(empty, e.f32(0.0), normalised);
          if (go) {
            Value gate = e.sigmoid(e.loadF32(go, {bi, t, h, d}));
            value = e.mul(value, gate);
          }
          e.storeF32(value, out, {bi, t, h, d});
        });
        Value logL = math::LogOp::create(b, loc, l);
        Value logSum = e.add(m, logL);
        Value lseValue = e.select(empty, e.f32(-kInf), logSum);
        e.store(lseValue, lse, {bi, t, h});
      });
    });
  });
  Value outTensor = e.toTensor(out, op.getO().getType());
  Value lseTensor = e.toTensor(lse, op.getLse().getType());
  rewriter.replaceOp(op, {outTensor, lseTensor});
}

//===----------------------------------------------------------------------===//
// gsa.sigmoid
//===----------------------------------------------------------------------===//

void lowerSigmoid(SigmoidOp op, IRRewriter &rewriter) {
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  Type type = op.getType();
  Value one = arith::ConstantOp::create(rewriter, loc,
                                        rewriter.getFloatAttr(type, 1.0));
  Value negated = arith::NegFOp::create(rewriter, loc, op.getX());
  Value denominator = arith::AddFOp::create(
      rewriter, loc, one, math::ExpOp::create(rewriter, loc, negated));
  rewriter.replaceOpWithNewOp<arith::DivFOp>(op, one, denominator);
}

//===----------------------------------------------------------------------===//
// The pass
//===----------------------------------------------------------------------===//

struct ConvertGSAToLoopsPass
    : gsa::impl::ConvertGSAToLoopsBase<ConvertGSAToLoopsPass> {
  void runOnOperation() override {
    Operation *root = getOperation();
    WalkResult composite = root->walk([](GatedSparseAttentionOp op) {
      op.emitOpError("must be decomposed before lowering to loops (run "
                     "--gsa-decompose first)");
      return WalkResult::interrupt();
    });
    if (composite.wasInterrupted())
      return signalPassFailure();

    IRRewriter rewriter(&getContext());
    SmallVector<Operation *> fused;
    root->walk([&](Operation *op) {
      if (isa<IndexerOp, AdaptiveTopKOp, SparseAttentionOp>(op))
        fused.push_back(op);
    });
    for (Operation *op : fused) {
      if (auto indexer = dyn_cast<IndexerOp>(op))
        lowerIndexer(indexer, rewriter);
      else if (auto select = dyn_cast<AdaptiveTopKOp>(op))
        lowerAdaptiveTopK(select, rewriter);
      else
        lowerSparseAttention(cast<SparseAttentionOp>(op), rewriter);
    }
    // Sigmoids come from the inlined regions and the gates; lower them last.
    SmallVector<SigmoidOp> sigmoids;
    root->walk([&](SigmoidOp op) { sigmoids.push_back(op); });
    for (SigmoidOp op : sigmoids)
      lowerSigmoid(op, rewriter);
  }
};

} // namespace
