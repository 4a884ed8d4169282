//===- Runtime.cpp - compile per shape, cache, run (CPU backend) -----------===//

#include "gsa/Runtime/Runtime.h"

#include "gsa/Conversion/LaunchOperands.h"
#include "gsa/Conversion/Passes.h"
#include "gsa/Conversion/Ptxas.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/ExecutionEngine/ExecutionEngine.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"

#include "CUDADriver.h"
#include "DiskCache.h"
#include "LaunchGraphCache.h"
#include "GSASourceHash.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/Base64.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/TargetSelect.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <atomic>
#include <fmt/format.h>

using namespace mlir;
using namespace gsa;
using namespace gsa::runtime;
using llvm::Error;
using llvm::Expected;

namespace {

/// GSA_DUMP_IR=1 prints the IR after every pass of the runtime's pipelines
/// to stderr (with the pass name), to see what each stage made of a program.
void maybeDumpIR(PassManager &pm) {
  const char *dump = std::getenv("GSA_DUMP_IR");
  if (!dump || !*dump || llvm::StringRef(dump) == "0")
    return;
  pm.getContext()->disableMultithreading();
  pm.enableIRPrinting(
      /*shouldPrintBeforePass=*/[](Pass *, Operation *) { return false; },
      /*shouldPrintAfterPass=*/[](Pass *, Operation *) { return true; },
      /*printModuleScope=*/true, /*printAfterOnlyOnChange=*/true,
      /*printAfterOnlyOnFailure=*/false, llvm::errs());
}

/// GSA_COMPILE_TIMES: 1 prints where a CUDA compilation's time went to
/// stderr - the front end (parse, specialise, verify), the GPU pipeline with
/// each kernel's LLVM / NVPTX time (gsa-serialize-kernels, in parallel:
/// the longest bounds the pipeline), ptxas; 2 also MLIR's pass timing.
int compileTimesLevel() {
  const char *level = std::getenv("GSA_COMPILE_TIMES");
  if (!level || !*level)
    return 0;
  return std::max(0, std::atoi(level));
}

/// Seconds since `start`.
double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       start)
      .count();
}

Error makeError(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// GSA_GPU_OPTIONS: the GPU pipeline's switches for the kernels this
/// process compiles, as "name=integer" words
/// (include/gsa/Conversion/GPUPipelineOptions.def): an A/B switch for users
/// and benchmarks. The text is part of the cache key.
Expected<GPUPipelineOptions> gpuOptionsFromEnvironment() {
  GPUPipelineOptions options;
  options.libdevice = defaultLibdevicePath();
  const char *text = std::getenv("GSA_GPU_OPTIONS");
  if (!text)
    return options;
  SmallVector<StringRef> words;
  StringRef(text).split(words, ' ', -1, /*KeepEmpty=*/false);
  for (StringRef word : words) {
    auto [key, value] = word.split('=');
    int64_t number = 0;
    if (value.getAsInteger(10, number))
      return makeError(fmt::format(
          "GSA_GPU_OPTIONS: '{}' is not key=integer", word.str()));
    if (std::optional<std::string> problem =
            setGPUPipelineOption(options, key, number))
      return makeError(fmt::format("GSA_GPU_OPTIONS: {} (known: {})",
                                   *problem, describeGPUPipelineOptions()));
  }
  return options;
}


/// Collects every diagnostic of a context into one string, with the source
/// line and a caret where the location is in the program text.
class DiagnosticCollector {
public:
  DiagnosticCollector(MLIRContext *ctx, llvm::SourceMgr &sourceMgr)
      : os(text), handler(sourceMgr, ctx, os) {}
  std::string take() {
    os.flush();
    std::string out = text;
    text.clear();
    // Keep the message compact: drop the trailing newline.
    while (!out.empty() && out.back() == '\n')
      out.pop_back();
    return out;
  }

private:
  std::string text;
  llvm::raw_string_ostream os;
  SourceMgrDiagnosticHandler handler;
};

void initializeLLVMOnce() {
  static bool done = [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    return true;
  }();
  (void)done;
}

std::unique_ptr<MLIRContext> makeContext() {
  DialectRegistry registry;
  registerCompilerDialects(registry);
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  auto ctx = std::make_unique<MLIRContext>(registry);
  ctx->loadAllAvailableDialects();
  // Multithreaded: gsa-serialize-kernels compiles the kernels of a CUDA
  // program on the context's threads (the LLVM back end is most of a cold
  // compile). Every dialect a pipeline uses is loaded above.
  // Users get the located message and the source line, not an IR dump.
  ctx->printOpOnDiagnostic(false);
  return ctx;
}

Expected<DType> dtypeOf(Type type) {
  if (type.isF16()) return DType::f16;
  if (type.isBF16()) return DType::bf16;
  if (type.isF32()) return DType::f32;
  if (type.isF64()) return DType::f64;
  if (type.isSignlessInteger(32)) return DType::i32;
  std::string s;
  llvm::raw_string_ostream os(s);
  os << type;
  return makeError(fmt::format("element type {} is not supported at the "
                               "runtime boundary (f16, bf16, f32, f64, i32)",
                               s));
}

Type mlirTypeOf(MLIRContext *ctx, DType dtype) {
  switch (dtype) {
  case DType::f16: return Float16Type::get(ctx);
  case DType::bf16: return BFloat16Type::get(ctx);
  case DType::f32: return Float32Type::get(ctx);
  case DType::f64: return Float64Type::get(ctx);
  case DType::i32: return IntegerType::get(ctx, 32);
  }
  return {};
}

Expected<TensorSpec> specOf(Type type, const std::string &what) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  if (!tensor) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << type;
    return makeError(fmt::format("{} has type {}: the runtime passes ranked "
                                 "tensors only",
                                 what, s));
  }
  auto dtype = dtypeOf(tensor.getElementType());
  if (!dtype)
    return makeError(what + ": " + llvm::toString(dtype.takeError()));
  TensorSpec spec{*dtype, {}};
  for (int64_t d : tensor.getShape())
    spec.shape.push_back(ShapedType::isDynamic(d) ? -1 : d);
  return spec;
}

Expected<func::FuncOp> findEntry(ModuleOp module, StringRef entry) {
  if (!entry.empty()) {
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn || fn.isExternal())
      return makeError(fmt::format("the program has no function '@{}'",
                                   entry.str()));
    return fn;
  }
  func::FuncOp found;
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (fn.isExternal() || fn.isPrivate())
      continue;
    if (found)
      return makeError(fmt::format(
          "the program has several public functions ('@{}', '@{}', ...): "
          "name the entry",
          found.getName().str(), fn.getName().str()));
    found = fn;
  }
  if (!found)
    return makeError("the program has no public function to run");
  return found;
}

/// The name of the operand slot of a gsa op that `value` fills, if any.
std::optional<std::string> operandName(Operation *op, Value value) {
  SmallVector<std::pair<Value, const char *>> slots;
  if (auto o = dyn_cast<GatedSparseAttentionOp>(op))
    slots = {{o.getQ(), "q"}, {o.getK(), "k"}, {o.getV(), "v"},
             {o.getQi(), "qi"}, {o.getKi(), "ki"}, {o.getWi(), "wi"},
             {o.getBi(), "bi"}, {o.getValueGate(), "value_gate"},
             {o.getOutputGate(), "output_gate"},
             {o.getRunningVar(), "running_var"}};
  else if (auto o = dyn_cast<IndexerOp>(op))
    slots = {{o.getQi(), "qi"}, {o.getKi(), "ki"}, {o.getWi(), "wi"},
             {o.getBi(), "bi"}};
  else if (auto o = dyn_cast<AdaptiveTopKOp>(op))
    slots = {{o.getScores(), "scores"}, {o.getRunningVar(), "running_var"}};
  else if (auto o = dyn_cast<SparseAttentionOp>(op))
    slots = {{o.getQ(), "q"}, {o.getK(), "k"}, {o.getV(), "v"},
             {o.getIndices(), "indices"}, {o.getCounts(), "counts"},
             {o.getValueGate(), "value_gate"},
             {o.getOutputGate(), "output_gate"}};
  for (auto [slot, name] : slots)
    if (slot == value)
      return std::string(name);
  return std::nullopt;
}

