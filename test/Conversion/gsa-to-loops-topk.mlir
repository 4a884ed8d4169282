// RUN: gsa-opt %s --convert-gsa-to-loops | FileCheck %s

// Training mode, inverse policy: per-row f64 statistics, the batch's mean
// variance as V_bar, the running-variance update, then per-row budget and
// exact selection by bisection over an order-preserving integer key.
// CHECK-LABEL: func.func @topk_training
// CHECK: %[[SC:.*]] = bufferization.to_buffer %arg0 read_only
// CHECK: %[[RV:.*]] = bufferization.to_buffer %arg1 read_only : tensor<f32> to memref<f32>
// CHECK: %[[IDX:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?x16xi32>
// CHECK: %[[CNT:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?xi32>
// CHECK: %[[MEANS:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?xf64>
// CHECK: %[[VARS:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<?x?xf64>
//        pass 1: two-pass mean and population variance (divide by n_t = t+1)
// CHECK: scf.for
// CHECK:   scf.for %[[T:.*]] =
// CHECK:     %[[N:.*]] = arith.addi %[[T]], %c1
// CHECK:     arith.extf %{{.*}} : f32 to f64
// CHECK:     %[[MEAN:.*]] = arith.divf %{{.*}} : f64
// CHECK:     arith.subf %{{.*}}, %[[MEAN]] : f64
// CHECK:     memref.store %[[MEAN]], %[[MEANS]]
// CHECK:     memref.store %{{.*}}, %[[VARS]]
//        V_bar = mean over b, t of var_t
// CHECK: %[[ROWS:.*]] = arith.muli
// CHECK: %[[VBAR:.*]] = arith.divf %{{.*}}, %{{.*}} : f64
//        V_run update: m = 0.5 here; the first update (V_run == 0) sets V_bar
// CHECK: %[[OLD:.*]] = arith.extf %{{.*}} : f32 to f64
// CHECK-DAG: arith.constant 5.000000e-01 : f64
// CHECK: %[[FIRST:.*]] = arith.cmpf oeq, %[[OLD]], %{{.*}} : f64
// CHECK: %[[UPD:.*]] = arith.select %[[FIRST]], %[[VBAR]], %{{.*}} : f64
// CHECK: %[[NEW:.*]] = memref.alloc() : memref<f32>
//        pass 2: budget k_base * V_bar / var_t, var_t = 0 -> +inf -> k_max
// CHECK: arith.divf %[[VBAR]], %{{.*}} : f64
// CHECK: arith.cmpf oeq, %{{.*}}, %{{.*}} : f64
// CHECK: math.floor %{{.*}} : f64
// CHECK: arith.maximumf
// CHECK: arith.minimumf
// CHECK: arith.cmpf uno
// CHECK: arith.fptosi %{{.*}} : f64 to i64
// CHECK: %[[K:.*]] = arith.minui %{{.*}}, %{{.*}} : index
// CHECK: memref.store %{{.*}}, %[[CNT]]
//        bisection over the 32 key bits
// CHECK: scf.for %{{.*}} = %{{.*}} to %c32 step %{{.*}} iter_args(%{{.*}} = %c0_i32) -> (i32)
// CHECK:   arith.shli
// CHECK:   arith.bitcast %{{.*}} : f32 to i32
// CHECK:   arith.shrsi
// CHECK:   arith.xori
// CHECK:   arith.cmpi uge
//        ties: the cut position, scanning from the most recent position
// CHECK: arith.cmpi ult
//        padding with -1
// CHECK: memref.store %c-1_i32, %[[IDX]]
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}} : tensor<?x?x16xi32>, tensor<?x?xi32>, tensor<f32>
func.func @topk_training(%I: tensor<?x?x?xf32>, %rv: tensor<f32>)
    -> (tensor<?x?x16xi32>, tensor<?x?xi32>, tensor<f32>) {
  %idx, %cnt, %new = gsa.adaptive_topk %I policy = inverse k = 8 in [2, 16]
      running_var(%rv) training momentum(0.5)
      : (tensor<?x?x?xf32>, tensor<f32>) -> (tensor<?x?x16xi32>, tensor<?x?xi32>, tensor<f32>)
  return %idx, %cnt, %new : tensor<?x?x16xi32>, tensor<?x?xi32>, tensor<f32>
}

// Inference mode reads V_bar from running_var and writes nothing back; a
// custom policy's region is inlined with f32 statistics.
// CHECK-LABEL: func.func @topk_custom
// CHECK: %[[RV:.*]] = bufferization.to_buffer %arg1
// CHECK: %[[V:.*]] = memref.load %[[RV]][] : memref<f32>
// CHECK: %[[VBAR:.*]] = arith.extf %[[V]] : f32 to f64
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK: arith.truncf %{{.*}} : f64 to f32
// CHECK: %[[VB32:.*]] = arith.truncf %[[VBAR]] : f64 to f32
// CHECK: %[[B:.*]] = arith.mulf %[[VB32]], %{{.*}} : f32
// CHECK: arith.extf %[[B]] : f32 to f64
// CHECK-NOT: memref.alloc() : memref<f32>
// CHECK: return %{{.*}}, %{{.*}} : tensor<1x8x4xi32>, tensor<1x8xi32>
func.func @topk_custom(%I: tensor<1x8x8xf32>, %rv: tensor<f32>)
    -> (tensor<1x8x4xi32>, tensor<1x8xi32>) {
  %idx, %cnt = gsa.adaptive_topk %I policy = custom k = 2 in [1, 4]
      running_var(%rv) policy_fn {
      ^bb0(%mean: f32, %var: f32, %vbar: f32, %t: index):
        %c = arith.constant 3.0 : f32
        %b = arith.mulf %vbar, %c : f32
        gsa.yield %b : f32
      } : (tensor<1x8x8xf32>, tensor<f32>) -> (tensor<1x8x4xi32>, tensor<1x8xi32>)
  return %idx, %cnt : tensor<1x8x4xi32>, tensor<1x8xi32>
}
