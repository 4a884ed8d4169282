//===- SanitizerDefaults.cpp - ASan defaults of sanitized gsa binaries -----===//
//
// Debian's LLVM/MLIR libraries are not built with ASan, but LLVM's
// BumpPtrAllocator poisons its slabs from header-inline code compiled into
// our (instrumented) objects; the uninstrumented library code then hands
// out that memory without unpoisoning it, and ASan reports false
// use-after-poison errors. Ignoring manual poisoning keeps every real check
// (bounds, use-after-free, leaks).
//
//===----------------------------------------------------------------------===//

extern "C" const char *__asan_default_options() {
  return "allow_user_poisoning=0:detect_leaks=1";
}
