//===- SerializeKernels.cpp - gsa-serialize-kernels: PTX kernel by kernel -===//
//
// The last step of the GPU pipeline: every gpu.module with a target becomes
// a gpu.binary. MLIR's gpu-module-to-binary compiles each module as one LLVM
// module on one thread; the runtime's module holds every kernel of a
// program (nine for the GSA core), so the LLVM optimiser and the NVPTX
// backend dominated a cold compile. Here each kernel gets its own clone of
// the module (the other kernels erased), the clones are serialised on the
// context's thread pool, and their PTX texts are joined into the one object
// the runtime loads.
//
//===----------------------------------------------------------------------===//

#include "gsa/Transforms/Passes.h"

#include "mlir/Dialect/GPU/IR/CompilationInterfaces.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/IR/SymbolTable.h"
#include "mlir/IR/Threading.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"

namespace gsa {
#define GEN_PASS_DEF_GSASERIALIZEKERNELS
#include "gsa/Dialect/GSAPasses.h.inc"
} // namespace gsa

using namespace mlir;

namespace {

/// Makes the globals MLIR's NVVM lowering gives gpu.dynamic_shared_memory
/// (internal zero-size arrays in address space 3) external declarations:
/// LLVM's NVPTX backend demotes an internal shared global to an ordinary
/// 1-byte `.shared` variable, which would then overlap the kernel's static
/// shared memory; an external one is `.extern .shared ... []`, the launch's
/// dynamic shared memory. Aligned to 1024 bytes, where wgmma's 128-byte
/// swizzle atoms must start (the driver places dynamic shared memory after
/// the static part at that alignment).
void externaliseDynamicShared(gpu::GPUModuleOp module) {
  for (auto global : module.getOps<LLVM::GlobalOp>()) {
    auto array = dyn_cast<LLVM::LLVMArrayType>(global.getType());
    if (global.getAddrSpace() != 3 || !array || array.getNumElements() != 0 ||
        global.getValueOrNull() || global.getInitializerBlock())
      continue;
    global.setLinkage(LLVM::Linkage::External);
    global.setDsoLocal(false);
    global.setAlignment(1024);
  }
}

/// The kernels of a lowered gpu.module: its llvm.func ops marked as GPU
/// kernels by the NVVM lowering.
SmallVector<LLVM::LLVMFuncOp> kernelsOf(gpu::GPUModuleOp module) {
  SmallVector<LLVM::LLVMFuncOp> kernels;
  for (auto func : module.getOps<LLVM::LLVMFuncOp>())
    if (func->hasAttr(gpu::GPUDialect::getKernelFuncAttrName()) ||
        func->hasAttr("nvvm.kernel"))
      kernels.push_back(func);
  return kernels;
}

/// PTX text without its header directives (the first part keeps them).
std::string withoutHeader(StringRef ptx) {
  std::string body;
  for (StringRef line : llvm::split(ptx, '\n')) {
    StringRef trimmed = line.trim();
    if (trimmed.starts_with(".version") || trimmed.starts_with(".target") ||
        trimmed.starts_with(".address_size"))
      continue;
    body += line.str();
    body += '\n';
  }
  return body;
}

/// The part's target without its bitcode libraries (libdevice) when no
/// function of the part calls into them: linking libdevice costs each part
/// as much as compiling a small kernel.
gpu::TargetAttrInterface withoutUnusedLibraries(gpu::GPUModuleOp part,
                                                gpu::TargetAttrInterface target) {
  auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(target);
  if (!nvvm || !nvvm.getLink())
    return target;
  for (auto func : part.getOps<LLVM::LLVMFuncOp>())
    if (func.isExternal() && func.getSymName().starts_with("__nv_"))
      return target;
  auto bare = NVVM::NVVMTargetAttr::get(
      nvvm.getContext(), nvvm.getO(), nvvm.getTriple(), nvvm.getChip(),
      nvvm.getFeatures(), nvvm.getFlags(), /*linkFiles=*/nullptr,
      nvvm.getVerifyTarget());
  part.setTargetsAttr(ArrayAttr::get(nvvm.getContext(), {bare}));
  return cast<gpu::TargetAttrInterface>(Attribute(bare));
}

struct GSASerializeKernelsPass
    : gsa::impl::GSASerializeKernelsBase<GSASerializeKernelsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp top = getOperation();
    // gpu-module-to-binary's spellings.
    std::optional<gpu::CompilationTarget> target =
        llvm::StringSwitch<std::optional<gpu::CompilationTarget>>(
            compilationTarget)
            .Cases("isa", "assembly", gpu::CompilationTarget::Assembly)
            .Cases("bin", "binary", gpu::CompilationTarget::Binary)
            .Case("fatbin", gpu::CompilationTarget::Fatbin)
            .Default(std::nullopt);
    if (!target) {
      top.emitError() << "gsa-serialize-kernels: unknown format '"
                      << compilationTarget << "' (isa, bin or fatbin)";
      return signalPassFailure();
    }
    SymbolTable symbols(top);
    auto symbolTable = [&]() -> SymbolTable * { return &symbols; };
    for (auto module :
         llvm::make_early_inc_range(top.getOps<gpu::GPUModuleOp>())) {
      externaliseDynamicShared(module);
      if (failed(serialize(module, *target, symbolTable)))
        return signalPassFailure();
    }
  }

  LogicalResult serialize(gpu::GPUModuleOp module,
                          gpu::CompilationTarget format,
                          function_ref<SymbolTable *()> symbolTable) {
    ArrayAttr targets = module.getTargetsAttr();
    if (!targets || targets.size() != 1)
      return module.emitError()
             << "gsa-serialize-kernels: the module needs exactly one target "
                "attribute (gsa's pipeline attaches #nvvm.target)";
    auto target = dyn_cast<gpu::TargetAttrInterface>(targets[0]);
    if (!target)
      return module.emitError()
             << "gsa-serialize-kernels: " << targets[0]
             << " is not a serialisable target";
    gpu::TargetOptions options(/*toolkitPath=*/{}, /*librariesToLink=*/{},
                               /*cmdOptions=*/{}, /*elfSection=*/{}, format,
                               symbolTable);

    // One clone per kernel, the other kernels erased (a binary format
    // cannot be joined: one module, one thread).
    SmallVector<LLVM::LLVMFuncOp> kernels = kernelsOf(module);
    OpBuilder builder(module);
    // A function other than the kernels would be defined in every part,
    // and PTX has no module-private functions: such modules (gsa's kernels
    // have none; every helper is inlined) stay whole.
    bool helpers = llvm::any_of(
        module.getOps<LLVM::LLVMFuncOp>(), [&](LLVM::LLVMFuncOp func) {
          return !func.isExternal() && !llvm::is_contained(kernels, func);
        });
    SmallVector<gpu::GPUModuleOp> parts;
    SmallVector<gpu::TargetAttrInterface> partTargets;
    if (format != gpu::CompilationTarget::Assembly || kernels.size() < 2 ||
        helpers) {
      parts.push_back(module);
      partTargets.push_back(target);
    } else {
      for (LLVM::LLVMFuncOp keep : kernels) {
        auto part = cast<gpu::GPUModuleOp>(builder.clone(*module));
        for (auto func : kernelsOf(part))
          if (func.getSymName() != keep.getSymName())
            func.erase();
        parts.push_back(part);
        partTargets.push_back(withoutUnusedLibraries(part, target));
      }
    }

    SmallVector<std::optional<SmallVector<char, 0>>> texts(parts.size());
    LogicalResult status = failableParallelForEachN(
        module.getContext(), 0, parts.size(), [&](size_t i) {
          texts[i] = partTargets[i].serializeToObject(parts[i], options);
          return success(texts[i].has_value());
        });
    std::string joined;
    for (auto [i, text] : llvm::enumerate(texts)) {
      if (!text)
        continue;
      StringRef ptx(text->data(), text->size());
      joined += i == 0 || format != gpu::CompilationTarget::Assembly
                    ? ptx.str()
                    : withoutHeader(ptx);
    }
    if (parts.front() != module)
      for (gpu::GPUModuleOp part : parts)
        part.erase();
    if (failed(status))
      return module.emitError()
             << "gsa-serialize-kernels: the target failed to serialise a "
                "kernel (its diagnostics above)";

    Attribute object = target.createObject(
        module, SmallVector<char, 0>(joined.begin(), joined.end()), options);
    if (!object)
      return module.emitError()
             << "gsa-serialize-kernels: the target made no object";
    builder.setInsertionPointAfter(module);
    gpu::BinaryOp::create(builder, module.getLoc(), module.getName(),
                          module.getOffloadingHandlerAttr(),
                          builder.getArrayAttr({object}));
    module.erase();
    return success();
  }
};

} // namespace
