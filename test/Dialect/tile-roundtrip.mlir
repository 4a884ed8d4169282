// RUN: gsa-opt %s | gsa-opt | FileCheck %s

// The block-level ops print as they parse (the form gsa-tile writes and
// the stages read).

// CHECK-LABEL: func.func @tile_ops
// CHECK: gsa.tile.load_queries %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] group 4 : memref<1x64x8x64xbf16> -> tensor<64x64xbf16>
// CHECK: gsa.tile.gather_rows %{{.*}}[%{{.*}}, %{{.*}}] rows %{{.*}}[%{{.*}}] count %{{.*}} : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
// CHECK: gsa.tile.gather_words %{{.*}}[%{{.*}}] count %{{.*}} : memref<4096xi32> -> tensor<32xi32>
// CHECK: gsa.tile.shared_tile %{{.*}}[%{{.*}}] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
// CHECK: gsa.tile.dot %{{.*}}, %{{.*}} transpose_rhs : tensor<64x64xbf16>, tensor<32x64xbf16> -> tensor<64x32xf32>
// CHECK: gsa.tile.scores %{{.*}} members(%{{.*}}) positions(%{{.*}} : tensor<32xi32>) rows[%{{.*}}, %{{.*}}, %{{.*}}] scale(1.250000e-01) group 4 score_mod {
// CHECK: gsa.yield
// CHECK: } : tensor<64x32xf32>, tensor<32xi32> -> tensor<64x32xf32>
// CHECK: gsa.tile.online_softmax %{{.*}}, %{{.*}}, %{{.*}} : tensor<64x32xf32>, tensor<64xf32> -> tensor<64x32xbf16>
// CHECK: gsa.tile.rescale %{{.*}} by %{{.*}} : tensor<64x64xf32>, tensor<64xf32>
// CHECK: gsa.tile.dot %{{.*}}, %{{.*}} acc(%{{.*}} : tensor<64x64xf32>) : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
// CHECK: gsa.tile.store_output %{{.*}}, %{{.*}}, %{{.*}} into %{{.*}}, %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] gate(%{{.*}} : memref<1x64x8x64xbf16>) group 4 : tensor<64x64xf32>, tensor<64xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf32>
func.func @tile_ops(%q: memref<1x64x8x64xbf16>, %k: memref<1x64x2x64xbf16>,
                    %keys: memref<4096xi32>, %ring: memref<2x32x64xbf16, #gpu.address_space<workgroup>>,
                    %out: memref<1x64x8x64xbf16>, %lse: memref<1x64x8xf32>,
                    %i: index, %m: tensor<64xf32>, %l: tensor<64xf32>,
                    %acc: tensor<64x64xf32>) {
  %qt = gsa.tile.load_queries %q[%i, %i, %i] group 4 : memref<1x64x8x64xbf16> -> tensor<64x64xbf16>
  %kt = gsa.tile.gather_rows %k[%i, %i] rows %keys[%i] count %i : memref<1x64x2x64xbf16>, memref<4096xi32> -> tensor<32x64xbf16>
  %pos = gsa.tile.gather_words %keys[%i] count %i : memref<4096xi32> -> tensor<32xi32>
  %vt = gsa.tile.shared_tile %ring[%i] swizzled : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xbf16>
  %s = gsa.tile.dot %qt, %kt transpose_rhs : tensor<64x64xbf16>, tensor<32x64xbf16> -> tensor<64x32xf32>
  %sc = gsa.tile.scores %s members(%pos) positions(%pos : tensor<32xi32>) rows[%i, %i, %i] scale(0.125) group 4 score_mod {
  ^bb0(%x: f32, %b: index, %h: index, %t: index, %p: index):
    gsa.yield %x : f32
  } : tensor<64x32xf32>, tensor<32xi32> -> tensor<64x32xf32>
  %p, %m2, %l2, %alpha = gsa.tile.online_softmax %sc, %m, %l : tensor<64x32xf32>, tensor<64xf32> -> tensor<64x32xbf16>
  %ra = gsa.tile.rescale %acc by %alpha : tensor<64x64xf32>, tensor<64xf32>
  %pv = gsa.tile.dot %p, %vt acc(%ra : tensor<64x64xf32>) : tensor<64x32xbf16>, tensor<32x64xbf16> -> tensor<64x64xf32>
  gsa.tile.store_output %pv, %m2, %l2 into %out, %lse[%i, %i, %i] gate(%q : memref<1x64x8x64xbf16>) group 4 : tensor<64x64xf32>, tensor<64xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf32>
  return
}

// The indexer's tile ops: consecutive key rows of a one-head [B, L, d_I]
// source, the head weights and biases, the head-summed causal scores and
// their store.
// CHECK-LABEL: func.func @indexer_tile_ops
// CHECK: gsa.tile.gather_rows %{{.*}}[%{{.*}}, %{{.*}}] consecutive[%{{.*}}] count %{{.*}} : memref<1x64x64xbf16> -> tensor<32x64xbf16>
// CHECK: %[[W:.*]], %[[B:.*]] = gsa.tile.indexer_heads weights(%{{.*}} : memref<1x64x4xbf16>) bias(%{{.*}} : memref<4xf32>) rows[%{{.*}}, %{{.*}}] heads 4 weighting {
// CHECK: } : tensor<64xf32>
// CHECK: gsa.tile.indexer_heads rows[%{{.*}}, %{{.*}}] heads 4 : tensor<64xf32>
// CHECK: %[[S:.*]] = gsa.tile.indexer_scores %{{.*}} weights(%[[W]]) bias(%[[B]]) rows[%{{.*}}] keys[%{{.*}}] scale(1.250000e-01) heads 4 activation {
// CHECK: } : tensor<64x32xf32>, tensor<64xf32> -> tensor<16x32xf32>
// CHECK: gsa.tile.store_scores %[[S]] into %{{.*}}[%{{.*}}, %{{.*}}, %{{.*}}] : tensor<16x32xf32>, memref<1x64x64xf32>
func.func @indexer_tile_ops(%ki: memref<1x64x64xbf16>, %wi: memref<1x64x4xbf16>,
                            %bi: memref<4xf32>, %scores: memref<1x64x64xf32>,
                            %i: index, %acc: tensor<64x32xf32>) {
  %kt = gsa.tile.gather_rows %ki[%i, %i] consecutive[%i] count %i : memref<1x64x64xbf16> -> tensor<32x64xbf16>
  %w, %b = gsa.tile.indexer_heads weights(%wi : memref<1x64x4xbf16>) bias(%bi : memref<4xf32>) rows[%i, %i] heads 4 weighting {
  ^bb0(%x: f32, %h: index):
    %s = gsa.sigmoid %x : f32
    gsa.yield %s : f32
  } : tensor<64xf32>
  %w1, %b1 = gsa.tile.indexer_heads rows[%i, %i] heads 4 : tensor<64xf32>
  %s = gsa.tile.indexer_scores %acc weights(%w) bias(%b) rows[%i] keys[%i] scale(0.125) heads 4 activation {
  ^bb0(%x: f32, %h: index):
    %a = gsa.sigmoid %x : f32
    gsa.yield %a : f32
  } : tensor<64x32xf32>, tensor<64xf32> -> tensor<16x32xf32>
  gsa.tile.store_scores %s into %scores[%i, %i, %i] : tensor<16x32xf32>, memref<1x64x64xf32>
  return
}
