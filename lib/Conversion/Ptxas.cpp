//===- Ptxas.cpp - assembling PTX into cubins with ptxas ------------------===//

#include "gsa/Conversion/Ptxas.h"

#include "llvm/ADT/SmallString.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>

using namespace llvm;

namespace {
Error failure(const Twine &message) {
  return createStringError(inconvertibleErrorCode(), message);
}
} // namespace

std::string gsa::findPtxas() {
  if (const char *env = std::getenv("GSA_PTXAS")) {
    if (StringRef(env) == "0" || StringRef(env).empty())
      return "";
    return env;
  }
  auto found = sys::findProgramByName("ptxas");
  if (!found)
    found = sys::findProgramByName("ptxas", {"/usr/local/cuda/bin"});
  return found ? *found : "";
}

Expected<std::string> gsa::assembleCubin(StringRef ptxas, StringRef ptx,
                                         StringRef chip, bool splitCompile) {
  SmallString<128> in, out;
  int fd = -1;
  if (std::error_code ec =
          sys::fs::createTemporaryFile("gsa-kernel", "ptx", fd, in))
    return failure("ptxas: cannot create a temporary file: " + ec.message());
  {
    raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << ptx;
  }
  if (std::error_code ec =
          sys::fs::createTemporaryFile("gsa-kernel", "cubin", out)) {
    sys::fs::remove(in);
    return failure("ptxas: cannot create a temporary file: " + ec.message());
  }
  std::string message;
  SmallVector<StringRef> args = {ptxas, "-arch", chip};
  if (splitCompile)
    args.append({"-split-compile", "0"});
  args.append({in, "-o", out});
  int rc = sys::ExecuteAndWait(ptxas, args, std::nullopt, {}, 0, 0, &message);
  auto image = MemoryBuffer::getFile(out, /*IsText=*/false);
  sys::fs::remove(in);
  sys::fs::remove(out);
  if (rc != 0)
    return failure("ptxas (" + ptxas + ") failed with status " + Twine(rc) +
                   ": " + message);
  if (!image)
    return failure("ptxas wrote no cubin: " + image.getError().message());
  // An empty output file (a ptxas that exited 0 without writing) is no
  // module image: the caller falls back to the PTX.
  if (!(*image)->getBuffer().starts_with("\x7f" "ELF"))
    return failure("ptxas (" + ptxas + ") wrote no ELF image");
  return (*image)->getBuffer().str();
}
