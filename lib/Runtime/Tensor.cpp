//===- Tensor.cpp - host tensors and .npy files -----------------------------===//

#include "gsa/Runtime/Tensor.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <fmt/format.h>
#include <limits>

using namespace gsa::runtime;
using llvm::Error;
using llvm::Expected;

static Error makeError(const std::string &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

llvm::StringRef gsa::runtime::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::f16: return "f16";
  case DType::bf16: return "bf16";
  case DType::f32: return "f32";
  case DType::f64: return "f64";
  case DType::i32: return "i32";
  }
  return "?";
}

size_t gsa::runtime::dtypeSize(DType dtype) {
  switch (dtype) {
  case DType::f16:
  case DType::bf16: return 2;
  case DType::f32:
  case DType::i32: return 4;
  case DType::f64: return 8;
  }
  return 0;
}

std::optional<DType> gsa::runtime::parseDType(llvm::StringRef name) {
  for (DType d : {DType::f16, DType::bf16, DType::f32, DType::f64, DType::i32})
    if (dtypeName(d) == name)
      return d;
  return std::nullopt;
}

bool gsa::runtime::isFloat(DType dtype) { return dtype != DType::i32; }

float gsa::runtime::halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else { // subnormal: renormalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000 | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t gsa::runtime::floatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx > 0x7f800000)
    return uint16_t(sign | 0x7e00); // NaN
  if (absx >= 0x477ff000) // rounds to >= 65520: infinity
    return uint16_t(sign | 0x7c00);
  if (absx < 0x38800000) { // subnormal or zero in half
    float a;
    std::memcpy(&a, &absx, 4);
    // Scale into the subnormal grid and round to nearest even.
    float scaled = a * 16777216.0f; // 2^24
    uint32_t m = uint32_t(std::nearbyint(scaled));
    return uint16_t(sign | m);
  }
  uint32_t mant = absx & 0x7fffff;
  uint32_t exp = (absx >> 23) - 127 + 15;
  uint32_t h = exp << 10 | mant >> 13;
  uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
    ++h;
  return uint16_t(sign | h);
}

float gsa::runtime::bf16ToFloat(uint16_t b) {
  uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t gsa::runtime::floatToBf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000)
    return uint16_t((x >> 16) | 0x40); // quiet NaN
  uint32_t rounding = 0x7fff + ((x >> 16) & 1);
  return uint16_t((x + rounding) >> 16);
}

Tensor::Tensor(DType dtype, std::vector<int64_t> shape)
    : dtype_(dtype), shape_(std::move(shape)) {
  bytes_.assign(size_t(numElements()) * dtypeSize(dtype_), 0);
}

int64_t Tensor::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape_)
    n *= d;
  return n;
}

double Tensor::get(int64_t i) const {
  const uint8_t *p = bytes_.data() + size_t(i) * dtypeSize(dtype_);
  switch (dtype_) {
  case DType::f16: { uint16_t v; std::memcpy(&v, p, 2); return halfToFloat(v); }
  case DType::bf16: { uint16_t v; std::memcpy(&v, p, 2); return bf16ToFloat(v); }
  case DType::f32: { float v; std::memcpy(&v, p, 4); return v; }
  case DType::f64: { double v; std::memcpy(&v, p, 8); return v; }
  case DType::i32: { int32_t v; std::memcpy(&v, p, 4); return v; }
  }
  return 0;
}

void Tensor::set(int64_t i, double value) {
  uint8_t *p = bytes_.data() + size_t(i) * dtypeSize(dtype_);
  switch (dtype_) {
  case DType::f16: { uint16_t v = floatToHalf(float(value)); std::memcpy(p, &v, 2); break; }
  case DType::bf16: { uint16_t v = floatToBf16(float(value)); std::memcpy(p, &v, 2); break; }
  case DType::f32: { float v = float(value); std::memcpy(p, &v, 4); break; }
  case DType::f64: std::memcpy(p, &value, 8); break;
  case DType::i32: { int32_t v = int32_t(value); std::memcpy(p, &v, 4); break; }
  }
}

Expected<Tensor> Tensor::convertTo(DType dtype) const {
  if (dtype == dtype_)
    return *this;
  if (isFloat(dtype) != isFloat(dtype_))
    return makeError(fmt::format("cannot convert {} data to {}",
                                 dtypeName(dtype_).str(),
                                 dtypeName(dtype).str()));
  Tensor out(dtype, shape_);
  for (int64_t i = 0, n = numElements(); i < n; ++i)
    out.set(i, get(i));
  return out;
}

std::string gsa::runtime::shapeString(llvm::ArrayRef<int64_t> shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + (shape[i] < 0 ? std::string("?")
                                         : std::to_string(shape[i]));
  return s + "]";
}

std::string Tensor::shapeString() const {
  return gsa::runtime::shapeString(shape_);
}

//===----------------------------------------------------------------------===//
// .npy
//===----------------------------------------------------------------------===//

