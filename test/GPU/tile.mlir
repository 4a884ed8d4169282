// RUN: gsa-opt %s --gsa-tile="split-share=0" -split-input-file | FileCheck %s
// RUN: gsa-opt %s --gsa-tile -split-input-file | FileCheck %s --check-prefix=SPLIT
// RUN: gsa-opt %s --gsa-tile="key-chunk=64 warps=2 split-share=0" -split-input-file | FileCheck %s --check-prefix=OPTS
// RUN: gsa-opt %s --gsa-tile="pregate-values=0 split-share=0" -split-input-file | FileCheck %s --check-prefix=NOPREGATE
// RUN: not gsa-opt %s --gsa-tile="key-chunk=24" -split-input-file 2>&1 | FileCheck %s --check-prefix=BADCHUNK
// RUN: not gsa-opt %s --gsa-tile="key-chunk=0" -split-input-file 2>&1 | FileCheck %s --check-prefix=ZEROCHUNK
// RUN: not gsa-opt %s --gsa-tile="score-mod-key-chunk=24" -split-input-file 2>&1 | FileCheck %s --check-prefix=BADSMCHUNK
// RUN: not gsa-opt %s --gsa-tile="warps=9" -split-input-file 2>&1 | FileCheck %s --check-prefix=BADWARPS
// RUN: not gsa-opt %s --gsa-tile="max-registers=300" -split-input-file 2>&1 | FileCheck %s --check-prefix=BADMAXREG
// RUN: gsa-opt %s --gsa-tile="max-registers=96 split-share=0" -split-input-file | FileCheck %s --check-prefix=MAXREG
// RUN: not gsa-opt %s --gsa-tile="warps=8" -split-input-file 2>&1 | FileCheck %s --check-prefix=WIDE
// RUN: gsa-opt %s --gsa-tile="warps=1" -split-input-file | FileCheck %s --check-prefix=ONEWARP

// gsa-tile: G = 8 / 2 = 4 heads per KV head, so a tile of 4 warps x 16
// rows holds 16 queries (L = 33 -> 3 tiles, at most 16 x 16 = 256 union
// entries each). The value gate first (v' into a buffer of v's shape),
// then the union, then the tile attention on a (tiles, KV heads, batch)
// grid: the query block, the loop over 32-key chunks of the union with
// gathers of K and v' rows, the masks and (for the score_mod) the
// positions, the two products around the online softmax, and the store.

