// RUN: gsa-opt %s -split-input-file -verify-diagnostics

func.func @heads(%q: tensor<1x8x6x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                 %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{needs the query heads n_h = 6 to be a multiple of the key/value heads n_kv = 4}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x6x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x6x16xf32>, tensor<1x8x6xf32>)
  return
}

// -----

func.func @head_dim(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x32xf32>, %v: tensor<1x8x4x16xf32>,
                    %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'k' dim 3 (d_k) is 32, but 'q' dim 3 (d_k) is 16}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf32>, tensor<1x8x4x32xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @value_heads(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x1x16xf32>,
                       %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'v' dim 2 (n_kv) is 1, but 'k' dim 2 (n_kv) is 2}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x1x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @batch(%q: tensor<2x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                 %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'k' dim 0 (B) is 1, but 'q' dim 0 (B) is 2}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<2x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<2x8x4x16xf32>, tensor<2x8x4xf32>)
  return
}

// -----

func.func @value_gate_shape(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x2x16xf32>,
                            %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>, %gv: tensor<1x8x4x16xf32>) {
  // expected-error @+1 {{'value_gate' dim 2 (n_kv) is 4, but 'k' dim 2 (n_kv) is 2}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c) value_gate(%gv)
      : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>, tensor<1x8x4x16xf32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @output_gate_shape(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x2x16xf32>, %v: tensor<1x8x2x16xf32>,
                             %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>, %go: tensor<1x8x2x16xf32>) {
  // expected-error @+1 {{'output_gate' dim 2 (n_h) is 2, but 'q' dim 2 (n_h) is 4}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c) output_gate(%go)
      : (tensor<1x8x4x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x2x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>, tensor<1x8x2x16xf32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @output_type(%q: tensor<1x8x4x16xbf16>, %k: tensor<1x8x4x16xbf16>, %v: tensor<1x8x4x16xbf16>,
                       %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'o' must have the element type of 'q' (bf16) elements, but got f32}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xbf16>, tensor<1x8x4x16xbf16>, tensor<1x8x4x16xbf16>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @output_shape(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                        %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'o' dim 3 (d_k) is 8, but 'q' dim 3 (d_k) is 16}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x8xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @lse_type(%q: tensor<1x8x4x16xf16>, %k: tensor<1x8x4x16xf16>, %v: tensor<1x8x4x16xf16>,
                    %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'lse' must have f32 elements, but got f16}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf16>, tensor<1x8x4x16xf16>, tensor<1x8x4x16xf16>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf16>, tensor<1x8x4xf16>)
  return
}

// -----

func.func @lse_heads(%q: tensor<1x8x4x16xf16>, %k: tensor<1x8x4x16xf16>, %v: tensor<1x8x4x16xf16>,
                     %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'lse' dim 2 (n_h) is 2, but 'q' dim 2 (n_h) is 4}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf16>, tensor<1x8x4x16xf16>, tensor<1x8x4x16xf16>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf16>, tensor<1x8x2xf32>)
  return
}

// -----

func.func @indices_type(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                        %i: tensor<1x8x4xf32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{'indices' must have i32 elements, but got f32}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @counts_length(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                         %i: tensor<1x8x4xi32>, %c: tensor<1x7xi32>) {
  // expected-error @+1 {{'counts' dim 1 (L) is 7, but 'q' dim 1 (L) is 8}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c)
      : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x7xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @score_mod_signature(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                               %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{region 'score_mod' must take (%score: f32, %b: index, %h: index, %t: index, %s: index), but takes (f32)}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c) score_mod {
  ^bb0(%s: f32):
    gsa.yield %s : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @score_mod_yield(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                           %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c) score_mod {
  ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
    // expected-error @+1 {{in region 'score_mod' must yield exactly one f32, but yields 1 value(s)}}
    gsa.yield %t : index
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}

// -----

func.func @scale_infinite(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                          %i: tensor<1x8x4xi32>, %c: tensor<1x8xi32>) {
  // expected-error @+1 {{scale must be a finite number, but is +inf}}
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%i, %c) scale(0x7F800000)
      : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
        -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>)
  return
}
