//===- DiskCache.h - compiled kernels on disk -------------------*- C++ -*-===//
//
// One file per key under GSA_CACHE_DIR (default ~/.cache/gsa). A file is a
// header line "gsa-cache <version> <sha256 of the payload> <bytes>" and the
// payload. Writes go to a unique temporary file renamed into place, so two
// processes compiling the same kernel both succeed and a reader never sees a
// partial file; an entry whose checksum or size does not match is reported
// as absent (and rewritten by the caller).
//
//===----------------------------------------------------------------------===//

#ifndef GSA_LIB_RUNTIME_DISKCACHE_H
#define GSA_LIB_RUNTIME_DISKCACHE_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <optional>
#include <string>

namespace gsa::runtime {

class DiskCache {
public:
  /// The cache configured by the environment: GSA_CACHE_DIR, else
  /// $HOME/.cache/gsa; GSA_DISABLE_CACHE=1 disables it.
  static DiskCache fromEnvironment();

  explicit DiskCache(std::string directory) : directory(std::move(directory)) {}
  bool enabled() const { return !directory.empty(); }
  const std::string &path() const { return directory; }

  /// The payload stored under `key`, if present and intact.
  std::optional<std::string> load(llvm::StringRef key, llvm::StringRef version);
  /// Stores `payload` under `key` atomically.
  llvm::Error store(llvm::StringRef key, llvm::StringRef version,
                    llvm::StringRef payload);

private:
  std::string directory;
};

} // namespace gsa::runtime

#endif // GSA_LIB_RUNTIME_DISKCACHE_H
