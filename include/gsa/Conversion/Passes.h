//===- Passes.h - lowerings of the gsa dialect ------------------*- C++ -*-===//

#ifndef GSA_CONVERSION_PASSES_H
#define GSA_CONVERSION_PASSES_H

#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassManager.h"

namespace gsa {

/// Builds the CPU reference pipeline: decompose, lower the fused ops to
/// loops, bufferize, free temporaries, and lower everything to the LLVM
/// dialect. Functions that should be callable from C (the runtime) carry
/// `llvm.emit_c_interface` before the pipeline runs.
void buildCPUPipeline(mlir::OpPassManager &pm);

/// Registers `gsa-cpu-pipeline` with the pass registry (for gsa-opt).
void registerCPUPipeline();

} // namespace gsa

#endif // GSA_CONVERSION_PASSES_H