std::string argumentName(func::FuncOp fn, unsigned i) {
  Value arg = fn.getArgument(i);
  for (Operation *user : arg.getUsers())
    if (auto name = operandName(user, arg))
      return *name;
  return fmt::format("arg{}", i);
}

/// Gives the entry's arguments the static types of `inputs`: each argument
/// gets its static type and a tensor.cast back to the declared type, and the
/// casts are folded into the gsa ops that read them, so the verifiers see
/// (and check) the real shapes.
void specialiseArguments(func::FuncOp fn, ArrayRef<TensorSpec> inputs) {
  MLIRContext *ctx = fn.getContext();
  Block &entry = fn.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&entry);
  SmallVector<Type> argTypes;
  for (auto [i, spec] : llvm::enumerate(inputs)) {
    BlockArgument arg = entry.getArgument(i);
    auto declared = cast<RankedTensorType>(arg.getType());
    auto actual =
        RankedTensorType::get(spec.shape, mlirTypeOf(ctx, spec.dtype));
    argTypes.push_back(actual);
    if (declared == actual)
      continue;
    arg.setType(actual);
    auto castOp = tensor::CastOp::create(b, fn.getLoc(), declared, arg);
    arg.replaceAllUsesExcept(castOp.getResult(), castOp);
  }
  fn.setFunctionType(
      FunctionType::get(ctx, argTypes, fn.getFunctionType().getResults()));
  fn.walk([](Operation *op) {
    if (!isa<GatedSparseAttentionOp, IndexerOp, AdaptiveTopKOp,
             SparseAttentionOp>(op))
      return;
    for (OpOperand &operand : op->getOpOperands())
      if (auto castOp = operand.get().getDefiningOp<tensor::CastOp>())
        if (isa<RankedTensorType>(castOp.getSource().getType()))
          operand.set(castOp.getSource());
  });
}

/// Host-side checks that must pass before every run.
std::vector<InputCheck> collectInputChecks(func::FuncOp fn) {
  std::vector<InputCheck> checks;
  auto addFor = [&](Value runningVar, bool training,
                    SelectionPolicy policy) {
    if (!runningVar || (!training && !policyNeedsReferenceVariance(policy)))
      return;
    if (auto arg = dyn_cast<BlockArgument>(runningVar))
      if (arg.getOwner() == &fn.getBody().front())
        checks.push_back({training ? InputCheck::FiniteRunningVariance
                                   : InputCheck::PositiveReferenceVariance,
                          arg.getArgNumber()});
  };
  fn.walk([&](Operation *op) {
    if (auto o = dyn_cast<GatedSparseAttentionOp>(op))
      addFor(o.getRunningVar(), o.getTraining(), o.getPolicy());
    else if (auto o = dyn_cast<AdaptiveTopKOp>(op))
      addFor(o.getRunningVar(), o.getTraining(), o.getPolicy());
  });
  return checks;
}

//===----------------------------------------------------------------------===//
// The CPU kernel: an ExecutionEngine and the C interface of the entry
//===----------------------------------------------------------------------===//

class CPUKernel : public Kernel {
public:
  CPUKernel(std::unique_ptr<ExecutionEngine> engine, std::string entry,
            std::vector<TensorSpec> inputs, std::vector<TensorSpec> results,
            std::vector<std::string> names, std::vector<InputCheck> checks)
      : engine(std::move(engine)), entry(std::move(entry)) {
    inputs_ = std::move(inputs);
    results_ = std::move(results);
    inputNames_ = std::move(names);
    checks_ = std::move(checks);
  }

  Expected<std::vector<Tensor>> run(ArrayRef<const Tensor *> inputs) override {
    if (Error err = validate(inputs))
      return std::move(err);
    // One memref descriptor per input: {allocated, aligned, offset,
    // sizes[R], strides[R]}, row-major.
    std::vector<std::vector<int64_t>> descriptors;
    std::vector<void *> descriptorPtrs;
    for (const Tensor *t : inputs) {
      int64_t rank = t->rank();
      std::vector<int64_t> d(3 + 2 * rank);
      auto ptr = reinterpret_cast<int64_t>(t->data());
      d[0] = ptr;
      d[1] = ptr;
      d[2] = 0;
      int64_t stride = 1;
      for (int64_t i = rank - 1; i >= 0; --i) {
        d[3 + i] = t->shape()[i];
        d[3 + rank + i] = stride;
        stride *= t->shape()[i];
      }
      descriptors.push_back(std::move(d));
    }
    for (auto &d : descriptors)
      descriptorPtrs.push_back(d.data());
    // The results come back through a struct of descriptors.
    size_t resultWords = 0;
    for (const TensorSpec &r : results_)
      resultWords += 3 + 2 * r.shape.size();
    std::vector<int64_t> resultStruct(std::max<size_t>(resultWords, 1), 0);
    void *resultPtr = resultStruct.data();

    std::vector<void *> packed;
    if (!results_.empty())
      packed.push_back(&resultPtr);
    for (void *&p : descriptorPtrs)
      packed.push_back(&p);
    if (Error err = engine->invokePacked("_mlir_ciface_" + entry, packed))
      return makeError("running '@" + entry +
                       "' failed: " + llvm::toString(std::move(err)));

    std::vector<Tensor> outputs;
    llvm::DenseSet<void *> toFree;
    llvm::DenseSet<const void *> inputPtrs;
    for (const Tensor *t : inputs)
      inputPtrs.insert(t->data());
    size_t word = 0;
    for (const TensorSpec &spec : results_) {
      size_t rank = spec.shape.size();
      auto *allocated = reinterpret_cast<void *>(resultStruct[word]);
      auto *aligned = reinterpret_cast<uint8_t *>(resultStruct[word + 1]);
      int64_t offset = resultStruct[word + 2];
      std::vector<int64_t> sizes(&resultStruct[word + 3],
                                 &resultStruct[word + 3 + rank]);
      std::vector<int64_t> strides(&resultStruct[word + 3 + rank],
                                   &resultStruct[word + 3 + 2 * rank]);
      word += 3 + 2 * rank;
      Tensor out(spec.dtype, sizes);
      size_t elem = dtypeSize(spec.dtype);
      std::vector<int64_t> index(rank, 0);
      for (int64_t n = 0, total = out.numElements(); n < total; ++n) {
        int64_t linear = offset;
        for (size_t i = 0; i < rank; ++i)
          linear += index[i] * strides[i];
        std::memcpy(static_cast<uint8_t *>(out.data()) + n * elem,
                    aligned + linear * elem, elem);
        for (int64_t i = int64_t(rank) - 1; i >= 0; --i) {
          if (++index[i] < sizes[i])
            break;
          index[i] = 0;
        }
      }
      outputs.push_back(std::move(out));
      if (allocated && !inputPtrs.contains(allocated))
        toFree.insert(allocated);
    }
    // Returned buffers are owned by the caller (the deallocation pipeline
    // guarantees it); they were malloc'ed by the generated code.
    for (void *p : toFree)
      std::free(p);
    return outputs;
  }

