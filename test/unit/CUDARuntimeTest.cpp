//===- CUDARuntimeTest.cpp - the CUDA backend without a GPU ----------------===//
//
// Compilation, the launch plan and the disk cache need no GPU; launching
// on a machine without a driver must fail with a readable error.
//
//===----------------------------------------------------------------------===//

#include "gsa/Runtime/Runtime.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <dlfcn.h>
#include <gtest/gtest.h>

using namespace gsa::runtime;

namespace {

const char *kAttention = R"mlir(
func.func @attend(%q: tensor<1x?x4x64xbf16>, %k: tensor<1x?x1x64xbf16>,
                  %v: tensor<1x?x1x64xbf16>, %idx: tensor<1x?x8xi32>,
                  %cnt: tensor<1x?xi32>)
    -> (tensor<1x?x4x64xbf16>, tensor<1x?x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x?x4x64xbf16>, tensor<1x?x1x64xbf16>, tensor<1x?x1x64xbf16>,
         tensor<1x?x8xi32>, tensor<1x?xi32>) -> (tensor<1x?x4x64xbf16>, tensor<1x?x4xf32>)
  return %o, %lse : tensor<1x?x4x64xbf16>, tensor<1x?x4xf32>
}
)mlir";

std::vector<TensorSpec> specsFor(int64_t L) {
  return {{DType::bf16, {1, L, 4, 64}},
          {DType::bf16, {1, L, 1, 64}},
          {DType::bf16, {1, L, 1, 64}},
          {DType::i32, {1, L, 8}},
          {DType::i32, {1, L}}};
}

class CUDARuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_FALSE(llvm::sys::fs::createUniqueDirectory("gsa-cache", dir));
    setenv("GSA_CACHE_DIR", dir.c_str(), 1);
    unsetenv("GSA_DISABLE_CACHE");
  }
  void TearDown() override {
    unsetenv("GSA_CACHE_DIR");
    unsetenv("GSA_DISABLE_CACHE");
    llvm::sys::fs::remove_directories(dir);
  }
  std::vector<std::string> cacheFiles() {
    std::vector<std::string> files;
    std::error_code ec;
    for (llvm::sys::fs::directory_iterator it(dir, ec), end; it != end && !ec;
         it.increment(ec))
      files.push_back(it->path());
    return files;
  }
  /// How many cache entries hold `text`.
  int entriesWith(llvm::StringRef text) {
    int found = 0;
    for (const std::string &file : cacheFiles()) {
      auto content = llvm::MemoryBuffer::getFile(file);
      if (content && (*content)->getBuffer().contains(text))
        ++found;
    }
    return found;
  }
  CUDARuntimeTest() = default;
  llvm::SmallString<128> dir;
  CompileOptions cuda() {
    CompileOptions options;
    options.backend = Backend::CUDA;
    return options;
  }
};

TEST_F(CUDARuntimeTest, CompilesWithoutAGPUAndGivesStaticResults) {
  Runtime runtime;
  auto kernel = runtime.compile(kAttention, specsFor(40), cuda());
  ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
  EXPECT_EQ((*kernel)->backend(), Backend::CUDA);
  ASSERT_EQ((*kernel)->results().size(), 2u);
  EXPECT_EQ((*kernel)->results()[0].toString(), "bf16[1, 40, 4, 64]");
  EXPECT_EQ((*kernel)->results()[1].toString(), "f32[1, 40, 4]");
  EXPECT_EQ((*kernel)->inputNames()[3], "indices");
  EXPECT_EQ(runtime.cacheStats().misses, 1u);
}

