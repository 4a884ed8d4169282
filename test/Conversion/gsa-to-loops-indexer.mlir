// RUN: gsa-opt %s --convert-gsa-to-loops | FileCheck %s

// DSA-style indexer (relu activation, identity weighting, bias): the regions
// are inlined into the loop nest, the causal part is computed, the rest is
// -inf.
// CHECK-LABEL: func.func @indexer
// CHECK-DAG: %[[QI:.*]] = bufferization.to_buffer %arg0 read_only : tensor<2x?x4x8xbf16> to memref<2x?x4x8xbf16>
// CHECK-DAG: %[[KI:.*]] = bufferization.to_buffer %arg1 read_only
// CHECK-DAG: %[[WI:.*]] = bufferization.to_buffer %arg2 read_only
// CHECK-DAG: %[[BI:.*]] = bufferization.to_buffer %arg3 read_only
// CHECK: %[[SCORES:.*]] = memref.alloc(%{{.*}}, %{{.*}}) : memref<2x?x?xf32>
// CHECK: %[[W:.*]] = memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: scf.for %[[B:.*]] = %{{.*}} to %{{.*}}
// CHECK:   scf.for %[[T:.*]] = %{{.*}} to %{{.*}}
//            per-row head weights: the weighting region (identity) inlined
// CHECK:     scf.for %[[J:.*]] =
// CHECK:       %[[RAW:.*]] = memref.load %[[WI]][%[[B]], %[[T]], %[[J]]] : memref<2x?x4xbf16>
// CHECK:       %[[RAWF:.*]] = arith.extf %[[RAW]] : bf16 to f32
// CHECK:       memref.store %[[RAWF]], %[[W]][%[[J]]]
// CHECK:     %[[END:.*]] = arith.addi %[[T]], %{{.*}} : index
// CHECK:     scf.for %[[S:.*]] = %{{.*}} to %[[END]]
// CHECK:       scf.for %[[H:.*]] = {{.*}} iter_args
// CHECK:         scf.for %[[D:.*]] = {{.*}} iter_args
// CHECK-DAG:       memref.load %[[QI]][%[[B]], %[[T]], %[[H]], %[[D]]]
// CHECK-DAG:       memref.load %[[KI]][%[[B]], %[[S]], %[[D]]]
// CHECK:           scf.yield
// CHECK-NEXT:    }
// CHECK-NEXT:    %[[SCALED:.*]] = arith.mulf %{{.*}} : f32
// CHECK:         %[[BIAS:.*]] = memref.load %[[BI]][%[[H]]] : memref<4xf32>
// CHECK:         %[[X:.*]] = arith.addf %[[SCALED]], %[[BIAS]] : f32
// CHECK:         %[[RELU:.*]] = arith.maximumf %[[X]], %{{.*}} : f32
// CHECK:         %[[WJ:.*]] = memref.load %[[W]][%[[H]]]
// CHECK:         arith.mulf %[[WJ]], %[[RELU]] : f32
// CHECK:       memref.store %{{.*}}, %[[SCORES]][%[[B]], %[[T]], %[[S]]]
//            causal mask
// CHECK:     scf.for %[[S2:.*]] = %[[END]] to
// CHECK:       memref.store %{{.*}}, %[[SCORES]][%[[B]], %[[T]], %[[S2]]]
// CHECK: %[[RESULT:.*]] = bufferization.to_tensor %[[SCORES]] restrict writable
// CHECK: return %[[RESULT]]
// CHECK-NOT: gsa.indexer
func.func @indexer(%qi: tensor<2x?x4x8xbf16>, %ki: tensor<2x?x8xbf16>,
                   %wi: tensor<2x?x4xbf16>, %bi: tensor<4xf32>) -> tensor<2x?x?xf32> {
  %I = gsa.indexer %qi, %ki weights(%wi) bias(%bi) scale(0.5)
      activation {
      ^bb0(%x: f32, %j: index):
        %zero = arith.constant 0.0 : f32
        %r = arith.maximumf %x, %zero : f32
        gsa.yield %r : f32
      } weighting {
      ^bb0(%w: f32, %j: index):
        gsa.yield %w : f32
      } : (tensor<2x?x4x8xbf16>, tensor<2x?x8xbf16>, tensor<2x?x4xbf16>, tensor<4xf32>)
        -> tensor<2x?x?xf32>
  return %I : tensor<2x?x?xf32>
}

// Sigmoid activation, no weights: the sigmoid becomes 1 / (1 + exp(-x)) and
// the default scale 1/sqrt(d_I) is computed from d_I.
// CHECK-LABEL: func.func @indexer_sigmoid
// CHECK: %[[DI:.*]] = memref.dim %{{.*}}, %c3
// CHECK: %[[DIF:.*]] = arith.sitofp %{{.*}} : i64 to f32
// CHECK: %[[SQ:.*]] = math.sqrt %[[DIF]] : f32
// CHECK: arith.divf %{{.*}}, %[[SQ]] : f32
// CHECK: %[[NEG:.*]] = arith.negf %{{.*}} : f32
// CHECK: %[[E:.*]] = math.exp %[[NEG]] : f32
// CHECK: %[[DEN:.*]] = arith.addf %{{.*}}, %[[E]] : f32
// CHECK: arith.divf %{{.*}}, %[[DEN]] : f32
// CHECK-NOT: gsa.sigmoid
func.func @indexer_sigmoid(%qi: tensor<1x16x1x8xf32>, %ki: tensor<1x16x8xf32>) -> tensor<1x16x16xf32> {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x16x1x8xf32>, tensor<1x16x8xf32>) -> tensor<1x16x16xf32>
  return %I : tensor<1x16x16xf32>
}
