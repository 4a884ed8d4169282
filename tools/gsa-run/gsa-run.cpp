//===- gsa-run.cpp - run a gsa program and report on it --------------------===//
//
//   gsa-run PROGRAM.mlir [--entry NAME] [--inputs DIR] [--random --seed N]
//           [--shape I=AxBxC]... [--fill I=VALUE]... [--out-dir DIR]
//           [--gsa-stats] [--repeat N]
//
// Inputs come, per argument I of the entry function, from DIR/argI.npy, a
// constant (--fill), or seeded random normal values (--random); dynamic
// dimensions need --shape (or the .npy file's shape). Outputs are written as
// DIR/resultI.npy (and, with --random, the inputs as DIR/argI.npy) so that
// any other tool can check them.
//
//===----------------------------------------------------------------------===//

#include "gsa/Dialect/GSADialect.h"
#include "gsa/InitAll.h"
#include "gsa/Runtime/Runtime.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <map>
#include <random>

using namespace gsa::runtime;
namespace cl = llvm::cl;

static cl::opt<std::string> programPath(cl::Positional, cl::Required,
                                        cl::desc("<gsa program .mlir>"));
static cl::opt<std::string> entryName("entry", cl::desc("entry function"),
                                      cl::init(""));
static cl::opt<std::string> inputDir(
    "inputs", cl::desc("directory holding argI.npy for the inputs"),
    cl::init(""));
static cl::opt<bool> randomInputs(
    "random", cl::desc("seeded random normal values for inputs not given"));
static cl::opt<uint64_t> seed("seed", cl::desc("random seed"), cl::init(0));
static cl::list<std::string> shapes(
    "shape", cl::desc("I=AxBxC: shape of input I (for dynamic dimensions)"));
static cl::list<std::string> fills(
    "fill", cl::desc("I=VALUE: input I filled with a constant"));
static cl::opt<std::string> outDir("out-dir",
                                   cl::desc("write resultI.npy here"),
                                   cl::init(""));
static cl::opt<bool> printStats(
    "gsa-stats", cl::desc("print the statistics of SPEC section 5"));
static cl::opt<unsigned> repeat("repeat",
                                cl::desc("run the kernel N times (timing)"),
                                cl::init(1));

namespace {

[[noreturn]] void fail(const std::string &message) {
  llvm::errs() << "gsa-run: error: " << message << "\n";
  std::exit(1);
}

template <typename T> T check(llvm::Expected<T> value) {
  if (!value)
    fail(llvm::toString(value.takeError()));
  return std::move(*value);
}

double seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                       since)
      .count();
}

/// Parses the I=VALUE options into a map.
std::map<unsigned, std::string> indexed(const cl::list<std::string> &items,
                                        const char *flag) {
  std::map<unsigned, std::string> out;
  for (const std::string &item : items) {
    auto [index, value] = llvm::StringRef(item).split('=');
    unsigned i;
    if (value.empty() || index.getAsInteger(10, i))
      fail(fmt::format("--{} expects I=VALUE, got '{}'", flag, item));
    out[i] = value.str();
  }
  return out;
}

std::vector<int64_t> parseShape(llvm::StringRef text) {
  std::vector<int64_t> shape;
  if (text == "scalar")
    return shape;
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, 'x');
  for (llvm::StringRef p : parts) {
    int64_t d;
    if (p.getAsInteger(10, d) || d < 0)
      fail(fmt::format("bad shape '{}' (expected e.g. 1x256x8x64)", text.str()));
    shape.push_back(d);
  }
  return shape;
}

/// Where the parts of the first attention op of the entry come from, for
/// the statistics.
struct AttentionWiring {
  bool found = false;
  std::optional<unsigned> q, k, valueGate, outputGate; // argument numbers
  std::optional<unsigned> lse, indices, counts;         // result numbers
  std::optional<float> scale;
  bool scoreMod = false;
};

