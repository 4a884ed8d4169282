// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores --gsa-outline-kernels --convert-gsa-to-gpu -split-input-file | FileCheck %s
// RUN: gsa-opt %s --convert-gsa-to-gpu -split-input-file | FileCheck %s --check-prefix=PERQUERY

// The staged lowering of sparse attention, end to end up to the kernels
// (each stage has its own test: tile.mlir, stage-shared.mlir,
// map-tensor-cores.mlir, outline-kernels.mlir). G = 4 heads per KV head,
// so a tile is 4 warps x 4 queries = 16 queries: the value gate kernel,
// then the union kernel (L = 33 -> 3 tiles; per tile at most 16 x 16 = 256
// union entries, 768 in all, with a 32-bit query mask each, and one size
// per tile), then the attention on a (tiles, KV heads, batch) grid reading
// v' and the union.

// CHECK-LABEL: func.func @attend
// CHECK: %[[VG:.*]] = memref.alloc() : memref<1x33x2x128xbf16>
// CHECK: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_value_gate
// CHECK: %[[KEYS:.*]] = memref.alloc() : memref<768xi32>
// CHECK: %[[MASKS:.*]] = memref.alloc() : memref<768xi32>
// CHECK: %[[SIZES:.*]] = memref.alloc() : memref<3xi32>
// CHECK: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0_query_tiles blocks in (%{{.*}}, %{{.*}}, %{{.*}}) threads in (%c256
// CHECK-SAME: %[[KEYS]] : memref<768xi32>, %[[MASKS]] : memref<768xi32>, %[[SIZES]] : memref<3xi32>, %[[SPLIT:.*]] : memref<3xi32>)
// CHECK: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 blocks in (%c3{{.*}}, %c2, %c1{{.*}}) threads in (%c128
// CHECK-SAME: %[[SIZES]] : memref<3xi32>, %[[KEYS]] : memref<768xi32>, %{{.*}} : memref<1x33x2x128xbf16>, %[[VG]] : memref<1x33x2x128xbf16>, %[[MASKS]] : memref<768xi32>

// The union kernel: a window bitmap (16384 keys: 512 words) and per-key
// query masks (16 bits, two keys per word) in shared memory, set with
// shared atomics, a block-wide prefix count (shuffle up), then the keys and
// masks written out in position order.
// CHECK: gpu.func @attend_sparse_attention_0_query_tiles
// CHECK-SAME: workgroup(%[[BITMAP:.*]] : memref<512xi32, #gpu.address_space<workgroup>> {llvm.align = 16 : i64}, %[[MEMBERS:.*]] : memref<8192xi32, #gpu.address_space<workgroup>>
// CHECK: scf.for
// CHECK: memref.atomic_rmw ori %{{.*}}, %[[BITMAP]]
// CHECK: memref.atomic_rmw ori %{{.*}}, %[[MEMBERS]]
// CHECK: gpu.shuffle up
// CHECK: llvm.intr.cttz

// The attention: K and v' chunks of 32 rows, two stages, by cp.async; Q K^T
// with ldmatrix B fragments, P V with transposed ldmatrix, both on mma.
// CHECK: gpu.func @attend_sparse_attention_0(
// CHECK-SAME: workgroup(%{{.*}} : memref<2x32x128xbf16, #gpu.address_space<workgroup>> {llvm.align = 1024 : i64}, %{{.*}} : memref<2x32x128xbf16, #gpu.address_space<workgroup>> {llvm.align = 1024 : i64}
// CHECK: nvvm.inline_ptx "cp.async.cg.shared.global [$0], [$1], 16;"
// CHECK: nvvm.cp.async.commit.group
// CHECK: scf.for
// CHECK: nvvm.cp.async.commit.group
// CHECK-NEXT: nvvm.cp.async.wait.group 1
// CHECK-NEXT: gpu.barrier
// CHECK: nvvm.inline_ptx "ldmatrix.sync.aligned.m8n8.x4.shared.b16
// CHECK-NEXT: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK: nvvm.inline_ptx "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16
// CHECK-NEXT: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK: gpu.barrier
// CHECK: scf.yield
// CHECK: nvvm.cp.async.wait.group 0

