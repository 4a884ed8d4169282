// RUN: gsa-opt %s -split-input-file -verify-diagnostics

func.func @k_order(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{needs k_min <= k_base <= k_max, but k_min = 4, k_base = 2, k_max = 8}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [4, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @k_min_zero(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{k_min must be at least 1, but is 0}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [0, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @k_max_i32(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{k_max = 3000000000 does not fit the i32 indices}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 3000000000]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x3000000000xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @momentum(%I: tensor<1x8x8xf32>, %v: tensor<f32>) {
  // expected-error @+1 {{momentum must lie in [0, 1), but is 1.5}}
  %i, %c, %n = gsa.adaptive_topk %I policy = inverse k = 2 in [1, 8] running_var(%v) training momentum(1.5)
      : (tensor<1x8x8xf32>, tensor<f32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>, tensor<f32>)
  return
}

// -----

func.func @running_var_type(%I: tensor<1x8x8xf32>, %v: tensor<1xf32>) {
  // expected-error @+1 {{'running_var' must be a tensor<f32>, but got tensor<1xf32>}}
  %i, %c = gsa.adaptive_topk %I policy = inverse k = 2 in [1, 8] running_var(%v)
      : (tensor<1x8x8xf32>, tensor<1xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @new_running_var_type(%I: tensor<1x8x8xf32>, %v: tensor<f32>) {
  // expected-error @+1 {{result 'new_running_var' must be a tensor<f32>, but got tensor<f16>}}
  %i, %c, %n = gsa.adaptive_topk %I policy = inverse k = 2 in [1, 8] running_var(%v) training
      : (tensor<1x8x8xf32>, tensor<f32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>, tensor<f16>)
  return
}

// -----

func.func @inference_needs_var(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{with policy 'inverse' in inference mode needs a 'running_var' operand (the reference variance V_bar)}}
  %i, %c = gsa.adaptive_topk %I policy = inverse k = 2 in [1, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @inference_writes_var(%I: tensor<1x8x8xf32>, %v: tensor<f32>) {
  // expected-error @+1 {{returns 'new_running_var' in inference mode, where the running variance is read and never written}}
  %i, %c, %n = gsa.adaptive_topk %I policy = inverse k = 2 in [1, 8] running_var(%v)
      : (tensor<1x8x8xf32>, tensor<f32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>, tensor<f32>)
  return
}

// -----

func.func @training_pairs(%I: tensor<1x8x8xf32>, %v: tensor<f32>) {
  // expected-error @+1 {{in training mode must take 'running_var' and return 'new_running_var' together (or neither)}}
  %i, %c = gsa.adaptive_topk %I policy = inverse k = 2 in [1, 8] running_var(%v) training
      : (tensor<1x8x8xf32>, tensor<f32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @custom_needs_region(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{with policy 'custom' needs a 'policy_fn' region}}
  %i, %c = gsa.adaptive_topk %I policy = custom k = 2 in [1, 8] training
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @region_needs_custom(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{has a 'policy_fn' region but policy 'fixed' (use policy = custom)}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 8] policy_fn {
  ^bb0(%m: f32, %v: f32, %vb: f32, %t: index):
    gsa.yield %m : f32
  } : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @policy_signature(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{region 'policy_fn' must take (%mean: f32, %var: f32, %v_bar: f32, %t: index), but takes (f32, f32)}}
  %i, %c = gsa.adaptive_topk %I policy = custom k = 2 in [1, 8] training policy_fn {
  ^bb0(%m: f32, %v: f32):
    gsa.yield %m : f32
  } : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @indices_width(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{'indices' dim 2 (k_max) is 4, but attribute k_max is 8}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x4xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @indices_type(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{'indices' must have i32 elements, but got i64}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi64>, tensor<1x8xi32>)
  return
}

// -----

func.func @counts_rank(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{'counts' must have rank 2 [B, L], but got rank 1 (tensor<8xi32>)}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<8xi32>)
  return
}

// -----

func.func @scores_not_square(%I: tensor<1x8x6xf32>) {
  // expected-error @+1 {{'scores' dim 2 (L) is 6, but 'scores' dim 1 (L) is 8}}
  %i, %c = gsa.adaptive_topk %I policy = fixed k = 2 in [1, 8]
      : (tensor<1x8x6xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}

// -----

func.func @unknown_policy(%I: tensor<1x8x8xf32>) {
  // expected-error @+1 {{unknown selection policy 'topp' (expected inverse, proportional, fixed or custom)}}
  %i, %c = gsa.adaptive_topk %I policy = topp k = 2 in [1, 8]
      : (tensor<1x8x8xf32>) -> (tensor<1x8x8xi32>, tensor<1x8xi32>)
  return
}
