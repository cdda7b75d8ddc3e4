// __half for the CPU emulator (see ../emulator.h): IEEE binary16 storage, arithmetic through float,
// conversions rounded to nearest even like __float2half_rn.
#pragma once
#include <cstdint>
#include <cstring>

struct __half {
  uint16_t bits;

  __half() = default;
  __half(float value) {
    const _Float16 h = static_cast<_Float16>(value);  // GCC's binary16: round to nearest even
    std::memcpy(&bits, &h, sizeof bits);
  }
  operator float() const {
    _Float16 h;
    std::memcpy(&h, &bits, sizeof bits);
    return static_cast<float>(h);
  }
};
static_assert(sizeof(__half) == 2, "__half must have the size of torch.float16");

inline __half __float2half(float value) { return __half(value); }
inline float __half2float(__half value) { return static_cast<float>(value); }
