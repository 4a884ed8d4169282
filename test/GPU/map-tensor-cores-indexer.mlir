// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores -split-input-file | FileCheck %s
// RUN: gsa-opt %s --gsa-tile --gsa-stage-shared --gsa-map-tensor-cores=wgmma=1 -split-input-file | FileCheck %s --check-prefix=WGMMA

// gsa-map-tensor-cores on the indexer's tiles. Lane l of warp w holds rows
// g = l / 4 and g + 8 of the warp's 16 (query, head) rows, H_I = 4 heads
// per query: its rows' head weights (wi through the weighting region) and
// biases are loaded once, before the key loop. Per product of a chunk:
// one fma (scale x product + bias), the activation region, the weight;
// then the head sum over the query's four lanes (xor 4 and 8: heads 1 and 2
// apart) and the causal mask (key <= query, else -inf). Each of a query's
// four head lanes then holds the sums of all four 8-key n-tiles of the
// chunk: the lane of head h stores n-tile h (its pair of keys picked by
// three selects, one 8-byte store: L is even), so the query's 16 lanes
// write its 32 keys at once.

// CHECK-LABEL: func.func @scores
// CHECK: gpu.launch
// The weights and biases of the lane's two rows.
// CHECK: %[[WROW:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<800xbf16>
// CHECK: %[[WRAW:.*]] = arith.extf %[[WROW]] : bf16 to f32
// CHECK: %[[W0:.*]] = gsa.sigmoid %[[WRAW]] : f32
// CHECK: %[[BROW:.*]] = memref.load %{{.*}}[%{{.*}}] : memref<4xbf16>
// CHECK: %[[B0:.*]] = arith.extf %[[BROW]] : bf16 to f32
// CHECK: scf.for
// CHECK: nvvm.inline_ptx "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
// CHECK: %[[X:.*]] = llvm.intr.fma(%{{.*}}, %{{.*}}, %[[B0]]) : (f32, f32, f32) -> f32
// CHECK: %[[A:.*]] = gsa.sigmoid %[[X]] : f32
// CHECK: %[[T:.*]] = arith.mulf %[[W0]], %[[A]] : f32
// CHECK: %[[S1:.*]], %{{.*}} = gpu.shuffle  xor %[[T]], %c4_i32
// CHECK: %[[H1:.*]] = arith.addf %[[T]], %[[S1]] : f32
// CHECK: %[[S2:.*]], %{{.*}} = gpu.shuffle  xor %[[H1]], %c8_i32
// CHECK: %[[H2:.*]] = arith.addf %[[H1]], %[[S2]] : f32
// CHECK-NOT: gpu.shuffle  xor %[[H2]]
// CHECK: %[[VIS:.*]] = arith.cmpi ule, %{{.*}}, %{{.*}} : index
// CHECK: %[[V:.*]] = arith.select %[[VIS]], %[[H2]], %{{.*}} : f32
// The store: a head lane with an n-tile to store (heads 0-3: all of them),
// rows inside the sequence, keys inside it.
// CHECK: %[[SLOT:.*]] = arith.cmpi ult, %[[HEAD:.*]], %c4{{.*}} : index
// CHECK: %[[STORING:.*]] = arith.andi %{{.*}}, %[[SLOT]] : i1
// CHECK: scf.if %[[STORING]] {
// CHECK: %[[IS1:.*]] = arith.cmpi eq, %[[HEAD]], %c1{{.*}} : index
// CHECK: %[[P1:.*]] = arith.select %[[IS1]], %{{.*}}, %[[V]] : f32
// CHECK: %[[IS2:.*]] = arith.cmpi eq, %[[HEAD]], %c2{{.*}} : index
// CHECK: %[[P2:.*]] = arith.select %[[IS2]], %{{.*}}, %[[P1]] : f32
// CHECK: %[[IS3:.*]] = arith.cmpi eq, %[[HEAD]], %c3{{.*}} : index
// CHECK: %[[LO:.*]] = arith.select %[[IS3]], %{{.*}}, %[[P2]] : f32
// CHECK: %[[Q1:.*]] = arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK: %[[Q2:.*]] = arith.select %{{.*}}, %{{.*}}, %[[Q1]] : f32
// CHECK: %[[HI:.*]] = arith.select %{{.*}}, %{{.*}}, %[[Q2]] : f32
// CHECK: %[[NT:.*]] = arith.addi %c0{{.*}}, %[[HEAD]] : index
// CHECK: %[[KOFF:.*]] = arith.muli %[[NT]], %c8{{.*}} : index
// CHECK: %[[FIRST:.*]] = vector.insert %[[LO]], %{{.*}} [0] : f32 into vector<2xf32>
// CHECK: %[[PAIR:.*]] = vector.insert %[[HI]], %[[FIRST]] [1] : f32 into vector<2xf32>
// CHECK: vector.store %[[PAIR]], %{{.*}}[%{{.*}}] {alignment = 8 : i64} : memref<20000xf32>, vector<2xf32>
// CHECK-NOT: gsa.tile.
// CHECK: } {gsa.kernel = "scores_indexer_0"}