  Error launch(ArrayRef<void *> inputs, ArrayRef<void *> outputs, void *,
               void *, uint64_t) override {
    if (inputs.size() != inputs_.size() || outputs.size() != results_.size())
      return makeError(fmt::format(
          "expected {} inputs and {} outputs, got {} and {}", inputs_.size(),
          results_.size(), inputs.size(), outputs.size()));
    for (auto [i, r] : llvm::enumerate(results_))
      for (int64_t d : r.shape)
        if (d < 0)
          return makeError(fmt::format(
              "result #{} has a dynamic shape ({}): run() returns it as a "
              "new tensor",
              i, r.toString()));
    std::vector<Tensor> hostInputs;
    for (auto [i, spec] : llvm::enumerate(inputs_)) {
      Tensor t(spec.dtype, spec.shape);
      std::memcpy(t.data(), inputs[i], t.numBytes());
      hostInputs.push_back(std::move(t));
    }
    std::vector<const Tensor *> ptrs;
    for (const Tensor &t : hostInputs)
      ptrs.push_back(&t);
    auto results = run(ptrs);
    if (!results)
      return results.takeError();
    for (auto [i, t] : llvm::enumerate(*results))
      std::memcpy(outputs[i], t.data(), t.numBytes());
    return Error::success();
  }

private:
  std::unique_ptr<ExecutionEngine> engine;
  std::string entry;
};

//===----------------------------------------------------------------------===//
// The CUDA kernel: PTX and a launch plan, loaded through the driver
//===----------------------------------------------------------------------===//

/// What a kernel parameter is: an entry input, an entry result, a
/// scratch buffer the runtime allocates for the launches of one call
/// (intermediate tensors between kernels, per-row statistics), or a TMA
/// tensor map of one of those, encoded per launch and passed by value.
enum class ParamKind { Input, Result, Scratch, TensorMap };
struct Param {
  ParamKind kind;
  unsigned index;
};

/// A gsa.tensor_map: the buffer it maps and how (row-major shape and box).
struct TensorMapSpec {
  Param source;
  /// CUtensorMapDataType: BFLOAT16 (9), FLOAT16 (6), FLOAT32 (7) or INT32
  /// (3), the element types gsa.tensor_map accepts.
  int dataType;
  std::vector<uint64_t> shape;
  std::vector<uint32_t> box;
  int swizzle;
};

/// The bytes of one element of a tensor map's data type.
unsigned tensorMapElementBytes(int dataType) {
  return dataType == 9 || dataType == 6 ? 2 : 4;
}

/// The 128 bytes of an encoded CUtensorMap.
struct alignas(64) TensorMapBytes {
  unsigned char bytes[128];
};

/// One kernel launch of a compiled program: which kernel, its grid and
/// block, and what each parameter is.
struct LaunchStep {
  std::string kernel;
  uint32_t grid[3];
  uint32_t block[3];
  /// Dynamic shared memory bytes (the staged rings beyond 48 KiB).
  uint32_t shared = 0;
  std::vector<Param> params;
};

StringRef paramKindName(ParamKind kind) {
  switch (kind) {
  case ParamKind::Input:
    return "arg";
  case ParamKind::Result:
    return "result";
  case ParamKind::Scratch:
    return "scratch";
  case ParamKind::TensorMap:
    return "tensor_map";
  }
  return "?";
}

/// A cubin and the kernels it holds (none listed: every kernel of the
/// program - ptxas over the whole module).
struct ModuleImage {
  std::vector<std::string> kernels;
  std::string cubin;
};

/// The per-kernel cubins gsa-serialize-kernels attached to `binary`
/// (gsa.cubins, with its `ptxas` option); none where it did not.
std::vector<ModuleImage> cubinsOf(gpu::BinaryOp binary) {
  std::vector<ModuleImage> images;
  auto array = binary->getAttrOfType<ArrayAttr>(kCubinsAttr);
  if (!array)
    return images;
  for (Attribute entry : array) {
    auto dict = dyn_cast<DictionaryAttr>(entry);
    auto kernels = dict ? dict.getAs<ArrayAttr>("kernels") : ArrayAttr();
    auto image = dict ? dict.getAs<StringAttr>("image") : StringAttr();
    if (!kernels || !image)
      return {};
    ModuleImage out;
    out.cubin = image.getValue().str();
    for (Attribute name : kernels) {
      auto s = dyn_cast<StringAttr>(name);
      if (!s)
        return {};
      out.kernels.push_back(s.getValue().str());
    }
    if (out.kernels.empty() || out.cubin.empty())
      return {};
    images.push_back(std::move(out));
  }
  return images;
}

class CUDAKernel : public Kernel {
public:
  CUDAKernel(std::string ptx, std::vector<ModuleImage> images,
             std::vector<LaunchStep> steps, std::vector<uint64_t> scratchBytes,
             std::vector<TensorMapSpec> tensorMaps,
             std::vector<TensorSpec> inputs, std::vector<TensorSpec> results,
             std::vector<std::string> names)
      : ptx(std::move(ptx)), images(std::move(images)), steps(std::move(steps)),
        scratchBytes(std::move(scratchBytes)),
        tensorMaps(std::move(tensorMaps)) {
    // Scratch buffer i at scratchOffsets[i] of a caller's workspace.
    for (uint64_t bytes : this->scratchBytes) {
      scratchOffsets.push_back(workspaceSize_);
      workspaceSize_ += llvm::alignTo(bytes, kWorkspaceAlign);
    }
    backend_ = Backend::CUDA;
    inputs_ = std::move(inputs);
    results_ = std::move(results);
    inputNames_ = std::move(names);
  }

  Expected<std::vector<Tensor>> run(ArrayRef<const Tensor *>) override {
    return makeError("a CUDA kernel takes device pointers: use launch() (the "
                     "C API's gsa_launch)");
  }

  uint64_t workspaceBytes() const override { return workspaceSize_; }

  Error launch(ArrayRef<void *> inputs, ArrayRef<void *> outputs,
               void *stream, void *workspace,
               uint64_t workspaceSize) override {
    if (workspace) {
      if (workspaceSize < workspaceSize_)
        return makeError(fmt::format(
            "the workspace holds {} bytes but this kernel needs {} "
            "(gsa_kernel_workspace_size)",
            workspaceSize, workspaceSize_));
      if (reinterpret_cast<uintptr_t>(workspace) % kWorkspaceAlign)
        return makeError(fmt::format(
            "the workspace must be {}-byte aligned", kWorkspaceAlign));
    }
    if (inputs.size() != inputs_.size() || outputs.size() != results_.size())
      return makeError(fmt::format(
          "expected {} inputs and {} outputs, got {} and {}", inputs_.size(),
          results_.size(), inputs.size(), outputs.size()));
    // The kernels copy 16-byte pieces of their inputs (cp.async, TMA) and
    // store up to 16 bytes at once: a misaligned buffer would fault on the
    // device (and poison the caller's CUDA context) rather than fail here.
    auto misaligned = [](void *p) {
      return reinterpret_cast<uintptr_t>(p) % kBufferAlign != 0;
    };
    for (auto [i, p] : llvm::enumerate(inputs))
      if (!p)
        return makeError(fmt::format("input #{} ('{}') is a null pointer", i,
                                     inputNames_[i]));
      else if (misaligned(p))
        return makeError(fmt::format(
            "input #{} ('{}') starts at {}, which is not {}-byte aligned (the "
            "kernels copy {}-byte pieces; cudaMalloc and torch allocations "
            "are aligned, a view at an offset may not be)",
            i, inputNames_[i], p, kBufferAlign, kBufferAlign));
    for (auto [i, p] : llvm::enumerate(outputs))
      if (!p || misaligned(p))
        return makeError(fmt::format(
            "output #{} {}", i,
            p ? fmt::format("starts at {}, which is not {}-byte aligned (the "
                            "kernels store up to {} bytes at once)",
                            p, kBufferAlign, kBufferAlign)
              : std::string("is a null pointer")));
    auto driver = cuda::Driver::get();
    if (!driver)
      return driver.takeError();
    if (Error err = loadOnce(**driver))
      return err;
    // With a caller's workspace, a set of buffers launched a second time
    // is recorded as a CUDA graph and replayed from then on: one graph
    // launch instead of a driver call per kernel (the 128K core: 7
    // kernels, 22 us of host time per call launched one by one; H100,
    // docs/perf-log.md 2026-12-06 eighth session). GSA_DISABLE_GRAPHS=1
    // launches every kernel directly. Not into a stream that is itself
    // capturing a graph (the caller's): a graph cannot be launched there,
    // and the direct launches are what such a capture records. One graph
    // per stream as well: replays of one graph are ordered after each
    // other, which across streams would order calls the caller did not.
    if (workspace && graphsWanted(**driver) && !capturing(**driver, stream)) {
      std::vector<void *> key(inputs.begin(), inputs.end());
      key.insert(key.end(), outputs.begin(), outputs.end());
      key.push_back(workspace);
      key.push_back(stream);
      std::unique_lock<std::mutex> lock(graphMutex);
      if (auto recorded = graphs.find(key))
        return (*driver)->launchGraph(*recorded, stream);
      if (graphs.seenBefore(key)) {
        auto exec = record(**driver, inputs, outputs, workspace);
        if (exec) {
          // (A dropped graph still running finishes first: the driver
          // frees an executing graph when it completes.)
          if (auto dropped = graphs.insert(key, *exec))
            (*driver)->destroyGraph(*dropped);
          return (*driver)->launchGraph(*exec, stream);
        }
        // A driver that cannot record these launches: launch directly from
        // now on (the launches themselves report any real error).
        llvm::consumeError(exec.takeError());
        graphsBroken = true;
      }
    }
    // Scratch lives in stream order: allocated before the launches, freed
    // after them, so concurrent calls on other streams never share it.
    // A caller's workspace is carved instead (nothing allocated or freed).
    std::vector<void *> owned;
    auto release = [&]() {
      Error all = Error::success();
      for (void *p : owned)
        all = joinErrors(std::move(all), (*driver)->freeAsync(p, stream));
      return all;
    };
    std::vector<void *> scratch;
    if (workspace) {
      scratch = carve(workspace);
    } else {
      for (uint64_t bytes : scratchBytes) {
        auto p = (*driver)->allocAsync(bytes, stream);
        if (!p)
          return joinErrors(p.takeError(), release());
        scratch.push_back(*p);
        owned.push_back(*p);
      }
    }
    if (Error err = launchSteps(**driver, inputs, outputs, scratch, stream))
      return joinErrors(std::move(err), release());
    return release();
  }

