// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=3" | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection | FileCheck %s --check-prefix=SYNC
// RUN: not gsa-opt %s --gsa-lower-selection="select-wgmma-stages=1" 2>&1 | FileCheck %s --check-prefix=BAD
// RUN: not gsa-opt %s --gsa-lower-selection="select-wgmma-stages=7" 2>&1 | FileCheck %s --check-prefix=BAD7
// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=6" | FileCheck %s --check-prefix=SIX
// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=3 select-wgmma-queries=32" | FileCheck %s --check-prefix=PAIRS
// RUN: not gsa-opt %s --gsa-lower-selection="select-wgmma-stages=3 select-wgmma-queries=24" 2>&1 | FileCheck %s --check-prefix=BADQ

// The selection's statistics sweep on wgmma (gsa-lower-selection's
// select-wgmma-stages; gsa-gpu-pipeline sets 6 for sm_90a). B = 2, L = 100:
// 32 query rows per CTA (each of the two warpgroups 16 queries x 4 heads,
// the M = 64 of wgmma) is a 4 x 2 grid, while the other selection kernels
// keep their 8-row tiles (13 x 2).
// CHECK-LABEL: func.func @select
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_sample blocks in (%c13,
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_stats blocks in (%c4,
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_topk blocks in (%c13{{[_0-9]*}},
// The kernel: a ring of 3 slots of 64 keys x d_I 64 (12288 bf16), 1024-byte
// aligned for the 128-byte swizzle atoms, and a register cap of 80 (three
// CTAs of 256 threads per SM).
// CHECK: gpu.func @select_1_select_stats
// CHECK-SAME: memref<12288xbf16, #gpu.address_space<workgroup>> {llvm.align = 1024 : i64}
// CHECK-SAME: nvvm.maxnreg = 80
// Tiles run longest first (block b takes tile gridDim - 1 - b): the
// longest sweeps would otherwise be the grid's last wave.
// CHECK: %[[BLOCK:.*]] = gpu.block_id  x
// CHECK: %[[GRID:.*]] = gpu.grid_dim  x
// CHECK-NEXT: %[[LAST:.*]] = arith.subi %[[GRID]], %c1
// CHECK-NEXT: arith.subi %[[LAST]], %[[BLOCK]]
// The prologue issues chunks 0 and 1 (stages - 1 groups, each under a
// guard for tiles with fewer chunks), 16-byte copies of 2 pieces per thread.
// CHECK: scf.if
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.if
// CHECK: nvvm.cp.async.commit.group
// CHECK-NEXT: gpu.barrier
// The bulk loop (chunks below the tile's first row): chunk i waits for its
// group with stages - 2 newer ones in flight, fences the copies for the
// async proxy, and after the barrier refills the slot chunk i - 1 used; the
// inverse policy carries the row's two f64 sums (one row per thread).
// CHECK: scf.for {{.*}} step %c1{{[_0-9]*}} iter_args({{.*}}) -> (f64, f64) {
// CHECK-NEXT: nvvm.cp.async.wait.group 1
// CHECK-NEXT: nvvm.inline_ptx "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global
// CHECK: nvvm.cp.async.commit.group
// The first k-step's descriptor is built once, the next three add 32, 64
// and 96 bytes / 16 to its start address field.
// CHECK: %[[SD0:[^ ]+]] = arith.ori %{{.*}}, %c4611686293305360384_i64{{[_0-9]*}} : i64
// CHECK: arith.addi %[[SD0]], %c2_i64{{[_0-9]*}} : i64
// CHECK: arith.addi %[[SD0]], %c4_i64{{[_0-9]*}} : i64
// CHECK: arith.addi %[[SD0]], %c6_i64{{[_0-9]*}} : i64
// Four k-steps of m64n64k16 (d_I 64), B by 128-byte-swizzle descriptors,
// and a fifth for the bias (select-wgmma-affine.mlir); the first step does
// not read the accumulators.
// CHECK: llvm.inline_asm has_side_effects {{.*}}wgmma.fence.sync.aligned;\0Awgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 0;\0Awgmma.mma_async{{.*}}, q, 1, 1, 0;\0Awgmma.mma_async{{.*}}, q, 1, 1, 0;\0Awgmma.mma_async{{.*}}, q, 1, 1, 0;\0Awgmma.mma_async{{.*}}, q, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;\0Awgmma.wait_group.sync.aligned 0;
// Eight n-tiles per chunk, each one visit per lane after one xor-16
// shuffle of a head pair.
// CHECK-COUNT-8: gpu.shuffle xor {{.*}}, %c16_i32
// The bulk's moments: the chunk's eight scores summed and squared in f32,
// then two f32 -> f64 conversions per chunk (not one per visit).
// CHECK-COUNT-2: arith.extf {{.*}} : f32 to f64
// CHECK-NOT: arith.extf
// CHECK: scf.yield {{.*}} : f64, f64
// Then the masked loop over the remaining chunks (a conversion per visit).
// CHECK: scf.for {{.*}} -> (f64, f64) {
// CHECK-NEXT: nvvm.cp.async.wait.group 1
// CHECK: wgmma.mma_async
// CHECK-COUNT-8: arith.extf {{.*}} : f32 to f64
// CHECK-NOT: arith.extf
// CHECK: scf.yield {{.*}} : f64, f64
// CHECK: nvvm.cp.async.wait.group 0
// The row's mean and variance without div.rn.f64 (a subroutine call that
// gsa-serialize-kernels refuses in wgmma kernels).
// CHECK: rcp.approx.ftz.f64
// CHECK-NOT: arith.divf
// CHECK: gpu.return

// Without the option the sweep stays on mma.sync over 8-row tiles.
// SYNC: gpu.launch_func @gsa_kernels::@select_1_select_stats blocks in (%c13{{[_0-9]*}},
// SYNC: gpu.func @select_1_select_stats
// SYNC: gpu.grid_dim  x
// SYNC-NOT: wgmma
// SYNC: gpu.func @select_1_select_finish

// 32 queries per warpgroup (the head-pairs form): 64 rows per CTA (a 2 x 2
// grid), a 128-register cap (two CTAs per SM), and per half chunk (32 keys)
// two products of five k-steps each - heads 0-1 and 2-3 of the same
// queries into accumulators $0-$15 and $16-$31 - then the scores from the
// lane's own four heads: no xor-16 shuffle of head pairs in the sweep, only
// the final reduction over the 4 lanes of a query (xor 2, xor 1).
// PAIRS: gpu.launch_func @gsa_kernels::@select_1_select_stats blocks in (%c2
// PAIRS: gpu.func @select_1_select_stats
// PAIRS-SAME: nvvm.maxnreg = 128
// PAIRS: scf.for {{.*}} -> (f64, f64) {
// PAIRS-NOT: gpu.shuffle
// PAIRS: wgmma.fence.sync.aligned;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{[^;]*}}, p, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$16, {{[^;]*}}, p, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$16, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$16, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$16, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$16, {{[^;]*}}, q, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;\0Awgmma.wait_group.sync.aligned 0;
// PAIRS-COUNT-4: tanh.approx.f32
// PAIRS-NOT: gpu.shuffle
// PAIRS: wgmma.fence.sync.aligned
// PAIRS-NOT: gpu.shuffle
// PAIRS: scf.yield {{.*}} : f64, f64
// PAIRS-NOT: gpu.shuffle
// PAIRS: scf.for {{.*}} -> (f64, f64) {
// PAIRS-NOT: gpu.shuffle
// PAIRS: scf.yield {{.*}} : f64, f64
// PAIRS-NOT: %c16_i32
// PAIRS: gpu.shuffle  xor {{.*}}, %c2_i32
// PAIRS: gpu.return

// BAD: error: 'gsa.adaptive_topk' op the wgmma statistics sweep takes 2 to 6 stages (0: none), but select-wgmma-stages = 1
// BAD7: error: 'gsa.adaptive_topk' op the wgmma statistics sweep takes 2 to 6 stages (0: none), but select-wgmma-stages = 7

// Six stages with the moments (this inverse policy): still one chunk per
// barrier (two chunks' code with the f64 sums spills under the 80-register
// cap; select-wgmma-two-chunks.mlir has the fixed policy's two): the
// prologue issues chunks 0-4, chunk i waits with 4 groups in flight.
// SIX: gpu.func @select_1_select_stats
// SIX-SAME: memref<24576xbf16, #gpu.address_space<workgroup>> {llvm.align = 1024 : i64}
// SIX-COUNT-5: nvvm.cp.async.commit.group
// SIX-NEXT: gpu.barrier
// SIX: scf.for {{.*}} step %c1{{[_0-9]*}} iter_args({{.*}}) -> (f64, f64) {
// SIX-NEXT: nvvm.cp.async.wait.group 4
func.func @select(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>,
                  %wi: tensor<2x100x4xbf16>, %bi: tensor<4xbf16>, %rv: tensor<f32>)
    -> (tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<2x100x4x64xbf16>, tensor<2x100x64xbf16>, tensor<2x100x4xbf16>, tensor<4xbf16>)
        -> tensor<2x100x100xf32>
  %idx, %cnt, %nv = gsa.adaptive_topk %I policy = inverse k = 16 in [4, 32]
      running_var(%rv) training
      : (tensor<2x100x100xf32>, tensor<f32>) -> (tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>)
  return %idx, %cnt, %nv : tensor<2x100x32xi32>, tensor<2x100xi32>, tensor<f32>
}
// BADQ: error: 'gsa.adaptive_topk' op the wgmma statistics sweep takes 16 or 32 queries per warpgroup, but select-wgmma-queries = 24
