//===- DiskCache.cpp - compiled kernels on disk ----------------------------===//

#include "DiskCache.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/SHA256.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <fmt/format.h>

using namespace gsa::runtime;

static std::string digest(llvm::StringRef data) {
  std::array<uint8_t, 32> hash = llvm::SHA256::hash(
      llvm::ArrayRef<uint8_t>(reinterpret_cast<const uint8_t *>(data.data()),
                              data.size()));
  return llvm::toHex(hash, /*LowerCase=*/true);
}

DiskCache DiskCache::fromEnvironment() {
  const char *disable = std::getenv("GSA_DISABLE_CACHE");
  if (disable && llvm::StringRef(disable) != "0" && *disable)
    return DiskCache("");
  if (const char *dir = std::getenv("GSA_CACHE_DIR"); dir && *dir)
    return DiskCache(dir);
  if (const char *home = std::getenv("HOME"); home && *home)
    return DiskCache(std::string(home) + "/.cache/gsa");
  return DiskCache("");
}

std::optional<std::string> DiskCache::load(llvm::StringRef key,
                                           llvm::StringRef version) {
  if (!enabled())
    return std::nullopt;
  auto buffer = llvm::MemoryBuffer::getFile(directory + "/" + key.str());
  if (!buffer)
    return std::nullopt;
  llvm::StringRef content = (*buffer)->getBuffer();
  auto [header, payload] = content.split('\n');
  llvm::SmallVector<llvm::StringRef> fields;
  header.split(fields, ' ');
  size_t size;
  if (fields.size() != 4 || fields[0] != "gsa-cache" || fields[1] != version ||
      fields[3].getAsInteger(10, size) || size != payload.size() ||
      digest(payload) != fields[2])
    return std::nullopt; // corrupt, truncated or from another version
  return payload.str();
}

llvm::Error DiskCache::store(llvm::StringRef key, llvm::StringRef version,
                             llvm::StringRef payload) {
  if (!enabled())
    return llvm::Error::success();
  if (std::error_code ec = llvm::sys::fs::create_directories(directory))
    return llvm::createStringError(
        ec, fmt::format("cannot create the kernel cache '{}': {}", directory,
                        ec.message()));
  llvm::SmallString<256> temp;
  int fd;
  if (std::error_code ec = llvm::sys::fs::createUniqueFile(
          directory + "/" + key.str() + ".tmp-%%%%%%%%", fd, temp))
    return llvm::createStringError(
        ec, fmt::format("cannot write to the kernel cache '{}': {}",
                        directory, ec.message()));
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << "gsa-cache " << version << " " << digest(payload) << " "
       << payload.size() << "\n"
       << payload;
  }
  if (std::error_code ec =
          llvm::sys::fs::rename(temp, directory + "/" + key.str())) {
    llvm::sys::fs::remove(temp);
    return llvm::createStringError(ec, "cannot rename a kernel cache entry");
  }
  return llvm::Error::success();
}