  ~CUDAKernel() override {
    if (graphs.empty() && !captureStream)
      return;
    auto driver = cuda::Driver::get();
    if (!driver) {
      llvm::consumeError(driver.takeError());
      return;
    }
    graphs.forEach(
        [&](cuda::CUgraphExec exec) { (*driver)->destroyGraph(exec); });
    if (captureStream)
      (*driver)->destroyStream(captureStream);
  }

private:
  /// Scratch buffer i of a caller's workspace.
  std::vector<void *> carve(void *workspace) const {
    std::vector<void *> scratch;
    for (uint64_t offset : scratchOffsets)
      scratch.push_back(static_cast<char *>(workspace) + offset);
    return scratch;
  }

  /// Encodes this call's tensor maps and launches every step on `stream`.
  Error launchSteps(cuda::Driver &driver, ArrayRef<void *> inputs,
                    ArrayRef<void *> outputs, ArrayRef<void *> scratch,
                    void *stream) {
    auto buffer = [&](Param param) {
      return param.kind == ParamKind::Input    ? inputs[param.index]
             : param.kind == ParamKind::Result ? outputs[param.index]
                                               : scratch[param.index];
    };
    // The tensor maps of this call's buffers (the driver copies parameters
    // at the launch - and a graph at its recording -, so they only need to
    // outlive it).
    std::vector<TensorMapBytes> maps(tensorMaps.size());
    for (auto [i, spec] : llvm::enumerate(tensorMaps))
      if (Error err = encode(driver, spec, buffer(spec.source), maps[i]))
        return err;
    for (auto [n, step] : llvm::enumerate(steps)) {
      std::vector<void *> values;
      for (Param param : step.params)
        values.push_back(param.kind == ParamKind::TensorMap
                             ? static_cast<void *>(&maps[param.index])
                             : buffer(param));
      std::vector<void *> params;
      for (auto [v, param] : llvm::zip(values, step.params))
        params.push_back(param.kind == ParamKind::TensorMap ? v : &v);
      if (Error err = driver.launch(functions[n], step.grid, step.block,
                                    step.shared, params.data(), stream))
        return err;
    }
    return Error::success();
  }

  /// Whether `stream` is capturing; where that cannot be asked, as if it
  /// were (direct launches are right in either case).
  bool capturing(cuda::Driver &driver, void *stream) {
    auto status = driver.isCapturing(stream);
    if (!status) {
      llvm::consumeError(status.takeError());
      return true;
    }
    return *status;
  }

  bool graphsWanted(cuda::Driver &driver) {
    if (graphsBroken.load(std::memory_order_relaxed) ||
        !driver.graphsAvailable())
      return false;
    const char *off = std::getenv("GSA_DISABLE_GRAPHS");
    return !off || StringRef(off) == "0";
  }

  /// The steps on these buffers recorded on the kernel's own capture
  /// stream and instantiated (called with graphMutex held).
  Expected<cuda::CUgraphExec> record(cuda::Driver &driver,
                                     ArrayRef<void *> inputs,
                                     ArrayRef<void *> outputs,
                                     void *workspace) {
    if (!captureStream) {
      auto created = driver.createStream();
      if (!created)
        return created.takeError();
      captureStream = *created;
    }
    if (Error err = driver.beginCapture(captureStream))
      return std::move(err);
    Error launched =
        launchSteps(driver, inputs, outputs, carve(workspace), captureStream);
    auto exec = driver.endCapture(captureStream);
    if (launched) {
      if (exec)
        driver.destroyGraph(*exec);
      else
        llvm::consumeError(exec.takeError());
      return std::move(launched);
    }
    return exec;
  }

public:
  /// Serialises everything a later process needs to launch this kernel.
  std::string serialise() const {
    llvm::json::Array ins, outs, names, plan;
    auto spec = [](const TensorSpec &t) {
      llvm::json::Array shape;
      for (int64_t d : t.shape)
        shape.push_back(d);
      return llvm::json::Object{{"dtype", dtypeName(t.dtype).str()},
                                {"shape", std::move(shape)}};
    };
    for (const TensorSpec &t : inputs_)
      ins.push_back(spec(t));
    for (const TensorSpec &t : results_)
      outs.push_back(spec(t));
    for (const std::string &n : inputNames_)
      names.push_back(n);
    for (const LaunchStep &step : steps) {
      llvm::json::Array params;
      for (Param param : step.params)
        params.push_back(llvm::json::Object{
            {paramKindName(param.kind), int64_t(param.index)}});
      plan.push_back(llvm::json::Object{
          {"kernel", step.kernel},
          {"grid", llvm::json::Array{step.grid[0], step.grid[1], step.grid[2]}},
          {"block",
           llvm::json::Array{step.block[0], step.block[1], step.block[2]}},
          {"shared", int64_t(step.shared)},
          {"params", std::move(params)}});
    }
    std::string out;
    llvm::raw_string_ostream os(out);
    llvm::json::Array scratch;
    for (uint64_t bytes : scratchBytes)
      scratch.push_back(int64_t(bytes));
    llvm::json::Array maps;
    for (const TensorMapSpec &m : tensorMaps)
      maps.push_back(llvm::json::Object{
          {"source", llvm::json::Object{{paramKindName(m.source.kind),
                                         int64_t(m.source.index)}}},
          {"data_type", m.dataType},
          {"shape", llvm::json::Array(m.shape)},
          {"box", llvm::json::Array(m.box)},
          {"swizzle", m.swizzle}});
    os << llvm::json::Value(llvm::json::Object{{"inputs", std::move(ins)},
                                               {"scratch", std::move(scratch)},
                                               {"tensor_maps", std::move(maps)},
                                               {"results", std::move(outs)},
                                               {"names", std::move(names)},
                                               {"launches", std::move(plan)},
                                               {"ptx", ptx},
                                               {"images", imagesJson()}});
    return out;
  }