TEST_F(CUDARuntimeTest, DiskCacheHitsAcrossRuntimesAndRebuildsCorruptEntries) {
  {
    Runtime first;
    ASSERT_TRUE(bool(first.compile(kAttention, specsFor(40), cuda())));
    EXPECT_EQ(first.cacheStats().misses, 1u);
  }
  auto files = cacheFiles();
  ASSERT_EQ(files.size(), 1u) << "one entry, no temporary files left";
  {
    Runtime second;
    auto kernel = second.compile(kAttention, specsFor(40), cuda());
    ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
    EXPECT_EQ(second.cacheStats().diskHits, 1u);
    EXPECT_EQ(second.cacheStats().misses, 0u);
    EXPECT_EQ((*kernel)->results()[1].toString(), "f32[1, 40, 4]");
  }
  // Truncate the entry: it must read as absent and be rebuilt.
  {
    auto content = llvm::MemoryBuffer::getFile(files[0]);
    ASSERT_TRUE(bool(content));
    std::string half = (*content)->getBuffer().substr(0, (*content)->getBufferSize() / 2).str();
    std::error_code ec;
    llvm::raw_fd_ostream os(files[0], ec);
    os << half;
  }
  {
    Runtime third;
    ASSERT_TRUE(bool(third.compile(kAttention, specsFor(40), cuda())));
    EXPECT_EQ(third.cacheStats().diskHits, 0u);
    EXPECT_EQ(third.cacheStats().misses, 1u);
  }
  {
    Runtime fourth;
    ASSERT_TRUE(bool(fourth.compile(kAttention, specsFor(40), cuda())));
    EXPECT_EQ(fourth.cacheStats().diskHits, 1u) << "the rebuilt entry is valid";
  }
  // Another shape is another entry.
  Runtime fifth;
  ASSERT_TRUE(bool(fifth.compile(kAttention, specsFor(41), cuda())));
  EXPECT_EQ(cacheFiles().size(), 2u);
}

// GSA_GPU_OPTIONS reaches the staged lowering's passes: valid settings
// compile (each its own cache entry), an invalid one fails with the pass's
// message.
TEST_F(CUDARuntimeTest, StagedLoweringOptionsComeFromTheEnvironment) {
  setenv("GSA_PTXAS", "0", 1);
  Runtime runtime;
  setenv("GSA_GPU_OPTIONS",
         "attention-key-chunk=16 attention-stages=3 attention-warps=2 "
         "attention-split-share=0",
         1);
  auto tuned = runtime.compile(kAttention, specsFor(40), cuda());
  ASSERT_TRUE(bool(tuned)) << llvm::toString(tuned.takeError());
  setenv("GSA_GPU_OPTIONS", "attention-key-chunk=24", 1);
  auto bad = runtime.compile(kAttention, specsFor(40), cuda());
  ASSERT_FALSE(bool(bad));
  std::string message = llvm::toString(bad.takeError());
  EXPECT_NE(message.find("key-chunk must be 16, 32, 48 or 64"),
            std::string::npos)
      << message;
  setenv("GSA_GPU_OPTIONS", "attention-warps=two", 1);
  auto malformed = runtime.compile(kAttention, specsFor(40), cuda());
  ASSERT_FALSE(bool(malformed));
  message = llvm::toString(malformed.takeError());
  EXPECT_NE(message.find("'attention-warps=two' is not key=integer"),
            std::string::npos)
      << message;
  // A switch out of its range (GPUPipelineOptions.def), named with the
  // known ones.
  setenv("GSA_GPU_OPTIONS", "select-sampled=2", 1);
  auto outOfRange = runtime.compile(kAttention, specsFor(40), cuda());
  ASSERT_FALSE(bool(outOfRange));
  message = llvm::toString(outOfRange.takeError());
  EXPECT_NE(message.find("GSA_GPU_OPTIONS: 'select-sampled' takes 0 or 1, "
                         "not 2 (known: "),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("attention-wgmma=0|1"), std::string::npos) << message;
  unsetenv("GSA_GPU_OPTIONS");
  auto defaults = runtime.compile(kAttention, specsFor(40), cuda());
  ASSERT_TRUE(bool(defaults)) << llvm::toString(defaults.takeError());
  EXPECT_EQ(cacheFiles().size(), 2u) << "one entry per option set";
  unsetenv("GSA_PTXAS");
}

