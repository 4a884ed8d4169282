// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared=tma=1 --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared=tma=1 --gsa-map-tensor-cores=wgmma=1 --gsa-outline-kernels | FileCheck %s --check-prefix=OUTLINED

// gsa-stage-shared with tma on consecutive rows (the indexer's key chunks:
// ki [2, 100, 64] bf16, 32-key chunks). The host builds ki's tensor map
// (box [1, 32, 64]: one chunk's 128-byte column block, 128-byte swizzle,
// the layout of the swizzled cp.async copies); the launch gains a barrier
// per slot next to the ring. Thread 0 initialises the barriers (one
// arrival per phase), the block's barrier publishes them; thread 0 then
// arms a chunk's slot with its 4096 bytes and issues one 3-d box at
// (column 0, key = the chunk's first, batch) - only for a chunk below the
// loop's bound, the prologue's too; every thread waits on chunk c's slot
// for the parity of its fill, c / 2 mod 2, before the loop's barrier.

// CHECK-LABEL: func.func @scores
// CHECK: %[[KI:.*]] = bufferization.to_buffer %arg1
// CHECK: %[[MAP:.*]] = gsa.tensor_map %[[KI]] shape [2, 100, 64] box [1, 32, 64] swizzle 128 : memref<2x100x64xbf16> -> !llvm.ptr
// CHECK: gpu.launch
// CHECK-SAME: workgroup(%[[BARS:[^ ,)]+]] : memref<2xi64, #gpu.address_space<workgroup>>, %[[RING:[^ ,)]+]] : memref<2x32x64xbf16, #gpu.address_space<workgroup>>) {
// CHECK: %[[B:.*]] = gpu.block_id y
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %{{.*}}, %c32
// CHECK: scf.if
// CHECK: mbarrier.init.shared::cta.b64 [$0], $1;" ro(%{{.*}}, %c1_i32
// CHECK: mbarrier.init.shared::cta.b64 [$0], $1;" ro(%{{.*}}, %c1_i32
// CHECK: fence.mbarrier_init.release.cluster
// CHECK: }
// CHECK-NEXT: gpu.barrier
// Prologue: chunk 0, if there is one.
// CHECK: %[[ANY:.*]] = arith.cmpi sgt, %[[CHUNKS]], %c0
// CHECK: %[[T0:.*]] = arith.cmpi eq, %{{.*}}, %c0
// CHECK: %[[ISSUE0:.*]] = arith.andi %[[T0]], %[[ANY]]
// CHECK: scf.if %[[ISSUE0]] {
// CHECK: mbarrier.arrive.expect_tx.shared::cta.b64 _, [$0], $1;" ro(%{{.*}}, %c4096_i32
// CHECK: %[[B32:.*]] = arith.index_cast %[[B]] : index to i32
// CHECK: cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [$0], [$1, {$2, $3, $4}], [$5];" ro(%{{.*}}, %[[MAP]], %c0_i32, %c0_i32, %[[B32]], %{{.*}} :
// CHECK: }
// The loop: chunk c + 1 into the other slot (below the bound), then the
// wait for chunk c.
// CHECK: scf.for %[[C:.*]] = %c0 to %[[CHUNKS]] step %c1
// CHECK: %[[SLOT:.*]] = arith.remui %[[C]], %c2
// CHECK: %[[NEXT:.*]] = arith.addi %[[C]], %c1
// CHECK: %[[NEXTSLOT:.*]] = arith.remui %{{.*}}, %c2
// CHECK: %[[FIRST:.*]] = arith.muli %[[NEXT]], %c32
// CHECK: scf.if
// CHECK: %[[BAROFF:.*]] = arith.muli %[[NEXTSLOT]], %c8
// CHECK: mbarrier.arrive.expect_tx
// CHECK: %[[KEY32:.*]] = arith.index_cast %[[FIRST]] : index to i32
// CHECK: arith.muli %[[NEXTSLOT]], %c4096
// CHECK: cp.async.bulk.tensor.3d{{.*}} ro(%{{.*}}, %[[MAP]], %c0_i32, %[[KEY32]], %{{.*}}, %{{.*}} :
// CHECK: %[[FILL:.*]] = arith.divui %[[C]], %c2
// CHECK: %[[PAR:.*]] = arith.andi %[[FILL]], %c1
// CHECK: %[[PAR32:.*]] = arith.index_cast %[[PAR]] : index to i32
// CHECK: arith.muli %[[SLOT]], %c8
// CHECK: mbarrier.try_wait.parity.shared::cta.b64 done, [$0], $1;{{.*}}ro(%{{.*}}, %[[PAR32]] : i32, i32)
// CHECK-NEXT: gpu.barrier
// CHECK: gsa.tile.shared_tile %[[RING]][%[[SLOT]]] swizzled
// CHECK-NOT: gsa.tile.gather_rows
// CHECK-NOT: cp.async.cg

// Outlined: the map is a kernel argument marked for gsa-grid-constant-params.
// OUTLINED: %[[MAP:.*]] = gsa.tensor_map
// OUTLINED: gpu.launch_func @gsa_kernels::@scores_indexer_0 {{.*}} args({{.*}}%[[MAP]] : !llvm.ptr
// OUTLINED: gpu.func @scores_indexer_0({{.*}}%{{.*}}: !llvm.ptr
// OUTLINED-SAME: gsa.tensor_map_args = array<i32: [[N:[0-9]+]]>
func.func @scores(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>)
    -> tensor<2x100x100xf32> {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<2x100x4x64xbf16>, tensor<2x100x64xbf16>) -> tensor<2x100x100xf32>
  return %I : tensor<2x100x100xf32>
}