namespace {

/// Finds `'key': value` in a .npy header dict and returns the raw value.
std::optional<std::string> headerField(const std::string &header,
                                       const std::string &key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos)
    return std::nullopt;
  size_t colon = header.find(':', k);
  if (colon == std::string::npos)
    return std::nullopt;
  size_t start = header.find_first_not_of(' ', colon + 1);
  size_t end = start;
  if (header[start] == '(')
    end = header.find(')', start) + 1;
  else if (header[start] == '\'')
    end = header.find('\'', start + 1) + 1;
  else
    end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

} // namespace

Expected<Tensor> gsa::runtime::readNpy(llvm::StringRef path) {
  auto buffer = llvm::MemoryBuffer::getFile(path);
  if (!buffer)
    return makeError(fmt::format("cannot read '{}': {}", path.str(),
                                 buffer.getError().message()));
  llvm::StringRef bytes = (*buffer)->getBuffer();
  auto bad = [&](const std::string &why) {
    return makeError(fmt::format("'{}' is not a valid .npy file: {}",
                                 path.str(), why));
  };
  if (bytes.size() < 10 || !bytes.starts_with("\x93NUMPY"))
    return bad("missing the \\x93NUMPY magic");
  unsigned major = uint8_t(bytes[6]);
  size_t headerLen, offset;
  if (major == 1) {
    headerLen = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12)
      return bad("truncated header");
    headerLen = 0;
    for (int i = 0; i < 4; ++i)
      headerLen |= size_t(uint8_t(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    return bad(fmt::format("unsupported version {}", major));
  }
  if (offset + headerLen > bytes.size())
    return bad("truncated header");
  std::string header = bytes.substr(offset, headerLen).str();
  auto descr = headerField(header, "descr");
  auto fortran = headerField(header, "fortran_order");
  auto shapeField = headerField(header, "shape");
  if (!descr || !fortran || !shapeField)
    return bad("header lacks descr, fortran_order or shape");
  if (*fortran != "False")
    return bad("Fortran-ordered arrays are not supported (use "
               "numpy.ascontiguousarray)");
  std::vector<int64_t> shape;
  for (llvm::StringRef rest = llvm::StringRef(*shapeField).trim("()");
       !rest.trim().empty();) {
    auto [item, tail] = rest.split(',');
    item = item.trim();
    if (!item.empty()) {
      int64_t d;
      if (item.getAsInteger(10, d) || d < 0)
        return bad(fmt::format("bad shape {}", *shapeField));
      shape.push_back(d);
    }
    rest = tail;
  }
  std::string d = llvm::StringRef(*descr).trim("'").str();
  DType dtype;
  size_t elemSize;
  bool narrowI64 = false;
  if (d == "<f2") { dtype = DType::f16; elemSize = 2; }
  else if (d == "<f4") { dtype = DType::f32; elemSize = 4; }
  else if (d == "<f8") { dtype = DType::f64; elemSize = 8; }
  else if (d == "<i4") { dtype = DType::i32; elemSize = 4; }
  else if (d == "<i8") { dtype = DType::i32; elemSize = 8; narrowI64 = true; }
  else
    return bad(fmt::format("unsupported dtype '{}' (expected <f2, <f4, <f8, "
                           "<i4 or <i8)", d));
  Tensor tensor(dtype, shape);
  size_t dataBytes = size_t(tensor.numElements()) * elemSize;
  size_t dataOffset = offset + headerLen;
  if (bytes.size() - dataOffset != dataBytes)
    return bad(fmt::format("expected {} data bytes for shape {}, found {}",
                           dataBytes, tensor.shapeString(),
                           bytes.size() - dataOffset));
  const char *src = bytes.data() + dataOffset;
  if (!narrowI64) {
    std::memcpy(tensor.data(), src, dataBytes);
  } else {
    for (int64_t i = 0; i < tensor.numElements(); ++i) {
      int64_t v;
      std::memcpy(&v, src + 8 * i, 8);
      if (v < std::numeric_limits<int32_t>::min() ||
          v > std::numeric_limits<int32_t>::max())
        return bad(fmt::format("int64 value {} at element {} does not fit "
                               "int32", v, i));
      tensor.set(i, double(v));
    }
  }
  return tensor;
}

Error gsa::runtime::writeNpy(llvm::StringRef path, const Tensor &in) {
  const Tensor *tensor = &in;
  Tensor widened;
  if (in.dtype() == DType::bf16) {
    widened = llvm::cantFail(in.convertTo(DType::f32));
    tensor = &widened;
  }
  std::string descr;
  switch (tensor->dtype()) {
  case DType::f16: descr = "<f2"; break;
  case DType::f32: descr = "<f4"; break;
  case DType::f64: descr = "<f8"; break;
  case DType::i32: descr = "<i4"; break;
  case DType::bf16: break; // widened above
  }
  std::string shape = "(";
  for (int64_t d : tensor->shape())
    shape += std::to_string(d) + ",";
  if (tensor->rank() > 1)
    shape.pop_back();
  shape += ")";
  std::string header = "{'descr': '" + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec)
    return makeError(fmt::format("cannot write '{}': {}", path.str(),
                                 ec.message()));
  os << "\x93NUMPY" << char(1) << char(0) << char(header.size() & 0xff)
     << char(header.size() >> 8) << header;
  os.write(static_cast<const char *>(tensor->data()), tensor->numBytes());
  return Error::success();
}