// PERQUERY-LABEL: func.func @attend
// PERQUERY-NOT: query_tiles
// PERQUERY: gpu.launch_func @gsa_kernels::@attend_sparse_attention_0 blocks in (%c33
// PERQUERY-NOT: cp.async
func.func @attend(%q: tensor<1x33x8x128xbf16>, %k: tensor<1x33x2x128xbf16>,
                  %v: tensor<1x33x2x128xbf16>, %idx: tensor<1x33x16xi32>,
                  %cnt: tensor<1x33xi32>, %gv: tensor<1x33x2x128xbf16>,
                  %go: tensor<1x33x8x128xbf16>)
    -> (tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      : (tensor<1x33x8x128xbf16>, tensor<1x33x2x128xbf16>, tensor<1x33x2x128xbf16>,
         tensor<1x33x16xi32>, tensor<1x33xi32>, tensor<1x33x2x128xbf16>,
         tensor<1x33x8x128xbf16>) -> (tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>)
  return %o, %lse : tensor<1x33x8x128xbf16>, tensor<1x33x8xf32>
}

// -----

// Shapes the tiles do not cover fall back to the per-query kernel: f32
// operands, and d_k = 32. G = 8 makes 8-query tiles.
// CHECK-LABEL: func.func @f32_falls_back
// CHECK-NOT: query_tiles
// CHECK: gpu.launch_func @gsa_kernels::@f32_falls_back_sparse_attention_0 blocks in (%c20
// PERQUERY-LABEL: func.func @f32_falls_back
func.func @f32_falls_back(%q: tensor<1x20x4x64xf32>, %k: tensor<1x20x2x64xf32>,
                          %v: tensor<1x20x2x64xf32>, %idx: tensor<1x20x8xi32>,
                          %cnt: tensor<1x20xi32>)
    -> (tensor<1x20x4x64xf32>, tensor<1x20x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x20x4x64xf32>, tensor<1x20x2x64xf32>, tensor<1x20x2x64xf32>,
         tensor<1x20x8xi32>, tensor<1x20xi32>) -> (tensor<1x20x4x64xf32>, tensor<1x20x4xf32>)
  return %o, %lse : tensor<1x20x4x64xf32>, tensor<1x20x4xf32>
}

// -----

// CHECK-LABEL: func.func @narrow_head_falls_back
// CHECK-NOT: query_tiles
// CHECK: gpu.launch_func @gsa_kernels::@narrow_head_falls_back_sparse_attention_0 blocks in (%c20
// PERQUERY-LABEL: func.func @narrow_head_falls_back
func.func @narrow_head_falls_back(%q: tensor<1x20x4x32xbf16>, %k: tensor<1x20x2x32xbf16>,
                                  %v: tensor<1x20x2x32xbf16>, %idx: tensor<1x20x8xi32>,
                                  %cnt: tensor<1x20xi32>)
    -> (tensor<1x20x4x32xbf16>, tensor<1x20x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x20x4x32xbf16>, tensor<1x20x2x32xbf16>, tensor<1x20x2x32xbf16>,
         tensor<1x20x8xi32>, tensor<1x20xi32>) -> (tensor<1x20x4x32xbf16>, tensor<1x20x4xf32>)
  return %o, %lse : tensor<1x20x4x32xbf16>, tensor<1x20x4xf32>
}

// -----

// G = 8 query heads per KV head: 2 queries per warp, 8-query tiles
// (L = 20 -> 3 tiles of at most 8 x 8 = 64 entries).
// CHECK-LABEL: func.func @group_of_eight
// CHECK: memref.alloc() : memref<192xi32>
// CHECK: memref.alloc() : memref<192xi32>
// CHECK: memref.alloc() : memref<3xi32>
// CHECK: gpu.launch_func @gsa_kernels::@group_of_eight_sparse_attention_0_query_tiles
// CHECK: gpu.launch_func @gsa_kernels::@group_of_eight_sparse_attention_0 blocks in (%c3
// PERQUERY-LABEL: func.func @group_of_eight
func.func @group_of_eight(%q: tensor<1x20x8x64xf16>, %k: tensor<1x20x1x64xf16>,
                          %v: tensor<1x20x1x64xf16>, %idx: tensor<1x20x8xi32>,
                          %cnt: tensor<1x20xi32>)
    -> (tensor<1x20x8x64xf16>, tensor<1x20x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x20x8x64xf16>, tensor<1x20x1x64xf16>, tensor<1x20x1x64xf16>,
         tensor<1x20x8xi32>, tensor<1x20xi32>) -> (tensor<1x20x8x64xf16>, tensor<1x20x8xf32>)
  return %o, %lse : tensor<1x20x8x64xf16>, tensor<1x20x8xf32>
}
