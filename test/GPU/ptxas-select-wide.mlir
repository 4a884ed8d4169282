// REQUIRES: ptxas
// RUN: gsa-compile %s -o %t.ptx
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s
// RUN: %ptxas -arch=sm_90a -v %t.ptx -o %t.cubin 2>&1 | FileCheck %s --check-prefix=SPILL

// A selection whose fused indexer has d_I 128 (4 heads, 32 A registers per
// mma tile) at 128K through the whole pipeline for sm_90a, inverse policy
// (the stats sweep's moments): 4-row tiles for sample and top-k, the wgmma
// stats sweep at 128 registers; no kernel spills (with 12-row tiles and
// the stats kernel at 80 registers the sample spilled 532 bytes and the
// stats kernel 144).
// CHECK-DAG: Compiling entry function 'wide_1_select_sample' for 'sm_90a'
// CHECK-DAG: Compiling entry function 'wide_1_select_stats' for 'sm_90a'
// CHECK-DAG: Compiling entry function 'wide_1_select_topk' for 'sm_90a'
// SPILL-NOT: {{[1-9][0-9]*}} bytes spill
func.func @wide(%qi: tensor<1x131072x4x128xbf16>, %ki: tensor<1x131072x128xbf16>,
                %wi: tensor<1x131072x4xbf16>, %rv: tensor<f32>)
    -> (tensor<1x131072x2048xi32>, tensor<1x131072xi32>) {
  %s = gsa.indexer %qi, %ki weights(%wi)
    activation {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    weighting {
    ^bb0(%x: f32, %h: index):
      %y = gsa.sigmoid %x : f32
      gsa.yield %y : f32
    }
    : (tensor<1x131072x4x128xbf16>, tensor<1x131072x128xbf16>, tensor<1x131072x4xbf16>)
    -> tensor<1x131072x131072xf32>
  %idx, %cnt = gsa.adaptive_topk %s policy = inverse k = 1024 in [256, 2048] running_var(%rv)
    : (tensor<1x131072x131072xf32>, tensor<f32>) -> (tensor<1x131072x2048xi32>, tensor<1x131072xi32>)
  return %idx, %cnt : tensor<1x131072x2048xi32>, tensor<1x131072xi32>
}