  static std::shared_ptr<CUDAKernel> deserialise(StringRef text) {
    auto value = llvm::json::parse(text);
    if (!value) {
      llvm::consumeError(value.takeError());
      return nullptr;
    }
    auto *obj = value->getAsObject();
    if (!obj)
      return nullptr;
    auto specs = [&](StringRef key, std::vector<TensorSpec> &out) {
      auto *array = obj->getArray(key);
      if (!array)
        return false;
      for (const llvm::json::Value &v : *array) {
        auto *o = v.getAsObject();
        auto dtype = o ? o->getString("dtype") : std::nullopt;
        auto *shape = o ? o->getArray("shape") : nullptr;
        if (!dtype || !shape || !parseDType(*dtype))
          return false;
        TensorSpec t{*parseDType(*dtype), {}};
        for (const llvm::json::Value &d : *shape)
          t.shape.push_back(d.getAsInteger().value_or(-1));
        out.push_back(t);
      }
      return true;
    };
    std::vector<TensorSpec> ins, outs;
    std::vector<std::string> names;
    std::vector<LaunchStep> steps;
    auto ptx = obj->getString("ptx");
    auto *nameArray = obj->getArray("names");
    auto *plan = obj->getArray("launches");
    auto *scratchArray = obj->getArray("scratch");
    if (!specs("inputs", ins) || !specs("results", outs) || !ptx ||
        !nameArray || !plan || !scratchArray)
      return nullptr;
    std::vector<uint64_t> scratchBytes;
    for (const llvm::json::Value &v : *scratchArray) {
      auto bytes = v.getAsInteger();
      if (!bytes || *bytes <= 0)
        return nullptr;
      scratchBytes.push_back(uint64_t(*bytes));
    }
    for (const llvm::json::Value &n : *nameArray)
      names.push_back(n.getAsString().value_or("?").str());
    // A buffer parameter (input, result, scratch) as the plan names it.
    auto bufferParam = [&](const llvm::json::Object &po)
        -> std::optional<Param> {
      for (ParamKind kind :
           {ParamKind::Input, ParamKind::Result, ParamKind::Scratch})
        if (auto i = po.getInteger(paramKindName(kind))) {
          size_t limit = kind == ParamKind::Input    ? ins.size()
                         : kind == ParamKind::Result ? outs.size()
                                                     : scratchBytes.size();
          if (*i < 0 || size_t(*i) >= limit)
            return std::nullopt;
          return Param{kind, unsigned(*i)};
        }
      return std::nullopt;
    };
    std::vector<TensorMapSpec> maps;
    auto *mapArray = obj->getArray("tensor_maps");
    if (!mapArray)
      return nullptr;
    for (const llvm::json::Value &v : *mapArray) {
      auto *o = v.getAsObject();
      auto *source = o ? o->getObject("source") : nullptr;
      auto *shape = o ? o->getArray("shape") : nullptr;
      auto *box = o ? o->getArray("box") : nullptr;
      std::optional<Param> param =
          source ? bufferParam(*source) : std::nullopt;
      auto dataType = o ? o->getInteger("data_type") : std::nullopt;
      auto swizzle = o ? o->getInteger("swizzle") : std::nullopt;
      if (!param || !shape || !box || !dataType || !swizzle ||
          shape->size() != box->size() || shape->empty() || shape->size() > 5)
        return nullptr;
      TensorMapSpec m{*param, int(*dataType), {}, {}, int(*swizzle)};
      for (const llvm::json::Value &d : *shape)
        m.shape.push_back(uint64_t(d.getAsInteger().value_or(1)));
      for (const llvm::json::Value &d : *box)
        m.box.push_back(uint32_t(d.getAsInteger().value_or(1)));
      maps.push_back(std::move(m));
    }
    for (const llvm::json::Value &v : *plan) {
      auto *o = v.getAsObject();
      if (!o || !o->getString("kernel") || !o->getArray("grid") ||
          !o->getArray("block") || !o->getArray("params"))
        return nullptr;
      LaunchStep step;
      step.kernel = o->getString("kernel")->str();
      for (int i = 0; i < 3; ++i) {
        step.grid[i] = (*o->getArray("grid"))[i].getAsInteger().value_or(1);
        step.block[i] = (*o->getArray("block"))[i].getAsInteger().value_or(1);
      }
      std::optional<int64_t> shared = o->getInteger("shared");
      if (!shared || *shared < 0)
        return nullptr;
      step.shared = uint32_t(*shared);
      for (const llvm::json::Value &p : *o->getArray("params")) {
        auto *po = p.getAsObject();
        if (!po)
          return nullptr;
        std::optional<Param> param = bufferParam(*po);
        if (auto i = po->getInteger(paramKindName(ParamKind::TensorMap)))
          if (*i >= 0 && size_t(*i) < maps.size())
            param = Param{ParamKind::TensorMap, unsigned(*i)};
        if (!param)
          return nullptr;
        step.params.push_back(*param);
      }
      steps.push_back(std::move(step));
    }
    std::vector<ModuleImage> images;
    if (auto *array = obj->getArray("images"))
      for (const llvm::json::Value &v : *array) {
        auto *io = v.getAsObject();
        auto encoded = io ? io->getString("cubin") : std::nullopt;
        auto *kernels = io ? io->getArray("kernels") : nullptr;
        std::vector<char> bytes;
        if (!encoded || !kernels)
          return nullptr;
        if (llvm::Error err = llvm::decodeBase64(*encoded, bytes)) {
          llvm::consumeError(std::move(err));
          return nullptr; // a damaged entry is rebuilt
        }
        if (bytes.empty())
          return nullptr; // a damaged entry is rebuilt
        ModuleImage image;
        image.cubin.assign(bytes.begin(), bytes.end());
        for (const llvm::json::Value &k : *kernels) {
          auto name = k.getAsString();
          if (!name)
            return nullptr;
          image.kernels.push_back(name->str());
        }
        images.push_back(std::move(image));
      }
    return std::make_shared<CUDAKernel>(
        ptx->str(), std::move(images), std::move(steps),
        std::move(scratchBytes), std::move(maps), std::move(ins),
        std::move(outs),
        std::move(names));
  }

private:
  /// Encodes `spec` for the buffer at `address` into `out`.
  Error encode(cuda::Driver &driver, const TensorMapSpec &spec, void *address,
               TensorMapBytes &out) const {
    // TMA reads from 16-byte aligned global addresses.
    if (reinterpret_cast<uintptr_t>(address) % 16)
      return makeError(fmt::format(
          "{} must be 16-byte aligned for the kernels' TMA copies, but "
          "starts at {}",
          spec.source.kind == ParamKind::Input
              ? fmt::format("input #{} ('{}')", spec.source.index,
                            inputNames_[spec.source.index])
              : fmt::format("{} buffer #{}", paramKindName(spec.source.kind).str(),
                            spec.source.index),
          address));
    unsigned rank = unsigned(spec.shape.size());
    uint64_t dims[5], strides[4];
    uint32_t box[5];
    uint64_t stride = tensorMapElementBytes(spec.dataType);
    for (unsigned i = 0; i < rank; ++i) {
      // The driver's order is innermost first.
      dims[i] = spec.shape[rank - 1 - i];
      box[i] = spec.box[rank - 1 - i];
      stride *= dims[i];
      if (i + 1 < rank)
        strides[i] = stride;
    }
    return driver.encodeTensorMap(out.bytes, spec.dataType, rank, address,
                                  dims, strides, box, spec.swizzle);
  }

