// The CPU pipeline stage by stage, as gsa-opt runs each pass on its own.
// RUN: gsa-opt %s --gsa-decompose --convert-gsa-to-loops --canonicalize \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" \
// RUN:   | FileCheck %s --check-prefix=BUFFERIZED
// RUN: gsa-opt %s --gsa-decompose --convert-gsa-to-loops --canonicalize \
// RUN:   --one-shot-bufferize="bufferize-function-boundaries function-boundary-type-conversion=identity-layout-map" \
// RUN:   --buffer-deallocation-pipeline --convert-bufferization-to-memref \
// RUN:   | FileCheck %s --check-prefix=FREED

// After bufferization the function takes and returns identity-layout
// memrefs, no tensor is left, and the [B, L, L] score matrix is a buffer
// between the indexer loops and the selection loops.
// BUFFERIZED-LABEL: func.func @core(
// BUFFERIZED-SAME: %{{.*}}: memref<1x8x4x16xf32>
// BUFFERIZED-SAME: -> (memref<1x8x4x16xf32>, memref<1x8x4xf32>, memref<1x8x4xi32>, memref<1x8xi32>)
// BUFFERIZED: %[[SCORES:.*]] = memref.alloc() : memref<1x8x8xf32>
// BUFFERIZED: memref.load %[[SCORES]]
// BUFFERIZED-NOT: tensor<
// BUFFERIZED-NOT: bufferization.to_tensor

// The deallocation pipeline frees the temporaries (scores, statistics,
// accumulators) and keeps the returned buffers alive.
// FREED-LABEL: func.func @core(
// FREED: %[[SCORES:.*]] = memref.alloc() : memref<1x8x8xf32>
// FREED: memref.dealloc %[[SCORES]] : memref<1x8x8xf32>
// FREED: return
func.func @core(%q: tensor<1x8x4x16xf32>, %k: tensor<1x8x4x16xf32>, %v: tensor<1x8x4x16xf32>,
                %qi: tensor<1x8x2x4xf32>, %ki: tensor<1x8x4xf32>)
    -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>) {
  %o, %lse, %i, %c = gsa.gated_sparse_attention q(%q) k(%k) v(%v) indexer(%qi, %ki)
      policy = fixed k = 4 in [1, 4] activation {
  ^bb0(%x: f32, %j: index):
    %s = gsa.sigmoid %x : f32
    gsa.yield %s : f32
  } : (tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x4x16xf32>, tensor<1x8x2x4xf32>, tensor<1x8x4xf32>)
      -> (tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>)
  return %o, %lse, %i, %c : tensor<1x8x4x16xf32>, tensor<1x8x4xf32>, tensor<1x8x4xi32>, tensor<1x8xi32>
}
