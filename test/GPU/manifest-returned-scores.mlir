// RUN: gsa-compile %s -o %t.ptx --manifest %t.json
// RUN: FileCheck %s --input-file=%t.json

// A program that returns the indexer's scores and selects from them: the
// indexer (over query tiles) writes result 0, and the selection's kernels
// read that same buffer - the manifest names it as the result, following
// the tensor / buffer round trip between the two, rather than as an
// internal buffer (which a launcher would allocate, leaving the selection
// to read garbage).
// CHECK: "kernel": "scores_too_indexer_0"
// CHECK: "kernel": "scores_too_0_select_stats"
// CHECK-NEXT: "params": [
// CHECK-NEXT: {
// CHECK-NEXT: "result": 0
// CHECK: "kernel": "scores_too_0_select_topk"
// CHECK-NEXT: "params": [
// CHECK-NEXT: {
// CHECK-NEXT: "result": 0
func.func @scores_too(%qi: tensor<1x400x4x64xbf16>, %ki: tensor<1x400x64xbf16>, %rv: tensor<f32>)
    -> (tensor<1x400x400xf32>, tensor<1x400x8xi32>, tensor<1x400xi32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x400x4x64xbf16>, tensor<1x400x64xbf16>) -> tensor<1x400x400xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = proportional k = 4 in [2, 8]
      running_var(%rv)
      : (tensor<1x400x400xf32>, tensor<f32>) -> (tensor<1x400x8xi32>, tensor<1x400xi32>)
  return %I, %idx, %cnt : tensor<1x400x400xf32>, tensor<1x400x8xi32>, tensor<1x400xi32>
}