// Where ptxas is at hand, the kernels are assembled into a cubin at compile
// time and the disk cache keeps it (base64 in the entry's images; "f0VMRg"
// is the ELF magic "\x7fELF"); GSA_PTXAS=0 keeps the PTX only (no image).
TEST_F(CUDARuntimeTest, AssemblesACubinWherePtxasIsPresent) {
  unsetenv("GSA_PTXAS");
  if (!llvm::sys::findProgramByName("ptxas") &&
      !llvm::sys::findProgramByName("ptxas", {"/usr/local/cuda/bin"}))
    GTEST_SKIP() << "no ptxas on this machine: the PTX-only path is checked "
                    "by the other tests";
  {
    Runtime runtime;
    ASSERT_TRUE(bool(runtime.compile(kAttention, specsFor(40), cuda())));
  }
  auto files = cacheFiles();
  ASSERT_EQ(files.size(), 1u);
  auto content = llvm::MemoryBuffer::getFile(files[0]);
  ASSERT_TRUE(bool(content));
  EXPECT_NE((*content)->getBuffer().find("\"cubin\":\"f0VMRg"), llvm::StringRef::npos);
  // A second process loads the entry, cubin and all.
  {
    Runtime second;
    ASSERT_TRUE(bool(second.compile(kAttention, specsFor(40), cuda())));
    EXPECT_EQ(second.cacheStats().diskHits, 1u);
  }
  setenv("GSA_PTXAS", "0", 1);
  {
    Runtime third;
    ASSERT_TRUE(bool(third.compile(kAttention, specsFor(41), cuda())));
  }
  unsetenv("GSA_PTXAS");
  bool sawPtxOnly = false;
  for (const std::string &file : cacheFiles()) {
    auto text = llvm::MemoryBuffer::getFile(file);
    ASSERT_TRUE(bool(text));
    if ((*text)->getBuffer().contains("\"images\":[]"))
      sawPtxOnly = true;
  }
  EXPECT_TRUE(sawPtxOnly) << "GSA_PTXAS=0 leaves an entry without a cubin";
}

// d_k 128 on the default (wgmma) lowering: the tile attention walks its
// union in 64-key chunks whose two stages of K and v' rows (64 KiB) live in
// dynamic shared memory; the launch plan keeps the bytes (what the launch
// passes to the driver) through the disk cache. Without dynamic shared
// memory the chunks have 32 keys and everything is static.
TEST_F(CUDARuntimeTest, DynamicSharedMemoryIsPlannedAndCached) {
  setenv("GSA_PTXAS", "0", 1);
  std::string program = kAttention;
  for (size_t at; (at = program.find("x64xbf16")) != std::string::npos;)
    program.replace(at, 8, "x128xbf16");
  std::vector<TensorSpec> specs = specsFor(40);
  for (int i = 0; i < 3; ++i)
    specs[i].shape[3] = 128;
  {
    Runtime runtime;
    auto kernel = runtime.compile(program, specs, cuda());
    ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
  }
  EXPECT_EQ(entriesWith("\"shared\":65536"), 1);
  {
    Runtime second;
    ASSERT_TRUE(bool(second.compile(program, specs, cuda())));
    EXPECT_EQ(second.cacheStats().diskHits, 1u) << "the plan reads back";
  }
  setenv("GSA_GPU_OPTIONS", "attention-dynamic-shared=0", 1);
  {
    Runtime third;
    ASSERT_TRUE(bool(third.compile(program, specs, cuda())));
  }
  unsetenv("GSA_GPU_OPTIONS");
  unsetenv("GSA_PTXAS");
  EXPECT_EQ(cacheFiles().size(), 2u);
  EXPECT_EQ(entriesWith("\"shared\":65536"), 1)
      << "the static lowering plans no dynamic shared memory";
}

TEST_F(CUDARuntimeTest, CacheCanBeDisabled) {
  setenv("GSA_DISABLE_CACHE", "1", 1);
  Runtime runtime;
  ASSERT_TRUE(bool(runtime.compile(kAttention, specsFor(40), cuda())));
  EXPECT_TRUE(cacheFiles().empty());
}

TEST_F(CUDARuntimeTest, LaunchWithoutADriverSaysWhy) {
  if (void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(lib);
    GTEST_SKIP() << "a CUDA driver is present: this checks the no-driver path";
  }
  Runtime runtime;
  auto kernel = runtime.compile(kAttention, specsFor(8), cuda());
  ASSERT_TRUE(bool(kernel));
  std::vector<void *> in(5, reinterpret_cast<void *>(0x1000)),
      out(2, reinterpret_cast<void *>(0x2000));
  llvm::Error err = (*kernel)->launch(in, out, nullptr);
  ASSERT_TRUE(bool(err));
  std::string message = llvm::toString(std::move(err));
  EXPECT_NE(message.find("the CUDA driver (libcuda.so.1) cannot be loaded"),
            std::string::npos)
      << message;
}

