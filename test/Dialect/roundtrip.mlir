// RUN: gsa-opt %s | gsa-opt | FileCheck %s
// RUN: gsa-opt %s --mlir-print-op-generic | gsa-opt | FileCheck %s
// RUN: gsa-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

// CHECK-LABEL: func.func @indexer_gsa
// CHECK: gsa.indexer %{{.*}}, %{{.*}} weights(%{{.*}}) bias(%{{.*}}) scale(1.250000e-01) activation {
// CHECK: ^bb0(%[[X:.*]]: f32, %{{.*}}: index):
// CHECK:   %[[S:.*]] = gsa.sigmoid %[[X]] : f32
// CHECK:   gsa.yield %[[S]] : f32
// CHECK: } weighting {
// CHECK: : (tensor<2x16x4x8xbf16>, tensor<2x16x8xbf16>, tensor<2x16x4xbf16>, tensor<4xf32>) -> tensor<2x16x16xf32>
// GENERIC-LABEL: sym_name = "indexer_gsa"
// GENERIC: "gsa.indexer"(%{{.*}}) <{operandSegmentSizes = array<i32: 1, 1, 1, 1>, scale = 1.250000e-01 : f32}>
func.func @indexer_gsa(%qi: tensor<2x16x4x8xbf16>, %ki: tensor<2x16x8xbf16>,
                       %wi: tensor<2x16x4xbf16>, %bi: tensor<4xf32>)
    -> tensor<2x16x16xf32> {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi) scale(0.125)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } : (tensor<2x16x4x8xbf16>, tensor<2x16x8xbf16>, tensor<2x16x4xbf16>,
           tensor<4xf32>) -> tensor<2x16x16xf32>
  return %I : tensor<2x16x16xf32>
}

// DSA's indexer: relu per head, raw weights, no bias, dynamic B and L.
// CHECK-LABEL: func.func @indexer_dsa
// CHECK: gsa.indexer %{{.*}}, %{{.*}} weights(%{{.*}}) activation {
// CHECK: arith.maximumf
// CHECK: -> tensor<?x?x?xf32>
func.func @indexer_dsa(%qi: tensor<?x?x4x8xf16>, %ki: tensor<?x?x8xf16>,
                       %wi: tensor<?x?x4xf16>) -> tensor<?x?x?xf32> {
  %I = gsa.indexer %qi, %ki weights(%wi)
      activation {
      ^bb0(%x: f32, %j: index):
        %zero = arith.constant 0.0 : f32
        %r = arith.maximumf %x, %zero : f32
        gsa.yield %r : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        gsa.yield %w : f32
      } : (tensor<?x?x4x8xf16>, tensor<?x?x8xf16>, tensor<?x?x4xf16>)
        -> tensor<?x?x?xf32>
  return %I : tensor<?x?x?xf32>
}

// CHECK-LABEL: func.func @topk_inference
// CHECK: gsa.adaptive_topk %{{.*}} policy = inverse k = 8 in [2, 16] running_var(%{{.*}}) : (tensor<1x32x32xf32>, tensor<f32>) -> (tensor<1x32x16xi32>, tensor<1x32xi32>)
// GENERIC-LABEL: sym_name = "topk_inference"
// GENERIC: "gsa.adaptive_topk"(%{{.*}}, %{{.*}}) <{k_base = 8 : i64, k_max = 16 : i64, k_min = 2 : i64, policy = #gsa<policy inverse>}>
func.func @topk_inference(%I: tensor<1x32x32xf32>, %var: tensor<f32>)
    -> (tensor<1x32x16xi32>, tensor<1x32xi32>) {
  %idx, %cnt = gsa.adaptive_topk %I policy = inverse k = 8 in [2, 16]
      running_var(%var)
      : (tensor<1x32x32xf32>, tensor<f32>) -> (tensor<1x32x16xi32>, tensor<1x32xi32>)
  return %idx, %cnt : tensor<1x32x16xi32>, tensor<1x32xi32>
}

// CHECK-LABEL: func.func @topk_training
// CHECK: gsa.adaptive_topk %{{.*}} policy = proportional k = 8 in [2, 16] running_var(%{{.*}}) training momentum(0.899999976) :
func.func @topk_training(%I: tensor<1x32x32xf32>, %var: tensor<f32>)
    -> (tensor<1x32x16xi32>, tensor<1x32xi32>, tensor<f32>) {
  %idx, %cnt, %new = gsa.adaptive_topk %I policy = proportional k = 8 in [2, 16]
      running_var(%var) training momentum(0.9)
      : (tensor<1x32x32xf32>, tensor<f32>)
        -> (tensor<1x32x16xi32>, tensor<1x32xi32>, tensor<f32>)
  return %idx, %cnt, %new : tensor<1x32x16xi32>, tensor<1x32xi32>, tensor<f32>
}

// CHECK-LABEL: func.func @topk_fixed_and_custom
// CHECK: gsa.adaptive_topk %{{.*}} policy = fixed k = 4 in [4, 4] :
// CHECK: gsa.adaptive_topk %{{.*}} policy = custom k = 8 in [2, 16] training policy_fn {
// CHECK: ^bb0(%{{.*}}: f32, %{{.*}}: f32, %{{.*}}: f32, %{{.*}}: index):
func.func @topk_fixed_and_custom(%I: tensor<?x?x?xf32>)
    -> (tensor<?x?x4xi32>, tensor<?x?x16xi32>) {
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 4 in [4, 4]
      : (tensor<?x?x?xf32>) -> (tensor<?x?x4xi32>, tensor<?x?xi32>)
  %idx2, %cnt2 = gsa.adaptive_topk %I policy = custom k = 8 in [2, 16] training
      policy_fn {
      ^bb0(%mean: f32, %var: f32, %vbar: f32, %t: index):
        %c = arith.constant 8.0 : f32
        %b = arith.mulf %mean, %c : f32
        gsa.yield %b : f32
      } : (tensor<?x?x?xf32>) -> (tensor<?x?x16xi32>, tensor<?x?xi32>)
  return %idx, %idx2 : tensor<?x?x4xi32>, tensor<?x?x16xi32>
}

