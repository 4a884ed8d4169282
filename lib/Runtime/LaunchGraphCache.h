//===- LaunchGraphCache.h - recorded launches per buffer set ----*- C++ -*-===//
//
// The CUDA kernel's recorded launches (CUDA graph executables) per set of
// buffers and stream, bounded, the least recently used one dropped first:
// a caller that keeps a few buffer sets busy and now and then launches on
// others keeps its busy sets' graphs. Keys launched once are remembered
// (bounded too) so that a set is recorded on its second launch only. No
// CUDA here: the handles are opaque, and the caller destroys the ones this
// drops. Not thread-safe (the kernel holds its lock around it).
//
//===----------------------------------------------------------------------===//

#ifndef GSA_LIB_RUNTIME_LAUNCHGRAPHCACHE_H
#define GSA_LIB_RUNTIME_LAUNCHGRAPHCACHE_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>

namespace gsa::runtime {

template <typename Key, typename Handle> class LaunchGraphCache {
public:
  LaunchGraphCache(size_t capacity, size_t seenCapacity)
      : capacity(capacity), seenCapacity(seenCapacity) {}

  /// The handle recorded for `key`, now the most recently used; none if
  /// the key has no recording.
  std::optional<Handle> find(const Key &key) {
    auto it = entries.find(key);
    if (it == entries.end())
      return std::nullopt;
    it->second.lastUse = ++clock;
    return it->second.handle;
  }

  /// Whether `key` was launched before; remembers it otherwise (past
  /// seenCapacity the remembered keys start over from this one).
  bool seenBefore(const Key &key) {
    if (!seen.insert(key).second)
      return true;
    if (seen.size() > seenCapacity) {
      seen.clear();
      seen.insert(key);
    }
    return false;
  }

  /// Records `handle` for `key` (which has none); returns the handle it
  /// dropped to stay within the capacity, if any, for the caller to
  /// destroy.
  std::optional<Handle> insert(const Key &key, Handle handle) {
    std::optional<Handle> dropped;
    if (entries.size() >= capacity && !entries.empty()) {
      auto oldest = entries.begin();
      for (auto it = entries.begin(); it != entries.end(); ++it)
        if (it->second.lastUse < oldest->second.lastUse)
          oldest = it;
      dropped = oldest->second.handle;
      entries.erase(oldest);
    }
    entries[key] = Entry{handle, ++clock};
    return dropped;
  }

  bool empty() const { return entries.empty(); }
  size_t size() const { return entries.size(); }

  /// Calls `visit(handle)` for every recorded handle.
  template <typename Visit> void forEach(Visit visit) const {
    for (const auto &[key, entry] : entries)
      visit(entry.handle);
  }

private:
  struct Entry {
    Handle handle;
    uint64_t lastUse;
  };
  size_t capacity, seenCapacity;
  uint64_t clock = 0;
  std::map<Key, Entry> entries;
  std::set<Key> seen;
};

} // namespace gsa::runtime

#endif // GSA_LIB_RUNTIME_LAUNCHGRAPHCACHE_H