TEST_F(CUDARuntimeTest, ProgramsTheGPUCannotRunAreRejectedWithAReason) {
  const char *indexer = R"mlir(
func.func @f(%qi: tensor<1x8x2x160xf32>, %ki: tensor<1x8x160xf32>) -> tensor<1x8x8xf32> {
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x160xf32>, tensor<1x8x160xf32>) -> tensor<1x8x8xf32>
  return %I : tensor<1x8x8xf32>
}
)mlir";
  Runtime runtime;
  auto kernel = runtime.compile(
      indexer, {{DType::f32, {1, 8, 2, 160}}, {DType::f32, {1, 8, 160}}},
      cuda());
  ASSERT_FALSE(bool(kernel));
  std::string message = llvm::toString(kernel.takeError());
  EXPECT_NE(message.find("supports d_I <= 128, but d_I = 160"),
            std::string::npos)
      << message;
}

// The whole GSA core on the GPU: indexer and selection fused (scratch for
// the per-row statistics), attention reading the selection's results. The
// launch plan survives the disk cache.
TEST_F(CUDARuntimeTest, SelectionPlansUseScratchAndSurviveTheDiskCache) {
  const char *program = R"mlir(
func.func @core(%qi: tensor<1x50x4x64xbf16>, %ki: tensor<1x50x64xbf16>,
                %rv: tensor<f32>) -> (tensor<1x50x16xi32>, tensor<1x50xi32>, tensor<f32>) {
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    %s = gsa.sigmoid %x : f32
    gsa.yield %s : f32
  } : (tensor<1x50x4x64xbf16>, tensor<1x50x64xbf16>) -> tensor<1x50x50xf32>
  %idx, %cnt, %nv = gsa.adaptive_topk %I policy = inverse k = 8 in [4, 16]
      running_var(%rv) training
      : (tensor<1x50x50xf32>, tensor<f32>) -> (tensor<1x50x16xi32>, tensor<1x50xi32>, tensor<f32>)
  return %idx, %cnt, %nv : tensor<1x50x16xi32>, tensor<1x50xi32>, tensor<f32>
}
)mlir";
  std::vector<TensorSpec> specs = {{DType::bf16, {1, 50, 4, 64}},
                                   {DType::bf16, {1, 50, 64}},
                                   {DType::f32, {}}};
  {
    Runtime first;
    auto kernel = first.compile(program, specs, cuda());
    ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
    ASSERT_EQ((*kernel)->results().size(), 3u);
    EXPECT_EQ((*kernel)->results()[0].shape, (std::vector<int64_t>{1, 50, 16}));
    EXPECT_EQ(first.cacheStats().misses, 1u);
  }
  Runtime second;
  auto kernel = second.compile(program, specs, cuda());
  ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
  EXPECT_EQ(second.cacheStats().diskHits, 1u);
  EXPECT_EQ((*kernel)->results()[2].shape, std::vector<int64_t>{});
}

// The selection of an L-row program with k_max 16 as MLIR text.
std::string selectionProgram(int64_t L) {
  std::string text = R"mlir(
func.func @core(%qi: tensor<1xLx4x64xbf16>, %ki: tensor<1xLx64xbf16>,
                %rv: tensor<f32>) -> (tensor<1xLx16xi32>, tensor<1xLxi32>) {
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    %s = gsa.sigmoid %x : f32
    gsa.yield %s : f32
  } : (tensor<1xLx4x64xbf16>, tensor<1xLx64xbf16>) -> tensor<1xLxLxf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = inverse k = 8 in [4, 16]
      running_var(%rv)
      : (tensor<1xLxLxf32>, tensor<f32>) -> (tensor<1xLx16xi32>, tensor<1xLxi32>)
  return %idx, %cnt : tensor<1xLx16xi32>, tensor<1xLxi32>
}
)mlir";
  std::string n = std::to_string(L);
  for (size_t at; (at = text.find("xLx")) != std::string::npos;)
    text.replace(at, 3, "x" + n + "x");
  return text;
}