// CHECK-LABEL: func.func @attention_gated
// CHECK: gsa.sparse_attention %{{.*}}, %{{.*}}, %{{.*}} select(%{{.*}}, %{{.*}}) value_gate(%{{.*}}) output_gate(%{{.*}}) scale(5.000000e-01) score_mod {
// CHECK: ^bb0(%{{.*}}: f32, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index, %{{.*}}: index):
// CHECK: math.tanh
func.func @attention_gated(%q: tensor<1x32x8x16xbf16>, %k: tensor<1x32x2x16xbf16>,
                           %v: tensor<1x32x2x16xbf16>, %idx: tensor<1x32x16xi32>,
                           %cnt: tensor<1x32xi32>, %gv: tensor<1x32x2x16xbf16>,
                           %go: tensor<1x32x8x16xbf16>)
    -> (tensor<1x32x8x16xbf16>, tensor<1x32x8xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go) scale(0.5)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %cap = arith.constant 30.0 : f32
        %x = arith.divf %s, %cap : f32
        %th = math.tanh %x : f32
        %y = arith.mulf %th, %cap : f32
        gsa.yield %y : f32
      } : (tensor<1x32x8x16xbf16>, tensor<1x32x2x16xbf16>, tensor<1x32x2x16xbf16>,
           tensor<1x32x16xi32>, tensor<1x32xi32>, tensor<1x32x2x16xbf16>,
           tensor<1x32x8x16xbf16>) -> (tensor<1x32x8x16xbf16>, tensor<1x32x8xf32>)
  return %o, %lse : tensor<1x32x8x16xbf16>, tensor<1x32x8xf32>
}

// CHECK-LABEL: func.func @attention_plain
// CHECK: gsa.sparse_attention %{{.*}}, %{{.*}}, %{{.*}} select(%{{.*}}, %{{.*}}) : (
// CHECK-NOT: score_mod
func.func @attention_plain(%q: tensor<?x?x4x64xf16>, %k: tensor<?x?x4x64xf16>,
                           %v: tensor<?x?x4x64xf16>, %idx: tensor<?x?x?xi32>,
                           %cnt: tensor<?x?xi32>)
    -> (tensor<?x?x4x64xf16>, tensor<?x?x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      : (tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>, tensor<?x?x4x64xf16>,
         tensor<?x?x?xi32>, tensor<?x?xi32>) -> (tensor<?x?x4x64xf16>, tensor<?x?x4xf32>)
  return %o, %lse : tensor<?x?x4x64xf16>, tensor<?x?x4xf32>
}

// CHECK-LABEL: func.func @composite
// CHECK: gsa.gated_sparse_attention q(%{{.*}}) k(%{{.*}}) v(%{{.*}}) indexer(%{{.*}}, %{{.*}}) weights(%{{.*}}) bias(%{{.*}}) value_gate(%{{.*}}) output_gate(%{{.*}}) running_var(%{{.*}}) policy = inverse k = 8 in [2, 16] scale(2.500000e-01) index_scale(5.000000e-01) activation {
// CHECK: } weighting {
// CHECK: } score_mod {
// GENERIC-LABEL: sym_name = "composite"
// GENERIC: "gsa.gated_sparse_attention"
// GENERIC-SAME: operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 1, 1, 1, 1, 1>
func.func @composite(%q: tensor<1x32x8x16xf32>, %k: tensor<1x32x2x16xf32>,
                     %v: tensor<1x32x2x16xf32>, %qi: tensor<1x32x4x8xf32>,
                     %ki: tensor<1x32x8xf32>, %wi: tensor<1x32x4xf32>,
                     %bi: tensor<4xf32>, %gv: tensor<1x32x2x16xf32>,
                     %go: tensor<1x32x8x16xf32>, %var: tensor<f32>)
    -> (tensor<1x32x8x16xf32>, tensor<1x32x8xf32>, tensor<1x32x16xi32>, tensor<1x32xi32>) {
  %o, %lse, %idx, %cnt = gsa.gated_sparse_attention q(%q) k(%k) v(%v)
      indexer(%qi, %ki) weights(%wi) bias(%bi) value_gate(%gv) output_gate(%go)
      running_var(%var) policy = inverse k = 8 in [2, 16] scale(0.25) index_scale(0.5)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        gsa.yield %s : f32
      } : (tensor<1x32x8x16xf32>, tensor<1x32x2x16xf32>, tensor<1x32x2x16xf32>,
           tensor<1x32x4x8xf32>, tensor<1x32x8xf32>, tensor<1x32x4xf32>, tensor<4xf32>,
           tensor<1x32x2x16xf32>, tensor<1x32x8x16xf32>, tensor<f32>)
        -> (tensor<1x32x8x16xf32>, tensor<1x32x8xf32>, tensor<1x32x16xi32>, tensor<1x32xi32>)
  return %o, %lse, %idx, %cnt : tensor<1x32x8x16xf32>, tensor<1x32x8xf32>, tensor<1x32x16xi32>, tensor<1x32xi32>
}
