// RUN: gsa-opt %s -split-input-file -verify-diagnostics

// The verifiers of the block-level gsa.tile ops (GSATileOps.cpp).

func.func @case0(%q: memref<1x64x8x64xbf16>, %i: index) {
  // expected-error @+1 {{'gsa.tile.load_queries' op 'tile' must have rank 2, but got tensor<16xbf16>}}
  %t = gsa.tile.load_queries %q[%i, %i, %i] group 4 : memref<1x64x8x64xbf16> -> tensor<16xbf16>
  return
}

// -----

func.func @case1(%q: memref<1x64x8x64xbf16>, %i: index) {
  // expected-error @+1 {{the tile's element type must be q's}}
  %t = gsa.tile.load_queries %q[%i, %i, %i] group 4 : memref<1x64x8x64xbf16> -> tensor<16x64xf16>
  return
}

// -----

func.func @case2(%q: memref<1x64x8x64xbf16>, %i: index) {
  // expected-error @+1 {{the tile's 18 rows are not a whole number of queries of 4 heads}}
  %t = gsa.tile.load_queries %q[%i, %i, %i] group 4 : memref<1x64x8x64xbf16> -> tensor<18x64xbf16>
  return
}

// -----

func.func @case3(%q: memref<1x64x8x64xbf16>, %i: index) {
  // expected-error @+1 {{'q' has 8 heads, not a multiple of the group (3)}}
  %t = gsa.tile.load_queries %q[%i, %i, %i] group 3 : memref<1x64x8x64xbf16> -> tensor<18x64xbf16>
  return
}

// -----

func.func @case4(%q: memref<1x64x8x64xbf16>, %i: index) {
  // expected-error @+1 {{the tile has 32 columns, but 'q' rows have 64 (d_k)}}
  %t = gsa.tile.load_queries %q[%i, %i, %i] group 4 : memref<1x64x8x64xbf16> -> tensor<16x32xbf16>
  return
}

// -----

func.func @case5(%k: memref<1x64x2x64xbf16>, %p: memref<64xi32>, %i: index) {
  // expected-error @+1 {{the tile's element type must be the source's}}
  %t = gsa.tile.gather_rows %k[%i, %i] rows %p[%i] count %i : memref<1x64x2x64xbf16>, memref<64xi32> -> tensor<32x64xf16>
  return
}

// -----

func.func @case6(%k: memref<1x64x2x64xbf16>, %p: memref<64xi32>, %i: index) {
  // expected-error @+1 {{the tile has 32 columns, but the source rows have 64}}
  %t = gsa.tile.gather_rows %k[%i, %i] rows %p[%i] count %i : memref<1x64x2x64xbf16>, memref<64xi32> -> tensor<32x32xbf16>
  return
}

// -----

func.func @case7(%k: memref<1x64x2x64xbf16>, %p: memref<64xi64>, %i: index) {
  // expected-error @+1 {{'positions' must have i32 elements, but got i64}}
  %t = gsa.tile.gather_rows %k[%i, %i] rows %p[%i] count %i : memref<1x64x2x64xbf16>, memref<64xi64> -> tensor<32x64xbf16>
  return
}

// -----

func.func @case8(%p: memref<64xi32>, %i: index) {
  // expected-error @+1 {{'tile' must have i32 elements, but got f32}}
  %t = gsa.tile.gather_words %p[%i] count %i : memref<64xi32> -> tensor<32xf32>
  return
}

// -----

func.func @case9(%r: memref<2x32x64xbf16, #gpu.address_space<workgroup>>, %i: index) {
  // expected-error @+1 {{the ring must be [stages] x the tile's shape, but got memref<2x32x64xbf16, #gpu.address_space<workgroup>> for a tensor<32xbf16>}}
  %t = gsa.tile.shared_tile %r[%i] : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32xbf16>
  return
}

// -----

func.func @case10(%r: memref<2x32x64xbf16, #gpu.address_space<workgroup>>, %i: index) {
  // expected-error @+1 {{the tile's element type must be the ring's}}
  %t = gsa.tile.shared_tile %r[%i] : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<32x64xf16>
  return
}

// -----

func.func @case11(%r: memref<2x32x64xbf16, #gpu.address_space<workgroup>>, %i: index) {
  // expected-error @+1 {{the ring must be [stages] x the tile's shape, but got memref<2x32x64xbf16, #gpu.address_space<workgroup>> for a tensor<16x64xbf16>}}
  %t = gsa.tile.shared_tile %r[%i] : memref<2x32x64xbf16, #gpu.address_space<workgroup>> -> tensor<16x64xbf16>
  return
}

