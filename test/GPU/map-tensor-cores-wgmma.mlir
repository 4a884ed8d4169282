// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores=wgmma=1 --canonicalize | FileCheck %s
// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores --canonicalize | FileCheck %s --check-prefix=SYNC

// gsa-map-tensor-cores with wgmma on the staged tiles of a GQA group of 4
// heads, d_k 64, 32-key chunks: the full tile (4 warps = one warpgroup,
// 16 queries x 4 heads = 64 rows) runs Q K^T and P V as wgmma.mma_async,
// the 2-warp half tile keeps mma.sync.

// CHECK-LABEL: func.func @attend
// The union kernel, then the full tile's attention (128 threads).
// CHECK: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c128,
// CHECK-NOT: ldmatrix
// The staged copies are ordered before the async proxy's reads: a proxy
// fence between the cp.async wait and the barrier that publishes the slot.
// CHECK: nvvm.cp.async.wait.group 1
// CHECK-NEXT: nvvm.inline_ptx "fence.proxy.async.shared::cta;"
// CHECK-NEXT: gpu.barrier
// Q K^T: the K slot (32 rows x 128 bytes = 4096 bytes) by descriptor, one
// per 16-column k-step, 32 bytes apart inside the 128-byte swizzle atoms;
// the fields: layout 1 (128-byte swizzle) << 62 | stride 1024 bytes (64)
// << 32 | leading 16 bytes (1, unused here) << 16 = 4611686293305360384.
// The first k-step's descriptor is built once; the others add their offset
// / 16 to its start address field (32 bytes: 2, 64: 4, 96: 6).
// CHECK: %[[KBASE:[^ ]+]] = memref.extract_aligned_pointer_as_index %[[KRING:arg[0-9]+]] : memref<2x32x64xbf16, #gpu.address_space<workgroup>>
// CHECK-NEXT: %[[KSLOT:[^ ]+]] = arith.muli %{{.*}}, %c4096 : index
// CHECK-NEXT: %[[KADDR:[^ ]+]] = arith.addi %[[KBASE]], %[[KSLOT]] : index
// CHECK-NEXT: %[[K32:[^ ]+]] = arith.index_castui %[[KADDR]] : index to i32
// CHECK-NEXT: %[[K64:[^ ]+]] = arith.extui %[[K32]] : i32 to i64
// CHECK-NEXT: %[[KSH:[^ ]+]] = arith.shrui %[[K64]], %c4_i64 : i64
// CHECK-NEXT: %[[KMASK:[^ ]+]] = arith.andi %[[KSH]], %c16383_i64 : i64
// CHECK-NEXT: %[[D0:[^ ]+]] = arith.ori %[[KMASK]], %c4611686293305360384_i64 : i64
// CHECK-NEXT: %[[D1:[^ ]+]] = arith.addi %[[D0]], %c2_i64 : i64
// CHECK-NEXT: %[[D2:[^ ]+]] = arith.addi %[[D0]], %c4_i64 : i64
// CHECK-NEXT: %[[D3:[^ ]+]] = arith.addi %[[D0]], %c6_i64 : i64
// Issue, commit and wait in one block; the accumulators tied to the results.
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "{\0A.reg .pred p;\0Asetp.ne.b32 p, $36, 0;\0Awgmma.fence.sync.aligned;\0Awgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16 {$0, $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15}, {$16, $17, $18, $19}, $20, p, 1, 1, 0;
// CHECK-SAME: {$31, $32, $33, $34}, $35, p, 1, 1, 0;\0Awgmma.commit_group.sync.aligned;\0Awgmma.wait_group.sync.aligned 0;\0A}"
// CHECK-SAME: "=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,=f,r,r,r,r,l,r,r,r,r,l,r,r,r,r,l,r,r,r,r,l,r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15"
// CHECK-SAME: %[[D0]], {{.*}}, %[[D1]], {{.*}}, %[[D2]], {{.*}}, %[[D3]]
// CHECK-SAME: -> !llvm.struct<(f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32, f32)>
// P V: V's slot MN-major (B transposed, last immediate 1): k-step 1 starts
// 16 rows (2048 bytes, 128 in the start field) in; leading offset 4096
// bytes (the next 64 columns, 256 << 16), stride 1024 bytes:
// 4611686293322072064.
// CHECK: %[[VBASE:[^ ]+]] = memref.extract_aligned_pointer_as_index %{{arg[0-9]+}} : memref<2x32x64xbf16, #gpu.address_space<workgroup>>
// CHECK: %[[V32:[^ ]+]] = arith.index_castui %{{.*}} : index to i32
// CHECK: %[[V0:[^ ]+]] = arith.ori %{{.*}}, %c4611686293322072064_i64 : i64
// CHECK: arith.addi %[[V0]], %c128_i64 : i64
// CHECK: llvm.inline_asm has_side_effects asm_dialect = att "{{.*}}wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 1;\0Awgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {{.*}}, p, 1, 1, 1;\0Awgmma.commit_group.sync.aligned;\0Awgmma.wait_group.sync.aligned 0;\0A}"
// CHECK-NOT: mma.sync
// CHECK: gsa.kernel = "attend_sparse_attention_0"
// The half tile (64 threads, not a warpgroup): ldmatrix and mma.sync.
// CHECK: gpu.launch {{.*}} threads({{.*}}) in (%{{.*}} = %c64,
// CHECK-NOT: wgmma
// CHECK: ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-NEXT: mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK-NOT: wgmma
// CHECK: gsa.kernel = "attend_sparse_attention_0_half"

// Without the option: no wgmma, no proxy fence anywhere.
// SYNC-LABEL: func.func @attend
// SYNC-NOT: wgmma
// SYNC-NOT: fence.proxy
// SYNC: mma.sync.aligned.m16n8k16
// SYNC-NOT: wgmma
// SYNC-NOT: fence.proxy

func.func @attend(%q: tensor<1x40x4x64xbf16>, %k: tensor<1x40x1x64xbf16>,
                  %v: tensor<1x40x1x64xbf16>, %idx: tensor<1x40x16xi32>,
                  %cnt: tensor<1x40xi32>)
    -> (tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x40x4x64xbf16>, tensor<1x40x1x64xbf16>, tensor<1x40x1x64xbf16>,
         tensor<1x40x16xi32>, tensor<1x40xi32>) -> (tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>)
  return %o, %lse : tensor<1x40x4x64xbf16>, tensor<1x40x4xf32>
}
