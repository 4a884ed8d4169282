//===- GSAToGPU.cpp - the gsa ops as GPU kernels ---------------------------===//
//
// First GPU lowering: gsa.sparse_attention becomes a gpu.func kernel in the
// gpu.module @gsa_kernels and the op a gpu.launch_func on flat buffers.
//
// Kernel design (v2; the Hopper work of issue 6 goes further): one CTA of 4
// warps per (query t, key/value head, batch b). All query heads of the GQA
// group share S_t: the warps split S_t, each K/V row is loaded once per CTA
// and feeds the dot products of all G heads of the group (G independent
// xor-shuffle reductions in lockstep), lane i holding the d_k/32 contiguous
// elements [i*d_k/32, (i+1)*d_k/32) of the head dimension, loaded with one
// vector load per row. The online softmax (base 2, ex2.approx) is branch
// free; the warps' partial states meet in shared memory after one barrier.
// sigmoid is 0.5 * tanh.approx(x/2) + 0.5. Nothing of size L x L, and
// nothing per (t, s) pair, touches memory.
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/PatternMatch.h"

#include "GPUEmitter.h"
#include "GPUKernels.h"

#include <cmath>
#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_CONVERTGSATOGPU
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

constexpr int64_t kWarpsPerBlock = 4;

/// Builds the kernel body of one gsa.sparse_attention.
///
/// CTA = (query t, kv head, batch b), 4 warps. The warps split the selected
/// set (warp w takes entries w, w+4, ...), so each K/V row is loaded once per
/// CTA; for each row a warp computes the dot products of all G query heads
/// of the group (G independent shuffle reductions in lockstep) and updates
/// G online-softmax states without branches. The warps' partial states
/// (m, l, acc) meet in shared memory after a barrier and each warp then
/// finishes heads w, w+4, ... of the group.
void buildAttentionKernel(SparseAttentionOp op, gpu::GPUFuncOp kernel,
                          int64_t rowsInFlight) {
  MLIRContext *ctx = op.getContext();
  auto qType = op.getQ().getType();
  int64_t L = qType.getDimSize(1), NH = qType.getDimSize(2),
          D = qType.getDimSize(3);
  int64_t NKV = op.getK().getType().getDimSize(2);
  int64_t K = op.getIndices().getType().getDimSize(2);
  int64_t G = NH / NKV;
  int64_t E = D / kWarpSize;
  int64_t W = kWarpsPerBlock;
  bool hasGV = static_cast<bool>(op.getValueGate());
  bool hasGO = static_cast<bool>(op.getOutputGate());
  bool hasScoreMod = !op.getScoreMod().empty();
  Location loc = op.getLoc();

  // Shared memory for the warps' partial softmax states.
  auto workgroup = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
  Type f32 = Float32Type::get(ctx);
  auto smemType = [&](int64_t n) {
    return MemRefType::get({n}, f32, MemRefLayoutAttrInterface(), workgroup);
  };
  Value smemM = kernel.addWorkgroupAttribution(smemType(W * G), loc);
  Value smemL = kernel.addWorkgroupAttribution(smemType(W * G), loc);
  Value smemAcc = kernel.addWorkgroupAttribution(smemType(W * G * D), loc);

  Block &entry = kernel.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Emitter e(b, loc);
  unsigned arg = 0;
  Value q = entry.getArgument(arg++), k = entry.getArgument(arg++),
        v = entry.getArgument(arg++), indices = entry.getArgument(arg++),
        counts = entry.getArgument(arg++);
  Value gv = hasGV ? entry.getArgument(arg++) : Value();
  Value go = hasGO ? entry.getArgument(arg++) : Value();
  Value out = entry.getArgument(arg++), lse = entry.getArgument(arg++);

  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value t = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value kvh = gpu::BlockIdOp::create(b, loc, gpu::Dimension::y);
  Value bi = gpu::BlockIdOp::create(b, loc, gpu::Dimension::z);
  Value warpSize = e.index(kWarpSize);
  Value warp = arith::DivUIOp::create(b, loc, tid, warpSize);
  Value lane = arith::RemUIOp::create(b, loc, tid, warpSize);
  Value zero = e.index(0);
  Value cL = e.index(L), cNH = e.index(NH), cNKV = e.index(NKV),
        cD = e.index(D), cK = e.index(K), cG = e.index(G), cW = e.index(W);
  Value log2e = e.f32(kLog2E);
  Value negInf = e.f32(-kInf);

  Value row = e.add(e.mul(bi, cL), t);
  Value rawCount = e.i32ToIndex(e.load(counts, {row}));
  Value capped = arith::MinSIOp::create(b, loc, rawCount, cK);
  Value count = arith::MaxSIOp::create(b, loc, capped, zero);
  float scale = op.getScaleOrDefault();

  // Lane l owns elements [l*E, l*E + E) of the head dimension: one vector
  // load per row and lane.
  Value laneBase = e.mul(lane, e.index(E));
  SmallVector<Value> laneOffsets;
  for (int64_t i = 0; i < E; ++i)
    laneOffsets.push_back(e.add(laneBase, e.index(i)));

  // The group's queries, pre-scaled, in registers: qReg[g][i].
  SmallVector<SmallVector<Value>> qReg(G);
  SmallVector<Value> heads, qBases;
  for (int64_t g = 0; g < G; ++g) {
    Value h = e.add(e.mul(kvh, cG), e.index(g));
    Value qBase = e.mul(e.add(e.mul(row, cNH), h), cD);
    heads.push_back(h);
    qBases.push_back(qBase);
    for (Value x : loadLaneRow(b, loc, q, e.add(qBase, laneBase), E))
      qReg[g].push_back(e.mul(x, e.f32(scale)));
  }

  // Loop state per head g: m, l, acc[0..E).
  int64_t stride = 2 + E;
  SmallVector<Value> init;
  for (int64_t g = 0; g < G; ++g) {
    init.push_back(negInf);
    init.push_back(e.f32(0.0));
    for (int64_t i = 0; i < E; ++i)
      init.push_back(e.f32(0.0));
  }
  // Each warp iteration takes R selected rows (j, j + W, ..., j + (R-1)W):
  // their K/V(/gate) loads are issued together, then the dot products of
  // all rows and heads reduce in lockstep, then the online-softmax updates
  // run in row order. Rows past the count or invisible get score -inf
  // (weight 0) and load a safe row (position 0).
  int64_t R = rowsInFlight;
  auto forOp = scf::ForOp::create(
      b, loc, warp, count, e.index(W * R), init,
      [&](OpBuilder &nested, Location, Value j, ValueRange carried) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        SmallVector<Value> positions, visibles;
        SmallVector<SmallVector<Value>> kRows, vRows;
        for (int64_t r = 0; r < R; ++r) {
          Value jr = e.add(j, e.index(r * W));
          Value inRange = e.cmpi(arith::CmpIPredicate::slt, jr, count);
          Value jl = arith::MinSIOp::create(b, loc, jr, e.index(K - 1));
          Value s = e.i32ToIndex(e.load(indices, {e.add(e.mul(row, cK), jl)}));
          Value nonNegative = e.cmpi(arith::CmpIPredicate::sge, s, zero);
          Value causal = e.cmpi(arith::CmpIPredicate::sle, s, t);
          Value visible = e.andi(inRange, e.andi(nonNegative, causal));
          Value safe = e.select(visible, s, zero);
          positions.push_back(safe);
          visibles.push_back(visible);
          Value kvRow = e.add(e.mul(bi, cL), safe);
          Value kvBase = e.mul(e.add(e.mul(kvRow, cNKV), kvh), cD);
          Value rowStart = e.add(kvBase, laneBase);
          kRows.push_back(loadLaneRow(b, loc, k, rowStart, E));
          vRows.push_back(loadLaneRow(b, loc, v, rowStart, E));
          if (hasGV) {
            SmallVector<Value> gates = loadLaneRow(b, loc, gv, rowStart, E);
            for (int64_t i = 0; i < E; ++i)
              vRows.back()[i] = e.mul(vRows.back()[i], e.sigmoid(gates[i]));
          }
        }
        // partial[r][g]: this lane's share of q_g . k_r.
        SmallVector<SmallVector<Value>> partial(R);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t g = 0; g < G; ++g) {
            Value acc = e.f32(0.0);
            for (int64_t i = 0; i < E; ++i)
              acc = LLVM::FMAOp::create(b, loc, qReg[g][i], kRows[r][i], acc);
            partial[r].push_back(acc);
          }
        // R x G reductions in lockstep: independent shuffles overlap.
        for (int32_t offset = kWarpSize / 2; offset >= 1; offset /= 2)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t g = 0; g < G; ++g) {
              auto shuffle = gpu::ShuffleOp::create(
                  b, loc, partial[r][g], offset, kWarpSize,
                  gpu::ShuffleMode::XOR);
              partial[r][g] = arith::AddFOp::create(
                  b, loc, partial[r][g], shuffle.getShuffleResult());
            }
        SmallVector<Value> state(carried.begin(), carried.end());
        for (int64_t r = 0; r < R; ++r) {
          SmallVector<Value> next;
          for (int64_t g = 0; g < G; ++g) {
            Value score = partial[r][g];
            if (hasScoreMod)
              score = e.inlineRegion(op.getScoreMod(),
                                     {score, bi, heads[g], t, positions[r]});
            score = e.select(visibles[r], score, negInf);
            Value m = state[g * stride], l = state[g * stride + 1];
            // Branch-free update; a -inf score (invisible, or masked by
            // score_mod) has weight 0 and leaves the state as it was.
            Value mNew = arith::MaximumFOp::create(b, loc, m, score);
            Value stillEmpty = e.cmpf(arith::CmpFPredicate::OEQ, mNew, negInf);
            Value alphaRaw = exp2Approx(b, loc, e.mul(e.sub(m, mNew), log2e));
            Value alpha = e.select(stillEmpty, e.f32(1.0), alphaRaw);
            Value pRaw = exp2Approx(b, loc, e.mul(e.sub(score, mNew), log2e));
            Value masked = e.cmpf(arith::CmpFPredicate::OEQ, score, negInf);
            Value p = e.select(masked, e.f32(0.0), pRaw);
            next.push_back(mNew);
            next.push_back(LLVM::FMAOp::create(b, loc, l, alpha, p));
            for (int64_t i = 0; i < E; ++i) {
              Value kept = e.mul(state[g * stride + 2 + i], alpha);
              next.push_back(LLVM::FMAOp::create(b, loc, p, vRows[r][i], kept));
            }
          }
          state = next;
        }
        scf::YieldOp::create(b, loc, state);
      });

  // Publish this warp's partial states.
  Value lane0 = e.cmpi(arith::CmpIPredicate::eq, lane, zero);
  for (int64_t g = 0; g < G; ++g) {
    Value slot = e.add(e.mul(warp, cG), e.index(g));
    Value m = forOp.getResult(g * stride), l = forOp.getResult(g * stride + 1);
    e.ifThen(lane0, [&]() {
      e.store(m, smemM, {slot});
      e.store(l, smemL, {slot});
    });
    for (auto [i, off] : llvm::enumerate(laneOffsets))
      e.store(forOp.getResult(g * stride + 2 + i), smemAcc,
              {e.add(e.mul(slot, cD), off)});
  }
  gpu::BarrierOp::create(b, loc);

  // Each warp finishes heads w, w+4, ... of the group.
  scf::ForOp::create(
      b, loc, warp, cG, cW, ValueRange{},
      [&](OpBuilder &nested, Location, Value g, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        SmallVector<Value> ms, slots;
        Value M = negInf;
        for (int64_t w = 0; w < W; ++w) {
          Value slot = e.add(e.mul(e.index(w), cG), g);
          slots.push_back(slot);
          ms.push_back(e.load(smemM, {slot}));
          M = arith::MaximumFOp::create(b, loc, M, ms.back());
        }
        SmallVector<Value> factors;
        Value total = e.f32(0.0);
        for (int64_t w = 0; w < W; ++w) {
          Value none = e.cmpf(arith::CmpFPredicate::OEQ, ms[w], negInf);
          Value f = exp2Approx(b, loc, e.mul(e.sub(ms[w], M), log2e));
          f = e.select(none, e.f32(0.0), f);
          factors.push_back(f);
          total = LLVM::FMAOp::create(b, loc, e.load(smemL, {slots[w]}), f,
                                      total);
        }
        Value empty = e.cmpf(arith::CmpFPredicate::OEQ, total, e.f32(0.0));
        Value invTotal = e.div(e.f32(1.0), total);
        Value h = e.add(e.mul(kvh, cG), g);
        Value qBase = e.mul(e.add(e.mul(row, cNH), h), cD);
        SmallVector<Value> gates;
        if (hasGO)
          gates = loadLaneRow(b, loc, go, e.add(qBase, laneBase), E);
        SmallVector<Value> values;
        for (auto [i, off] : llvm::enumerate(laneOffsets)) {
          Value sum = e.f32(0.0);
          for (int64_t w = 0; w < W; ++w) {
            Value part = e.load(smemAcc, {e.add(e.mul(slots[w], cD), off)});
            sum = LLVM::FMAOp::create(b, loc, part, factors[w], sum);
          }
          Value value = e.select(empty, e.f32(0.0), e.mul(sum, invTotal));
          if (hasGO)
            value = e.mul(value, e.sigmoid(gates[i]));
          values.push_back(value);
        }
        storeLaneRow(b, loc, values, out, e.add(qBase, laneBase));
        e.ifThen(lane0, [&]() {
          Value log2L = ptxUnary(b, loc, "lg2.approx.ftz.f32", total);
          Value logSum = e.add(M, e.mul(log2L, e.f32(kLn2)));
          e.store(e.select(empty, negInf, logSum), lse,
                  {e.add(e.mul(row, cNH), h)});
        });
        scf::YieldOp::create(b, loc);
      });
  gpu::ReturnOp::create(b, loc);
}

