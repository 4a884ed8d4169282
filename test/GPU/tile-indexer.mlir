// RUN: gsa-opt %s --gsa-tile -split-input-file | FileCheck %s
// RUN: gsa-opt %s --gsa-tile="key-chunk=64 warps=2" -split-input-file | FileCheck %s --check-prefix=OPTS
// RUN: gsa-opt %s --gsa-tile="indexers=0" -split-input-file | FileCheck %s --check-prefix=OFF
// RUN: gsa-opt %s --gsa-tile="attention=0" -split-input-file | FileCheck %s --check-prefix=NOATT
// RUN: gsa-opt %s --gsa-tile="indexer-key-span=40" -split-input-file | FileCheck %s --check-prefix=SPAN
// RUN: gsa-opt %s --gsa-tile="indexer-key-span=0" -split-input-file | FileCheck %s --check-prefix=ROWS
// RUN: not gsa-opt %s --gsa-tile="indexer-key-span=-64" -split-input-file 2>&1 | FileCheck %s --check-prefix=BADSPAN

// gsa-tile on a standalone indexer (its scores returned): H_I = 4 heads,
// so a tile of 4 warps x 16 rows holds 16 queries (L = 100 -> 7 tiles; a
// span of 1024 keys is more than a row: one span of the row's 100 keys
// rounded up to whole chunks, 128, and a (tiles x 1, batch) grid). The body:
// the tile's qi block (the indexer heads as the group), the head weights
// through the weighting region and the biases, the loop over 32-key chunks
// of consecutive keys from the span's start up to the span's end or the
// tile's last query (min(span end, first + 16); a span ends by L), each
// chunk's product, head sum and store; then -inf for the span's keys past
// the chunks, four per 16-byte store (L % 4 == 0).