AttentionWiring analyse(llvm::StringRef program, llvm::StringRef entry) {
  mlir::DialectRegistry registry;
  gsa::registerCompilerDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  ctx.getDiagEngine().registerHandler([](mlir::Diagnostic &) {
    return mlir::success();
  });
  auto module = mlir::parseSourceString<mlir::ModuleOp>(program, &ctx);
  AttentionWiring w;
  if (!module)
    return w;
  mlir::func::FuncOp fn;
  for (auto f : module->getOps<mlir::func::FuncOp>())
    if (!f.isExternal() && (entry.empty() ? !f.isPrivate()
                                          : f.getName() == entry)) {
      fn = f;
      break;
    }
  if (!fn)
    return w;
  auto argNumber = [&](mlir::Value v) -> std::optional<unsigned> {
    if (auto arg = llvm::dyn_cast_or_null<mlir::BlockArgument>(v))
      if (arg.getOwner() == &fn.getBody().front())
        return arg.getArgNumber();
    return std::nullopt;
  };
  auto returned = [&](mlir::Value v) -> std::optional<unsigned> {
    for (mlir::OpOperand &use : v.getUses())
      if (llvm::isa<mlir::func::ReturnOp>(use.getOwner()))
        return use.getOperandNumber();
    return std::nullopt;
  };
  fn.walk([&](mlir::Operation *op) {
    if (w.found)
      return;
    if (auto o = llvm::dyn_cast<gsa::GatedSparseAttentionOp>(op)) {
      w = {true, argNumber(o.getQ()), argNumber(o.getK()),
           argNumber(o.getValueGate()), argNumber(o.getOutputGate()),
           returned(o.getLse()), returned(o.getIndices()),
           returned(o.getCounts()), std::nullopt, !o.getScoreMod().empty()};
      if (auto s = o.getScale())
        w.scale = s->convertToFloat();
    } else if (auto o = llvm::dyn_cast<gsa::SparseAttentionOp>(op)) {
      w = {true, argNumber(o.getQ()), argNumber(o.getK()),
           argNumber(o.getValueGate()), argNumber(o.getOutputGate()),
           returned(o.getLse()), std::nullopt, std::nullopt, std::nullopt,
           !o.getScoreMod().empty()};
      w.indices = returned(o.getIndices());
      w.counts = returned(o.getCounts());
      if (auto s = o.getScale())
        w.scale = s->convertToFloat();
    }
  });
  return w;
}

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

