// RUN: gsa-opt %s -split-input-file -verify-diagnostics | FileCheck %s

// gsa.tensor_map: a TMA tensor map of a kernel's buffer (the runtime
// encodes it per launch, cuTensorMapEncodeTiled). It prints as it parses;
// the verifier refuses what the driver would refuse at launch, located.

// CHECK-LABEL: func.func @keys
// CHECK: gsa.tensor_map %{{.*}} shape [2, 100, 64] box [1, 64, 64] swizzle 128 : memref<12800xbf16> -> !llvm.ptr
func.func @keys(%ki: memref<12800xbf16>) -> !llvm.ptr {
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [1, 64, 64] swizzle 128 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

// CHECK-LABEL: func.func @unswizzled
// CHECK: swizzle 0 : memref<4096xf32> -> !llvm.ptr
func.func @unswizzled(%x: memref<4096xf32>) -> !llvm.ptr {
  %m = gsa.tensor_map %x shape [64, 64] box [16, 64] swizzle 0 : memref<4096xf32> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @not_a_pointer(%ki: memref<12800xbf16>) -> i64 {
  // expected-error @+1 {{'gsa.tensor_map' op result must be !llvm.ptr (the kernel argument), but got i64}}
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [1, 64, 64] swizzle 128 : memref<12800xbf16> -> i64
  return %m : i64
}

// -----

func.func @element(%x: memref<128xf64>) -> !llvm.ptr {
  // expected-error @+1 {{copies bf16, f16, f32 or i32 elements, but the source holds f64}}
  %m = gsa.tensor_map %x shape [2, 64] box [1, 64] swizzle 0 : memref<128xf64> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @elements(%ki: memref<12800xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{shape holds 12928 elements but the source 12800}}
  %m = gsa.tensor_map %ki shape [2, 101, 64] box [1, 64, 64] swizzle 128 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @rank(%ki: memref<64xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{shape must have rank 1 to 5, but has 6}}
  %m = gsa.tensor_map %ki shape [1, 1, 1, 1, 1, 64] box [1, 1, 1, 1, 1, 64] swizzle 0 : memref<64xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @box_rank(%ki: memref<12800xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{box has rank 2 but shape has rank 3}}
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [64, 64] swizzle 128 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @box_size(%ki: memref<12800xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{box dim 1 is 512; it must be 1 to 256}}
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [1, 512, 64] swizzle 128 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @box_row(%ki: memref<12800xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{the box's innermost dim spans 12 bytes; it must be a multiple of 16}}
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [1, 64, 6] swizzle 0 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @stride(%x: memref<600xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{rows of the shape's innermost dim span 12 bytes; the strides must be multiples of 16}}
  %m = gsa.tensor_map %x shape [100, 6] box [64, 8] swizzle 0 : memref<600xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @swizzle(%ki: memref<12800xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{swizzle must be 0, 32, 64 or 128 bytes, but is 96}}
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [1, 64, 64] swizzle 96 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}

// -----

func.func @swizzle_span(%ki: memref<12800xbf16>) -> !llvm.ptr {
  // expected-error @+1 {{the box's innermost dim spans 128 bytes, more than the 64-byte swizzle}}
  %m = gsa.tensor_map %ki shape [2, 100, 64] box [1, 64, 64] swizzle 64 : memref<12800xbf16> -> !llvm.ptr
  return %m : !llvm.ptr
}
