//===- PipelineOptionsTest.cpp - the GPU pipeline's switch table ----------===//
//
// GPUPipelineOptions.def is the one list of the lowering's switches; the
// runtime's GSA_GPU_OPTIONS goes through setGPUPipelineOption, and its
// messages name the switches through describeGPUPipelineOptions.
//===----------------------------------------------------------------------===//

#include "gsa/Conversion/Passes.h"

#include "llvm/ADT/StringRef.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace gsa;

namespace {

/// (name, is bool) of every switch the description lists.
std::vector<std::pair<std::string, bool>> describedSwitches() {
  std::vector<std::pair<std::string, bool>> out;
  std::string text = describeGPUPipelineOptions();
  llvm::SmallVector<llvm::StringRef> items;
  llvm::StringRef(text).split(items, ", ");
  for (llvm::StringRef item : items) {
    auto [name, values] = item.split('=');
    out.emplace_back(name.str(), values == "0|1");
  }
  return out;
}

} // namespace

// Every described switch is one setGPUPipelineOption knows: a bool takes 0
// and 1 and nothing else; an integer switch takes the value it starts with
// (its default) and changes the field when set to another value in range.
TEST(PipelineOptionsTest, EveryDescribedSwitchCanBeSet) {
  auto switches = describedSwitches();
  ASSERT_GE(switches.size(), 10u) << describeGPUPipelineOptions();
  for (auto &[name, isBool] : switches) {
    GPUPipelineOptions options;
    if (isBool) {
      EXPECT_EQ(setGPUPipelineOption(options, name, 0), std::nullopt) << name;
      EXPECT_EQ(setGPUPipelineOption(options, name, 1), std::nullopt) << name;
      auto two = setGPUPipelineOption(options, name, 2);
      ASSERT_TRUE(two.has_value()) << name;
      EXPECT_NE(two->find("takes 0 or 1, not 2"), std::string::npos) << *two;
    } else {
      EXPECT_EQ(setGPUPipelineOption(options, name, 1), std::nullopt) << name;
    }
  }
}

// The switch changes the field the pipeline reads (one of each kind).
TEST(PipelineOptionsTest, SettingASwitchChangesItsField) {
  GPUPipelineOptions options;
  bool sampled = options.selectSampled;
  ASSERT_EQ(setGPUPipelineOption(options, "select-sampled", sampled ? 0 : 1),
            std::nullopt);
  EXPECT_NE(options.selectSampled, sampled);
  ASSERT_EQ(setGPUPipelineOption(options, "select-max-registers", 96),
            std::nullopt);
  EXPECT_EQ(options.selectMaxRegisters, 96);
  ASSERT_EQ(setGPUPipelineOption(options, "attention-key-chunk", 48),
            std::nullopt);
  EXPECT_EQ(options.attentionKeyChunk, 48);
}

// Out of range and unknown names say which switch and why.
TEST(PipelineOptionsTest, BadSettingsAreRefusedWithTheReason) {
  GPUPipelineOptions options;
  auto tooMany = setGPUPipelineOption(options, "select-max-registers", 300);
  ASSERT_TRUE(tooMany.has_value());
  EXPECT_EQ(*tooMany, "'select-max-registers' takes 0 to 255, not 300");
  EXPECT_EQ(options.selectMaxRegisters, GPUPipelineOptions().selectMaxRegisters)
      << "a refused value leaves the field alone";
  auto below = setGPUPipelineOption(options, "attention-split-share", -2);
  ASSERT_TRUE(below.has_value());
  EXPECT_NE(below->find("'attention-split-share' takes -1 to"),
            std::string::npos)
      << *below;
  auto unknown = setGPUPipelineOption(options, "attention-magic", 1);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(*unknown, "unknown option 'attention-magic'");
}
