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

#include "GPUKernels.h"
#include "gsa/Conversion/Ptxas.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <array>
#include <chrono>
#include <numeric>

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

/// The first instruction in `ptx`'s kernels on wgmma that ptxas (CUDA
/// 13.0) compiles to a subroutine call: (instruction, kernel), or empty
/// strings. Such calls gave wrong outputs in wgmma kernels (div.rn.f32's
/// slow path, div.s64: docs/gpu-path.md); gsa-map-tensor-cores rewrites or
/// avoids every one it knows, so finding one here is a lowering bug to
/// report, not a kernel to run. Integer divisions by an immediate are not
/// calls.
std::pair<std::string, std::string> subroutineInWgmmaKernel(StringRef ptx) {
  static const char *const kRounded[] = {"div.rn.f32", "div.rn.f64",
                                         "rcp.rn.f32", "rcp.rn.f64",
                                         "sqrt.rn.f32", "sqrt.rn.f64"};
  SmallVector<StringRef> entries;
  StringRef rest = ptx;
  for (size_t at = rest.find(".entry "); at != StringRef::npos;
       at = rest.find(".entry ")) {
    rest = rest.drop_front(at + 7);
    entries.push_back(rest.take_front(rest.find(".entry ")));
  }
  for (StringRef entry : entries) {
    if (!entry.contains("wgmma.mma_async"))
      continue;
    std::string name =
        entry.take_until([](char c) { return c == '(' || c == '\n'; }).str();
    for (StringRef line : llvm::split(entry, '\n')) {
      StringRef text = line.trim();
      // A guarded instruction (`@%p1 div.s64 ...`) is one too.
      if (text.starts_with("@"))
        text = text.drop_until([](char c) { return c == ' ' || c == '\t'; })
                   .trim();
      for (const char *op : kRounded)
        if (text.starts_with(op))
          return {op, name};
      if (!text.starts_with("div.s") && !text.starts_with("div.u") &&
          !text.starts_with("rem.s") && !text.starts_with("rem.u"))
        continue;
      // `div.s64 %rd3, %rd1, %rd2;`: a register divisor.
      StringRef divisor = text.rsplit(',').second.trim().rtrim(';').trim();
      if (divisor.starts_with("%"))
        return {text.take_until([](char c) { return c == ' ' || c == '\t'; })
                    .str(),
                name};
    }
  }
  return {};
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

  /// A part's serialisation: started, translated to LLVM IR, linked,
  /// optimised, ISA printed, serialised, assembled by ptxas (a phase the
  /// target skips keeps the previous stamp).
  using Stamps = std::array<std::chrono::steady_clock::time_point, 7>;
  /// The stamps of the part this thread serialises (report-times).
  static thread_local Stamps *currentStamps;

  /// report-times: each part's time on its thread and its phases, longest
  /// first; a part is named by its kernels (`kernels`), else its module.
  static void reportPartTimes(ArrayRef<gpu::GPUModuleOp> parts,
                              ArrayRef<SmallVector<StringRef>> kernels,
                              ArrayRef<Stamps> stamps, bool assembled) {
    auto ms = [](Stamps::value_type from, Stamps::value_type to) {
      return std::chrono::duration<double, std::milli>(to - from).count();
    };
    SmallVector<size_t> order(parts.size());
    std::iota(order.begin(), order.end(), 0);
    auto total = [&](size_t i) { return ms(stamps[i][0], stamps[i][6]); };
    llvm::stable_sort(order,
                      [&](size_t a, size_t b) { return total(a) > total(b); });
    for (size_t i : order) {
      gpu::GPUModuleOp part = parts[i];
      std::string names = llvm::join(kernels[i], ",");
      // A phase the target skipped carries the stamp before it.
      Stamps s = stamps[i];
      for (int p = 1; p < 5; ++p)
        if (s[p] < s[p - 1])
          s[p] = s[p - 1];
      llvm::errs() << llvm::format(
                          "gsa-serialize-kernels: %7.1f ms %s (to LLVM IR "
                          "%.1f, link %.1f, optimise %.1f, back end %.1f",
                          total(i),
                          (names.empty() ? part.getName().str() : names).c_str(),
                          ms(s[0], s[1]), ms(s[1], s[2]), ms(s[2], s[3]),
                          ms(s[3], s[4]));
      if (assembled)
        llvm::errs() << llvm::format(", ptxas %.1f", ms(s[5], s[6]));
      llvm::errs() << ")\n";
    }
  }

  void runOnOperation() override {
    ModuleOp top = getOperation();
    // gpu-module-to-binary's spellings.
    std::optional<gpu::CompilationTarget> target =
        llvm::StringSwitch<std::optional<gpu::CompilationTarget>>(
            compilationTarget)
            .Cases({"isa", "assembly"}, gpu::CompilationTarget::Assembly)
            .Cases({"bin", "binary"}, gpu::CompilationTarget::Binary)
            .Case("fatbin", gpu::CompilationTarget::Fatbin)
            .Default(std::nullopt);
    if (!target) {
      top.emitError() << "gsa-serialize-kernels: unknown format '"
                      << compilationTarget << "' (isa, bin or fatbin)";
      return signalPassFailure();
    }
    SymbolTable symbols(top);
    auto symbolTable = [&]() -> SymbolTable * { return &symbols; };
    // One binary per module, or per module that gsa-split-kernel-modules
    // split (its parts carry gsa.joins), in the order they first appear.
    llvm::MapVector<StringAttr, SmallVector<gpu::GPUModuleOp>> binaries;
    for (auto module : top.getOps<gpu::GPUModuleOp>()) {
      externaliseDynamicShared(module);
      auto joins = module->getAttrOfType<StringAttr>(gsa::detail::kJoinsAttr);
      binaries[joins ? joins : module.getNameAttr()].push_back(module);
    }
    for (auto &[name, members] : binaries)
      if (failed(serialize(top, name, members, *target, symbolTable)))
        return signalPassFailure();
  }

  /// The parts were lowered one by one, so a global the lowering names per
  /// module (e.g. gpu.printf's format strings, printfFormat_0) can repeat
  /// across them, and the joined PTX would define it twice: a module-local
  /// global whose name another part also uses gets the part's name as a
  /// suffix (external ones - the dynamic shared memory - are declarations
  /// PTX accepts again).
  static LogicalResult renameRepeatedLocals(ArrayRef<gpu::GPUModuleOp> members) {
    auto local = [](LLVM::GlobalOp global) {
      return global.getLinkage() == LLVM::Linkage::Internal ||
             global.getLinkage() == LLVM::Linkage::Private;
    };
    llvm::StringMap<unsigned> uses;
    for (gpu::GPUModuleOp member : members)
      for (auto global : member.getOps<LLVM::GlobalOp>())
        if (local(global))
          ++uses[global.getSymName()];
    for (gpu::GPUModuleOp member : members) {
      SymbolTable table(member);
      for (auto global :
           llvm::make_early_inc_range(member.getOps<LLVM::GlobalOp>())) {
        if (!local(global) || uses.lookup(global.getSymName()) < 2)
          continue;
        if (failed(table.rename(
                global,
                (global.getSymName() + "__" + member.getName()).str())))
          return global.emitError() << "gsa-serialize-kernels: cannot give '"
                                    << global.getSymName()
                                    << "' a name of its own";
      }
    }
    return success();
  }

  /// Serialises `members` (a module, or the parts split from one) into one
  /// gpu.binary named `name`, their kernels on the context's threads, and
  /// points the launches of the parts' kernels at it.
  LogicalResult serialize(ModuleOp top, StringAttr name,
                          ArrayRef<gpu::GPUModuleOp> members,
                          gpu::CompilationTarget format,
                          function_ref<SymbolTable *()> symbolTable) {
    gpu::GPUModuleOp first = members.front();
    ArrayAttr targets = first.getTargetsAttr();
    if (!targets || targets.size() != 1)
      return first.emitError()
             << "gsa-serialize-kernels: the module needs exactly one target "
                "attribute (gsa's pipeline attaches #nvvm.target)";
    auto target = dyn_cast<gpu::TargetAttrInterface>(targets[0]);
    if (!target)
      return first.emitError()
             << "gsa-serialize-kernels: " << targets[0]
             << " is not a serialisable target";
    for (gpu::GPUModuleOp member : members.drop_front())
      if (member.getTargetsAttr() != targets)
        return member.emitError()
               << "gsa-serialize-kernels: the parts of '" << name.getValue()
               << "' have different targets";
    if (members.size() > 1 && format != gpu::CompilationTarget::Assembly)
      return first.emitError()
             << "gsa-serialize-kernels: the kernels of '" << name.getValue()
             << "' are in separate modules (gsa-split-kernel-modules), which "
                "only PTX (isa) can join into one object";
    if (failed(renameRepeatedLocals(members)))
      return failure();
    // report-times: the target's callbacks stamp the phases of the part
    // this thread serialises (translated to LLVM IR, linked, optimised,
    // ISA printed).
    auto stamp = [](int phase) {
      if (currentStamps)
        (*currentStamps)[phase] = std::chrono::steady_clock::now();
    };
    auto translated = [&](llvm::Module &) { stamp(1); };
    auto linked = [&](llvm::Module &) { stamp(2); };
    auto optimised = [&](llvm::Module &) { stamp(3); };
    auto printed = [&](StringRef) { stamp(4); };
    gpu::TargetOptions options(
        /*toolkitPath=*/{}, /*librariesToLink=*/{}, /*cmdOptions=*/{},
        /*elfSection=*/{}, format, symbolTable,
        reportTimes ? function_ref<void(llvm::Module &)>(translated) : nullptr,
        reportTimes ? function_ref<void(llvm::Module &)>(linked) : nullptr,
        reportTimes ? function_ref<void(llvm::Module &)>(optimised) : nullptr,
        reportTimes ? function_ref<void(StringRef)>(printed) : nullptr);
    // One part per kernel: a module of one kernel as it is, a module of
    // several one clone per kernel (the other kernels erased; a binary
    // format cannot be joined: one module, one thread).
    SmallVector<gpu::GPUModuleOp> parts, clones;
    SmallVector<gpu::TargetAttrInterface> partTargets;
    for (gpu::GPUModuleOp module : members) {
      SmallVector<LLVM::LLVMFuncOp> kernels = kernelsOf(module);
      // A function other than the kernels would be defined in every part,
      // and PTX has no module-private functions: such modules (gsa's
      // kernels have none; every helper is inlined) stay whole.
      bool helpers = llvm::any_of(
          module.getOps<LLVM::LLVMFuncOp>(), [&](LLVM::LLVMFuncOp func) {
            return !func.isExternal() && !llvm::is_contained(kernels, func);
          });
      if (format != gpu::CompilationTarget::Assembly || kernels.size() < 2 ||
          helpers) {
        parts.push_back(module);
        partTargets.push_back(withoutUnusedLibraries(module, target));
        continue;
      }
      OpBuilder builder(module);
      for (LLVM::LLVMFuncOp keep : kernels) {
        auto part = cast<gpu::GPUModuleOp>(builder.clone(*module));
        for (auto func : kernelsOf(part))
          if (func.getSymName() != keep.getSymName())
            func.erase();
        parts.push_back(part);
        clones.push_back(part);
        partTargets.push_back(withoutUnusedLibraries(part, target));
      }
    }

    SmallVector<std::optional<SmallVector<char, 0>>> texts(parts.size());
    SmallVector<Stamps> stamps(parts.size());
    // With `ptxas`, each part's PTX is assembled on the part's thread as
    // soon as LLVM made it, so that one kernel's ptxas runs while other
    // kernels are still in LLVM (PTX only: a binary format has its own).
    bool assemble = !ptxas.empty() && format == gpu::CompilationTarget::Assembly;
    SmallVector<std::optional<std::string>> cubins(parts.size());
    LogicalResult status = failableParallelForEachN(
        first.getContext(), 0, parts.size(), [&](size_t i) {
          Stamps &mine = stamps[i];
          mine.fill(std::chrono::steady_clock::now());
          currentStamps = &mine;
          texts[i] = partTargets[i].serializeToObject(parts[i], options);
          currentStamps = nullptr;
          mine[5] = mine[6] = std::chrono::steady_clock::now();
          if (assemble && texts[i]) {
            auto nvvm = dyn_cast<NVVM::NVVMTargetAttr>(Attribute(partTargets[i]));
            auto image = gsa::assembleCubin(
                ptxas, StringRef(texts[i]->data(), texts[i]->size()),
                nvvm ? nvvm.getChip() : StringRef("sm_90a"),
                /*splitCompile=*/false);
            if (image)
              cubins[i] = std::move(*image);
            else if (reportTimes) // the runtime then assembles the module
              llvm::errs() << "gsa-serialize-kernels: "
                           << llvm::toString(image.takeError()) << "\n";
            else
              llvm::consumeError(image.takeError());
            mine[6] = std::chrono::steady_clock::now();
          }
          return success(texts[i].has_value());
        });
    // The parts' kernels, for the report and the cubins' attribute (read
    // before the clones go).
    SmallVector<SmallVector<StringRef>> partKernels(parts.size());
    for (auto [i, part] : llvm::enumerate(parts))
      for (LLVM::LLVMFuncOp kernel : kernelsOf(part))
        partKernels[i].push_back(kernel.getSymName());
    if (reportTimes)
      reportPartTimes(parts, partKernels, stamps, assemble);
    std::string joined;
    for (auto [i, text] : llvm::enumerate(texts)) {
      if (!text)
        continue;
      StringRef ptx(text->data(), text->size());
      joined += i == 0 || format != gpu::CompilationTarget::Assembly
                    ? ptx.str()
                    : withoutHeader(ptx);
    }
    for (gpu::GPUModuleOp clone : clones)
      clone.erase();
    if (failed(status))
      return first.emitError()
             << "gsa-serialize-kernels: the target failed to serialise a "
                "kernel (its diagnostics above)";
    if (format == gpu::CompilationTarget::Assembly) {
      auto [instruction, kernel] = subroutineInWgmmaKernel(joined);
      if (!instruction.empty())
        return first.emitError()
               << "gsa-serialize-kernels: kernel '" << kernel
               << "' runs on wgmma and holds `" << instruction
               << "`, which ptxas makes a subroutine call that gave wrong "
                  "outputs in such kernels (docs/gpu-path.md); a lowering "
                  "bug, please report it";
    }

    Attribute object = target.createObject(
        first, SmallVector<char, 0>(joined.begin(), joined.end()), options);
    if (!object)
      return first.emitError()
             << "gsa-serialize-kernels: the target made no object";
    // The launches of the parts' kernels: @name::@kernel.
    llvm::SmallDenseSet<StringAttr> partNames;
    for (gpu::GPUModuleOp member : members)
      if (member.getNameAttr() != name)
        partNames.insert(member.getNameAttr());
    if (!partNames.empty())
      top.walk([&](gpu::LaunchFuncOp launch) {
        if (partNames.contains(launch.getKernelModuleName()))
          launch.setKernelAttr(SymbolRefAttr::get(
              name, {FlatSymbolRefAttr::get(launch.getKernelName())}));
      });
    OpBuilder builder(first);
    builder.setInsertionPointAfter(first);
    auto binary = gpu::BinaryOp::create(builder, first.getLoc(), name,
                                        first.getOffloadingHandlerAttr(),
                                        builder.getArrayAttr({object}));
    // gsa.cubins: one module image per part with its kernels - only when
    // every part assembled (else the PTX object alone, for the caller's
    // ptxas or the driver's JIT).
    if (assemble && llvm::all_of(cubins, [](auto &c) { return c.has_value(); })) {
      SmallVector<Attribute> images;
      for (auto [i, cubin] : llvm::enumerate(cubins)) {
        // An empty list means "every kernel" to the runtime: a part
        // without kernels has nothing to offer.
        if (partKernels[i].empty())
          continue;
        SmallVector<Attribute> names;
        for (StringRef kernel : partKernels[i])
          names.push_back(builder.getStringAttr(kernel));
        images.push_back(builder.getDictionaryAttr(
            {builder.getNamedAttr("kernels", builder.getArrayAttr(names)),
             builder.getNamedAttr("image", builder.getStringAttr(*cubin))}));
      }
      binary->setAttr(gsa::kCubinsAttr, builder.getArrayAttr(images));
    }
    for (gpu::GPUModuleOp member : members)
      member.erase();
    return success();
  }
};

thread_local GSASerializeKernelsPass::Stamps
    *GSASerializeKernelsPass::currentStamps = nullptr;

} // namespace
