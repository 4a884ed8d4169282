//===- GSAToGPU.cpp - the gsa ops as GPU kernels ---------------------------===//
//
// First GPU lowering: gsa.sparse_attention becomes a gpu.func kernel in the
// gpu.module @gsa_kernels and the op a gpu.launch_func on flat buffers.
//
// Kernel design (a baseline for the Hopper work of issue 6, not its end):
// one CTA of 4 warps per (query t, key/value head, batch b). All query heads
// of the GQA group share S_t, so the CTA walks S_t once and every selected
// key/value row is fetched from memory once per group (the other warps hit
// it in L1/L2). A warp owns one query head at a time; lane i holds elements
// i, i+32, ... of the head dimension, so each row load is one coalesced
// transaction per warp; the dot product is a 5-step xor-shuffle reduction;
// the softmax is online (running max m, sum l, per-lane accumulators),
// computed in base 2 with ex2.approx. sigmoid is 0.5 * tanh.approx(x/2) + 0.5.
// Nothing of size L x L, and nothing per (t, s) pair, touches memory.
//
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/PatternMatch.h"

#include "Emitter.h"

#include <cmath>
#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_CONVERTGSATOGPU
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using gsa::detail::Emitter;
using gsa::detail::kInf;

namespace {

constexpr int64_t kWarpSize = 32;
constexpr int64_t kWarpsPerBlock = 4;
constexpr double kLog2E = 1.4426950408889634;
constexpr double kLn2 = 0.6931471805599453;

/// One f32 PTX instruction `op dst, src;` (approximate transcendental).
Value ptxUnary(OpBuilder &b, Location loc, StringRef instruction, Value x) {
  std::string code = (instruction + " $0, $1;").str();
  auto op = NVVM::InlinePtxOp::create(b, loc, TypeRange{b.getF32Type()},
                                      ValueRange{x}, ValueRange{},
                                      b.getStringAttr(code), Value());
  return op.getResult(0);
}

Value exp2Approx(OpBuilder &b, Location loc, Value x) {
  return ptxUnary(b, loc, "ex2.approx.ftz.f32", x);
}

/// Sum of `value` over the 32 lanes of a warp, in every lane.
Value warpSum(OpBuilder &b, Location loc, Value value) {
  for (int32_t offset = kWarpSize / 2; offset >= 1; offset /= 2) {
    auto shuffle = gpu::ShuffleOp::create(b, loc, value, offset, kWarpSize,
                                          gpu::ShuffleMode::XOR);
    value = arith::AddFOp::create(b, loc, value, shuffle.getShuffleResult());
  }
  return value;
}

/// Flattens a tensor operand to the 1-D buffer a kernel takes.
Value flatBuffer(Emitter &e, Value tensor) {
  OpBuilder &b = e.builder();
  Value buffer = e.toBuffer(tensor);
  auto type = cast<MemRefType>(buffer.getType());
  if (type.getRank() == 1)
    return buffer;
  ReassociationIndices all;
  for (int64_t i = 0; i < type.getRank(); ++i)
    all.push_back(i);
  return memref::CollapseShapeOp::create(b, e.location(), buffer,
                                         ArrayRef<ReassociationIndices>{all});
}

Value collapse(OpBuilder &b, Location loc, Value buffer) {
  auto type = cast<MemRefType>(buffer.getType());
  ReassociationIndices all;
  for (int64_t i = 0; i < type.getRank(); ++i)
    all.push_back(i);
  return memref::CollapseShapeOp::create(b, loc, buffer,
                                         ArrayRef<ReassociationIndices>{all});
}

MemRefType flatType(Type tensorType) {
  auto t = cast<RankedTensorType>(tensorType);
  return MemRefType::get({t.getNumElements()}, t.getElementType());
}

/// Builds the kernel body of one gsa.sparse_attention.
void buildAttentionKernel(SparseAttentionOp op, gpu::GPUFuncOp kernel) {
  auto qType = op.getQ().getType();
  int64_t L = qType.getDimSize(1), NH = qType.getDimSize(2),
          D = qType.getDimSize(3);
  int64_t NKV = op.getK().getType().getDimSize(2);
  int64_t K = op.getIndices().getType().getDimSize(2);
  int64_t group = NH / NKV;
  int64_t perLane = D / kWarpSize;
  bool hasGV = static_cast<bool>(op.getValueGate());
  bool hasGO = static_cast<bool>(op.getOutputGate());
  bool hasScoreMod = !op.getScoreMod().empty();

  Block &entry = kernel.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  Location loc = op.getLoc();
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
  Value one = e.index(1);
  Value cL = e.index(L), cNH = e.index(NH), cNKV = e.index(NKV),
        cD = e.index(D), cK = e.index(K), cGroup = e.index(group);
  (void)one;

  // The query row of (b, t) and its budget, clamped to [0, K].
  Value row = e.add(e.mul(bi, cL), t);
  Value rawCount = e.i32ToIndex(e.load(counts, {row}));
  Value capped = arith::MinSIOp::create(b, loc, rawCount, cK);
  Value count = arith::MaxSIOp::create(b, loc, capped, zero);
  float scale = op.getScaleOrDefault();
  Value log2e = e.f32(kLog2E);

  // Lane-owned element offsets lane + 32 * i of the head dimension.
  SmallVector<Value> laneOffsets;
  for (int64_t i = 0; i < perLane; ++i)
    laneOffsets.push_back(e.add(lane, e.index(i * kWarpSize)));

  // Warps take the group's query heads round-robin.
  scf::ForOp::create(
      b, loc, warp, cGroup, e.index(kWarpsPerBlock), ValueRange{},
      [&](OpBuilder &nested, Location, Value hh, ValueRange) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPoint(nested.getInsertionBlock(),
                            nested.getInsertionPoint());
        Value h = e.add(e.mul(kvh, cGroup), hh);
        Value qBase = e.mul(e.add(e.mul(row, cNH), h), cD);
        SmallVector<Value> qReg;
        for (Value off : laneOffsets) {
          Value x = e.loadF32(q, {e.add(qBase, off)});
          qReg.push_back(e.mul(x, e.f32(scale)));
        }
        SmallVector<Value> init = {e.f32(-kInf), e.f32(0.0)};
        for (int64_t i = 0; i < perLane; ++i)
          init.push_back(e.f32(0.0));

        SmallVector<Value> state = e.loopCarry(
            zero, count, init,
            [&](Value j, ValueRange carried) -> SmallVector<Value> {
              SmallVector<Value> same(carried.begin(), carried.end());
              Value s = e.i32ToIndex(e.load(indices, {e.add(e.mul(row, cK), j)}));
              Value nonNegative = e.cmpi(arith::CmpIPredicate::sge, s, zero);
              Value causal = e.cmpi(arith::CmpIPredicate::sle, s, t);
              Value visible = e.andi(nonNegative, causal);
              // Uniform across the warp (one s per iteration), so the
              // shuffles below run with every lane.
              return e.ifElse(
                  visible,
                  [&]() -> SmallVector<Value> {
                    Value kvRow = e.add(e.mul(bi, cL), s);
                    Value kvBase =
                        e.mul(e.add(e.mul(kvRow, cNKV), kvh), cD);
                    Value partial = e.f32(0.0);
                    for (auto [i, off] : llvm::enumerate(laneOffsets)) {
                      Value kx = e.loadF32(k, {e.add(kvBase, off)});
                      partial = LLVM::FMAOp::create(b, loc, qReg[i], kx, partial);
                    }
                    Value score = warpSum(b, loc, partial);
                    if (hasScoreMod)
                      score = e.inlineRegion(op.getScoreMod(),
                                             {score, bi, h, t, s});
                    Value masked = e.cmpf(arith::CmpFPredicate::OEQ, score,
                                          e.f32(-kInf));
                    return e.ifElse(
                        masked, [&]() -> SmallVector<Value> { return same; },
                        [&]() -> SmallVector<Value> {
                          Value m = carried[0], l = carried[1];
                          Value mNew = arith::MaximumFOp::create(b, loc, m, score);
                          Value alpha =
                              exp2Approx(b, loc, e.mul(e.sub(m, mNew), log2e));
                          Value p = exp2Approx(
                              b, loc, e.mul(e.sub(score, mNew), log2e));
                          SmallVector<Value> next = {
                              mNew, e.add(e.mul(l, alpha), p)};
                          for (auto [i, off] : llvm::enumerate(laneOffsets)) {
                            Value vx = e.loadF32(v, {e.add(kvBase, off)});
                            if (hasGV) {
                              Value gate = e.sigmoid(
                                  e.loadF32(gv, {e.add(kvBase, off)}));
                              vx = e.mul(vx, gate);
                            }
                            Value kept = e.mul(carried[2 + i], alpha);
                            next.push_back(
                                LLVM::FMAOp::create(b, loc, p, vx, kept));
                          }
                          return next;
                        });
                  },
                  [&]() -> SmallVector<Value> { return same; });
            });

        Value m = state[0], l = state[1];
        Value empty = e.cmpf(arith::CmpFPredicate::OEQ, l, e.f32(0.0));
        Value invL = e.div(e.f32(1.0), l);
        for (auto [i, off] : llvm::enumerate(laneOffsets)) {
          Value normalised = e.mul(state[2 + i], invL);
          Value value = e.select(empty, e.f32(0.0), normalised);
          if (hasGO) {
            Value gate = e.sigmoid(e.loadF32(go, {e.add(qBase, off)}));
            value = e.mul(value, gate);
          }
          e.storeF32(value, out, {e.add(qBase, off)});
        }
        Value lane0 = e.cmpi(arith::CmpIPredicate::eq, lane, zero);
        e.ifThen(lane0, [&]() {
          Value log2L = ptxUnary(b, loc, "lg2.approx.ftz.f32", l);
          Value logSum = e.add(m, e.mul(log2L, e.f32(kLn2)));
          Value value = e.select(empty, e.f32(-kInf), logSum);
          e.store(value, lse, {e.add(e.mul(row, cNH), h)});
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
  if (D % kWarpSize != 0 || D > 256)
    return op.emitOpError(fmt::format(
        "GPU kernel needs d_k to be a multiple of 32 and at most 256, but "
        "d_k = {}",
        D));
  return success();
}

struct ConvertGSAToGPUPass
    : gsa::impl::ConvertGSAToGPUBase<ConvertGSAToGPUPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    bool failedAny = false;
    module.walk([&](Operation *op) {
      if (isa<GatedSparseAttentionOp>(op)) {
        op->emitOpError("must be decomposed before lowering to the GPU (run "
                        "--gsa-decompose first)");
        failedAny = true;
      } else if (isa<IndexerOp, AdaptiveTopKOp>(op)) {
        op->emitOpError("has no GPU lowering yet: run the indexer and the "
                        "selection on the CPU path (convert-gsa-to-loops)");
        failedAny = true;
      }
    });
    if (failedAny)
      return signalPassFailure();

    SmallVector<SparseAttentionOp> attentions;
    module.walk([&](SparseAttentionOp op) { attentions.push_back(op); });
    if (attentions.empty())
      return;
    for (SparseAttentionOp op : attentions)
      if (failed(checkStatic(op)))
        return signalPassFailure();

    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
    auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("gsa_kernels");
    if (!kernels)
      kernels = gpu::GPUModuleOp::create(mb, module.getLoc(), "gsa_kernels");

    IRRewriter rewriter(ctx);
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
      buildAttentionKernel(op, kernel);

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
