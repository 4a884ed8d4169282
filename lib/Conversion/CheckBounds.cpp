//===- CheckBounds.cpp - gsa-check-bounds -----------------------------------===//
//
// A debugging pass: every memref / vector access of the GPU kernels checks
// its indices against its memref's shape and traps with a message naming
// the kernel and the access when one is outside. The kernels compute their
// addresses themselves; a load past a buffer whose value is masked
// afterwards is silent where the buffer lies inside a larger allocation
// and faults where the buffer ends one (the sample kernel's key loads read
// 8 KiB past ki that way until 2026-12-07, docs/perf-log.md), and
// compute-sanitizer sees only the allocations, not the buffers inside
// them. Here every buffer is checked at its own extent.
//
//===----------------------------------------------------------------------===//

#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSACHECKBOUNDS
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;

namespace {

/// The access's memref, indices and, for a vector access, the vector's
/// shape (its dimensions along the memref's innermost ones; none for a
/// scalar access); nullopt for other ops.
struct Access {
  Value memref;
  ValueRange indices;
  ArrayRef<int64_t> vector = {};
  /// Elements the access covers along memref dimension `d` from its index.
  int64_t span(int64_t d, int64_t rank) const {
    int64_t first = rank - int64_t(vector.size());
    return d >= first ? vector[d - first] : 1;
  }
};

std::optional<Access> accessOf(Operation *op) {
  if (auto load = dyn_cast<memref::LoadOp>(op))
    return Access{load.getMemRef(), load.getIndices()};
  if (auto store = dyn_cast<memref::StoreOp>(op))
    return Access{store.getMemRef(), store.getIndices()};
  if (auto rmw = dyn_cast<memref::AtomicRMWOp>(op))
    return Access{rmw.getMemref(), rmw.getIndices()};
  if (auto load = dyn_cast<vector::LoadOp>(op))
    return Access{load.getBase(), load.getIndices(),
                  load.getVectorType().getShape()};
  if (auto store = dyn_cast<vector::StoreOp>(op))
    return Access{store.getBase(), store.getIndices(),
                  store.getVectorType().getShape()};
  return std::nullopt;
}

/// "file:line:col" of a location, or its printed form.
std::string describe(Location loc) {
  if (auto file = dyn_cast<FileLineColLoc>(loc))
    return fmt::format("{}:{}:{}", file.getFilename().str(), file.getLine(),
                       file.getColumn());
  if (auto fused = dyn_cast<FusedLoc>(loc))
    for (Location inner : fused.getLocations())
      if (isa<FileLineColLoc>(inner))
        return describe(inner);
  if (auto name = dyn_cast<NameLoc>(loc))
    return describe(name.getChildLoc());
  return "unknown location";
}

/// Before `op`: per dimension, index < extent and index + span - 1 <
/// extent (unsigned), else print and trap.
void checkAccess(Operation *op, const Access &access, StringRef kernel) {
  auto type = cast<MemRefType>(access.memref.getType());
  OpBuilder b(op);
  Location loc = op->getLoc();
  std::string where = describe(loc);
  int64_t rank = type.getRank();
  for (int64_t d = 0; d < rank; ++d) {
    Value index = access.indices[d];
    int64_t span = access.span(d, rank);
    Value extent =
        type.isDynamicDim(d)
            ? memref::DimOp::create(b, loc, access.memref, d).getResult()
            : arith::ConstantIndexOp::create(b, loc, type.getDimSize(d))
                  .getResult();
    // The last element the access touches (index + span - 1) must lie
    // below the extent, and the addition must not wrap: index < extent
    // and span - 1 < extent - index.
    Value inside = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult,
                                         index, extent);
    if (span > 1) {
      Value last = arith::AddIOp::create(
          b, loc, index, arith::ConstantIndexOp::create(b, loc, span - 1));
      inside = arith::AndIOp::create(
          b, loc, inside,
          arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, last,
                                extent));
    }
    Value outside = arith::XOrIOp::create(
        b, loc, inside,
        arith::ConstantOp::create(b, loc, b.getBoolAttr(true)));
    scf::IfOp::create(b, loc, outside, [&](OpBuilder &then, Location at) {
      Type i64 = then.getI64Type();
      std::string format = fmt::format(
          "gsa-check-bounds: kernel {}, {} at {}: index %lld (+ {} elements) "
          "of dimension {} outside [0, %lld) (block %u, thread %u)\n",
          kernel.str(), op->getName().getStringRef().str(), where, span - 1,
          d);
      Value block = arith::IndexCastUIOp::create(
          then, at, then.getI32Type(),
          gpu::BlockIdOp::create(then, at, gpu::Dimension::x));
      Value thread = arith::IndexCastUIOp::create(
          then, at, then.getI32Type(),
          gpu::ThreadIdOp::create(then, at, gpu::Dimension::x));
      gpu::PrintfOp::create(
          then, at, then.getStringAttr(format),
          ValueRange{arith::IndexCastOp::create(then, at, i64, index),
                     arith::IndexCastOp::create(then, at, i64, extent), block,
                     thread});
      LLVM::Trap::create(then, at);
      scf::YieldOp::create(then, at);
    });
  }
}

struct GSACheckBoundsPass
    : gsa::impl::GSACheckBoundsBase<GSACheckBoundsPass> {
  void runOnOperation() override {
    getOperation()->walk([&](gpu::GPUFuncOp func) {
      if (!func.isKernel())
        return;
      SmallVector<std::pair<Operation *, Access>> accesses;
      func.walk([&](Operation *op) {
        if (std::optional<Access> access = accessOf(op))
          if (isa<MemRefType>(access->memref.getType()))
            accesses.push_back({op, *access});
      });
      for (auto &[op, access] : accesses)
        checkAccess(op, access, func.getName());
    });
  }
};

} // namespace
