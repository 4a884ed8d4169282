//===- Ptxas.h - assembling PTX into cubins with ptxas ---------*- C++ -*-===//
//
// The runtime assembles a program's PTX at compile time (a cubin loads
// without the driver's JIT and goes into the disk cache), and
// gsa-serialize-kernels can assemble each kernel's PTX on its own thread
// right after LLVM made it (its `ptxas` option).
//
//===----------------------------------------------------------------------===//

#ifndef GSA_CONVERSION_PTXAS_H
#define GSA_CONVERSION_PTXAS_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>

namespace gsa {

/// On a gpu.binary (gsa-serialize-kernels with `ptxas`): one module image
/// per serialised part, `{kernels = [names], image = "<cubin bytes>"}`.
inline constexpr llvm::StringLiteral kCubinsAttr = "gsa.cubins";

/// The ptxas that assembles kernels into cubins: $GSA_PTXAS (a path; "0"
/// or empty for none), else ptxas on PATH or in /usr/local/cuda/bin.
/// Empty: none (the driver JIT-compiles the PTX at load time).
std::string findPtxas();

/// `ptx` assembled by `ptxas` for `chip` into a cubin (the module image the
/// driver loads without JIT), or the reason it could not be. With
/// `splitCompile` the module's kernels are assembled on all cores
/// (`-split-compile 0`).
llvm::Expected<std::string> assembleCubin(llvm::StringRef ptxas,
                                          llvm::StringRef ptx,
                                          llvm::StringRef chip,
                                          bool splitCompile);

} // namespace gsa

#endif // GSA_CONVERSION_PTXAS_H
