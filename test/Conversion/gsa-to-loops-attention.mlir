// RUN: gsa-opt %s --convert-gsa-to-loops | FileCheck %s

// Online softmax over the selected positions with G2 on the values, G1 on
// the output, the score_mod region inlined, GQA head mapping, and lse.
// CHECK-LABEL: func.func @attention
// CHECK-DAG: %[[Q:.*]] = bufferization.to_buffer %arg0
// CHECK-DAG: %[[K:.*]] = bufferization.to_buffer %arg1
// CHECK-DAG: %[[V:.*]] = bufferization.to_buffer %arg2
// CHECK-DAG: %[[IDX:.*]] = bufferization.to_buffer %arg3
// CHECK-DAG: %[[CNT:.*]] = bufferization.to_buffer %arg4
// CHECK-DAG: %[[GV:.*]] = bufferization.to_buffer %arg5
// CHECK-DAG: %[[GO:.*]] = bufferization.to_buffer %arg6
// CHECK: %[[GROUP:.*]] = arith.divui %{{.*}}, %{{.*}} : index
// CHECK: %[[O:.*]] = memref.alloc() : memref<1x8x4x16xbf16>
// CHECK: %[[LSE:.*]] = memref.alloc() : memref<1x8x4xf32>
// CHECK: %[[ACC:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: scf.for %[[B:.*]] =
// CHECK:   scf.for %[[T:.*]] =
// CHECK:     memref.load %[[CNT]][%[[B]], %[[T]]]
// CHECK:     arith.minsi
// CHECK:     arith.maxsi
// CHECK:     scf.for %[[H:.*]] =
// CHECK:       %[[KVH:.*]] = arith.divui %[[H]], %[[GROUP]] : index
// CHECK:       scf.for {{.*}} iter_args(%[[M:.*]] = %cst{{.*}}, %[[L:.*]] = %cst{{.*}}) -> (f32, f32)
// CHECK:         %[[S:.*]] = arith.index_cast %{{.*}} : i32 to index
// CHECK:         arith.cmpi sge, %[[S]]
// CHECK:         arith.cmpi sle, %[[S]], %[[T]]
// CHECK:         scf.if
// CHECK:           memref.load %[[K]][%[[B]], %[[S]], %[[KVH]], %{{.*}}]
//                  score_mod: soft-capping 30 * tanh(s / 30)
// CHECK:           arith.divf
// CHECK:           math.tanh
// CHECK:           %[[CAPPED:.*]] = arith.mulf
// CHECK:           arith.cmpf oeq, %[[CAPPED]]
// CHECK:           %[[MNEW:.*]] = arith.maximumf %[[M]], %[[CAPPED]] : f32
// CHECK:           math.exp
// CHECK:           math.exp
//                  G2: v * sigmoid(gv)
// CHECK:           memref.load %[[V]][%[[B]], %[[S]], %[[KVH]], %{{.*}}]
// CHECK:           memref.load %[[GV]][%[[B]], %[[S]], %[[KVH]], %{{.*}}]
// CHECK:           math.exp
// CHECK:           memref.store %{{.*}}, %[[ACC]]
//        normalise, G1, round to bf16
// CHECK:       arith.cmpf oeq
// CHECK:       memref.load %[[GO]][%[[B]], %[[T]], %[[H]], %{{.*}}]
// CHECK:       arith.truncf %{{.*}} : f32 to bf16
// CHECK:       memref.store %{{.*}}, %[[O]][%[[B]], %[[T]], %[[H]], %{{.*}}]
// CHECK:       math.log
// CHECK:       memref.store %{{.*}}, %[[LSE]][%[[B]], %[[T]], %[[H]]]
func.func @attention(%q: tensor<1x8x4x16xbf16>, %k: tensor<1x8x2x16xbf16>,
                     %v: tensor<1x8x2x16xbf16>, %idx: tensor<1x8x4xi32>,
                     %cnt: tensor<1x8xi32>, %gv: tensor<1x8x2x16xbf16>,
                     %go: tensor<1x8x4x16xbf16>)
    -> (tensor<1x8x4x16xbf16>, tensor<1x8x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt)
      value_gate(%gv) output_gate(%go)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %cap = arith.constant 30.0 : f32
        %x = arith.divf %s, %cap : f32
        %th = math.tanh %x : f32
        %y = arith.mulf %th, %cap : f32
        gsa.yield %y : f32
      } : (tensor<1x8x4x16xbf16>, tensor<1x8x2x16xbf16>, tensor<1x8x2x16xbf16>,
           tensor<1x8x4xi32>, tensor<1x8xi32>, tensor<1x8x2x16xbf16>,
           tensor<1x8x4x16xbf16>) -> (tensor<1x8x4x16xbf16>, tensor<1x8x4xf32>)
  return %o, %lse : tensor<1x8x4x16xbf16>, tensor<1x8x4xf32>
}
