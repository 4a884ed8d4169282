//===- gsa-compile.cpp - a gsa program to PTX and a launch manifest --------===//
//
//   gsa-compile PROGRAM.mlir -o OUT.ptx [--manifest OUT.json] [--ptxas-info]
//               [--chip sm_90a] [--dump-ir DIR]
//
// Runs the GPU pipeline (gsa-gpu-pipeline) on a statically shaped program,
// writes the PTX of gpu.module @gsa_kernels, and a JSON manifest of the
// launches in program order: kernel, grid, block, and for every kernel
// parameter the entry argument ("arg": N) or result ("result": N) it is.
// With --ptxas-info, assembles the PTX with ptxas -v and prints registers,
// shared memory and spills per kernel.
//
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/LaunchOperands.h"
#include "gsa/Conversion/Passes.h"
#include "gsa/Dialect/GSADialect.h"
#include "gsa/InitAll.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"

#include <fmt/format.h>

using namespace mlir;
namespace cl = llvm::cl;

static cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                                      cl::desc("<gsa program .mlir>"));
static cl::opt<std::string> outputPath("o", cl::desc("PTX output file"),
                                       cl::Required);
static cl::opt<std::string> manifestPath("manifest",
                                         cl::desc("JSON launch manifest"),
                                         cl::init(""));
static cl::opt<std::string> chip("chip", cl::desc("target chip"),
                                 cl::init("sm_90a"));
// The GPU pipeline's switches (GPUPipelineOptions.def), under their names.
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  static cl::opt<Type> Field##Flag(Name, cl::desc(Help), cl::init(Default));
#include "gsa/Conversion/GPUPipelineOptions.def"
static cl::opt<bool> ptxasInfo(
    "ptxas-info", cl::desc("assemble with ptxas -v and print resource use"));
static cl::opt<std::string> ptxasPath("ptxas",
                                      cl::desc("ptxas to use for --ptxas-info"),
                                      cl::init(""));

namespace {

[[noreturn]] void fail(const std::string &message) {
  llvm::errs() << "gsa-compile: error: " << message << "\n";
  std::exit(1);
}

/// What a launch operand is: an argument or a result of the entry, a
/// buffer the kernels alone use, or the TMA tensor map of one of these
/// (which the launcher encodes: {"tensor_map": <its source>}).
llvm::json::Value describeOperand(Value operand) {
  if (auto map = operand.getDefiningOp<gsa::TensorMapOp>())
    return llvm::json::Object{{"tensor_map", describeOperand(map.getSource())}};
  gsa::LaunchOperandSource source = gsa::traceLaunchOperand(operand);
  if (source.kind == gsa::LaunchOperandSource::Argument)
    return llvm::json::Object{{"arg", int64_t(source.number)}};
  if (source.kind == gsa::LaunchOperandSource::Result)
    return llvm::json::Object{{"result", int64_t(source.number)}};
  return llvm::json::Object{{"internal", true}};
}

int64_t constantOf(Value v) {
  if (auto c = v.getDefiningOp<arith::ConstantIndexOp>())
    return c.value();
  fail("a launch dimension is not a constant");
}

/// A launch's dynamic shared memory bytes (0 without).
int64_t dynamicShared(gpu::LaunchFuncOp launch) {
  Value bytes = launch.getDynamicSharedMemorySize();
  if (!bytes)
    return 0;
  if (auto c = bytes.getDefiningOp<arith::ConstantOp>())
    if (auto value = dyn_cast<IntegerAttr>(c.getValue()))
      return value.getInt();
  fail("a launch's dynamic shared memory size is not a constant");
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "gsa program -> PTX\n");

  DialectRegistry registry;
  gsa::registerCompilerDialects(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ctx.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  std::string error;
  auto file = openInputFile(inputPath, &error);
  if (!file)
    fail(error);
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  SourceMgrDiagnosticHandler handler(sourceMgr, &ctx);
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &ctx);
  if (!module)
    return 1;

  PassManager pm(&ctx);
  gsa::GPUPipelineOptions options;
#define GSA_GPU_OPTION(Field, Name, Type, Default, Lowest, Highest, Help)     \
  options.Field = Field##Flag;
#include "gsa/Conversion/GPUPipelineOptions.def"
  options.chip = chip;
  options.libdevice = gsa::defaultLibdevicePath();
  gsa::buildGPUPipeline(pm, options);
  if (failed(pm.run(*module)))
    return 1;

  auto binary = module->lookupSymbol<gpu::BinaryOp>("gsa_kernels");
  if (!binary)
    fail("the program has no gsa.sparse_attention to compile for the GPU");
  auto object = cast<gpu::ObjectAttr>(binary.getObjects()[0]);
  std::string ptx = object.getObject().getValue().str();
  {
    auto out = openOutputFile(outputPath, &error);
    if (!out)
      fail(error);
    out->os() << ptx;
    out->keep();
  } // closed (and flushed) here, before ptxas reads it

  if (!manifestPath.empty()) {
    llvm::json::Array launches;
    module->walk([&](gpu::LaunchFuncOp launch) {
      llvm::json::Array params;
      for (Value operand : launch.getKernelOperands())
        params.push_back(describeOperand(operand));
      auto dims = [&](gpu::KernelDim3 d) {
        return llvm::json::Array{constantOf(d.x), constantOf(d.y),
                                 constantOf(d.z)};
      };
      launches.push_back(llvm::json::Object{
          {"kernel", launch.getKernelName().getValue().str()},
          {"grid", dims(launch.getGridSizeOperandValues())},
          {"block", dims(launch.getBlockSizeOperandValues())},
          {"shared", dynamicShared(launch)},
          {"params", std::move(params)}});
    });
    auto manifest = openOutputFile(manifestPath, &error);
    if (!manifest)
      fail(error);
    manifest->os() << llvm::formatv(
        "{0:2}", llvm::json::Value(llvm::json::Object{
                     {"chip", chip.getValue()},
                     {"ptx", outputPath.getValue()},
                     {"launches", std::move(launches)}}));
    manifest->os() << "\n";
    manifest->keep();
    manifest->os().flush();
  }

  if (ptxasInfo) {
    std::string ptxas = ptxasPath;
    if (ptxas.empty()) {
      auto found = llvm::sys::findProgramByName("ptxas", {"/usr/local/cuda/bin"});
      if (!found)
        fail("--ptxas-info: no ptxas found (install CUDA or pass --ptxas)");
      ptxas = *found;
    }
    std::string cubin = outputPath + ".cubin";
    llvm::SmallVector<llvm::StringRef> args = {ptxas, "-v", "-arch", chip,
                                               outputPath, "-o", cubin};
    std::string message;
    int rc = llvm::sys::ExecuteAndWait(ptxas, args, std::nullopt, {}, 0, 0,
                                       &message);
    if (rc != 0)
      fail(fmt::format("ptxas failed ({}): {}", rc, message));
  }
  return 0;
}
