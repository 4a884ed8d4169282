// RUN: gsa-opt %s --gsa-gpu-pipeline | FileCheck %s
// RUN: gsa-opt %s --gsa-gpu-pipeline="attention-wgmma=0" | FileCheck %s --check-prefix=SYNC
// RUN: gsa-opt %s --gsa-gpu-pipeline="attention-split-share=3" | FileCheck %s --check-prefix=SPLIT
// RUN: gsa-opt %s --gsa-gpu-pipeline="attention-split-share=0 attention-warps=2" | FileCheck %s --check-prefix=OPTS
// RUN: gsa-opt %s --gsa-gpu-pipeline -mlir-print-ir-after=gsa-tile -mlir-print-ir-after=gsa-stage-shared -o /dev/null 2>&1 | FileCheck %s --check-prefix=STAGES
// RUN: not gsa-opt %s --gsa-gpu-pipeline="attention-key-chunk=24" 2>&1 | FileCheck %s --check-prefix=BAD

// gsa-gpu-pipeline end to end, with the runtime's options, and the IR
// after chosen stages.

// Defaults: the query tiles on wgmma and, with them, no half tiles (the
// split-share chosen with the products' instructions), all in one PTX
// binary.
// CHECK-NOT: _half
// CHECK: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_query_tiles
// CHECK: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 blocks
// CHECK-NOT: _half
// CHECK: gpu.binary @gsa_kernels
// CHECK-SAME: wgmma.mma_async

// Without wgmma the tiles that share little run as half tiles (split-share 3).
// SYNC: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_query_tiles
// SYNC: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 blocks
// SYNC: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_half_query_tiles
// SYNC: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_half blocks
// SYNC: gpu.binary @gsa_kernels
// SYNC-NOT: wgmma

// An explicit split-share holds with wgmma too.
// SPLIT: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_half blocks
// SPLIT: gpu.binary @gsa_kernels
// SPLIT-SAME: wgmma.mma_async

// No half tiles, 2-warp tiles (8 queries: L = 33 -> 5 tiles of 64 threads).
// OPTS-NOT: _half
// OPTS: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 blocks in (%c5{{.*}}) threads in (%c64
// OPTS-NOT: _half
// OPTS: gpu.binary @gsa_kernels

// STAGES: IR Dump After GSATile (gsa-tile)
// STAGES: gsa.tile.gather_rows
// STAGES: IR Dump After GSAStageShared (gsa-stage-shared)
// STAGES: nvvm.cp.async.wait.group 1
// STAGES: gsa.tile.shared_tile

// BAD: error: gsa-tile: key-chunk must be 16, 32, 48 or 64
func.func @attend(%q: tensor<1x33x8x64xbf16>, %k: tensor<1x33x2x64xbf16>,
                  %v: tensor<1x33x2x64xbf16>, %idx: tensor<1x33x16xi32>,
                  %cnt: tensor<1x33xi32>)
    -> (tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x33x8x64xbf16>, tensor<1x33x2x64xbf16>, tensor<1x33x2x64xbf16>,
         tensor<1x33x16xi32>, tensor<1x33xi32>) -> (tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>)
  return %o, %lse : tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>
}
