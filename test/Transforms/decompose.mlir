// RUN: gsa-opt %s --gsa-decompose | FileCheck %s
// RUN: gsa-opt %gsa_src/examples/gsa_core.mlir --gsa-decompose | FileCheck %s --check-prefix=EXAMPLE

// The composite op becomes indexer -> adaptive_topk -> sparse_attention, each
// with the regions and attributes it uses; no composite op remains.

// CHECK-LABEL: func.func @core(
// CHECK-SAME: %[[Q:[a-z0-9]+]]: tensor<2x32x8x16xbf16>, %[[K:[a-z0-9]+]]: tensor<2x32x2x16xbf16>, %[[V:[a-z0-9]+]]: tensor<2x32x2x16xbf16>, %[[QI:[a-z0-9]+]]: tensor<2x32x4x8xbf16>, %[[KI:[a-z0-9]+]]: tensor<2x32x8xbf16>, %[[WI:[a-z0-9]+]]: tensor<2x32x4xbf16>, %[[BI:[a-z0-9]+]]: tensor<4xf32>, %[[GV:[a-z0-9]+]]: tensor<2x32x2x16xbf16>, %[[GO:[a-z0-9]+]]: tensor<2x32x8x16xbf16>, %[[VAR:[a-z0-9]+]]: tensor<f32>)
// CHECK: %[[I:.*]] = gsa.indexer %[[QI]], %[[KI]] weights(%[[WI]]) bias(%[[BI]]) scale(5.000000e-01) activation {
// CHECK-NEXT: ^bb0(%[[X:.*]]: f32, %{{.*}}: index):
// CHECK-NEXT: %[[SX:.*]] = gsa.sigmoid %[[X]] : f32
// CHECK-NEXT: gsa.yield %[[SX]] : f32
// CHECK-NEXT: } weighting {
// CHECK: } : (tensor<2x32x4x8xbf16>, tensor<2x32x8xbf16>, tensor<2x32x4xbf16>, tensor<4xf32>) -> tensor<2x32x32xf32>
// CHECK: %[[IDX:.*]], %[[CNT:.*]], %[[NEW:.*]] = gsa.adaptive_topk %[[I]] policy = custom k = 8 in [2, 16] running_var(%[[VAR]]) training momentum(0.899999976) policy_fn {
// CHECK: arith.divf
// CHECK: } : (tensor<2x32x32xf32>, tensor<f32>) -> (tensor<2x32x16xi32>, tensor<2x32xi32>, tensor<f32>)
// CHECK: %[[O:.*]], %[[LSE:.*]] = gsa.sparse_attention %[[Q]], %[[K]], %[[V]] select(%[[IDX]], %[[CNT]]) value_gate(%[[GV]]) output_gate(%[[GO]]) scale(2.500000e-01) score_mod {
// CHECK: math.tanh
// CHECK: return %[[O]], %[[LSE]], %[[IDX]], %[[CNT]], %[[NEW]]
// CHECK-NOT: gsa.gated_sparse_attention
func.func @core(%q: tensor<2x32x8x16xbf16>, %k: tensor<2x32x2x16xbf16>,
                %v: tensor<2x32x2x16xbf16>, %qi: tensor<2x32x4x8xbf16>,
                %ki: tensor<2x32x8xbf16>, %wi: tensor<2x32x4xbf16>,
                %bi: tensor<4xf32>, %gv: tensor<2x32x2x16xbf16>,
                %go: tensor<2x32x8x16xbf16>, %var: tensor<f32>)
    -> (tensor<2x32x8x16xbf16>, tensor<2x32x8xf32>, tensor<2x32x16xi32>, tensor<2x32xi32>, tensor<f32>) {
  %o, %lse, %idx, %cnt, %new = gsa.gated_sparse_attention q(%q) k(%k) v(%v)
      indexer(%qi, %ki) weights(%wi) bias(%bi) value_gate(%gv) output_gate(%go)
      running_var(%var) policy = custom k = 8 in [2, 16] training momentum(0.9)
      scale(0.25) index_scale(0.5)
      activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        %s = gsa.sigmoid %w : f32
        gsa.yield %s : f32
      } policy_fn {
      ^bb0(%mean: f32, %var_t: f32, %vbar: f32, %t: index):
        %kb = arith.constant 8.0 : f32
        %r = arith.divf %vbar, %var_t : f32
        %b = arith.mulf %kb, %r : f32
        gsa.yield %b : f32
      } score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %th = math.tanh %s : f32
        gsa.yield %th : f32
      } : (tensor<2x32x8x16xbf16>, tensor<2x32x2x16xbf16>, tensor<2x32x2x16xbf16>,
           tensor<2x32x4x8xbf16>, tensor<2x32x8xbf16>, tensor<2x32x4xbf16>, tensor<4xf32>,
           tensor<2x32x2x16xbf16>, tensor<2x32x8x16xbf16>, tensor<f32>)
        -> (tensor<2x32x8x16xbf16>, tensor<2x32x8xf32>, tensor<2x32x16xi32>, tensor<2x32xi32>, tensor<f32>)
  return %o, %lse, %idx, %cnt, %new : tensor<2x32x8x16xbf16>, tensor<2x32x8xf32>, tensor<2x32x16xi32>, tensor<2x32xi32>, tensor<f32>
}

// Dynamic B and L give a [?, ?, ?] score matrix; no optional parts.
// CHECK-LABEL: func.func @dynamic
// CHECK: gsa.indexer %{{.*}}, %{{.*}} activation {
// CHECK: -> tensor<?x?x?xf32>
// CHECK: gsa.adaptive_topk %{{.*}} policy = fixed k = 4 in [4, 4] : (tensor<?x?x?xf32>) -> (tensor<?x?x4xi32>, tensor<?x?xi32>)
// CHECK: gsa.sparse_attention %{{.*}}, %{{.*}}, %{{.*}} select(%{{.*}}, %{{.*}}) : (
func.func @dynamic(%q: tensor<?x?x4x16xf32>, %k: tensor<?x?x4x16xf32>, %v: tensor<?x?x4x16xf32>,
                   %qi: tensor<?x?x1x8xf32>, %ki: tensor<?x?x8xf32>)
    -> (tensor<?x?x4x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xi32>, tensor<?x?xi32>) {
  %o, %lse, %idx, %cnt = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 4 in [4, 4]
      activation {
      ^bb0(%x: f32, %j: index):
        gsa.yield %x : f32
      } : (tensor<?x?x4x16xf32>, tensor<?x?x4x16xf32>, tensor<?x?x4x16xf32>, tensor<?x?x1x8xf32>, tensor<?x?x8xf32>)
        -> (tensor<?x?x4x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xi32>, tensor<?x?xi32>)
  return %o, %lse, %idx, %cnt : tensor<?x?x4x16xf32>, tensor<?x?x4xf32>, tensor<?x?x4xi32>, tensor<?x?xi32>
}

// EXAMPLE: gsa.indexer
// EXAMPLE: gsa.adaptive_topk %{{.*}} policy = inverse k = 64 in [16, 128] running_var(%{{.*}}) training
// EXAMPLE: gsa.sparse_attention
// EXAMPLE-NOT: gsa.gated_sparse_attention
