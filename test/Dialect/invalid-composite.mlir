// RUN: gsa-opt %s -split-input-file -verify-diagnostics

// The composite op checks the indexer and the attention against one set of
// dimensions: its qi must agree with its q on B and L.
func.func @indexer_vs_attention(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                                %qi: tensor<1x9x2x4xf32>, %ki: tensor<1x9x4xf32>) {
  // expected-error @+1 {{'q' dim 1 (L) is 8, but 'qi' dim 1 (L) is 9}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 4 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x9x2x4xf32>, tensor<1x9x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @composite_k_order(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                             %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{needs k_min <= k_base <= k_max, but k_min = 1, k_base = 8, k_max = 4}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 8 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @composite_inference(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                               %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{with policy 'proportional' in inference mode needs a 'running_var' operand (the reference variance V_bar)}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = proportional k = 2 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @composite_indices(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                             %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{'indices' dim 2 (k_max) is 8, but attribute k_max is 4}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 2 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @composite_gqa(%q: tensor<1x8x3x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x2x16xf32>,
                         %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{needs the query heads n_h = 3 to be a multiple of the key/value heads n_kv = 2}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 2 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x3x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x3x16xf32>, tensor<1x8x3xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @composite_index_scale(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                                 %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{index_scale must be a finite number, but is -inf}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 2 in [1, 4] scale(0.25) index_scale(0xFF800000) activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}
