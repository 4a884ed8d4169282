//===- SplitKernelModules.cpp - gsa-split-kernel-modules ------------------===//
//
// A program's kernels all live in gpu.module @gsa_kernels, which the nested
// pipeline of the GPU lowering (canonicalisation, NVVM lowering) walks on
// one thread; sibling modules it runs in parallel. Each kernel moves into a
// module of its own, tagged with the module it came from, and
// gsa-serialize-kernels joins the parts into that module's one binary.
//
//===----------------------------------------------------------------------===//

#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/SymbolTable.h"

#include "GPUKernels.h"

namespace gsa {
#define GEN_PASS_DEF_GSASPLITKERNELMODULES
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;

namespace {

struct GSASplitKernelModulesPass
    : gsa::impl::GSASplitKernelModulesBase<GSASplitKernelModulesPass> {
  void runOnOperation() override {
    ModuleOp top = getOperation();
    SymbolTable symbols(top);
    SmallVector<gpu::GPUModuleOp> modules(top.getOps<gpu::GPUModuleOp>());
    for (gpu::GPUModuleOp module : modules) {
      // Anything but kernels (a helper function, a global) would be needed
      // by several parts: such a module stays whole.
      SmallVector<gpu::GPUFuncOp> kernels;
      bool onlyKernels = true;
      for (Operation &op : module.getBody()->getOperations()) {
        auto func = dyn_cast<gpu::GPUFuncOp>(op);
        if (func && func.isKernel())
          kernels.push_back(func);
        else
          onlyKernels = false;
      }
      if (!onlyKernels || kernels.size() < 2)
        continue;
      StringAttr joins = module.getNameAttr();
      OpBuilder builder(module);
      llvm::StringMap<StringAttr> partOf;
      for (gpu::GPUFuncOp kernel : kernels) {
        auto part = gpu::GPUModuleOp::create(
            builder, module.getLoc(),
            (joins.getValue() + "__" + kernel.getName()).str());
        for (NamedAttribute attr : module->getAttrs())
          if (attr.getName() != SymbolTable::getSymbolAttrName())
            part->setAttr(attr.getName(), attr.getValue());
        part->setAttr(gsa::detail::kJoinsAttr, joins);
        // (Renamed by the table if the name is taken.)
        symbols.insert(part);
        kernel->moveBefore(part.getBody(), part.getBody()->end());
        partOf[kernel.getName()] = part.getNameAttr();
      }
      top.walk([&](gpu::LaunchFuncOp launch) {
        if (launch.getKernelModuleName() != joins)
          return;
        auto it = partOf.find(launch.getKernelName().getValue());
        if (it == partOf.end())
          return;
        launch.setKernelAttr(SymbolRefAttr::get(
            it->second, {FlatSymbolRefAttr::get(launch.getKernelName())}));
      });
      symbols.erase(module);
    }
  }
};

} // namespace
