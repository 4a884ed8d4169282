// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=6 select-tma=1" | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=6 select-tma=2" | FileCheck %s --check-prefix=EMPTY
// RUN: gsa-opt %s --gsa-lower-selection="select-wgmma-stages=6" | FileCheck %s --check-prefix=CPASYNC
// RUN: not gsa-opt %s --gsa-lower-selection="select-wgmma-stages=6 select-tma=3" 2>&1 | FileCheck %s --check-prefix=BAD

// The wgmma statistics sweep with its key chunks by TMA (select-tma): the
// host builds ki's tensor map ([B, L, d_I] in boxes of one 64-key chunk's
// 128-byte column block, 128-byte swizzle: the slots' layout) and passes
// it to the stats kernel, which names it in gsa.tensor_map_args (passed by
// value, gsa-grid-constant-params).
// CHECK-LABEL: func.func @select
// CHECK: %[[MAP:.*]] = gsa.tensor_map %{{.*}} shape [1, 300, 64] box [1, 64, 64] swizzle 128 : memref<19200xbf16> -> !llvm.ptr
// CHECK: gpu.launch_func @gsa_kernels::@select_1_select_stats {{.*}}, %[[MAP]] : !llvm.ptr)
// CHECK: gpu.func @select_1_select_stats(
// CHECK-SAME: %[[KMAP:arg[0-9]+]]: !llvm.ptr
// CHECK-SAME: gsa.tensor_map_args = array<i32: 12>
// Thread 0 initialises one "full" barrier per slot (one arrival: its own
// expect_tx) and orders the initialisation before the TMA unit's use.
// CHECK-COUNT-6: mbarrier.init.shared::cta.b64 [$0], $1;" ro(%{{.*}}, %c1_i32
// CHECK-NEXT: "fence.mbarrier_init.release.cluster;\0Afence.proxy.async.shared::cta;"
// The prologue: chunks 0-3, each one expect_tx of 8192 bytes and one
// tensor copy at (d = 0, key = 64 k, batch) - no cp.async, no groups.
// CHECK-NOT: nvvm.cp.async
// CHECK: "mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;" ro(%{{.*}}, %c8192_i32
// CHECK: "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [$0], [$1, {$2, $3, $4}], [$5];" ro(%{{.*}}, %[[KMAP]], %c0_i32
// CHECK-COUNT-3: cp.async.bulk.tensor.3d
// The block of ones (bias step) is fenced for the async proxy once.
// CHECK: "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// The bulk loop, two chunks per step: its one CTA barrier frees the
// previous step's slots, thread 0 refills them, and each chunk's products
// wait on the slot's barrier (parity: the slot's fill) first.
// CHECK: scf.for {{.*}} step %c2{{(_[0-9]+)?}} {
// CHECK-NEXT: gpu.barrier
// CHECK: cp.async.bulk.tensor.3d
// CHECK: cp.async.bulk.tensor.3d
// CHECK-NOT: gpu.barrier
// CHECK: mbarrier.try_wait.parity.shared::cta.b64
// CHECK-NOT: gpu.barrier
// CHECK: llvm.inline_asm {{.*}}wgmma.mma_async
// CHECK-NOT: gpu.barrier
// CHECK: mbarrier.try_wait.parity.shared::cta.b64
// CHECK-NOT: gpu.barrier
// CHECK: wgmma.mma_async
// CHECK-NOT: nvvm.cp.async
// CHECK: gpu.return
// With the bulk copy engine at hand, the finish kernel asks for its row's
// candidate keys and positions in L2 up front, one bulk prefetch each
// (16-byte aligned spans), before the first barrier.
// CHECK: gpu.func @select_1_select_finish(
// CHECK-NOT: gpu.barrier
// The span [row x 300, + count) of the keys, count clamped to the
// capacity (2 x 152 + 256 + 12 = 572, but at most L = 300 keys), both ends
// rounded down to 16 bytes.
// CHECK: %[[COUNT:.*]] = arith.minui %{{.*}}, %c300{{[_0-9]*}} : index
// CHECK: %[[FIRST:.*]] = arith.muli %{{.*}}, %c300{{[_0-9]*}} : index
// CHECK: %[[M16:.*]] = arith.constant -16 : i64
// CHECK: %[[END:.*]] = arith.addi %[[FIRST]], %[[COUNT]] : index
// CHECK: %[[FROM:.*]] = arith.andi %{{.*}}, %[[M16]] : i64
// CHECK-NEXT: %[[TO:.*]] = arith.andi %{{.*}}, %[[M16]] : i64
// CHECK-NEXT: %[[ANY:.*]] = arith.cmpi ugt, %[[TO]], %[[FROM]] : i64
// CHECK-NEXT: scf.if %[[ANY]] {
// CHECK-NEXT: %[[BYTES:.*]] = arith.subi %[[TO]], %[[FROM]] : i64
// CHECK-NEXT: %[[SIZE:.*]] = arith.trunci %[[BYTES]] : i64 to i32
// CHECK-NEXT: nvvm.inline_ptx "cp.async.bulk.prefetch.L2.global [$0], $1;" ro(%[[FROM]], %[[SIZE]] : i64, i32)
// CHECK-NOT: gpu.barrier
// CHECK: nvvm.inline_ptx "cp.async.bulk.prefetch.L2.global [$0], $1;"
// CHECK-NOT: cp.async.bulk.prefetch
// CHECK: gpu.return