// -----

func.func @case12(%r: memref<2x32x32xbf16, #gpu.address_space<workgroup>>, %i: index) {
  // expected-error @+1 {{a swizzled tile needs rows of a multiple of 128 bytes (8 pieces of 16), but has tensor<32x32xbf16>}}
  %t = gsa.tile.shared_tile %r[%i] swizzled : memref<2x32x32xbf16, #gpu.address_space<workgroup>> -> tensor<32x32xbf16>
  return
}

// -----

func.func @case13(%a: tensor<16x64xf32>, %b: tensor<32x64xf32>) {
  // expected-error @+1 {{'lhs' must have bf16 or f16 elements, but got f32}}
  %d = gsa.tile.dot %a, %b transpose_rhs : tensor<16x64xf32>, tensor<32x64xf32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case14(%a: tensor<16x64xbf16>, %b: tensor<32x64xf16>) {
  // expected-error @+1 {{lhs (bf16) and rhs (f16) must have one element type}}
  %d = gsa.tile.dot %a, %b transpose_rhs : tensor<16x64xbf16>, tensor<32x64xf16> -> tensor<16x32xf32>
  return
}

// -----

func.func @case15(%a: tensor<16x64xbf16>, %b: tensor<32x64xbf16>) {
  // expected-error @+1 {{contracts lhs's 64 columns with 32 of rhs (tensor<32x64xbf16>)}}
  %d = gsa.tile.dot %a, %b : tensor<16x64xbf16>, tensor<32x64xbf16> -> tensor<16x64xf32>
  return
}

// -----

func.func @case16(%a: tensor<16x64xbf16>, %b: tensor<32x64xbf16>) {
  // expected-error @+1 {{the result must be 16x32, but is tensor<16x64xf32>}}
  %d = gsa.tile.dot %a, %b transpose_rhs : tensor<16x64xbf16>, tensor<32x64xbf16> -> tensor<16x64xf32>
  return
}

// -----

func.func @case17(%a: tensor<16x64xbf16>, %b: tensor<32x64xbf16>, %c: tensor<16x16xf32>) {
  // expected-error @+1 {{acc (tensor<16x16xf32>) must have the result's type (tensor<16x32xf32>)}}
  %d = gsa.tile.dot %a, %b acc(%c : tensor<16x16xf32>) transpose_rhs : tensor<16x64xbf16>, tensor<32x64xbf16> -> tensor<16x32xf32>
  return
}

// -----

func.func @case18(%a: tensor<16x32xf32>, %m: tensor<16xi32>, %i: index) {
  // expected-error @+1 {{'members' must have one word per key (32)}}
  %s = gsa.tile.scores %a members(%m) rows[%i, %i, %i] scale(1.0) group 4 : tensor<16x32xf32>, tensor<16xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case19(%a: tensor<16x32xf32>, %m: tensor<32xi32>, %i: index) {
  // expected-error @+1 {{the tile's 16 rows are not a whole number of queries of 3 heads}}
  %s = gsa.tile.scores %a members(%m) rows[%i, %i, %i] scale(1.0) group 3 : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case20(%a: tensor<128x32xf32>, %m: tensor<32xi32>, %i: index) {
  // expected-error @+1 {{a members word holds 32 queries, but the tile has 64}}
  %s = gsa.tile.scores %a members(%m) rows[%i, %i, %i] scale(1.0) group 2 : tensor<128x32xf32>, tensor<32xi32> -> tensor<128x32xf32>
  return
}

// -----

func.func @case21(%a: tensor<16x32xf32>, %m: tensor<32xi32>, %i: index) {
  // expected-error @+1 {{'positions' serve only a score_mod}}
  %s = gsa.tile.scores %a members(%m) positions(%m : tensor<32xi32>) rows[%i, %i, %i] scale(1.0) group 4 : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case22(%a: tensor<16x32xf32>, %m: tensor<32xi32>, %i: index) {
  // expected-error @+1 {{a score_mod needs the keys' 'positions'}}
  %s = gsa.tile.scores %a members(%m) rows[%i, %i, %i] scale(1.0) group 4 score_mod {
  ^bb0(%x: f32, %b: index, %h: index, %t: index, %p: index):
    gsa.yield %x : f32
  } : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case23(%a: tensor<16x32xf32>, %m: tensor<32xi32>, %p: tensor<16xi32>, %i: index) {
  // expected-error @+1 {{'positions' must have the type of 'members'}}
  %s = gsa.tile.scores %a members(%m) positions(%p : tensor<16xi32>) rows[%i, %i, %i] scale(1.0) group 4 score_mod {
  ^bb0(%x: f32, %b: index, %h: index, %t: index, %s: index):
    gsa.yield %x : f32
  } : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case24(%a: tensor<16x32xf32>, %m: tensor<32xi32>, %i: index) {
  // expected-error @+1 {{the score_mod region takes (f32, index, index, index, index)}}
  %s = gsa.tile.scores %a members(%m) positions(%m : tensor<32xi32>) rows[%i, %i, %i] scale(1.0) group 4 score_mod {
  ^bb0(%x: f32):
    gsa.yield %x : f32
  } : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case25(%a: tensor<16x32xf32>, %m: tensor<32xi32>, %i: index) {
  // expected-error @+1 {{the score_mod region must yield one f32}}
  %s = gsa.tile.scores %a members(%m) positions(%m : tensor<32xi32>) rows[%i, %i, %i] scale(1.0) group 4 score_mod {
  ^bb0(%x: f32, %b: index, %h: index, %t: index, %s: index):
    gsa.yield %b : index
  } : tensor<16x32xf32>, tensor<32xi32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case26(%s: tensor<16x32xf32>, %m: tensor<16xf32>) {
  // expected-error @+1 {{the probabilities must be bf16 or f16 of the scores' shape, but are tensor<16x32xf32>}}
  %p, %m2, %l2, %r = gsa.tile.online_softmax %s, %m, %m : tensor<16x32xf32>, tensor<16xf32> -> tensor<16x32xf32>
  return
}

// -----

func.func @case27(%s: tensor<16x32xf32>, %m: tensor<8xf32>) {
  // expected-error @+1 {{'max' must have one entry per tile row (16), but has 8}}
  %p, %m2, %l2, %r = gsa.tile.online_softmax %s, %m, %m : tensor<16x32xf32>, tensor<8xf32> -> tensor<16x32xbf16>
  return
}

// -----

func.func @case28(%a: tensor<16x64xf32>, %f: tensor<8xf32>) {
  // expected-error @+1 {{'factor' must have one entry per tile row (16), but has 8}}
  %r = gsa.tile.rescale %a by %f : tensor<16x64xf32>, tensor<8xf32>
  return
}

// -----

func.func @case29(%a: tensor<16x64xf32>, %m: tensor<16xf32>, %o: memref<1x64x8x64xbf16>, %l: memref<1x64x4xf32>, %i: index) {
  // expected-error @+1 {{'lse' must be [B, L, n_h] of 'out' (memref<1x64x8x64xbf16>), but is memref<1x64x4xf32>}}
  gsa.tile.store_output %a, %m, %m into %o, %l[%i, %i, %i] group 4 : tensor<16x64xf32>, tensor<16xf32>, memref<1x64x8x64xbf16>, memref<1x64x4xf32>
  return
}

// -----

func.func @case30(%a: tensor<16x64xf32>, %m: tensor<16xf32>, %o: memref<1x64x8x64xbf16>, %l: memref<1x64x8xf32>, %g: memref<1x64x4x64xbf16>, %i: index) {
  // expected-error @+1 {{'gate' must have the shape of 'out' (memref<1x64x8x64xbf16>), but is memref<1x64x4x64xbf16>}}
  gsa.tile.store_output %a, %m, %m into %o, %l[%i, %i, %i] gate(%g : memref<1x64x4x64xbf16>) group 4 : tensor<16x64xf32>, tensor<16xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf32>
  return
}

// -----

func.func @case31(%a: tensor<16x32xf32>, %m: tensor<16xf32>, %o: memref<1x64x8x64xbf16>, %l: memref<1x64x8xf32>, %i: index) {
  // expected-error @+1 {{the tile has 32 columns, but 'out' rows have 64 (d_k)}}
  gsa.tile.store_output %a, %m, %m into %o, %l[%i, %i, %i] group 4 : tensor<16x32xf32>, tensor<16xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf32>
  return
}

// -----

func.func @tile_not_mma_type(%q: memref<1x64x8x64xf32>, %i: index) {
  // expected-error @+1 {{'tile' must have bf16 or f16 elements, but got f32}}
  %t = gsa.tile.load_queries %q[%i, %i, %i] group 4 : memref<1x64x8x64xf32> -> tensor<16x64xf32>
  return
}

// -----

func.func @strided_source(%k: memref<1x64x2x64xbf16, strided<[32768, 256, 128, 1], offset: 64>>, %p: memref<64xi32>, %i: index) {
  // expected-error @+1 {{'source' must be a dense row-major buffer (identity layout), but is memref<1x64x2x64xbf16, strided<[32768, 256, 128, 1], offset: 64>>}}
  %t = gsa.tile.gather_rows %k[%i, %i] rows %p[%i] count %i : memref<1x64x2x64xbf16, strided<[32768, 256, 128, 1], offset: 64>>, memref<64xi32> -> tensor<32x64xbf16>
  return
}

// -----

func.func @global_ring(%r: memref<2x32x64xbf16>, %i: index) {
  // expected-error @+1 {{the ring must be workgroup (shared) memory, but is memref<2x32x64xbf16>}}
  %t = gsa.tile.shared_tile %r[%i] : memref<2x32x64xbf16> -> tensor<32x64xbf16>
  return
}

// -----

func.func @lse_not_f32(%a: tensor<16x64xf32>, %m: tensor<16xf32>, %o: memref<1x64x8x64xbf16>, %l: memref<1x64x8xf16>, %i: index) {
  // expected-error @+1 {{'lse' must have f32 elements, but got f16}}
  gsa.tile.store_output %a, %m, %m into %o, %l[%i, %i, %i] group 4 : tensor<16x64xf32>, tensor<16xf32>, memref<1x64x8x64xbf16>, memref<1x64x8xf16>
  return
}

// -----

func.func @out_not_float(%a: tensor<16x64xf32>, %m: tensor<16xf32>, %o: memref<1x64x8x64xi16>, %l: memref<1x64x8xf32>, %i: index) {
  // expected-error @+1 {{'out' must have float elements, but got i16}}
  gsa.tile.store_output %a, %m, %m into %o, %l[%i, %i, %i] group 4 : tensor<16x64xf32>, tensor<16xf32>, memref<1x64x8x64xi16>, memref<1x64x8xf32>
  return
}

// -----

func.func @empty_score_mod(%s: tensor<64x32xf32>, %m: tensor<32xi32>, %i: index) -> tensor<64x32xf32> {
  // expected-error @+1 {{the score_mod region must yield one f32}}
  %r = gsa.tile.scores %s members(%m) positions(%m : tensor<32xi32>) rows[%i, %i, %i] scale(1.0) group 4 score_mod {
  ^bb0(%a: f32, %b: index, %c: index, %d: index, %e: index):
  } : tensor<64x32xf32>, tensor<32xi32> -> tensor<64x32xf32>
  return %r : tensor<64x32xf32>
}

// -----

// The indexer's tile ops.

func.func @indexer0(%k: memref<1x64xbf16>, %i: index) {
  // expected-error @+1 {{'source' must be [B, L, n_kv, d] or [B, L, d] (one head), but got memref<1x64xbf16>}}
  %t = gsa.tile.gather_rows %k[%i, %i] consecutive[%i] count %i : memref<1x64xbf16> -> tensor<32x64xbf16>
  return
}

// -----

func.func @indexer1(%k: memref<1x64x32xbf16>, %i: index) {
  // expected-error @+1 {{the tile has 64 columns, but the source rows have 32}}
  %t = gsa.tile.gather_rows %k[%i, %i] consecutive[%i] count %i : memref<1x64x32xbf16> -> tensor<32x64xbf16>
  return
}

// -----

func.func @indexer2(%i: index) {
  // expected-error @+1 {{takes 1, 2, 4, 8 or 16 heads, but has 3}}
  %w, %b = gsa.tile.indexer_heads rows[%i, %i] heads 3 : tensor<48xf32>
  return
}

// -----

func.func @indexer3(%wi: memref<1x64x8xbf16>, %i: index) {
  // expected-error @+1 {{'weights' must be [B, L, 4] (one logit per head), but is memref<1x64x8xbf16>}}
  %w, %b = gsa.tile.indexer_heads weights(%wi : memref<1x64x8xbf16>) rows[%i, %i] heads 4 weighting {
  ^bb0(%x: f32, %h: index):
    gsa.yield %x : f32
  } : tensor<64xf32>
  return
}

// -----

func.func @indexer4(%wi: memref<1x64x4xbf16>, %i: index) {
  // expected-error @+1 {{'weights' need a weighting region}}
  %w, %b = gsa.tile.indexer_heads weights(%wi : memref<1x64x4xbf16>) rows[%i, %i] heads 4 : tensor<64xf32>
  return
}

// -----

func.func @indexer5(%i: index) {
  // expected-error @+1 {{a weighting region needs 'weights'}}
  %w, %b = gsa.tile.indexer_heads rows[%i, %i] heads 4 weighting {
  ^bb0(%x: f32, %h: index):
    gsa.yield %x : f32
  } : tensor<64xf32>
  return
}

// -----

func.func @indexer6(%bi: memref<8xf32>, %i: index) {
  // expected-error @+1 {{'bias' must have one entry per head (4), but is memref<8xf32>}}
  %w, %b = gsa.tile.indexer_heads bias(%bi : memref<8xf32>) rows[%i, %i] heads 4 : tensor<64xf32>
  return
}

// -----

func.func @indexer7(%wi: memref<1x64x4xbf16>, %i: index) {
  // expected-error @+1 {{the weighting region takes (f32, index)}}
  %w, %b = gsa.tile.indexer_heads weights(%wi : memref<1x64x4xbf16>) rows[%i, %i] heads 4 weighting {
  ^bb0(%x: f32):
    gsa.yield %x : f32
  } : tensor<64xf32>
  return
}

// -----

func.func @indexer8(%acc: tensor<64x32xf32>, %w: tensor<64xf32>, %i: index) {
  // expected-error @+1 {{the result must be [16 queries, 32 keys], but is tensor<8x32xf32>}}
  %s = gsa.tile.indexer_scores %acc weights(%w) bias(%w) rows[%i] keys[%i] scale(0.125) heads 4 activation {
  ^bb0(%x: f32, %h: index):
    gsa.yield %x : f32
  } : tensor<64x32xf32>, tensor<64xf32> -> tensor<8x32xf32>
  return
}

// -----

func.func @indexer9(%acc: tensor<64x32xf32>, %w: tensor<32xf32>, %i: index) {
  // expected-error @+1 {{'weights' must have one entry per tile row (64), but has 32}}
  %s = gsa.tile.indexer_scores %acc weights(%w) bias(%w) rows[%i] keys[%i] scale(0.125) heads 4 activation {
  ^bb0(%x: f32, %h: index):
    gsa.yield %x : f32
  } : tensor<64x32xf32>, tensor<32xf32> -> tensor<16x32xf32>
  return
}

// -----

func.func @indexer10(%acc: tensor<64x32xf32>, %w: tensor<64xf32>, %i: index) {
  // expected-error @+1 {{the scale must be finite}}
  %s = gsa.tile.indexer_scores %acc weights(%w) bias(%w) rows[%i] keys[%i] scale(0x7FC00000) heads 4 activation {
  ^bb0(%x: f32, %h: index):
    gsa.yield %x : f32
  } : tensor<64x32xf32>, tensor<64xf32> -> tensor<16x32xf32>
  return
}

// -----

func.func @indexer11(%acc: tensor<64x32xf32>, %w: tensor<64xf32>, %i: index) {
  // expected-error @+1 {{the activation region must yield one f32}}
  %s = gsa.tile.indexer_scores %acc weights(%w) bias(%w) rows[%i] keys[%i] scale(0.125) heads 4 activation {
  ^bb0(%x: f32, %h: index):
    gsa.yield %h : index
  } : tensor<64x32xf32>, tensor<64xf32> -> tensor<16x32xf32>
  return
}

// -----

func.func @indexer12(%s: tensor<16x32xf32>, %out: memref<1x64x32xf32>, %i: index) {
  // expected-error @+1 {{'scores' must be the [B, L, L] score matrix, but is memref<1x64x32xf32>}}
  gsa.tile.store_scores %s into %out[%i, %i, %i] : tensor<16x32xf32>, memref<1x64x32xf32>
  return
}

// -----

func.func @indexer13(%s: tensor<16x32xf16>, %out: memref<1x64x64xf32>, %i: index) {
  // expected-error @+1 {{'tile' must have f32 elements, but got f16}}
  gsa.tile.store_scores %s into %out[%i, %i, %i] : tensor<16x32xf16>, memref<1x64x64xf32>
  return
}

// -----

func.func @indexer14(%k: memref<1x64x64xbf16>, %i: index) {
  %c1 = arith.constant 1 : index
  // expected-error @+1 {{a [B, L, d] source has one head, but kv_head is 1}}
  %t = gsa.tile.gather_rows %k[%i, %c1] consecutive[%i] count %i : memref<1x64x64xbf16> -> tensor<32x64xbf16>
  return
}