// CHECK-LABEL: func.func @attend
// CHECK: %[[Q:.*]] = bufferization.to_buffer %arg0
// CHECK: %[[K:.*]] = bufferization.to_buffer %arg1
// CHECK: %[[GATED:.*]] = memref.alloc() : memref<1x33x2x64xbf16>
// CHECK: gpu.launch
// CHECK: gsa.sigmoid
// CHECK: } {gsa.kernel = "attend_sparse_attention_0_value_gate"}
// CHECK: %[[KEYS:.*]] = memref.alloc() : memref<768xi32>
// CHECK: %[[MASKS:.*]] = memref.alloc() : memref<768xi32>
// CHECK: %[[SIZES:.*]] = memref.alloc() : memref<3xi32>
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c3{{.*}}, {{.*}} = %c1{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c256
// CHECK-SAME: workgroup(
// CHECK: } {gsa.kernel = "attend_sparse_attention_0_query_tiles"}
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<1x33x8x64xbf16>
// CHECK: %[[LSE:.*]] = memref.alloc() : memref<1x33x8xf32>
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c3{{.*}}, {{.*}} = %c2{{.*}}, {{.*}} = %c1{{.*}}) threads({{.*}}) in ({{.*}} = %c128
// CHECK: %[[TILE:.*]] = gpu.block_id x
// CHECK: %[[KVH:.*]] = gpu.block_id y
// CHECK: %[[B:.*]] = gpu.block_id z
// CHECK: %[[T0:.*]] = arith.muli %[[TILE]], %c16
// CHECK: %[[QT:.*]] = gsa.tile.load_queries %[[Q]][%[[B]], %[[T0]], %[[KVH]]] group 4 : memref<1x33x8x64xbf16> -> tensor<64x64xbf16>
// CHECK: %[[SIZE:.*]] = memref.load %[[SIZES]]
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %{{.*}}, %c32
// CHECK: %[[NEGINF:.*]] = arith.constant dense<0xFF800000> : tensor<64xf32>
// CHECK: scf.for %[[C:.*]] = %c0 to %[[CHUNKS]] step %c1{{.*}} iter_args(%[[M:.*]] = %[[NEGINF]], %[[L:.*]] = %{{.*}}, %[[ACC:.*]] = %{{.*}}) -> (tensor<64xf32>, tensor<64xf32>, tensor<64x64xf32>)
// CHECK: %[[START:.*]] = arith.muli %[[C]], %c32
// CHECK: %[[OFF:.*]] = arith.addi %{{.*}}, %[[START]]
// CHECK: %[[COUNT:.*]] = arith.subi %{{.*}}, %[[START]]
// CHECK: %[[KT:.*]] = gsa.tile.gather_rows %[[K]][%[[B]], %[[KVH]]] rows %[[KEYS]][%[[OFF]]] count %[[COUNT]] : memref<1x33x2x64xbf16>, memref<768xi32> -> tensor<32x64xbf16>
// CHECK: %[[VT:.*]] = gsa.tile.gather_rows %[[GATED]][%[[B]], %[[KVH]]] rows %[[KEYS]][%[[OFF]]] count %[[COUNT]]
// CHECK: %[[MEM:.*]] = gsa.tile.gather_words %[[MASKS]][%[[OFF]]] count %[[COUNT]] : memref<768xi32> -> tensor<32xi32>
// CHECK: %[[POS:.*]] = gsa.tile.gather_words %[[KEYS]][%[[OFF]]] count %[[COUNT]]
// CHECK: %[[S:.*]] = gsa.tile.dot %[[QT]], %[[KT]] transpose_rhs : tensor<64x64xbf16>, tensor<32x64xbf16> -> tensor<64x32xf32>
// CHECK: %[[SC:.*]] = gsa.tile.scores %[[S]] members(%[[MEM]]) positions(%[[POS]] : tensor<32xi32>) rows[%[[B]], %[[T0]], %[[KVH]]] scale(1.250000e-01) group 4 score_mod {
// CHECK: arith.divf
// CHECK: %[[P:.*]], %[[M2:.*]], %[[L2:.*]], %[[ALPHA:.*]] = gsa.tile.online_softmax %[[SC]], %[[M]], %[[L]] : tensor<64x32xf32>, tensor<64xf32> -> tensor<64x32xbf16>
// CHECK: %[[R:.*]] = gsa.tile.rescale %[[ACC]] by %[[ALPHA]]
// CHECK: %[[PV:.*]] = gsa.tile.dot %[[P]], %[[VT]] acc(%[[R]] : tensor<64x64xf32>) : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
// CHECK: scf.yield %[[M2]], %[[L2]], %[[PV]]
// CHECK: gsa.tile.store_output %{{.*}}#2, %{{.*}}#0, %{{.*}}#1 into %[[OUT]], %[[LSE]][%[[B]], %[[T0]], %[[KVH]]] gate(%{{.*}} : memref<1x33x8x64xbf16>) group 4
// CHECK: } {gsa.kernel = "attend_sparse_attention_0"}
// CHECK: bufferization.to_tensor %[[OUT]]
// CHECK-NOT: gsa.sparse_attention

// By default (split-share = 3) the union kernel also decides, per tile,
// whether the tile's queries share few enough selections to run it as two
// half tiles: the tile attention skips such tiles, a second union kernel
// builds the halves' unions into the tile's region (6 half tiles of 8
// queries) and a half-tile attention (2 warps, 32 rows) runs them.
// SPLIT-LABEL: func.func @attend
// SPLIT: %[[KEYS:.*]] = memref.alloc() : memref<768xi32>
// SPLIT: %[[MASKS:.*]] = memref.alloc() : memref<768xi32>
// SPLIT: %[[SIZES:.*]] = memref.alloc() : memref<3xi32>
// SPLIT: %[[SPLIT:.*]] = memref.alloc() : memref<3xi32>
// SPLIT: memref.store %{{.*}}, %[[SPLIT]]
// SPLIT: } {gsa.kernel = "attend_sparse_attention_0_query_tiles"}
// SPLIT: gpu.launch blocks({{.*}}) in ({{.*}} = %c3{{.*}}, {{.*}} = %c2{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c128
// SPLIT: %[[FLAG:.*]] = memref.load %[[SPLIT]]
// SPLIT: %[[HALVES:.*]] = arith.cmpi ne, %[[FLAG]], %c0_i32
// SPLIT: %[[WHOLE:.*]] = arith.xori %[[HALVES]], %true
// SPLIT: scf.if %[[WHOLE]] {
// SPLIT: gsa.tile.load_queries {{.*}} -> tensor<64x64xbf16>
// SPLIT: } {gsa.kernel = "attend_sparse_attention_0"}
// SPLIT: %[[HALFSIZES:.*]] = memref.alloc() : memref<6xi32>
// SPLIT: gpu.launch blocks({{.*}}) in ({{.*}} = %c6{{.*}}, {{.*}} = %c1{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c256
// SPLIT: %[[HALFTILE:.*]] = gpu.block_id x
// SPLIT: %[[PARENT:.*]] = arith.divui %[[HALFTILE]], %c2
// SPLIT: memref.load %[[SPLIT]]
// SPLIT: scf.if
// SPLIT: memref.atomic_rmw ori
// SPLIT: memref.store %{{.*}}, %[[HALFSIZES]]
// SPLIT: } {gsa.kernel = "attend_sparse_attention_0_half_query_tiles"}
// SPLIT: gpu.launch blocks({{.*}}) in ({{.*}} = %c6{{.*}}, {{.*}} = %c2{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c64
// SPLIT: memref.load %[[SPLIT]]
// SPLIT: scf.if
// SPLIT: gsa.tile.load_queries {{.*}} -> tensor<32x64xbf16>
// SPLIT: memref.load %[[HALFSIZES]]
// SPLIT: gsa.tile.gather_rows {{.*}} rows %[[KEYS]]
// SPLIT: } {gsa.kernel = "attend_sparse_attention_0_half"}

// Two warps: 32 rows, 8 queries per tile (5 tiles), 64-key chunks.
// OPTS-LABEL: func.func @attend
// OPTS: memref.alloc() : memref<640xi32>
// OPTS: gpu.launch blocks({{.*}}) in ({{.*}} = %c5{{.*}}, {{.*}} = %c2{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c64
// OPTS: gsa.tile.load_queries {{.*}} -> tensor<32x64xbf16>
// OPTS: arith.ceildivui %{{.*}}, %c64
// OPTS: gsa.tile.gather_rows {{.*}} -> tensor<64x64xbf16>
// OPTS: gsa.tile.dot {{.*}} -> tensor<32x64xf32>

// Without pre-gating, an op with a value gate stays for the per-query
// kernel of convert-gsa-to-gpu.
// NOPREGATE-LABEL: func.func @attend
// NOPREGATE-NOT: gpu.launch
// NOPREGATE: gsa.sparse_attention

// One warp: 16 rows, 4 queries per tile (9 tiles); an odd warp count has
// no half tiles.
// ONEWARP-LABEL: func.func @attend
// ONEWARP: gsa.tile.load_queries {{.*}} -> tensor<16x64xbf16>
// ONEWARP-NOT: _half

// BADCHUNK: error: gsa-tile: key-chunk must be 16, 32, 48 or 64 (whole mma k-steps of the P V product), but is 24
// ZEROCHUNK: error: gsa-tile: key-chunk must be 16, 32, 48 or 64 (whole mma k-steps of the P V product), but is 0
// BADSMCHUNK: error: gsa-tile: score-mod-key-chunk must be 16, 32, 48 or 64 (whole mma k-steps of the P V product), but is 24
// BADWARPS: error: gsa-tile: warps must be 1 to 8, but is 9
// BADMAXREG: error: gsa-tile: max-registers must be 0 (none) to 255, but is 300
// The cap rides on the tile attention launch only (gsa-outline-kernels puts
// it on the kernel as nvvm.maxnreg), not on the union or value-gate ones.
// MAXREG: {gsa.kernel = "attend_sparse_attention_0_value_gate"}
// MAXREG: {gsa.kernel = "attend_sparse_attention_0_query_tiles"}
// MAXREG: {gsa.kernel = "attend_sparse_attention_0", gsa.max_registers = 96 : i32}
func.func @attend(%q: tensor<1x33x8x64xbf16>, %k: tensor<1x33x2x64xbf16>,
                  %v: tensor<1x33x2x64xbf16>, %idx: tensor<1x33x16xi32>,
                  %cnt: tensor<1x33xi32>, %gv: tensor<1x33x2x64xbf16>,
                  %go: tensor<1x33x8x64xbf16>)
    -> (tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %cap = arith.constant 20.0 : f32
        %x = arith.divf %s, %cap : f32
        gsa.yield %x : f32
      }
      : (tensor<1x33x8x64xbf16>, tensor<1x33x2x64xbf16>, tensor<1x33x2x64xbf16>,
         tensor<1x33x16xi32>, tensor<1x33xi32>, tensor<1x33x2x64xbf16>,
         tensor<1x33x8x64xbf16>) -> (tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>)
  return %o, %lse : tensor<1x33x8x64xbf16>, tensor<1x33x8xf32>
}

