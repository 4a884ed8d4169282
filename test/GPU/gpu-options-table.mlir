// RUN: gsa-opt %s --gsa-gpu-pipeline="select-rows-per-tile=4 select-max-registers=96" | FileCheck %s
// RUN: gsa-compile %s --select-rows-per-tile=4 --select-max-registers=96 -o %t.ptx --manifest %t.json
// RUN: FileCheck %s --input-file=%t.ptx --check-prefix=PTX
// RUN: FileCheck %s --input-file=%t.json --check-prefix=MANIFEST
// RUN: gsa-opt %s --gsa-gpu-pipeline | FileCheck %s --check-prefix=DEFAULT
// RUN: gsa-compile %s -o %t.default.ptx
// RUN: FileCheck %s --input-file=%t.default.ptx --check-prefix=DEFAULT-PTX
// RUN: not gsa-opt %s --gsa-gpu-pipeline="select-rows-per-tile=20" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not gsa-opt %s --gsa-gpu-pipeline="select-max-registers=300" 2>&1 | FileCheck %s --check-prefix=RANGE
// RUN: not gsa-compile %s --attention-split-share=-5 -o %t.bad.ptx 2>&1 | FileCheck %s --check-prefix=RANGE-COMPILE

// The GPU pipeline's switches come from one table
// (include/gsa/Conversion/GPUPipelineOptions.def): the selection's tile
// height and register cap, which gsa-opt's pipeline and gsa-compile did not
// all offer before, reach gsa-lower-selection through both. B = 1, L = 64:
// 4-row tiles are 16 CTAs (8-row tiles, the default below L = 98304, 8),
// and the sweep kernels carry .maxnreg 96.
// The table's ranges hold in gsa-opt and gsa-compile too (not only in the
// runtime's GSA_GPU_OPTIONS parser): a value out of range fails the
// pipeline before any pass runs.
// RANGE: error: gsa-gpu-pipeline: 'select-max-registers' takes 0 to 255, not 300
// RANGE-COMPILE: error: gsa-gpu-pipeline: 'attention-split-share' takes -1 to 2147483647, not -5
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_sample blocks in (%c16
// CHECK: gpu.binary @gsa_kernels
// CHECK-SAME: .maxnreg 96
// PTX: .entry select_1_select_stats
// PTX: .maxnreg 96
// MANIFEST: "grid": [
// MANIFEST-NEXT: 16,
// MANIFEST: "kernel": "select_1_select_sample"
// DEFAULT: gpu.launch_func @gsa_kernels::@select_1_select_sample blocks in (%c8
// By default (sm_90a) the statistics sweep runs on wgmma over 32-row tiles
// (2 CTAs here) and carries a register cap: 80, three CTAs per SM; the
// finish kernel its own, 48 (five CTAs per SM); the sample kernel 128 (two
// CTAs per SM); the others none.
// DEFAULT: gpu.launch_func @gsa_kernels::@select_1_select_stats blocks in (%c2
// DEFAULT-PTX: .entry select_1_select_sample
// DEFAULT-PTX: .maxnreg 128
// DEFAULT-PTX-NOT: .maxnreg
// DEFAULT-PTX: .entry select_1_select_stats
// DEFAULT-PTX: .maxnreg 80
// DEFAULT-PTX-NOT: .maxnreg
// DEFAULT-PTX: .entry select_1_select_finish
// DEFAULT-PTX: .maxnreg 48
// DEFAULT-PTX-NOT: .maxnreg
// A value the pass does not take is reported at the op by the pass.
// BAD: error: 'gsa.indexer' op the selection tile takes 1 to 16 query rows, but rows-per-tile = 20
func.func @select(%qi: tensor<1x64x4x64xbf16>, %ki: tensor<1x64x64xbf16>,
                  %wi: tensor<1x64x4xbf16>, %bi: tensor<4xbf16>)
    -> (tensor<1x64x16xi32>, tensor<1x64xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<1x64x4x64xbf16>, tensor<1x64x64xbf16>, tensor<1x64x4xbf16>, tensor<4xbf16>)
        -> tensor<1x64x64xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 8 in [4, 16]
      : (tensor<1x64x64xf32>) -> (tensor<1x64x16xi32>, tensor<1x64xi32>)
  return %idx, %cnt : tensor<1x64x16xi32>, tensor<1x64xi32>
}
