// RUN: gsa-opt %s --gsa-lower-selection="select-rows-per-tile=-1" -split-input-file | FileCheck %s
// RUN: gsa-opt %s --gsa-lower-selection -split-input-file | FileCheck %s --check-prefix=EIGHT

// select-rows-per-tile=-1 (what gsa-gpu-pipeline passes by default): the
// selection's tile height by sequence length - 12 query rows from L =
// 98304 on (98304 / 12 = 8192 tiles), 8 below (65536 / 8 = 8192 tiles;
// 12 rows would give 5462). The pass's own default is 8 at any length.
// No L x L buffer exists at either length.

// CHECK-LABEL: func.func @long(
// CHECK-NOT: memref<1x98304x98304xf32>
// CHECK: gpu.launch_func @gsa_kernels::@long_1_select_stats blocks in (%c8192{{.*}}, %c1
// CHECK-LABEL: func.func @shorter(
// CHECK: gpu.launch_func @gsa_kernels::@shorter_1_select_stats blocks in (%c8192{{.*}}, %c1

// EIGHT-LABEL: func.func @long(
// EIGHT: gpu.launch_func @gsa_kernels::@long_1_select_stats blocks in (%c12288{{.*}}, %c1
// EIGHT-LABEL: func.func @shorter(
// EIGHT: gpu.launch_func @gsa_kernels::@shorter_1_select_stats blocks in (%c8192{{.*}}, %c1

func.func @long(%qi: tensor<1x98304x4x64xbf16>, %ki: tensor<1x98304x64xbf16>)
    -> (tensor<1x98304x32xi32>, tensor<1x98304xi32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x98304x4x64xbf16>, tensor<1x98304x64xbf16>) -> tensor<1x98304x98304xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [4, 32]
      : (tensor<1x98304x98304xf32>) -> (tensor<1x98304x32xi32>, tensor<1x98304xi32>)
  return %idx, %cnt : tensor<1x98304x32xi32>, tensor<1x98304xi32>
}

// -----

func.func @shorter(%qi: tensor<1x65536x4x64xbf16>, %ki: tensor<1x65536x64xbf16>)
    -> (tensor<1x65536x32xi32>, tensor<1x65536xi32>) {
  %I = gsa.indexer %qi, %ki activation {
      ^bb0(%x: f32, %j: index):
        %s = gsa.sigmoid %x : f32
        gsa.yield %s : f32
      } : (tensor<1x65536x4x64xbf16>, tensor<1x65536x64xbf16>) -> tensor<1x65536x65536xf32>
  %idx, %cnt = gsa.adaptive_topk %I policy = fixed k = 16 in [4, 32]
      : (tensor<1x65536x65536xf32>) -> (tensor<1x65536x32xi32>, tensor<1x65536xi32>)
  return %idx, %cnt : tensor<1x65536x32xi32>, tensor<1x65536xi32>
}
