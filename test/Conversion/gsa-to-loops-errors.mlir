// RUN: gsa-opt %s --convert-gsa-to-loops -verify-diagnostics

func.func @composite(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                     %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>) {
  // expected-error @+1 {{must be decomposed before lowering to loops (run --gsa-decompose first)}}
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 4 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    gsa.yield %x : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}