/// SPEC section 5: first-token attention, gate means, k_t histogram.
void reportStatistics(const AttentionWiring &w,
                      const std::vector<Tensor> &inputs,
                      const std::vector<Tensor> &results) {
  llvm::outs() << "statistics (SPEC section 5):\n";
  if (!w.found) {
    llvm::outs() << "  no gsa attention op in the entry function\n";
    return;
  }
  auto mean = [](const Tensor &t, auto f) {
    double sum = 0;
    for (int64_t i = 0; i < t.numElements(); ++i)
      sum += f(t.get(i));
    return t.numElements() ? sum / t.numElements() : 0.0;
  };
  if (w.outputGate)
    llvm::outs() << fmt::format("  mean G1 (output) gate      {:.4f}\n",
                                mean(inputs[*w.outputGate], sigmoid));
  if (w.valueGate)
    llvm::outs() << fmt::format("  mean G2 (value) gate       {:.4f}\n",
                                mean(inputs[*w.valueGate], sigmoid));
  if (w.counts) {
    const Tensor &c = results[*w.counts];
    double lo = 1e300, hi = -1e300, sum = 0;
    for (int64_t i = 0; i < c.numElements(); ++i) {
      lo = std::min(lo, c.get(i));
      hi = std::max(hi, c.get(i));
      sum += c.get(i);
    }
    llvm::outs() << fmt::format(
        "  k_t                        min {} / mean {:.1f} / max {}\n", lo,
        sum / std::max<int64_t>(1, c.numElements()), hi);
    constexpr int bins = 8;
    std::vector<int64_t> histogram(bins, 0);
    double width = std::max(1.0, (hi - lo + 1) / bins);
    for (int64_t i = 0; i < c.numElements(); ++i)
      ++histogram[std::min(bins - 1, int((c.get(i) - lo) / width))];
    for (int b = 0; b < bins; ++b)
      if (histogram[b])
        llvm::outs() << fmt::format("    [{:>6.0f}, {:>6.0f})  {}\n",
                                    lo + b * width, lo + (b + 1) * width,
                                    histogram[b]);
  }
  // a[t, h, 0] = exp(scale * q[t, h] . k[0, kv(h)] - lse[t, h]) when 0 is
  // selected (gates do not change the attention weights).
  if (w.q && w.k && w.lse && w.indices && w.counts) {
    if (w.scoreMod) {
      llvm::outs() << "  first-token attention      n/a (score_mod)\n";
      return;
    }
    const Tensor &q = inputs[*w.q], &k = inputs[*w.k];
    const Tensor &lse = results[*w.lse], &idx = results[*w.indices],
                 &cnt = results[*w.counts];
    int64_t B = q.shape()[0], L = q.shape()[1], NH = q.shape()[2],
            D = q.shape()[3], NKV = k.shape()[2], K = idx.shape()[2];
    double scale = w.scale ? *w.scale : 1.0 / std::sqrt(double(D));
    double total = 0;
    int64_t terms = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 1; t < L; ++t) {
        bool selected = false;
        for (int64_t j = 0; j < cnt.get(b * L + t) && j < K; ++j)
          selected |= idx.get((b * L + t) * K + j) == 0;
        for (int64_t h = 0; h < NH; ++h, ++terms) {
          if (!selected)
            continue;
          int64_t kvh = h / (NH / NKV);
          double dot = 0;
          for (int64_t d = 0; d < D; ++d)
            dot += q.get(((b * L + t) * NH + h) * D + d) *
                   k.get(((b * L + 0) * NKV + kvh) * D + d);
          total += std::exp(scale * dot - lse.get((b * L + t) * NH + h));
        }
      }
    llvm::outs() << fmt::format("  first-token attention      {:.4f}\n",
                                terms ? total / terms : 0.0);
  }
}

} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv, "run a gsa program on the CPU\n");

  auto file = llvm::MemoryBuffer::getFile(programPath);
  if (!file)
    fail(fmt::format("cannot read '{}': {}", programPath.getValue(),
                     file.getError().message()));
  std::string program = (*file)->getBuffer().str();
  auto arguments =
      check(Runtime::signature(program, entryName, programPath.getValue()));

  auto shapeOf = indexed(shapes, "shape");
  auto fillOf = indexed(fills, "fill");
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<Tensor> inputs;
  std::vector<bool> generated;
  for (auto [i, arg] : llvm::enumerate(arguments)) {
    std::string what = fmt::format("input #{} ('{}', {})", i, arg.name,
                                   arg.spec.toString());
    std::string npy = inputDir.empty()
                          ? ""
                          : (inputDir + "/arg" + std::to_string(i) + ".npy");
    if (!npy.empty() && llvm::sys::fs::exists(npy)) {
      Tensor t = check(readNpy(npy));
      auto converted = t.convertTo(arg.spec.dtype);
      if (!converted)
        fail(fmt::format("{} from '{}': {}", what, npy,
                         llvm::toString(converted.takeError())));
      inputs.push_back(std::move(*converted));
      generated.push_back(false);
      continue;
    }
    std::vector<int64_t> shape = arg.spec.shape;
    if (shapeOf.count(i))
      shape = parseShape(shapeOf[i]);
    for (int64_t d : shape)
      if (d < 0)
        fail(fmt::format("{} has dynamic dimensions: give --shape {}=AxBx...",
                         what, i));
    Tensor t(arg.spec.dtype, shape);
    if (fillOf.count(i)) {
      double value;
      if (llvm::StringRef(fillOf[i]).getAsDouble(value))
        fail(fmt::format("--fill {}={} is not a number", i, fillOf[i]));
      for (int64_t n = 0; n < t.numElements(); ++n)
        t.set(n, value);
    } else if (randomInputs) {
      if (!isFloat(arg.spec.dtype))
        fail(fmt::format("{} is an integer tensor and cannot be random: "
                         "give it as {}",
                         what, npy.empty() ? "--inputs DIR/arg" +
                                                 std::to_string(i) + ".npy"
                                           : npy));
      // A running variance starts at 0 (the first training update sets it).
      bool runningVar = arg.name == "running_var";
      for (int64_t n = 0; n < t.numElements(); ++n)
        t.set(n, runningVar ? 0.0 : normal(rng));
    } else {
      fail(fmt::format("{} has no value: give --inputs DIR with arg{}.npy, "
                       "--fill {}=VALUE or --random",
                       what, i, i));
    }
    inputs.push_back(std::move(t));
    generated.push_back(true);
  }

  Runtime runtime;
  std::vector<const Tensor *> inputPtrs;
  std::vector<TensorSpec> specs;
  for (const Tensor &t : inputs) {
    inputPtrs.push_back(&t);
    specs.push_back({t.dtype(), std::vector<int64_t>(t.shape().begin(),
                                                     t.shape().end())});
  }
  CompileOptions options;
  options.entry = entryName;
  options.sourceName = programPath.getValue();
  auto start = std::chrono::steady_clock::now();
  auto kernel = check(runtime.compile(program, specs, options));
  double coldCompile = seconds(start);
  start = std::chrono::steady_clock::now();
  kernel = check(runtime.compile(program, specs, options));
  double warmLookup = seconds(start);

  std::vector<Tensor> results;
  double runTime = 0;
  for (unsigned r = 0; r < std::max(1u, repeat.getValue()); ++r) {
    start = std::chrono::steady_clock::now();
    results = check(kernel->run(inputPtrs));
    runTime = r == 0 ? seconds(start) : std::min(runTime, seconds(start));
  }

  CacheStats cache = runtime.cacheStats();
  llvm::outs() << fmt::format(
      "compiled {} (cpu) in {:.3f} s; cached lookup {:.1f} us (cache: {} "
      "hit, {} miss); run {:.3f} s\n",
      programPath.getValue(), coldCompile, warmLookup * 1e6, cache.hits,
      cache.misses, runTime);
  for (auto [i, t] : llvm::enumerate(results)) {
    bool finite = true;
    for (int64_t n = 0; n < t.numElements() && finite; ++n)
      finite = std::isfinite(t.get(n)) || t.dtype() == DType::i32;
    llvm::outs() << fmt::format("  result #{}: {}{}{}\n", i,
                                dtypeName(t.dtype()).str(), t.shapeString(),
                                finite ? "" : " (holds NaN or Inf)");
  }

  if (!outDir.empty()) {
    if (std::error_code ec = llvm::sys::fs::create_directories(outDir))
      fail(fmt::format("cannot create '{}': {}", outDir.getValue(),
                       ec.message()));
    for (auto [i, t] : llvm::enumerate(results))
      if (llvm::Error err = writeNpy(
              outDir + "/result" + std::to_string(i) + ".npy", t))
        fail(llvm::toString(std::move(err)));
    for (auto [i, t] : llvm::enumerate(inputs))
      if (generated[i])
        if (llvm::Error err =
                writeNpy(outDir + "/arg" + std::to_string(i) + ".npy", t))
          fail(llvm::toString(std::move(err)));
  }
  if (printStats)
    reportStatistics(analyse(program, entryName), inputs, results);
  return 0;
}
