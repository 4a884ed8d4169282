// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared "--gsa-map-tensor-cores=wgmma=1 shared-queries=1" --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores=wgmma=1 --canonicalize | FileCheck %s --check-prefix=REGS
// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared "--gsa-map-tensor-cores=shared-queries=1" --canonicalize | FileCheck %s --check-prefix=SYNC

// gsa-map-tensor-cores' shared-queries on the tiles of a GQA group of 4
// heads, d_k 64 (one 128-byte column block), 32-key chunks. The full tile
// (one warpgroup, 16 queries x 4 heads = 64 rows) stores its query block
// once to a 64 x 64 buffer of its own in the slots' swizzle layout, and
// Q K^T reads A through descriptors; P V keeps its A operand (the
// probabilities) in registers. The 2-warp half tile is no warpgroup: it
// keeps mma.sync and the query registers.

// CHECK-LABEL: func.func @attend
// CHECK: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c128,
// CHECK-SAME: %[[QBUF:arg[0-9]+]] : memref<1x64x64xbf16, #gpu.address_space<workgroup>>) {
// The lane's pair of row g (warp w's 16 rows from 16 w), piece 0 of the
// row: its warpgroup's block (warp / 4 x 4096 elements), then row x 64 +
// (row % 8) x 8 + column elements (piece 0 ^ row % 8).
// CHECK: arith.muli %{{.*}}, %c4096 : index
// CHECK-NEXT: %[[WIN:[^ ]+]] = arith.remui %{{.*}}, %c4 : index
// CHECK-NEXT: %[[WROW:[^ ]+]] = arith.muli %[[WIN]], %c16 : index
// CHECK-NEXT: %[[ROW:[^ ]+]] = arith.addi %[[WROW]], %{{.*}} : index
// CHECK-NEXT: %[[PERM:[^ ]+]] = arith.andi %[[ROW]], %c7 : index
// CHECK-NEXT: %[[PERM8:[^ ]+]] = arith.muli %[[PERM]], %c8 : index
// CHECK-NEXT: %[[ROW64:[^ ]+]] = arith.muli %[[ROW]], %c64 : index
// CHECK-NEXT: %[[AT:[^ ]+]] = arith.addi %[[ROW64]], %[[PERM8]] : index
// CHECK: memref.extract_aligned_pointer_as_index %[[QBUF]]
// CHECK: nvvm.inline_ptx "st.shared.b32 [$0], $1;"
// 4 k-steps x 4 registers: 16 stores per lane, then the proxy fence and a
// barrier before any wgmma reads them.
// CHECK-COUNT-15: nvvm.inline_ptx "st.shared.b32 [$0], $1;"
// CHECK-NEXT: nvvm.inline_ptx "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// CHECK-NOT: st.shared.b32
// Q K^T: the A descriptor of the warpgroup's block (warp / 4 x 8192 bytes)
// and B's of the K slot, both 128-byte swizzle with stride 1024 bytes; the
// k-steps 32 bytes (2 in the start field) apart in both.
// CHECK: %[[QB:[^ ]+]] = memref.extract_aligned_pointer_as_index %[[QBUF]]
// CHECK-NEXT: %[[QG:[^ ]+]] = arith.muli %{{.*}}, %c8192 : index
// CHECK-NEXT: %[[QA:[^ ]+]] = arith.addi %[[QB]], %[[QG]] : index
// CHECK: %[[A0:[^ ]+]] = arith.ori %{{.*}}, %c4611686293305360384_i64 : i64
// CHECK: %[[B0:[^ ]+]] = arith.ori %{{.*}}, %c4611686293305360384_i64 : i64
// CHECK-NEXT: %[[B1:[^ ]+]] = arith.addi %[[B0]], %c2_i64 : i64
// CHECK-NEXT: %[[A1:[^ ]+]] = arith.addi %[[A0]], %c2_i64 : i64
// Both operands by descriptor: A's transpose immediate 0 (K-major), then B's.
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "{\0A.reg .pred p;\0Asetp.ne.b32 p, $24, 0;\0Awgmma.fence.sync.aligned;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15}, $16, $17, p, 1, 1, 0, 0;
// CHECK-SAME: $22, $23, p, 1, 1, 0, 0;\0Awgmma.commit_group.sync.aligned;\0Awgmma.wait_group.sync.aligned 0;\0A}"
// CHECK-SAME: "=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,l,l,l,l,l,l,l,l,r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"
// CHECK-SAME: %[[A0]], %[[B0]], %[[A1]], %[[B1]],
// P V: A (the probabilities) from registers, B transposed.
// CHECK: wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, {$32, $33, $34, $35}, $36, p, 1, 1, 1;
// CHECK: gsa.kernel = "attend_sparse_attention_0"
// The half tile: no buffer, no stores, mma.sync on the query registers.
// CHECK: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c64,
// CHECK-NOT: x64x64xbf16
// CHECK-NOT: st.shared.b32
// CHECK-NOT: wgmma
// CHECK: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK: gsa.kernel = "attend_sparse_attention_0_half"

// Without shared-queries: no query buffer, A from the 4 registers per k-step.
// REGS-LABEL: func.func @attend
// REGS-NOT: x64x64xbf16
// REGS-NOT: st.shared.b32
// REGS: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {{.*}}, {$16, $17, $18, $19}, $20, p, 1, 1, 0;

// Without wgmma the option has nothing to feed: mma.sync throughout.
// SYNC-LABEL: func.func @attend
// SYNC-NOT: st.shared.b32
// SYNC-NOT: wgmma
// SYNC: mma.sync.aligned.m16n8k16

func.func @attend(%q: tensor<1x40x4x64xbf16>, %k: tensor<1x40x1x64xbf16>,
                  %v: tensor<1x40x1x64xbf16>, %idx: tensor<1x40x16xi32>,
                  %cnt: tensor<1x40xi32>)
    -> (tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x40x4x64xbf16>, tensor<1x40x1x64xbf16>, tensor<1x40x1x64xbf16>,
         tensor<1x40x16xi32>, tensor<1x40xi32>) -> (tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>)
  return %o, %lse : tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>
}