// A launch's intermediate buffers (statistics, candidates) as one
// caller-owned workspace: sized O(L k_max) (linear in L at fixed k_max,
// never L^2), kept through the disk cache, and checked before any launch.
TEST_F(CUDARuntimeTest, WorkspaceIsLinearInLAndCheckedBeforeLaunch) {
  auto specsOf = [](int64_t L) {
    return std::vector<TensorSpec>{{DType::bf16, {1, L, 4, 64}},
                                   {DType::bf16, {1, L, 64}},
                                   {DType::f32, {}}};
  };
  auto workspaceOf = [&](Runtime &runtime, int64_t L) -> uint64_t {
    auto kernel = runtime.compile(selectionProgram(L), specsOf(L), cuda());
    EXPECT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
    return kernel ? (*kernel)->workspaceBytes() : 0;
  };
  Runtime runtime;
  uint64_t small = workspaceOf(runtime, 512), large = workspaceOf(runtime, 2048);
  // Every row keeps at least its k_max candidates (key and position).
  EXPECT_GE(small, uint64_t(512 * 16 * 8));
  EXPECT_EQ(small % 256, 0u);
  // Four times the rows: at most four times the bytes plus the rounding
  // of each buffer, far from the 16x an L x L buffer would take.
  EXPECT_GE(large, 3 * small);
  EXPECT_LE(large, 4 * small + 16 * 256);
  {
    Runtime fresh; // read back from the disk cache: the plan keeps its sizes
    EXPECT_EQ(workspaceOf(fresh, 512), small);
    EXPECT_EQ(fresh.cacheStats().diskHits, 1u);
  }

  auto kernel = runtime.compile(selectionProgram(512), specsOf(512), cuda());
  ASSERT_TRUE(bool(kernel));
  std::vector<void *> in(3, reinterpret_cast<void *>(0x1000)),
      out(2, reinterpret_cast<void *>(0x1000));
  auto messageOf = [&](void *workspace, uint64_t bytes) {
    llvm::Error err = (*kernel)->launch(in, out, nullptr, workspace, bytes);
    return err ? llvm::toString(std::move(err)) : std::string();
  };
  std::string tooSmall = messageOf(reinterpret_cast<void *>(0x10000), small - 1);
  EXPECT_NE(tooSmall.find("the workspace holds " + std::to_string(small - 1) +
                          " bytes but this kernel needs " +
                          std::to_string(small)),
            std::string::npos)
      << tooSmall;
  std::string misaligned = messageOf(reinterpret_cast<void *>(0x10040), small);
  EXPECT_NE(misaligned.find("must be 256-byte aligned"), std::string::npos)
      << misaligned;
}

// The stats sweep's key chunks by TMA (GSA_GPU_OPTIONS=select-tma=1 or 2):
// the plan passes ki's tensor map by value - which input it maps, its
// [B, L, d_I] shape, its one-chunk box and swizzle, what the launch
// encodes - and reads it back from the disk cache. Without TMA
// (select-tma=0) the plan has no tensor map; sm_90a's default has one.
TEST_F(CUDARuntimeTest, TensorMapsArePlannedAndCached) {
  setenv("GSA_PTXAS", "0", 1);
  std::vector<TensorSpec> specs = {{DType::bf16, {1, 300, 4, 64}},
                                   {DType::bf16, {1, 300, 64}},
                                   {DType::f32, {}}};
  const char *map = R"("tensor_maps":[{"box":[1,64,64],"data_type":9,)"
                    R"("shape":[1,300,64],"source":{"arg":1},"swizzle":128}])";
  for (const char *mode : {"1", "2"}) {
    setenv("GSA_GPU_OPTIONS", (std::string("select-tma=") + mode).c_str(), 1);
    {
      Runtime first;
      auto kernel = first.compile(selectionProgram(300), specs, cuda());
      ASSERT_TRUE(bool(kernel)) << llvm::toString(kernel.takeError());
    }
    Runtime second;
    ASSERT_TRUE(bool(second.compile(selectionProgram(300), specs, cuda())));
    EXPECT_EQ(second.cacheStats().diskHits, 1u) << "the plan reads back";
  }
  EXPECT_EQ(entriesWith(map), 2) << "select-tma 1 and 2 each plan the map";
  EXPECT_EQ(entriesWith(R"({"tensor_map":0})"), 2);
  setenv("GSA_GPU_OPTIONS", "select-tma=0", 1);
  {
    Runtime copies;
    ASSERT_TRUE(bool(copies.compile(selectionProgram(300), specs, cuda())));
  }
  EXPECT_EQ(entriesWith(R"("tensor_maps":[])"), 1) << "cp.async: no map";
  unsetenv("GSA_GPU_OPTIONS");
  {
    Runtime plain; // sm_90a's default is select-tma=1
    ASSERT_TRUE(bool(plain.compile(selectionProgram(300), specs, cuda())));
  }
  unsetenv("GSA_PTXAS");
  EXPECT_EQ(cacheFiles().size(), 4u);
  EXPECT_EQ(entriesWith(map), 3);
}

} // namespace