  /// Loads the module into the current context on first launch, after
  /// checking that the device runs sm_90a code.
  Error loadOnce(cuda::Driver &driver) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!functions.empty())
      return Error::success();
    auto cc = driver.currentComputeCapability();
    if (!cc)
      return cc.takeError();
    if (*cc != 90)
      return makeError(fmt::format(
          "the kernels were compiled for sm_90a (compute capability 9.0), "
          "but the current device has compute capability {}.{}",
          *cc / 10, *cc % 10));
    // The cubins ptxas made at compile time (one for the whole module, or
    // one per kernel), else the PTX through the driver's JIT.
    std::optional<cuda::CUmodule> whole;
    llvm::StringMap<cuda::CUmodule> moduleOf;
    for (const ModuleImage &image : images) {
      auto module = driver.loadCubin(image.cubin);
      if (!module)
        return module.takeError();
      if (image.kernels.empty())
        whole = *module;
      for (const std::string &kernel : image.kernels)
        moduleOf[kernel] = *module;
    }
    if (images.empty()) {
      auto module = driver.loadPTX(ptx);
      if (!module)
        return module.takeError();
      whole = *module;
    }
    for (const LaunchStep &step : steps) {
      auto it = moduleOf.find(step.kernel);
      if (it == moduleOf.end() && !whole)
        return makeError(fmt::format("no module image holds kernel '{}'",
                                     step.kernel));
      auto fn = driver.function(it != moduleOf.end() ? it->second : *whole,
                                step.kernel);
      if (!fn)
        return fn.takeError();
      // Static plus dynamic shared memory beyond 48 KiB needs the kernel's
      // consent (the static part is the kernel's own business here).
      if (step.shared > 0)
        if (Error err = driver.allowDynamicShared(*fn, step.shared))
          return err;
      functions.push_back(*fn);
    }
    return Error::success();
  }

  /// The images as the disk cache keeps them (cubins in base64).
  llvm::json::Array imagesJson() const {
    llvm::json::Array out;
    for (const ModuleImage &image : images)
      out.push_back(llvm::json::Object{
          {"kernels", llvm::json::Array(image.kernels)},
          {"cubin", llvm::encodeBase64(image.cubin)}});
    return out;
  }

  std::string ptx;
  /// Empty: none (no ptxas at compile time; the driver's JIT).
  std::vector<ModuleImage> images;
  std::vector<LaunchStep> steps;
  std::vector<uint64_t> scratchBytes;
  std::vector<TensorMapSpec> tensorMaps;
  /// Where each scratch buffer sits in a caller's workspace (256-byte
  /// aligned), and the workspace's size.
  static constexpr uint64_t kWorkspaceAlign = 256;
  /// The alignment every input and output buffer must have.
  static constexpr uint64_t kBufferAlign = 16;
  std::vector<uint64_t> scratchOffsets;
  uint64_t workspaceSize_ = 0;
  std::mutex mutex;
  std::vector<cuda::CUfunction> functions;
  /// Recorded launches per set of buffers and stream (inputs, outputs,
  /// workspace, stream), at most kMaxGraphs, the least recently used
  /// dropped first; the sets launched once so far, at most kMaxSeen.
  static constexpr size_t kMaxGraphs = 8, kMaxSeen = 64;
  std::mutex graphMutex;
  LaunchGraphCache<std::vector<void *>, cuda::CUgraphExec> graphs{kMaxGraphs,
                                                                 kMaxSeen};
  cuda::CUstream captureStream = nullptr;
  std::atomic<bool> graphsBroken{false};
};

/// After specialisation the gsa ops' operands are static, but their results
/// keep their declared (maybe dynamic) types: give them the static types the
/// operands imply, casting back to the declared type for the other users.
void refineResultTypes(func::FuncOp fn) {
  auto refine = [](Operation *op, ArrayRef<Type> types) {
    OpBuilder b(op->getContext());
    b.setInsertionPointAfter(op);
    for (auto [result, type] : llvm::zip(op->getResults(), types)) {
      if (!type || result.getType() == type)
        continue;
      Type old = result.getType();
      result.setType(type);
      auto cast = tensor::CastOp::create(b, op->getLoc(), old, result);
      result.replaceAllUsesExcept(cast.getResult(), cast);
    }
  };
  auto staticType = [](ArrayRef<int64_t> shape, Type elem) -> Type {
    for (int64_t d : shape)
      if (ShapedType::isDynamic(d))
        return Type();
    return RankedTensorType::get(shape, elem);
  };
  fn.walk([&](Operation *op) {
    MLIRContext *ctx = op->getContext();
    Type f32 = Float32Type::get(ctx), i32 = IntegerType::get(ctx, 32);
    auto dims = [](Value v) { return cast<RankedTensorType>(v.getType()).getShape(); };
    if (auto o = dyn_cast<IndexerOp>(op)) {
      auto qi = dims(o.getQi());
      refine(op, {staticType({qi[0], qi[1], qi[1]}, f32)});
    } else if (auto o = dyn_cast<AdaptiveTopKOp>(op)) {
      auto sc = dims(o.getScores());
      SmallVector<Type> types = {staticType({sc[0], sc[1], int64_t(o.getKMax())}, i32),
                                 staticType({sc[0], sc[1]}, i32)};
      if (o.getNewRunningVar())
        types.push_back(Type());
      refine(op, types);
    } else if (auto o = dyn_cast<SparseAttentionOp>(op)) {
      auto q = dims(o.getQ());
      refine(op, {staticType(q, o.getQ().getType().getElementType()),
                  staticType({q[0], q[1], q[2]}, f32)});
    } else if (auto o = dyn_cast<GatedSparseAttentionOp>(op)) {
      auto q = dims(o.getQ());
      SmallVector<Type> types = {
          staticType(q, o.getQ().getType().getElementType()),
          staticType({q[0], q[1], q[2]}, f32),
          staticType({q[0], q[1], int64_t(o.getKMax())}, i32),
          staticType({q[0], q[1]}, i32)};
      if (o.getNewRunningVar())
        types.push_back(Type());
      refine(op, types);
    }
  });
}

/// The entry's result types, static where the program determines them.
Expected<std::vector<TensorSpec>> resultSpecsOf(func::FuncOp fn) {
  std::vector<TensorSpec> specs;
  auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
  for (auto [i, operand] : llvm::enumerate(ret.getOperands())) {
    Value v = operand;
    if (auto castOp = v.getDefiningOp<tensor::CastOp>())
      v = castOp.getSource();
    auto spec = specOf(v.getType(), fmt::format("result #{}", i));
    if (!spec)
      return spec.takeError();
    specs.push_back(*spec);
  }
  return specs;
}

} // namespace

//===----------------------------------------------------------------------===//
// Kernel
//===----------------------------------------------------------------------===//

Kernel::~Kernel() = default;

std::string TensorSpec::toString() const {
  return fmt::format("{}{}", dtypeName(dtype).str(), shapeString(shape));
}

Error Kernel::validate(ArrayRef<const Tensor *> inputs) const {
  if (inputs.size() != inputs_.size())
    return makeError(fmt::format("expected {} inputs, got {}", inputs_.size(),
                                 inputs.size()));
  for (auto [i, t] : llvm::enumerate(inputs)) {
    const TensorSpec &spec = inputs_[i];
    if (!t)
      return makeError(fmt::format("input #{} ('{}') is missing", i,
                                   inputNames_[i]));
    if (t->dtype() != spec.dtype ||
        std::vector<int64_t>(t->shape().begin(), t->shape().end()) !=
            spec.shape)
      return makeError(fmt::format(
          "input #{} ('{}') is {}{}, but the kernel was compiled for {}", i,
          inputNames_[i], dtypeName(t->dtype()).str(), t->shapeString(),
          spec.toString()));
  }
  for (const InputCheck &check : checks_) {
    const Tensor *t = inputs[check.argument];
    // Both kinds read a running variance: V_bar in inference (positive),
    // the value training updates (not negative); finite either way.
    bool inference = check.kind == InputCheck::PositiveReferenceVariance;
    double v = t->get(0);
    if (!std::isfinite(v) || !(inference ? v > 0.0 : v >= 0.0))
      return makeError(fmt::format(
          "input #{} ('{}') is {}: {}", check.argument,
          inputNames_[check.argument], v,
          inference
              ? "in inference mode the running variance is the reference "
                "V_bar and must be finite and positive (run in training "
                "mode first, or pass the trained value)"
              : "in training mode the running variance is updated from "
                "each batch's and must be finite and not negative (NaN or "
                "infinity would stay so through every update)"));
  }
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Runtime
//===----------------------------------------------------------------------===//

Runtime::Runtime() = default;
Runtime::~Runtime() = default;

// The release, then a hash of the sources that decide what the compiler
// emits (generated at build time): part of every cache key, so a changed
// compiler never reads kernels an older one cached.
llvm::StringRef Runtime::version() {
  return "gsa-0.4.6+" GSA_COMPILER_SOURCE_HASH;
}

CacheStats Runtime::cacheStats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

Expected<std::vector<Runtime::Argument>>
Runtime::signature(StringRef program, StringRef entry, StringRef sourceName) {
  auto ctx = makeContext();
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBuffer(program, sourceName), llvm::SMLoc());
  DiagnosticCollector diagnostics(ctx.get(), sourceMgr);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, ctx.get());
  if (!module)
    return makeError(diagnostics.take());
  auto fn = findEntry(*module, entry);
  if (!fn)
    return fn.takeError();
  std::vector<Argument> arguments;
  for (unsigned i = 0; i < fn->getNumArguments(); ++i) {
    std::string name = argumentName(*fn, i);
    auto spec = specOf(fn->getArgument(i).getType(),
                       fmt::format("input #{} ('{}')", i, name));
    if (!spec)
      return spec.takeError();
    arguments.push_back({name, *spec});
  }
  return arguments;
}