/// sigmoid(x) = 0.5 * tanh(x / 2) + 0.5, one MUFU instruction.
void lowerSigmoidForGPU(SigmoidOp op, IRRewriter &rewriter) {
  rewriter.setInsertionPoint(op);
  Location loc = op.getLoc();
  Value x = op.getX();
  if (!x.getType().isF32()) {
    op.emitOpError("GPU lowering supports f32 sigmoids only");
    return;
  }
  Value half = arith::ConstantOp::create(rewriter, loc,
                                         rewriter.getF32FloatAttr(0.5f));
  Value scaled = arith::MulFOp::create(rewriter, loc, x, half);
  Value th = ptxUnary(rewriter, loc, "tanh.approx.f32", scaled);
  Value fma = LLVM::FMAOp::create(rewriter, loc, th, half, half);
  rewriter.replaceOp(op, fma);
}

LogicalResult checkStatic(SparseAttentionOp op) {
  for (Value v : op->getOperands())
    if (!cast<RankedTensorType>(v.getType()).hasStaticShape())
      return op.emitOpError(
          "needs static shapes on the GPU path (the runtime specialises the "
          "program per shape before lowering)");
  int64_t D = op.getQ().getType().getDimSize(3);
  int64_t group = op.getQ().getType().getDimSize(2) /
                  op.getK().getType().getDimSize(2);
  if (group > 8)
    return op.emitOpError(fmt::format(
        "GPU kernel keeps the query heads of a GQA group in registers and "
        "supports n_h / n_kv <= 8, but it is {}",
        group));
  if (D % kWarpSize != 0 || D > 256)
    return op.emitOpError(fmt::format(
        "GPU kernel needs d_k to be a multiple of 32 and at most 256, but "
        "d_k = {}",
        D));
  return success();
}

