//===- RuntimeTest.cpp - the runtime's C++ API -----------------------------===//

#include "gsa/Runtime/Runtime.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <gtest/gtest.h>

using namespace gsa::runtime;

namespace {

std::string errorText(llvm::Error err) { return llvm::toString(std::move(err)); }

TEST(TensorTest, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(floatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(floatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(floatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(floatToHalf(1e6f), 0x7c00);         // overflow -> inf
  EXPECT_EQ(floatToHalf(5.960464477539063e-08f), 0x0001); // smallest subnormal
  // 1 + 2^-11 is halfway between 1 and the next half: ties to even (1.0).
  EXPECT_EQ(floatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(floatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  for (uint32_t h = 0; h < 0x7c00; h += 7)
    EXPECT_EQ(floatToHalf(halfToFloat(uint16_t(h))), h) << h;
}

TEST(TensorTest, Bf16ConversionsRoundToNearestEven) {
  EXPECT_EQ(floatToBf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16ToFloat(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(floatToBf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(floatToBf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_TRUE(std::isnan(bf16ToFloat(floatToBf16(NAN))));
}

TEST(TensorTest, NpyRoundTripKeepsShapeDtypeAndValues) {
  llvm::SmallString<128> dir;
  ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("gsa-npy", dir));
  for (DType dtype : {DType::f16, DType::f32, DType::f64, DType::i32}) {
    for (std::vector<int64_t> shape : {std::vector<int64_t>{},
                                       std::vector<int64_t>{5},
                                       std::vector<int64_t>{2, 3, 4}}) {
      Tensor t(dtype, shape);
      for (int64_t i = 0; i < t.numElements(); ++i)
        t.set(i, double(i) - 3.5 * (dtype != DType::i32));
      std::string path = (dir + "/t.npy").str();
      ASSERT_FALSE(writeNpy(path, t));
      auto back = readNpy(path);
      ASSERT_TRUE(bool(back)) << llvm::toString(back.takeError());
      EXPECT_EQ(back->dtype(), dtype);
      EXPECT_EQ(std::vector<int64_t>(back->shape().begin(), back->shape().end()),
                shape);
      for (int64_t i = 0; i < t.numElements(); ++i)
        EXPECT_EQ(back->get(i), t.get(i));
    }
  }
  llvm::sys::fs::remove_directories(dir);
}

TEST(TensorTest, NpyRejectsGarbageWithAReason) {
  llvm::SmallString<128> path;
  int fd;
  ASSERT_FALSE(llvm::sys::fs::createTemporaryFile("gsa-bad", "npy", fd, path));
  {
    llvm::raw_fd_ostream os(fd, /*shouldClose=*/true);
    os << "not a numpy file";
  }
  auto t = readNpy(path);
  ASSERT_FALSE(bool(t));
  EXPECT_NE(errorText(t.takeError()).find("missing the \\x93NUMPY magic"),
            std::string::npos);
  llvm::sys::fs::remove(path);
}

const char *kAddProgram = R"mlir(
func.func @scores(%qi: tensor<?x?x1x4xf32>, %ki: tensor<?x?x4xf32>)
    -> (tensor<?x?x2xi32>, tensor<?x?xi32>) {
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<?x?x1x4xf32>, tensor<?x?x4xf32>) -> tensor<?x?x?xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 2 in [2, 2]
      : (tensor<?x?x?xf32>) -> (tensor<?x?x2xi32>, tensor<?x?xi32>)
  return %idx, %cnt : tensor<?x?x2xi32>, tensor<?x?xi32>
}
)mlir";

TEST(RuntimeTest, CompilesOncePerShapeAndRuns) {
  Runtime runtime;
  Tensor qi(DType::f32, {1, 5, 1, 4}), ki(DType::f32, {1, 5, 4});
  // Key s has score s at every query: the two most recent visible keys win.
  for (int64_t i = 0; i < qi.numElements(); ++i)
    qi.set(i, 1.0);
  for (int64_t s = 0; s < 5; ++s)
    for (int64_t d = 0; d < 4; ++d)
      ki.set(s * 4 + d, d == 0 ? double(s) : 0.0);
  auto out = runtime.run(kAddProgram, {&qi, &ki});
  ASSERT_TRUE(bool(out)) << llvm::toString(out.takeError());
  const Tensor &idx = (*out)[0], &cnt = (*out)[1];
  EXPECT_EQ(cnt.get(0), 1);
  EXPECT_EQ(idx.get(0), 0);
  EXPECT_EQ(idx.get(1), -1);
  for (int64_t t = 1; t < 5; ++t) {
    EXPECT_EQ(cnt.get(t), 2);
    EXPECT_EQ(idx.get(2 * t), t - 1);
    EXPECT_EQ(idx.get(2 * t + 1), t);
  }
  EXPECT_EQ(runtime.cacheStats().misses, 1u);
  ASSERT_TRUE(bool(runtime.run(kAddProgram, {&qi, &ki})));
  EXPECT_EQ(runtime.cacheStats().hits, 1u);
  // A new shape is a new specialisation.
  Tensor qi2(DType::f32, {1, 7, 1, 4}), ki2(DType::f32, {1, 7, 4});
  ASSERT_TRUE(bool(runtime.run(kAddProgram, {&qi2, &ki2})));
  EXPECT_EQ(runtime.cacheStats().misses, 2u);
}

TEST(RuntimeTest, MismatchedDynamicShapesNameTheOperands) {
  Runtime runtime;
  Tensor qi(DType::f32, {1, 5, 1, 4}), ki(DType::f32, {1, 6, 4});
  auto out = runtime.run(kAddProgram, {&qi, &ki});
  ASSERT_FALSE(bool(out));
  std::string message = errorText(out.takeError());
  EXPECT_NE(message.find("'ki' dim 1 (L) is 6, but 'qi' dim 1 (L) is 5"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("<program>:4:8: error:"), std::string::npos) << message;
}

TEST(RuntimeTest, WrongDtypeAndRankNameTheInput) {
  Runtime runtime;
  Tensor qi(DType::f16, {1, 5, 1, 4}), ki(DType::f32, {1, 5, 4});
  auto out = runtime.run(kAddProgram, {&qi, &ki});
  ASSERT_FALSE(bool(out));
  EXPECT_NE(errorText(out.takeError())
                .find("input #0 ('qi'): expected f32 elements, got f16"),
            std::string::npos);
  Tensor qi3(DType::f32, {5, 1, 4});
  out = runtime.run(kAddProgram, {&qi3, &ki});
  ASSERT_FALSE(bool(out));
  EXPECT_NE(errorText(out.takeError())
                .find("input #0 ('qi'): expected shape [?, ?, 1, 4], got "
                      "[5, 1, 4]"),
            std::string::npos);
  out = runtime.run(kAddProgram, {&qi3});
  ASSERT_FALSE(bool(out));
  EXPECT_NE(errorText(out.takeError()).find("takes 2 arguments, got 1 inputs"),
            std::string::npos);
}

TEST(RuntimeTest, ParseErrorsAreLocated) {
  Runtime runtime;
  Tensor x(DType::f32, {1});
  auto out = runtime.run("func.func @f(%x: tensor<1xf32>) {\n  gsa.nope\n}",
                         {&x});
  ASSERT_FALSE(bool(out));
  std::string message = errorText(out.takeError());
  EXPECT_NE(message.find("<program>:2:3"), std::string::npos) << message;
}

TEST(RuntimeTest, KernelRejectsInputsOfAnotherShape) {
  Runtime runtime;
  auto kernel = runtime.compile(
      kAddProgram, {{DType::f32, {1, 5, 1, 4}}, {DType::f32, {1, 5, 4}}});
  ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
  Tensor qi(DType::f32, {1, 6, 1, 4}), ki(DType::f32, {1, 6, 4});
  auto out = (*kernel)->run({&qi, &ki});
  ASSERT_FALSE(bool(out));
  EXPECT_NE(errorText(out.takeError())
                .find("input #0 ('qi') is f32[1, 6, 1, 4], but the kernel was "
                      "compiled for f32[1, 5, 1, 4]"),
            std::string::npos);
}

} // namespace

// The cache key's version names the release and a hash of the compiler's
// sources (cmake/SourceHash.cmake), so it changes with the code generator.
TEST(RuntimeTest, VersionCarriesTheSourceHash) {
  std::string version = Runtime::version().str();
  ASSERT_EQ(version.rfind("gsa-", 0), 0u) << version;
  size_t plus = version.find('+');
  ASSERT_NE(plus, std::string::npos) << version;
  std::string hash = version.substr(plus + 1);
  EXPECT_EQ(hash.size(), 16u) << version;
  EXPECT_EQ(hash.find_first_not_of("0123456789abcdef"), std::string::npos)
      << version;
}