Expected<std::shared_ptr<Kernel>>
Runtime::compile(StringRef program, ArrayRef<TensorSpec> inputs,
                 const CompileOptions &options) {
  // The cache key: everything the generated code depends on.
  llvm::SHA256 hasher;
  auto feed = [&](StringRef s) {
    hasher.update(s);
    hasher.update(StringRef("\0", 1));
  };
  feed(version());
  feed(program);
  feed(options.entry);
  feed(std::to_string(int(options.backend)));
  if (options.backend == Backend::CUDA)
    feed("sm_90a+ptx80"); // the target
  if (options.backend == Backend::CUDA)
    if (const char *gpuOptions = std::getenv("GSA_GPU_OPTIONS"))
      feed(gpuOptions);
  feed(std::to_string(options.optLevel));
  for (const TensorSpec &spec : inputs)
    feed(spec.toString());
  std::array<uint8_t, 32> digest = hasher.final();
  std::string key = llvm::toHex(digest);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      ++stats_.hits;
      return it->second;
    }
  }

  if (options.backend == Backend::CUDA) {
    // Compiled kernels survive the process: look on disk first. A corrupt
    // or truncated entry reads as absent and is rebuilt below.
    DiskCache disk = DiskCache::fromEnvironment();
    if (auto payload = disk.load(key, version()))
      if (auto kernel = CUDAKernel::deserialise(*payload)) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.diskHits;
        auto [it, inserted] = cache_.emplace(key, kernel);
        return it->second;
      }
  }

  auto started = std::chrono::steady_clock::now();
  initializeLLVMOnce();
  auto ctx = makeContext();
  llvm::SourceMgr sourceMgr;
  sourceMgr.AddNewSourceBuffer(
      llvm::MemoryBuffer::getMemBuffer(program, options.sourceName),
      llvm::SMLoc());
  DiagnosticCollector diagnostics(ctx.get(), sourceMgr);
  OwningOpRef<ModuleOp> module =
      parseSourceFile<ModuleOp>(sourceMgr, ctx.get());
  if (!module)
    return makeError(diagnostics.take());
  auto fnOr = findEntry(*module, options.entry);
  if (!fnOr)
    return fnOr.takeError();
  func::FuncOp fn = *fnOr;
  std::string entry = fn.getName().str();

  // Inputs against the declared signature.
  std::vector<std::string> names;
  if (inputs.size() != fn.getNumArguments())
    return makeError(fmt::format("'@{}' takes {} arguments, got {} inputs",
                                 entry, fn.getNumArguments(), inputs.size()));
  for (unsigned i = 0; i < fn.getNumArguments(); ++i) {
    names.push_back(argumentName(fn, i));
    std::string what = fmt::format("input #{} ('{}')", i, names.back());
    auto declared = specOf(fn.getArgument(i).getType(), what);
    if (!declared)
      return declared.takeError();
    const TensorSpec &given = inputs[i];
    if (given.dtype != declared->dtype)
      return makeError(fmt::format("{}: expected {} elements, got {}", what,
                                   dtypeName(declared->dtype).str(),
                                   dtypeName(given.dtype).str()));
    bool shapeOk = given.shape.size() == declared->shape.size();
    for (size_t d = 0; shapeOk && d < given.shape.size(); ++d)
      shapeOk = given.shape[d] >= 0 &&
                (declared->shape[d] < 0 || declared->shape[d] == given.shape[d]);
    if (!shapeOk)
      return makeError(fmt::format("{}: expected shape {}, got {}", what,
                                   shapeString(declared->shape),
                                   shapeString(given.shape)));
  }
  std::vector<TensorSpec> resultSpecs;
  for (auto [i, type] : llvm::enumerate(fn.getResultTypes())) {
    auto spec = specOf(type, fmt::format("result #{}", i));
    if (!spec)
      return spec.takeError();
    resultSpecs.push_back(*spec);
  }

  // Specialise, then let the verifiers check the real shapes.
  specialiseArguments(fn, inputs);
  if (failed(mlir::verify(*module)))
    return makeError("the inputs do not fit the program:\n" +
                     diagnostics.take());
  std::vector<InputCheck> checks = collectInputChecks(fn);

  // Static result shapes wherever the specialised inputs determine them.
  refineResultTypes(fn);
  if (failed(mlir::verify(*module)))
    return makeError("refining result types failed:\n" + diagnostics.take());
  {
    auto refined = resultSpecsOf(fn);
    if (!refined)
      return refined.takeError();
    resultSpecs = std::move(*refined);
  }

  if (options.backend == Backend::CUDA) {
    int timesLevel = compileTimesLevel();
    double frontSeconds = secondsSince(started);
    auto pipelineStarted = std::chrono::steady_clock::now();
    PassManager gpm(ctx.get());
    // MLIR's pass timing: reported to stderr when the pass manager goes.
    if (timesLevel >= 2)
      gpm.enableTiming();
    auto gpuOptionsOr = gpuOptionsFromEnvironment();
    if (!gpuOptionsOr)
      return gpuOptionsOr.takeError();
    GPUPipelineOptions gpuOptions = *gpuOptionsOr;
    gpuOptions.reportTimes = timesLevel >= 1;
    // GSA_PTXAS_PER_KERNEL=1: each kernel assembled on its serialising
    // thread right after LLVM (one module per kernel) instead of one
    // ptxas over the joined module afterwards.
    std::string ptxas = findPtxas();
    if (const char *perKernel = std::getenv("GSA_PTXAS_PER_KERNEL");
        perKernel && StringRef(perKernel) == "1")
      gpuOptions.ptxas = ptxas;
    buildGPUPipeline(gpm, gpuOptions);
    maybeDumpIR(gpm);
    if (failed(gpm.run(*module)))
      return makeError("compiling the program for the GPU failed:\n" +
                       diagnostics.take());
    double pipelineSeconds = secondsSince(pipelineStarted);
    auto binary = module->lookupSymbol<gpu::BinaryOp>("gsa_kernels");
    if (!binary)
      return makeError("the program has no GPU kernel: the CUDA backend "
                       "supports programs built from gsa.sparse_attention");
    std::string ptx = cast<gpu::ObjectAttr>(binary.getObjects()[0])
                          .getObject()
                          .getValue()
                          .str();
    std::vector<LaunchStep> steps;
    std::vector<uint64_t> scratchBytes;
    std::vector<TensorMapSpec> tensorMaps;
    llvm::DenseMap<Operation *, unsigned> scratchIndex;
    std::string planError;
    // What a launch operand is: follow the views and the tensor/buffer
    // conversions back to an entry argument, a buffer returned by the
    // entry, or a buffer that only kernels see (scratch).
    auto resolve = [&](Value operand) -> std::optional<Param> {
      LaunchOperandSource source = traceLaunchOperand(operand);
      if (source.kind == LaunchOperandSource::Argument)
        return Param{ParamKind::Input, source.number};
      if (source.kind == LaunchOperandSource::Result)
        return Param{ParamKind::Result, source.number};
      if (source.kind == LaunchOperandSource::Unknown)
        return std::nullopt;
      Value v = source.buffer;
      auto alloc = v.getDefiningOp<memref::AllocOp>();
      if (!alloc || !alloc.getType().hasStaticShape())
        return std::nullopt;
      auto [it, inserted] =
          scratchIndex.try_emplace(alloc, unsigned(scratchBytes.size()));
      if (inserted) {
        MemRefType type = alloc.getType();
        uint64_t bytes = type.getNumElements() *
                         std::max<uint64_t>(1, type.getElementTypeBitWidth() / 8);
        scratchBytes.push_back(std::max<uint64_t>(bytes, 1));
      }
      return Param{ParamKind::Scratch, it->second};
    };
    fn.walk([&](gpu::LaunchFuncOp launch) {
      LaunchStep step;
      step.kernel = launch.getKernelName().getValue().str();
      auto dims = [&](gpu::KernelDim3 d, uint32_t out[3]) {
        Value vs[3] = {d.x, d.y, d.z};
        for (int i = 0; i < 3; ++i) {
          auto c = vs[i].getDefiningOp<arith::ConstantIndexOp>();
          out[i] = c ? uint32_t(c.value()) : 0;
        }
      };
      dims(launch.getGridSizeOperandValues(), step.grid);
      dims(launch.getBlockSizeOperandValues(), step.block);
      if (Value shared = launch.getDynamicSharedMemorySize()) {
        auto c = shared.getDefiningOp<arith::ConstantOp>();
        auto bytes = c ? dyn_cast<IntegerAttr>(c.getValue()) : IntegerAttr();
        if (!bytes) {
          planError = fmt::format("kernel '{}' takes a dynamic shared memory "
                                  "size that is not a constant",
                                  step.kernel);
          return;
        }
        step.shared = uint32_t(bytes.getInt());
      }
      for (Value operand : launch.getKernelOperands()) {
        std::optional<Param> param;
        if (auto map = operand.getDefiningOp<TensorMapOp>()) {
          std::optional<Param> source = resolve(map.getSource());
          if (source) {
            Type elem = map.getSource().getType().getElementType();
            // CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 / FLOAT16 / FLOAT32 / INT32
            int dataType = elem.isBF16() ? 9 : elem.isF16() ? 6
                           : elem.isF32() ? 7 : 3;
            TensorMapSpec spec{*source, dataType, {}, {},
                               int(map.getSwizzle())};
            for (int64_t d : map.getShape())
              spec.shape.push_back(uint64_t(d));
            for (int64_t d : map.getBox())
              spec.box.push_back(uint32_t(d));
            param = Param{ParamKind::TensorMap, unsigned(tensorMaps.size())};
            tensorMaps.push_back(std::move(spec));
          }
        } else {
          param = resolve(operand);
        }
        if (!param) {
          planError = fmt::format(
              "the CUDA backend cannot tell what parameter #{} of kernel '{}' "
              "is (an entry argument, a returned buffer or a scratch buffer): "
              "the program computes tensors outside the gsa ops",
              step.params.size(), step.kernel);
          return;
        }
        step.params.push_back(*param);
      }
      steps.push_back(std::move(step));
    });
    if (!planError.empty())
      return makeError(planError);
    // After the GPU pipeline the return operands are the kernels' buffers.
    auto staticResultsOr = resultSpecsOf(fn);
    if (!staticResultsOr)
      return staticResultsOr.takeError();
    std::vector<TensorSpec> staticResults = std::move(*staticResultsOr);
    std::vector<TensorSpec> inputSpecs(inputs.begin(), inputs.end());
    // A cubin where ptxas is at hand (no JIT at load time, and the disk
    // cache keeps it); a ptxas that fails leaves the PTX to the driver's
    // JIT, which reports any real problem in the PTX when the module loads.
    std::vector<ModuleImage> images = cubinsOf(binary);
    auto ptxasStarted = std::chrono::steady_clock::now();
    if (images.empty() && !ptxas.empty()) {
      // -split-compile 0: the module's kernels assembled on all cores.
      auto image = assembleCubin(ptxas, ptx, gpuOptions.chip,
                                 /*splitCompile=*/true);
      if (image)
        images.push_back(ModuleImage{{}, std::move(*image)});
      else
        llvm::consumeError(image.takeError());
    }
    if (timesLevel >= 1)
      llvm::errs() << fmt::format(
          "gsa: compiled '@{}' for the GPU in {:.3f} s: front end {:.3f} s, "
          "GPU pipeline {:.3f} s (kernels above), ptxas {:.3f} s{}\n",
          entry, secondsSince(started), frontSeconds, pipelineSeconds,
          secondsSince(ptxasStarted),
          images.empty()             ? " (no cubin)"
          : images[0].kernels.empty() ? ""
                                      : " (each kernel's with its LLVM, above)");
    auto kernel = std::make_shared<CUDAKernel>(
        std::move(ptx), std::move(images), std::move(steps),
        std::move(scratchBytes), std::move(tensorMaps), std::move(inputSpecs),
        std::move(staticResults), std::move(names));
    DiskCache disk = DiskCache::fromEnvironment();
    if (Error err = disk.store(key, version(), kernel->serialise()))
      llvm::consumeError(std::move(err)); // a read-only cache is not fatal
    std::lock_guard<std::mutex> lock(mutex_);
    ++stats_.misses;
    auto [it, inserted] = cache_.emplace(key, kernel);
    return it->second;
  }

  // Lower to the LLVM dialect and JIT.
  fn->setAttr(LLVM::LLVMDialect::getEmitCWrapperAttrName(),
              UnitAttr::get(ctx.get()));
  PassManager pm(ctx.get());
  buildCPUPipeline(pm);
  maybeDumpIR(pm);
  if (failed(pm.run(*module)))
    return makeError("compiling the program failed:\n" + diagnostics.take());

  auto transformer = makeOptimizingTransformer(options.optLevel,
                                               /*sizeLevel=*/0,
                                               /*targetMachine=*/nullptr);
  ExecutionEngineOptions engineOptions;
  engineOptions.transformer = transformer;
  engineOptions.jitCodeGenOptLevel =
      static_cast<llvm::CodeGenOptLevel>(std::min(options.optLevel, 3u));
  engineOptions.enableGDBNotificationListener = false;
  engineOptions.enablePerfNotificationListener = false;
  auto engine = ExecutionEngine::create(*module, engineOptions);
  if (!engine)
    return makeError("JIT compilation failed: " +
                     llvm::toString(engine.takeError()));

  std::vector<TensorSpec> inputSpecs(inputs.begin(), inputs.end());
  auto kernel = std::make_shared<CPUKernel>(
      std::move(*engine), entry, std::move(inputSpecs),
      std::move(resultSpecs), std::move(names), std::move(checks));
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.misses;
  auto [it, inserted] = cache_.emplace(key, kernel);
  return it->second;
}

Expected<std::vector<Tensor>>
Runtime::run(StringRef program, ArrayRef<const Tensor *> inputs,
             const CompileOptions &options) {
  std::vector<TensorSpec> specs;
  for (const Tensor *t : inputs) {
    if (!t)
      return makeError("an input is missing (null)");
    specs.push_back(
        {t->dtype(), std::vector<int64_t>(t->shape().begin(), t->shape().end())});
  }
  auto kernel = compile(program, specs, options);
  if (!kernel)
    return kernel.takeError();
  return (*kernel)->run(inputs);
}