struct ConvertGSAToGPUPass
    : gsa::impl::ConvertGSAToGPUBase<ConvertGSAToGPUPass> {
  using ConvertGSAToGPUBase::ConvertGSAToGPUBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    bool failedAny = false;
    module.walk([&](GatedSparseAttentionOp op) {
      op->emitOpError("must be decomposed before lowering to the GPU (run "
                      "--gsa-decompose first)");
      failedAny = true;
    });
    if (failedAny)
      return signalPassFailure();

    // The fused ops in program order. An indexer whose only user is a
    // selection is fused into the selection's kernels (its L x L result is
    // never built); any other indexer gets its own kernel.
    SmallVector<Operation *> ops;
    module.walk([&](Operation *op) {
      if (isa<IndexerOp, AdaptiveTopKOp, SparseAttentionOp>(op))
        ops.push_back(op);
    });
    auto fusedIndexer = [](AdaptiveTopKOp op) -> IndexerOp {
      auto indexer = op.getScores().getDefiningOp<IndexerOp>();
      if (indexer && indexer->hasOneUse())
        return indexer;
      return IndexerOp();
    };
    for (Operation *op : ops) {
      LogicalResult ok = success();
      if (auto o = dyn_cast<SparseAttentionOp>(op))
        ok = checkStatic(o);
      else if (auto o = dyn_cast<IndexerOp>(op))
        ok = checkIndexerForGPU(o, selectRowsPerTile);
      else
        ok = checkSelectionForGPU(cast<AdaptiveTopKOp>(op), selectRowsPerTile);
      if (failed(ok))
        return signalPassFailure();
    }
    if (ops.empty())
      return;
    if (attentionRowsInFlight < 1 || attentionRowsInFlight > 8) {
      for (Operation *op : ops)
        if (isa<SparseAttentionOp>(op)) {
          op->emitOpError(fmt::format(
              "the attention kernel takes 1 to 8 rows in flight per warp, "
              "but attention-rows-in-flight = {}",
              attentionRowsInFlight));
          return signalPassFailure();
        }
    }

    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
    auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("gsa_kernels");
    if (!kernels)
      kernels = gpu::GPUModuleOp::create(mb, module.getLoc(), "gsa_kernels");

    IRRewriter rewriter(ctx);
    SmallVector<SparseAttentionOp> attentions;
    for (auto [n, op] : llvm::enumerate(ops)) {
      auto parent = op->getParentOfType<FunctionOpInterface>();
      std::string prefix = fmt::format(
          "{}_{}", parent ? parent.getName().str() : std::string("gsa"), n);
      if (auto select = dyn_cast<AdaptiveTopKOp>(op)) {
        IndexerOp indexer = fusedIndexer(select);
        lowerSelectionToGPU(select, indexer, kernels, rewriter, prefix,
                            selectRowsPerTile, selectTensorCores);
      } else if (auto indexer = dyn_cast<IndexerOp>(op)) {
        if (!indexer->hasOneUse() ||
            !isa<AdaptiveTopKOp>(*indexer->getUsers().begin()))
          lowerIndexerToGPU(indexer, kernels, rewriter, prefix,
                            selectRowsPerTile);
      } else {
        attentions.push_back(cast<SparseAttentionOp>(op));
      }
    }
    for (auto [n, op] : llvm::enumerate(attentions)) {
      Location loc = op.getLoc();
      // Kernel signature: flat buffers, inputs then outputs.
      SmallVector<Value> inputs = {op.getQ(), op.getK(), op.getV(),
                                   op.getIndices(), op.getCounts()};
      if (op.getValueGate())
        inputs.push_back(op.getValueGate());
      if (op.getOutputGate())
        inputs.push_back(op.getOutputGate());
      SmallVector<Type> argTypes;
      for (Value in : inputs)
        argTypes.push_back(flatType(in.getType()));
      argTypes.push_back(flatType(op.getO().getType()));
      argTypes.push_back(flatType(op.getLse().getType()));

      auto parent = op->getParentOfType<FunctionOpInterface>();
      std::string name = fmt::format(
          "{}_sparse_attention_{}",
          parent ? parent.getName().str() : std::string("gsa"), n);
      OpBuilder kb = OpBuilder::atBlockEnd(kernels.getBody());
      auto kernel = gpu::GPUFuncOp::create(kb, loc, name,
                                           FunctionType::get(ctx, argTypes, {}));
      kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                      UnitAttr::get(ctx));
      kernel.setKnownBlockSizeAttr(DenseI32ArrayAttr::get(
          ctx, {int32_t(kWarpSize * kWarpsPerBlock), 1, 1}));
      buildAttentionKernel(op, kernel, attentionRowsInFlight);

      // Host side: flat buffers in, a launch, tensors out.
      rewriter.setInsertionPoint(op);
      Emitter e(rewriter, loc);
      SmallVector<Value> operands;
      for (Value in : inputs)
        operands.push_back(flatBuffer(e, in));
      Value outBuffer = e.alloc(op.getO().getType(), {});
      Value lseBuffer = e.alloc(op.getLse().getType(), {});
      operands.push_back(collapse(rewriter, loc, outBuffer));
      operands.push_back(collapse(rewriter, loc, lseBuffer));
      auto qType = op.getQ().getType();
      gpu::KernelDim3 grid{e.index(qType.getDimSize(1)),
                           e.index(op.getK().getType().getDimSize(2)),
                           e.index(qType.getDimSize(0))};
      gpu::KernelDim3 block{e.index(kWarpSize * kWarpsPerBlock), e.index(1),
                            e.index(1)};
      gpu::LaunchFuncOp::create(rewriter, loc, kernel, grid, block,
                                /*dynamicSharedMemorySize=*/Value(), operands);
      Value oTensor = e.toTensor(outBuffer, op.getO().getType());
      Value lseTensor = e.toTensor(lseBuffer, op.getLse().getType());
      rewriter.replaceOp(op, {oTensor, lseTensor});
    }

    SmallVector<SigmoidOp> sigmoids;
    kernels.walk([&](SigmoidOp op) { sigmoids.push_back(op); });
    for (SigmoidOp op : sigmoids)
      lowerSigmoidForGPU(op, rewriter);
  }
};

} // namespace
