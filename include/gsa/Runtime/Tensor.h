//===- Tensor.h - host tensors and .npy files -------------------*- C++ -*-===//

#ifndef GSA_RUNTIME_TENSOR_H
#define GSA_RUNTIME_TENSOR_H

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gsa::runtime {

/// Element types that cross the runtime boundary.
enum class DType { f16, bf16, f32, f64, i32 };

llvm::StringRef dtypeName(DType dtype);
size_t dtypeSize(DType dtype);
std::optional<DType> parseDType(llvm::StringRef name);
bool isFloat(DType dtype);

/// Float <-> storage conversions (round to nearest even).
float halfToFloat(uint16_t bits);
uint16_t floatToHalf(float value);
float bf16ToFloat(uint16_t bits);
uint16_t floatToBf16(float value);

/// A host tensor: row-major, contiguous, owning its bytes.
class Tensor {
public:
  Tensor() = default;
  Tensor(DType dtype, std::vector<int64_t> shape);

  DType dtype() const { return dtype_; }
  llvm::ArrayRef<int64_t> shape() const { return shape_; }
  int64_t rank() const { return static_cast<int64_t>(shape_.size()); }
  int64_t numElements() const;
  size_t numBytes() const { return bytes_.size(); }
  void *data() { return bytes_.data(); }
  const void *data() const { return bytes_.data(); }

  /// Element i as double / set element i from a double (rounding as the
  /// dtype requires).
  double get(int64_t i) const;
  void set(int64_t i, double value);

  /// This tensor converted to `dtype` (floats to floats, ints to ints).
  llvm::Expected<Tensor> convertTo(DType dtype) const;

  std::string shapeString() const;

private:
  DType dtype_ = DType::f32;
  std::vector<int64_t> shape_;
  std::vector<uint8_t> bytes_;
};

std::string shapeString(llvm::ArrayRef<int64_t> shape);

/// Reads a NumPy .npy file (v1-v3, little-endian <f2 <f4 <f8 <i4 <i8,
/// C order). int64 data is narrowed to i32 with a range check.
llvm::Expected<Tensor> readNpy(llvm::StringRef path);
/// Writes a .npy file (v1.0). bf16 is written as float32 (exact), since
/// NumPy has no bfloat16.
llvm::Error writeNpy(llvm::StringRef path, const Tensor &tensor);

} // namespace gsa::runtime

#endif // GSA_RUNTIME_TENSOR_H
