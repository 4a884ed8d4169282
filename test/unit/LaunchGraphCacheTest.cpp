// The runtime's bounded cache of recorded launches (no CUDA involved).

#include "LaunchGraphCache.h"

#include <gtest/gtest.h>
#include <vector>

using gsa::runtime::LaunchGraphCache;
using Key = std::vector<int>;

TEST(LaunchGraphCacheTest, RecordsOnASetsSecondLaunchOnly) {
  LaunchGraphCache<Key, int> cache(/*capacity=*/4, /*seenCapacity=*/8);
  Key a{1, 2}, b{3, 4};
  EXPECT_FALSE(cache.seenBefore(a));
  EXPECT_FALSE(cache.seenBefore(b));
  EXPECT_TRUE(cache.seenBefore(a));
  EXPECT_FALSE(cache.find(a).has_value());
  EXPECT_FALSE(cache.insert(a, 10).has_value());
  EXPECT_EQ(cache.find(a), std::optional<int>(10));
  EXPECT_FALSE(cache.find(b).has_value());
}

TEST(LaunchGraphCacheTest, DropsTheLeastRecentlyUsedRecording) {
  LaunchGraphCache<Key, int> cache(/*capacity=*/2, /*seenCapacity=*/8);
  Key low{1}, high{9}, next{5};
  cache.insert(low, 100);
  cache.insert(high, 900);
  // `low` is the smallest key, but used last: `high` goes.
  EXPECT_EQ(cache.find(low), std::optional<int>(100));
  EXPECT_EQ(cache.insert(next, 500), std::optional<int>(900));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.find(low).has_value());
  EXPECT_TRUE(cache.find(next).has_value());
  EXPECT_FALSE(cache.find(high).has_value());
  // Now `low` is the older of the two.
  EXPECT_EQ(cache.insert(high, 901), std::optional<int>(100));
  std::vector<int> left;
  cache.forEach([&](int handle) { left.push_back(handle); });
  EXPECT_EQ(left.size(), 2u);
}

TEST(LaunchGraphCacheTest, RememberedKeysStayBounded) {
  LaunchGraphCache<Key, int> cache(/*capacity=*/2, /*seenCapacity=*/3);
  for (int i = 0; i < 3; ++i)
    EXPECT_FALSE(cache.seenBefore(Key{i}));
  // The fourth overflows: the remembered keys start over from it.
  EXPECT_FALSE(cache.seenBefore(Key{3}));
  EXPECT_TRUE(cache.seenBefore(Key{3}));
  EXPECT_FALSE(cache.seenBefore(Key{0}));
}
