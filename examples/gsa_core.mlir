// One Gated Sparse Attention core, as in the paper (SPEC.md sections 1-3):
// gated lightning indexer with sigmoid activation and sigmoid head weights,
// adaptive top-k with the inverse-variance policy, value gate G2 and output
// gate G1. Training mode: the reference variance is the batch's own and the
// running variance is returned updated.
//
// Shapes: B = 1, L = 256, n_h = 8, n_kv = 2, d_k = 64, H_I = 4, d_I = 32,
// k in [16, 128] around k_base = 64.
//
//   gsa-opt examples/gsa_core.mlir --gsa-decompose

func.func @gsa_core(%q: tensor<1x256x8x64xf32>, %k: tensor<1x256x2x64xf32>,
                    %v: tensor<1x256x2x64xf32>, %qi: tensor<1x256x4x32xf32>,
                    %ki: tensor<1x256x32xf32>, %wi: tensor<1x256x4xf32>,
                    %bi: tensor<4xf32>, %gv: tensor<1x256x2x64xf32>,
                    %go: tensor<1x256x8x64xf32>, %running_var: tensor<f32>)
    -> (tensor<1x256x8x64xf32>, tensor<1x256x8xf32>, tensor<1x256x128xi32>,
        tensor<1x256xi32>, tensor<f32>) {
  %o, %lse, %indices, %counts, %new_var = gsa.gated_sparse_attention
      q(%q) k(%k) v(%v) indexer(%qi, %ki) weights(%wi) bias(%bi)
      value_gate(%gv) output_gate(%go) running_var(%running_var)
      policy = inverse k = 64 in [16, 128] training
      activation {
      ^bb0(%x: f32, %head: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %head: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<1x256x8x64xf32>, tensor<1x256x2x64xf32>,
           tensor<1x256x2x64xf32>, tensor<1x256x4x32xf32>,
           tensor<1x256x32xf32>, tensor<1x256x4xf32>, tensor<4xf32>,
           tensor<1x256x2x64xf32>, tensor<1x256x8x64xf32>, tensor<f32>)
        -> (tensor<1x256x8x64xf32>, tensor<1x256x8xf32>,
            tensor<1x256x128xi32>, tensor<1x256xi32>, tensor<f32>)
  return %o, %lse, %indices, %counts, %new_var
      : tensor<1x256x8x64xf32>, tensor<1x256x8xf32>, tensor<1x256x128xi32>,
        tensor<1x256xi32>, tensor<f32>
}