// select-tma=2: an "empty" barrier per slot too (8 arrivals: the warps);
// no CTA barrier in the loops - thread 0 waits for the slot's release
// (the chunk a ring before) before it refills it, and lane 0 of each warp
// arrives once its products have read the chunk.
// EMPTY: gpu.func @select_1_select_stats(
// EMPTY-COUNT-6: mbarrier.init.shared::cta.b64 [$0], $1;" ro(%{{.*}}, %c{{1|8}}_i32
// EMPTY: gpu.barrier
// EMPTY: scf.for {{.*}} step %c2{{(_[0-9]+)?}} {
// EMPTY-NOT: gpu.barrier
// EMPTY: mbarrier.try_wait.parity
// EMPTY: mbarrier.arrive.expect_tx
// EMPTY: cp.async.bulk.tensor.3d
// EMPTY: mbarrier.try_wait.parity
// EMPTY: mbarrier.arrive.expect_tx
// EMPTY: cp.async.bulk.tensor.3d
// EMPTY: mbarrier.try_wait.parity
// EMPTY: llvm.inline_asm {{.*}}wgmma.mma_async
// EMPTY: %[[LANE0:.*]] = arith.cmpi eq, %{{.*}}, %c0
// EMPTY: nvvm.inline_ptx "mbarrier.arrive.shared::cta.b64 _, [$0];" ro(%{{.*}} : i32), predicate = %[[LANE0]]
// EMPTY-NOT: gpu.barrier
// EMPTY: scf.for

// Without select-tma: cp.async, no tensor map.
// CPASYNC-NOT: gsa.tensor_map
// CPASYNC: gpu.func @select_1_select_stats(
// CPASYNC-NOT: gsa.tensor_map_args
// CPASYNC: nvvm.cp.async.commit.group
// The finish kernel's L2 prefetch comes with the wgmma sweep (sm_90), by
// TMA or not.
// CPASYNC: gpu.func @select_1_select_finish(
// CPASYNC-COUNT-2: cp.async.bulk.prefetch.L2.global

// BAD: error: 'gsa.adaptive_topk' op select-tma takes 0 (cp.async), 1 (TMA, slots freed by a CTA barrier) or 2 (TMA, slots freed by per-slot barriers), but is 3
func.func @select(%qi: tensor<1x300x4x64xbf16>, %ki: tensor<1x300x64xbf16>,
                  %wi: tensor<1x300x4xbf16>, %bi: tensor<4xbf16>, %rv: tensor<f32>)
    -> (tensor<1x300x32xi32>, tensor<1x300xi32>) {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<1x300x4x64xbf16>, tensor<1x300x64xbf16>, tensor<1x300x4xbf16>, tensor<4xbf16>)
        -> tensor<1x300x300xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [16, 32]
      running_var(%rv)
      : (tensor<1x300x300xf32>, tensor<f32>) -> (tensor<1x300x32xi32>, tensor<1x300xi32>)
  return %idx, %cnt : tensor<1x300x32xi32>, tensor<1x300xi32>
}