// CHECK-LABEL: func.func @scores
// CHECK: %[[QI:.*]] = bufferization.to_buffer %arg0
// CHECK: %[[KI:.*]] = bufferization.to_buffer %arg1
// CHECK: %[[WI:.*]] = bufferization.to_buffer %arg2
// CHECK: %[[BI:.*]] = bufferization.to_buffer %arg3
// CHECK: %[[OUT:.*]] = memref.alloc() : memref<2x100x100xf32>
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c7{{.*}}, {{.*}} = %c2{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c128
// Block x is (tile, span); the longest tiles (the last, with the most keys
// below their queries) start first: tile 6 - block x / spans.
// CHECK: %[[BX:.*]] = gpu.block_id x
// CHECK: %[[PAIR:.*]] = arith.divui %[[BX]], %c1
// CHECK: %[[TILE:.*]] = arith.subi %c6{{[_0-9]*}}, %[[PAIR]] : index
// CHECK: %[[PART:.*]] = arith.remui %[[BX]], %c1
// CHECK: %[[S0:.*]] = arith.muli %[[PART]], %c128
// CHECK: %[[S1:.*]] = arith.addi %[[S0]], %c128
// CHECK: %[[SEND:.*]] = arith.minui %[[S1]], %c100
// CHECK: %[[B:.*]] = gpu.block_id y
// CHECK: %[[T0:.*]] = arith.muli %[[TILE]], %c16
// CHECK: %[[Q:.*]] = gsa.tile.load_queries %[[QI]][%[[B]], %[[T0]], %{{.*}}] group 4 : memref<2x100x4x64xbf16> -> tensor<64x64xbf16>
// CHECK: %[[W:.*]], %[[BIAS:.*]] = gsa.tile.indexer_heads weights(%[[WI]] : memref<2x100x4xbf16>) bias(%[[BI]] : memref<4xbf16>) rows[%[[B]], %[[T0]]] heads 4 weighting {
// CHECK: gsa.sigmoid
// CHECK: } : tensor<64xf32>
// CHECK: %[[END:.*]] = arith.addi %[[T0]], %c16
// CHECK: %[[KEND:.*]] = arith.minui %[[SEND]], %[[END]]
// CHECK: %[[CLAMP:.*]] = arith.maxui %[[KEND]], %[[S0]]
// CHECK: %[[KEYS:.*]] = arith.subi %[[CLAMP]], %[[S0]]
// CHECK: %[[CHUNKS:.*]] = arith.ceildivui %[[KEYS]], %c32
// CHECK: scf.for %[[C:.*]] = %{{.*}} to %[[CHUNKS]] step
// CHECK: %[[STEP:.*]] = arith.muli %[[C]], %c32
// CHECK: %[[START:.*]] = arith.addi %[[S0]], %[[STEP]]
// CHECK: %[[COUNT:.*]] = arith.subi %c100{{.*}}, %[[START]]
// CHECK: %[[KT:.*]] = gsa.tile.gather_rows %[[KI]][%[[B]], %{{.*}}] consecutive[%[[START]]] count %[[COUNT]] : memref<2x100x64xbf16> -> tensor<32x64xbf16>
// CHECK: %[[S:.*]] = gsa.tile.dot %[[Q]], %[[KT]] transpose_rhs : tensor<64x64xbf16>, tensor<32x64xbf16> -> tensor<64x32xf32>
// CHECK: %[[SC:.*]] = gsa.tile.indexer_scores %[[S]] weights(%[[W]]) bias(%[[BIAS]]) rows[%[[T0]]] keys[%[[START]]] scale(1.250000e-01) heads 4 activation {
// CHECK: gsa.sigmoid
// CHECK: } : tensor<64x32xf32>, tensor<64xf32> -> tensor<16x32xf32>
// CHECK: gsa.tile.store_scores %[[SC]] into %[[OUT]][%[[B]], %[[T0]], %[[START]]] : tensor<16x32xf32>, memref<2x100x100xf32>
// CHECK: }
// CHECK: %[[TID:.*]] = gpu.thread_id x
// CHECK: %[[DONE:.*]] = arith.muli %[[CHUNKS]], %c32
// CHECK: %[[FROM:.*]] = arith.addi %[[S0]], %[[DONE]]
// CHECK: %[[FLAT:.*]] = memref.collapse_shape %[[OUT]] {{.*}} into memref<20000xf32>
// CHECK: %[[NEGINF:.*]] = arith.constant 0xFF800000 : f32
// CHECK: scf.for %[[R:.*]] = %{{.*}} to %c16
// CHECK: %[[T:.*]] = arith.addi %[[T0]], %[[R]]
// CHECK: arith.cmpi ult, %[[T]], %c100
// CHECK: %[[LANE:.*]] = arith.muli %[[TID]], %c4
// CHECK: %[[K0:.*]] = arith.addi %[[FROM]], %[[LANE]]
// CHECK: scf.for %[[K:.*]] = %[[K0]] to %[[SEND]] step %c512
// CHECK: vector.insert %[[NEGINF]], {{.*}} [3] : f32 into vector<4xf32>
// CHECK: vector.store %{{.*}}, %[[FLAT]][%{{.*}}] {alignment = 16 : i64} : memref<20000xf32>, vector<4xf32>
// CHECK: } {gsa.kernel = "scores_indexer_0"}
// CHECK: bufferization.to_tensor %[[OUT]]
// CHECK-NOT: gsa.indexer

// Spans of 40 keys, rounded up to two 32-key chunks: 2 spans per row, a
// grid of 7 x 2 blocks; block x's tile is x / 2, its span x % 2 (keys
// [64 x % 2, min(64 x % 2 + 64, 100))).
// SPAN-LABEL: func.func @scores
// SPAN: gpu.launch blocks({{.*}}) in ({{.*}} = %c14{{.*}}, {{.*}} = %c2{{.*}}, {{.*}})
// SPAN: %[[BX:.*]] = gpu.block_id x
// SPAN: arith.divui %[[BX]], %c2
// SPAN: %[[PART:.*]] = arith.remui %[[BX]], %c2
// SPAN: %[[S0:.*]] = arith.muli %[[PART]], %c64
// SPAN: %[[S1:.*]] = arith.addi %[[S0]], %c64
// SPAN: %[[SEND:.*]] = arith.minui %[[S1]], %c100
// SPAN: arith.ceildivui %{{.*}}, %c32
// SPAN: gsa.tile.gather_rows
// SPAN: scf.for %{{.*}} = %{{.*}} to %[[SEND]] step %c512
// SPAN: vector.store

// Whole rows (indexer-key-span=0): one span of 128 keys (100 rounded up
// to whole chunks).
// ROWS-LABEL: func.func @scores
// ROWS: gpu.launch blocks({{.*}}) in ({{.*}} = %c7{{.*}}, {{.*}} = %c2{{.*}}, {{.*}})
// ROWS: arith.muli %{{.*}}, %c128

// BADSPAN: error: gsa-tile: indexer-key-span must be 0 (whole rows) or a number of keys, but is -64

// Two warps and 64-key chunks: 32 rows = 8 queries per tile (13 tiles).
// OPTS-LABEL: func.func @scores
// OPTS: gpu.launch blocks({{.*}}) in ({{.*}} = %c13{{.*}}, {{.*}} = %c2{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c64
// OPTS: gsa.tile.load_queries {{.*}} group 4 : memref<2x100x4x64xbf16> -> tensor<32x64xbf16>
// OPTS: arith.ceildivui %{{.*}}, %c64
// OPTS: gsa.tile.gather_rows {{.*}} -> tensor<64x64xbf16>
// OPTS: gsa.tile.indexer_scores
// OPTS: } : tensor<32x64xf32>, tensor<32xf32> -> tensor<8x64xf32>

// OFF-LABEL: func.func @scores
// OFF-NOT: gpu.launch
// OFF: gsa.indexer

// NOATT-LABEL: func.func @scores
// NOATT: gsa.tile.indexer_scores
func.func @scores(%qi: tensor<2x100x4x64xbf16>, %ki: tensor<2x100x64xbf16>,
                  %wi: tensor<2x100x4xbf16>, %bi: tensor<4xbf16>) -> tensor<2x100x100xf32> {
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
  return %I : tensor<2x100x100xf32>
}

// -----

// DSA's form (relu of the products, no weights, no bias) with 16 heads and
// d_I 128: one query per warp, 4 per tile; the heads op has neither
// operand nor region.
// CHECK-LABEL: func.func @dsa
// CHECK: gpu.launch blocks({{.*}}) in ({{.*}} = %c10{{.*}}, {{.*}} = %c1{{.*}}, {{.*}}) threads({{.*}}) in ({{.*}} = %c128
// CHECK: gsa.tile.load_queries {{.*}} group 16 : memref<1x40x16x128xf16> -> tensor<64x128xf16>
// CHECK: gsa.tile.indexer_heads rows[{{.*}}] heads 16 : tensor<64xf32>
// CHECK: gsa.tile.indexer_scores {{.*}} scale(0.0883883461) heads 16 activation {
// CHECK: arith.maximumf
// CHECK: } : tensor<64x32xf32>, tensor<64xf32> -> tensor<4x32xf32>
// CHECK: gsa.kernel = "dsa_indexer_0"
func.func @dsa(%qi: tensor<1x40x16x128xf16>, %ki: tensor<1x40x128xf16>) -> tensor<1x40x40xf32> {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %zero = arith.constant 0.0 : f32
        %r = arith.maximumf %x, %zero : f32
        gsa.yield %r : f32
      } : (tensor<1x40x16x128xf16>, tensor<1x40x128xf16>) -> tensor<1x40x40xf32>
  return %I : tensor<1x40x40xf32>
}