// With wgmma the chunk's product is one m64n32k16 wgmma per k-step.
// WGMMA-LABEL: func.func @scores
// WGMMA-COUNT-4: wgmma.mma_async.sync.aligned.m64n32k16.f32.bf16.bf16
// WGMMA: gsa.sigmoid
// WGMMA: gpu.shuffle  xor
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

// 16 heads (DSA's relu, no weights or bias) and an odd L: a warp's 16 rows
// are one query, so the head sum is xor 4, 8, 16 and then the lane's two
// rows; with L odd a pair of keys can straddle the row's end, so each key
// is its own store. Heads 0-3 (of the first row half) store the four
// n-tiles; the lanes of heads 8-15 store nothing.
// CHECK-LABEL: func.func @dsa
// CHECK: scf.for
// CHECK: %[[X0:.*]] = llvm.intr.fma
// CHECK: %[[R0:.*]] = arith.maximumf %[[X0]], %{{.*}} : f32
// CHECK: %[[T0:.*]] = arith.mulf %{{.*}}, %[[R0]] : f32
// CHECK: gpu.shuffle  xor %[[T0]], %c4_i32
// CHECK: gpu.shuffle  xor %{{.*}}, %c8_i32
// CHECK: %[[S16:.*]], %{{.*}} = gpu.shuffle  xor %[[P0:.*]], %c16_i32
// CHECK: %[[ROW0:.*]] = arith.addf %[[P0]], %[[S16]] : f32
// CHECK: gpu.shuffle  xor %{{.*}}, %c16_i32
// CHECK: %[[ROW1:.*]] = arith.addf
// CHECK: %[[BOTH:.*]] = arith.addf %[[ROW0]], %[[ROW1]] : f32
// CHECK: arith.select %{{.*}}, %[[BOTH]], %{{.*}} : f32
// CHECK: arith.select %{{.*}}, %[[BOTH]], %{{.*}} : f32
// CHECK-NOT: vector.store
// CHECK: memref.store %{{.*}}, %{{.*}}[%{{.*}}] : memref<9801xf32>
// CHECK-NOT: vector.store
// CHECK: } {gsa.kernel = "dsa_indexer_0"}
func.func @dsa(%qi: tensor<1x99x16x64xf16>, %ki: tensor<1x99x64xf16>) -> tensor<1x99x99xf32> {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %zero = arith.constant 0.0 : f32
        %r = arith.maximumf %x, %zero : f32
        gsa.yield %r : f32
      } : (tensor<1x99x16x64xf16>, tensor<1x99x64xf16>) -> tensor<1x99x99xf32>
  return %I : tensor<1x99x99xf32>
}
