// RUN: gsa-compile %s --attention-query-tiles=false -o %t.ptx --manifest %t.json
// RUN: FileCheck %s --input-file=%t.ptx
// RUN: FileCheck %s --input-file=%t.json --check-prefix=MANIFEST

// In-process PTX through LLVM's NVPTX backend, for sm_90a (the per-query
// attention kernel; the query-tile one is in ptxas.mlir), with the
// score_mod region (a clamp from below, arith only) inlined.
// CHECK: .version 8.0
// CHECK: .target sm_90a
// CHECK: .visible .entry attend_sparse_attention_0(
// CHECK-COUNT-7: .param .u64 .ptr .align 1 attend_sparse_attention_0_param_{{[0-9]}},
// CHECK: .param .u64 .ptr .align 1 attend_sparse_attention_0_param_7
// CHECK: .maxntid 128, 1, 1
// CHECK: shfl.sync.bfly.b32
// CHECK: max.NaN.f32 {{.*}}, 0fC1A00000;
// CHECK: ex2.approx.ftz.f32
// CHECK: lg2.approx.ftz.f32
// CHECK-NOT: .extern .func

// MANIFEST: "launches": [
// MANIFEST: "block": [
// MANIFEST-NEXT: 128,
// MANIFEST: "grid": [
// MANIFEST-NEXT: 40,
// MANIFEST-NEXT: 1,
// MANIFEST-NEXT: 1
// MANIFEST: "kernel": "attend_sparse_attention_0",
// MANIFEST: "arg": 0
// MANIFEST: "arg": 4
// MANIFEST: "arg": 5
// MANIFEST: "result": 0
// MANIFEST: "result": 1
func.func @attend(%q: tensor<1x40x4x64xf16>, %k: tensor<1x40x1x64xf16>,
                  %v: tensor<1x40x1x64xf16>, %idx: tensor<1x40x8xi32>,
                  %cnt: tensor<1x40xi32>, %go: tensor<1x40x4x64xf16>)
    -> (tensor<1x40x4x64xf16>, tensor<1x40x4xf32>) {
  %o, %lse = gsa.sparse_attention %q, %k, %v select(%idx, %cnt) output_gate(%go)
      score_mod {
      ^bb0(%s: f32, %b: index, %h: index, %t: index, %kv: index):
        %floor = arith.constant -20.0 : f32
        %y = arith.maximumf %s, %floor : f32
        gsa.yield %y : f32
      } : (tensor<1x40x4x64xf16>, tensor<1x40x1x64xf16>, tensor<1x40x1x64xf16>,
           tensor<1x40x8xi32>, tensor<1x40xi32>, tensor<1x40x4x64xf16>)
        -> (tensor<1x40x4x64xf16>, tensor<1x40x4xf32>)
  return %o, %lse : tensor<1x40x4x64xf16>, tensor<1x40x4xf32>
}
