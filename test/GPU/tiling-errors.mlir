// RUN: gsa-opt %s --gsa-lower-selection="select-rows-per-tile=32" -verify-diagnostics

func.func @too_many_rows(%I: tensor<1x64x64xf32>) -> (tensor<1x64x8xi32>, tensor<1x64xi32>) {
  // expected-error @+1 {{the selection tile takes 1 to 16 query rows, but rows-per-tile = 32}}
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 4 in [2, 8]
      : (tensor<1x64x64xf32>) -> (tensor<1x64x8xi32>, tensor<1x64xi32>)
  return %idx, %cnt : tensor<1x64x8xi32>, tensor<1x64xi32>
}
