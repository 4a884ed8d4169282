//===- Runtime.h - compile gsa programs per shape and run them --*- C++ -*-===//
//
// The runtime compiles a gsa program on first use for one specialisation
// (entry function, input dtypes and shapes, backend) and caches the kernel,
// so later calls with the same shapes only run it. The CPU backend JIT
// compiles through MLIR's ExecutionEngine; the GPU backend (issue 4) will sit
// behind the same interface.
//
//===----------------------------------------------------------------------===//

#ifndef GSA_RUNTIME_RUNTIME_H
#define GSA_RUNTIME_RUNTIME_H

#include "gsa/Runtime/Tensor.h"

#include "llvm/Support/Error.h"

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace gsa::runtime {

enum class Backend { CPU, CUDA };

/// One tensor in a function signature: dtype and shape (-1 = dynamic).
struct TensorSpec {
  DType dtype;
  std::vector<int64_t> shape;
  std::string toString() const;
};

/// What a runtime check before each run must verify about an input.
struct InputCheck {
  enum Kind {
    /// A running variance read as V_bar in inference mode: must be finite
    /// and positive (SPEC 2: a zero or missing V_run is an error).
    PositiveReferenceVariance,
    /// A running variance that training mode updates: must be finite and
    /// not negative (NaN or infinity would stay so through every update).
    FiniteRunningVariance,
  };
  Kind kind;
  unsigned argument;
};

/// A compiled, shape-specialised program.
class Kernel {
public:
  virtual ~Kernel();

  llvm::ArrayRef<TensorSpec> inputs() const { return inputs_; }
  llvm::ArrayRef<TensorSpec> results() const { return results_; }
  /// A short name for each input: the operand of the gsa op that reads it
  /// ("q", "ki", "running_var", ...) or "arg<N>".
  llvm::ArrayRef<std::string> inputNames() const { return inputNames_; }

  /// Runs the kernel. Inputs must match `inputs()` exactly (dtype and
  /// shape); results are returned as new host tensors.
  virtual llvm::Expected<std::vector<Tensor>>
  run(llvm::ArrayRef<const Tensor *> inputs) = 0;

  /// Runs the kernel on caller-owned buffers: device pointers on the given
  /// CUDA stream (CUDA backend), or host pointers (CPU backend; `stream`
  /// ignored). Outputs must be allocated with the sizes of `results()`,
  /// which are static for every kernel this can launch. Contiguous,
  /// row-major buffers.
  ///
  /// `workspace` (device memory of at least `workspaceBytes()` bytes, 256-byte
  /// aligned) holds the intermediate buffers the launches share (per-row
  /// statistics, selection candidates, query-tile unions). Without one the
  /// CUDA backend takes them from the driver's stream-ordered pool for the
  /// call; with one, nothing is allocated, so a caller with its own
  /// caching allocator (PyTorch) keeps the memory accounted and warm.
  virtual llvm::Error launch(llvm::ArrayRef<void *> inputs,
                             llvm::ArrayRef<void *> outputs, void *stream,
                             void *workspace = nullptr,
                             uint64_t workspaceBytes = 0) = 0;

  /// Device memory one launch needs beyond its inputs and outputs (0 for
  /// CPU kernels, which allocate host memory themselves).
  virtual uint64_t workspaceBytes() const { return 0; }

  Backend backend() const { return backend_; }

protected:
  /// Checks inputs against the specialisation and the input checks.
  llvm::Error validate(llvm::ArrayRef<const Tensor *> inputs) const;

  Backend backend_ = Backend::CPU;
  std::vector<TensorSpec> inputs_, results_;
  std::vector<std::string> inputNames_;
  std::vector<InputCheck> checks_;
};

struct CacheStats {
  /// In-memory hits, compilations, and kernels read back from disk.
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t diskHits = 0;
};

struct CompileOptions {
  /// Entry function; empty = the module's only public function.
  std::string entry;
  Backend backend = Backend::CPU;
  /// Optimisation level of the generated code (0-3).
  unsigned optLevel = 2;
  /// The name diagnostics give the program text (e.g. its file path).
  std::string sourceName = "<program>";
};

class Runtime {
public:
  Runtime();
  ~Runtime();

  /// Compiles `program` (MLIR text) for inputs of exactly `inputs`, or
  /// returns the cached kernel of that specialisation. Errors name the
  /// argument and the expected versus actual value.
  llvm::Expected<std::shared_ptr<Kernel>>
  compile(llvm::StringRef program, llvm::ArrayRef<TensorSpec> inputs,
          const CompileOptions &options = {});

  /// Convenience: compile for the inputs' shapes, then run.
  llvm::Expected<std::vector<Tensor>>
  run(llvm::StringRef program, llvm::ArrayRef<const Tensor *> inputs,
      const CompileOptions &options = {});

  CacheStats cacheStats() const;

  /// The arguments of `entry` in `program`: the name of the gsa operand
  /// each feeds ("q", "running_var", ... or "arg<N>") and its declared type
  /// (dynamic dims as -1), to make inputs for it.
  struct Argument {
    std::string name;
    TensorSpec spec;
  };
  static llvm::Expected<std::vector<Argument>>
  signature(llvm::StringRef program, llvm::StringRef entry = "",
            llvm::StringRef sourceName = "<program>");

  /// Compiler version folded into every cache key.
  static llvm::StringRef version();

private:
  llvm::Expected<std::shared_ptr<Kernel>>
  compileCUDA(llvm::StringRef program, llvm::ArrayRef<TensorSpec> inputs,
              const CompileOptions &options, const std::string &key);

  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Kernel>> cache_;
  CacheStats stats_;
};

} // namespace gsa::runtime

#endif // GSA_RUNTIME_RUNTIME_H
