// RUN: gsa-opt %s --gsa-lower-selection -verify-diagnostics

// The selection pass takes the composite op's parts only.
func.func @whole(%q: tensor<1x32x4x16xf32>, %k: tensor<1x32x4x16xf32>, %v: tensor<1x32x4x16xf32>,
                 %qi: tensor<1x32x1x8xf32>, %ki: tensor<1x32x8xf32>)
    -> (tensor<1x32x4x16xf32>, tensor<1x32x4xf32>, tensor<1x32x4xi32>, tensor<1x32xi32>) {
  // expected-error @+1 {{must be decomposed before lowering to the GPU (run --gsa-decompose first)}}
  %o, %lse, %idx, %cnt = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 4 in [4, 4]
      activation {
      ^bb0(%x: f32, %j: index):
        gsa.yield %x : f32
      }
      : (tensor<1x32x4x16xf32>, tensor<1x32x4x16xf32>, tensor<1x32x4x16xf32>,
         tensor<1x32x1x8xf32>, tensor<1x32x8xf32>)
      -> (tensor<1x32x4x16xf32>, tensor<1x32x4xf32>, tensor<1x32x4xi32>, tensor<1x32xi32>)
  return %o, %lse, %idx, %cnt : tensor<1x32x4x16xf32>, tensor<1x32x4xf32>, tensor<1x32x4xi32>, tensor<1x32xi32>
}