// -----

// Left for gsa-lower-selection: an indexer fused into its selection (the
// selection's kernels recompute the scores), d_I 32 (not whole 128-byte
// rows), 3 heads (not a power of two) and d_I 320 (above 256).
// CHECK-LABEL: func.func @left
// CHECK-NOT: gpu.launch
// CHECK: gsa.indexer
// CHECK: gsa.adaptive_topk
// CHECK: gsa.indexer
// CHECK: gsa.indexer
// CHECK: gsa.indexer
func.func @left(%qi: tensor<1x64x4x64xbf16>, %ki: tensor<1x64x64xbf16>, %rv: tensor<f32>,
                %qs: tensor<1x64x4x32xbf16>, %ks: tensor<1x64x32xbf16>,
                %q3: tensor<1x64x3x64xbf16>, %qw: tensor<1x64x4x320xbf16>,
                %kw: tensor<1x64x320xbf16>)
    -> (tensor<1x64x8xi32>, tensor<1x64xi32>, tensor<1x64x64xf32>, tensor<1x64x64xf32>,
        tensor<1x64x64xf32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x64x4x64xbf16>, tensor<1x64x64xbf16>) -> tensor<1x64x64xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 8 in [8, 8]
      running_var(%rv)
      : (tensor<1x64x64xf32>, tensor<f32>) -> (tensor<1x64x8xi32>, tensor<1x64xi32>)
  %S = gsa.indexer %qs, %ks activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x64x4x32xbf16>, tensor<1x64x32xbf16>) -> tensor<1x64x64xf32>
  %T = gsa.indexer %q3, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x64x3x64xbf16>, tensor<1x64x64xbf16>) -> tensor<1x64x64xf32>
  %W = gsa.indexer %qw, %kw activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x64x4x320xbf16>, tensor<1x64x320xbf16>) -> tensor<1x64x64xf32>
  return %idx, %cnt, %S, %T, %W : tensor<1x64x8xi32>, tensor<1x64xi32>, tensor<1x64x64xf32>, tensor<1x64x64xf32>, tensor<1x64x64xf32>
}
