// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared=async-positions=1 | FileCheck %s --check-prefix=ASYNC

// gsa-stage-shared on consecutive rows (the indexer's key chunks, as
// gsa-tile writes them): the ring is two slots of 32 keys x 64 bf16 and no
// position list is read - row j of the chunk starting at key s is key
// s + j (the chunk's first key past the count, here L - s), whose row of
// ki [B, L, 64] starts (B L + key) x 128 bytes in: the key times 128 plus
// the batch's part, 32-bit offsets from the buffer's base.

// CHECK-LABEL: func.func @scores
// CHECK: gpu.launch
// CHECK-SAME: workgroup(%[[RING:[^ ,)]+]] : memref<2x32x64xbf16, #gpu.address_space<workgroup>>) {
// CHECK-NOT: memref.load
// Prologue: chunk 0's copies, one commit group.
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// CHECK: nvvm.cp.async.commit.group
// The loop: chunk c + 1's copies (rows past L - s read key s), commit,
// wait for chunk c, barrier.
// CHECK: scf.for %[[C:.*]] = %c0 to %[[CHUNKS:.*]] step %c1
// CHECK: %[[NEXT:.*]] = arith.addi %[[C]], %c1
// CHECK: arith.cmpi slt, %[[NEXT]], %[[CHUNKS]]
// CHECK: %[[FIRST:.*]] = arith.muli %[[NEXT]], %c32
// CHECK: %[[COUNT:.*]] = arith.subi %c100, %[[FIRST]]
// CHECK: %[[J:.*]] = arith.divui %{{.*}}, %c8
// CHECK: %[[IN:.*]] = arith.cmpi slt, %[[J]], %[[COUNT]] : index
// CHECK: %[[JJ:.*]] = arith.select %[[IN]], %[[J]], %c0
// CHECK: %[[KEY:.*]] = arith.addi %[[FIRST]], %[[JJ]] : index
// CHECK: %[[KEY32:.*]] = arith.index_cast %[[KEY]] : index to i32
// CHECK: %[[ROW:.*]] = arith.muli %[[KEY32]], %c128_i32 : i32
// CHECK: arith.addi %[[ROW]], %{{.*}} : i32
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// CHECK: nvvm.cp.async.commit.group
// CHECK-NEXT: nvvm.cp.async.wait.group 1
// CHECK-NEXT: gpu.barrier
// CHECK: gsa.tile.shared_tile %[[RING]][%{{.*}}] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
// CHECK-NOT: gsa.tile.gather_rows
// CHECK: gpu.barrier
// CHECK: nvvm.cp.async.wait.group 0

// With async-positions there is still no position ring (nothing to read
// ahead) and the prologue does not wait for its first group.
// ASYNC: workgroup(%{{[^ ,)]+}} : memref<2x32x64xbf16, #gpu.address_space<workgroup>>) {
// ASYNC: nvvm.cp.async.commit.group
// ASYNC-NOT: nvvm.cp.async.wait.group 0
// ASYNC: scf.for
func.func @scores(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>)
    -> tensor<2x100x100xf32> {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<2x100x4x64xbf16>, tensor<2x100x64xbf16>) -> tensor<2x100x100xf32>
  return %I : tensor<2x100x100xf32>
}
