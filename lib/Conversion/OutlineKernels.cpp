//===- OutlineKernels.cpp - gsa-outline-kernels: launches into gsa_kernels ===//
//
// The tile stages build kernels as gpu.launch bodies, next to the host code
// that allocates their buffers; this pass moves each into the one
// gpu.module the runtime serialises (@gsa_kernels, beside the kernels
// convert-gsa-to-gpu builds) under the name the launch carries, and leaves
// a gpu.launch_func on the captured buffers: the runtime's launch manifest.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/GPU/Utils/GPUUtils.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/SymbolTable.h"

#include "GPUKernels.h"

#include <fmt/format.h>

namespace gsa {
#define GEN_PASS_DEF_GSAOUTLINEKERNELS
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;
using namespace gsa;
using namespace gsa::detail;

namespace {

struct GSAOutlineKernelsPass
    : gsa::impl::GSAOutlineKernelsBase<GSAOutlineKernelsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<gpu::LaunchOp> launches;
    module.walk([&](gpu::LaunchOp launch) {
      if (launch->hasAttr(kKernelNameAttr))
        launches.push_back(launch);
    });
    if (launches.empty())
      return;
    for (gpu::LaunchOp launch : launches) {
      Operation *tileOp = nullptr;
      launch.walk([&](Operation *op) {
        if (!tileOp && op->getName().getStringRef().starts_with("gsa.tile."))
          tileOp = op;
      });
      if (tileOp) {
        tileOp->emitOpError("is still a block-level tile op: run "
                            "gsa-stage-shared and gsa-map-tensor-cores before "
                            "gsa-outline-kernels");
        return signalPassFailure();
      }
    }

    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    auto kernels = module.lookupSymbol<gpu::GPUModuleOp>("gsa_kernels");
    if (!kernels) {
      OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(mb, module.getLoc(), "gsa_kernels");
    }
    SymbolTable symbols(kernels);
    for (gpu::LaunchOp launch : launches) {
      auto name = launch->getAttrOfType<StringAttr>(kKernelNameAttr);
      if (symbols.lookup(name)) {
        launch.emitOpError(fmt::format("kernel name '{}' is taken in "
                                       "@gsa_kernels",
                                       name.getValue().str()));
        return signalPassFailure();
      }
      SmallVector<Value> operands;
      gpu::GPUFuncOp kernel = outlineKernelFunc(launch, name, operands);
      symbols.insert(kernel);
      kernel->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                      UnitAttr::get(ctx));
      if (auto cap = launch->getAttrOfType<IntegerAttr>(kMaxRegistersAttr))
        kernel->setAttr(NVVM::NVVMDialect::getMaxnregAttrName(), cap);
      // The tensor maps the launch reads (gsa-stage-shared's TMA copies)
      // are passed by value (gsa-grid-constant-params).
      SmallVector<int32_t> maps;
      for (auto [i, operand] : llvm::enumerate(operands))
        if (operand.getDefiningOp<TensorMapOp>())
          maps.push_back(int32_t(i));
      if (!maps.empty())
        kernel->setAttr(kTensorMapArgsAttr,
                        DenseI32ArrayAttr::get(ctx, maps));
      // 16-byte aligned, for the 16-byte cp.async / vector accesses; the
      // rows rings of gsa-stage-shared (stages x rows x columns) 1024-byte
      // aligned, where wgmma's 128-byte swizzle atoms must start.
      for (unsigned i = 0; i < kernel.getNumWorkgroupAttributions(); ++i) {
        auto type =
            cast<MemRefType>(kernel.getWorkgroupAttributions()[i].getType());
        kernel.setWorkgroupAttributionAttr(
            i, LLVM::LLVMDialect::getAlignAttrName(),
            IntegerAttr::get(IntegerType::get(ctx, 64),
                             type.getRank() == 3 ? 1024 : 16));
      }
      gpu::KernelDim3 block = launch.getBlockSizeOperandValues();
      auto x = block.x.getDefiningOp<arith::ConstantIndexOp>();
      auto y = block.y.getDefiningOp<arith::ConstantIndexOp>();
      auto z = block.z.getDefiningOp<arith::ConstantIndexOp>();
      if (x && y && z)
        kernel.setKnownBlockSizeAttr(DenseI32ArrayAttr::get(
            ctx, {int32_t(x.value()), int32_t(y.value()), int32_t(z.value())}));
      OpBuilder b(launch);
      gpu::LaunchFuncOp::create(b, launch.getLoc(), kernel,
                                launch.getGridSizeOperandValues(), block,
                                launch.getDynamicSharedMemorySize(), operands);
      launch.erase();
    }
  }
};

} // namespace