// -----

// G = 16: one query per warp, 4-query tiles (L = 9 -> 3 tiles of at most
// 4 x 8 = 32 entries).
// CHECK-LABEL: func.func @group_of_sixteen
// CHECK: memref.alloc() : memref<96xi32>
// CHECK: gsa.tile.load_queries {{.*}} group 16 : memref<1x9x16x128xbf16> -> tensor<64x128xbf16>
func.func @group_of_sixteen(%q: tensor<1x9x16x128xbf16>, %k: tensor<1x9x1x128xbf16>,
                            %v: tensor<1x9x1x128xbf16>, %idx: tensor<1x9x8xi32>,
                            %cnt: tensor<1x9xi32>)
    -> (tensor<1x9x16x128xbf16>, tensor<1x9x16xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x9x16x128xbf16>, tensor<1x9x1x128xbf16>, tensor<1x9x1x128xbf16>,
         tensor<1x9x8xi32>, tensor<1x9xi32>) -> (tensor<1x9x16x128xbf16>, tensor<1x9x16xf32>)
  return %o, %lse : tensor<1x9x16x128xbf16>, tensor<1x9x16xf32>
}

// -----

// Shapes the tiles do not cover stay: f32, d_k = 32, no GQA (G = 1).
// CHECK-LABEL: func.func @not_tiled
// CHECK-NOT: gpu.launch
// CHECK-COUNT-3: gsa.sparse_attention
func.func @not_tiled(%q: tensor<1x20x4x64xf32>, %k: tensor<1x20x2x64xf32>,
                     %v: tensor<1x20x2x64xf32>, %idx: tensor<1x20x8xi32>,
                     %cnt: tensor<1x20xi32>, %qn: tensor<1x20x4x32xbf16>,
                     %kn: tensor<1x20x2x32xbf16>, %q1: tensor<1x20x2x64xbf16>,
                     %k1: tensor<1x20x2x64xbf16>)
    -> (tensor<1x20x4x64xf32>, tensor<1x20x4x32xbf16>, tensor<1x20x2x64xbf16>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x20x4x64xf32>, tensor<1x20x2x64xf32>, tensor<1x20x2x64xf32>,
         tensor<1x20x8xi32>, tensor<1x20xi32>) -> (tensor<1x20x4x64xf32>, tensor<1x20x4xf32>)
  %o2, %lse2 = gsa.sparse_attention %qn, %kn, %kn select(%idx, %cnt)
      : (tensor<1x20x4x32xbf16>, tensor<1x20x2x32xbf16>, tensor<1x20x2x32xbf16>,
         tensor<1x20x8xi32>, tensor<1x20xi32>) -> (tensor<1x20x4x32xbf16>, tensor<1x20x4xf32>)
  %o3, %lse3 = gsa.sparse_attention %q1, %k1, %k1 select(%idx, %cnt)
      : (tensor<1x20x2x64xbf16>, tensor<1x20x2x64xbf16>, tensor<1x20x2x64xbf16>,
         tensor<1x20x8xi32>, tensor<1x20xi32>) -> (tensor<1x20x2x64xbf16>, tensor<1x20x2xf32>)
  return %o, %o2, %o3 : tensor<1x20x4x64xf32>, tensor<1x20x4x32xbf16>, tensor<1x20x2x64xbf16>
}

// -----

// G = 2: 32 queries per tile of 4 warps, as many as a query mask holds;
// 8 warps would make 64.
// CHECK-LABEL: func.func @pairs
// CHECK: gsa.tile.load_queries {{.*}} group 2 : memref<1x40x4x64xf16> -> tensor<64x64xf16>
// WIDE: error: 'gsa.sparse_attention' op gsa-tile: 8 warps x 16 rows / 2 heads per KV head make 64 queries per tile, more than the 32 a query mask holds (use fewer warps)
func.func @pairs(%q: tensor<1x40x4x64xf16>, %k: tensor<1x40x2x64xf16>,
                 %v: tensor<1x40x2x64xf16>, %idx: tensor<1x40x8xi32>,
                 %cnt: tensor<1x40xi32>)
    -> (tensor<1x40x4x64xf16>, tensor<1x40x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<1x40x4x64xf16>, tensor<1x40x2x64xf16>, tensor<1x40x2x64xf16>,
         tensor<1x40x8xi32>, tensor<1x40xi32>) -> (tensor<1x40x4x64xf16>, tensor<1x40x4xf32>)
  return %o, %lse : tensor<1x40x4x64xf16>, tensor<1x40x4xf32>
}
