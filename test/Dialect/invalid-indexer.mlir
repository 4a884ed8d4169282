// RUN: gsa-opt %s -split-input-file -verify-diagnostics

func.func @rank(%qi: tensor<1x8x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{'qi' must have rank 4 [B, L, H_I, d_I], but got rank 3 (tensor<1x8x4xf32>)}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @element_type(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xi32>) {
  // expected-error @+1 {{'ki' must have f16, bf16 or f32 elements, but got i32}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xi32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @sequence_length(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x7x4xf32>) {
  // expected-error @+1 {{'ki' dim 1 (L) is 7, but 'qi' dim 1 (L) is 8}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x7x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @indexer_dim(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x5xf32>) {
  // expected-error @+1 {{'ki' dim 2 (d_I) is 5, but 'qi' dim 3 (d_I) is 4}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x5xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @weight_heads(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>, %wi: tensor<1x8x3xf32>) {
  // expected-error @+1 {{'wi' dim 2 (H_I) is 3, but 'qi' dim 2 (H_I) is 2}}
  %I = gsa.indexer %qi, %ki weights(%wi) activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } weighting {
  ^bb0(%w: f32, %j: index):
    gsa.yield %w : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>, tensor<1x8x3xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @bias_rank(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>, %bi: tensor<1x2xf32>) {
  // expected-error @+1 {{'bi' must have rank 1 [H_I], but got rank 2 (tensor<1x2xf32>)}}
  %I = gsa.indexer %qi, %ki bias(%bi) activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>, tensor<1x2xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @scores_square(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{'scores' dim 2 (L) is 9, but 'qi' dim 1 (L) is 8}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x9xf32>
  return
}

// -----

func.func @scores_type(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{'scores' must have f32 elements, but got bf16}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xbf16>
  return
}

// -----

func.func @no_activation(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{needs an 'activation' region (the per-head activation of the indexer, e.g. sigmoid)}}
  %I = "gsa.indexer"(%qi, %ki) <{operandSegmentSizes = array<i32: 1, 1, 0, 0>}> ({}, {})
      : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @two_blocks(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{region 'activation' must have exactly one block, but has 2}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  ^bb1(%y: f32, %i: index):
    gsa.yield %y : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @region_args(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{region 'activation' must take (%x: f32, %head: index), but takes (f16)}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f16):
    %e = arith.extf %x : f16 to f32
    gsa.yield %e : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @no_yield(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{region 'activation' must end with gsa.yield}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    %y = arith.addf %x, %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @yield_type(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    // expected-error @+1 {{in region 'activation' must yield exactly one f32, but yields 2 value(s)}}
    gsa.yield %x, %x : f32, f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @weights_without_region(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>, %wi: tensor<1x8x2xf32>) {
  // expected-error @+1 {{has indexer weights 'wi' but no 'weighting' region (use the identity for raw weights)}}
  %I = gsa.indexer %qi, %ki weights(%wi) activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>, tensor<1x8x2xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @region_without_weights(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{has a 'weighting' region but no indexer weights 'wi' to apply it to}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } weighting {
  ^bb0(%w: f32, %j: index):
    gsa.yield %w : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

func.func @yield_outside(%x: f32) {
  // expected-error @+1 {{'gsa.yield' op expects parent op to be one of 'gsa.indexer, gsa.adaptive_topk, gsa.sparse_attention, gsa.gated_sparse_attention, gsa.tile.scores, gsa.tile.indexer_heads, gsa.tile.indexer_scores'}}
  gsa.yield %x : f32
}

// -----

func.func @unranked(%qi: tensor<*xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{operand #0 must be ranked tensor of any type values, but got 'tensor<*xf32>'}}
  %I = gsa.indexer %qi, %ki activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<*xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}

// -----

// A NaN scale (f32 bit pattern) would make every score NaN.
func.func @scale_nan(%qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{scale must be a finite number, but is NaN}}
  %I = gsa.indexer %qi, %ki scale(0x7FC00000) activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x2x4xf32>, tensor<1x8x4xf32>) -> tensor<1x8x8xf32>
  return
}
