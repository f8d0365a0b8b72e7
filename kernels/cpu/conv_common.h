// Shared pieces of the CPU convolution kernels: the AOT calling convention of
// MindSpore's ops.Custom(func_type="aot"), the conv geometry passed as an int32
// input tensor, and the fused epilogue (bias, residual add, activation).
#pragma once
#include <immintrin.h>
#include <omp.h>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>

// Layout of the int32 "geometry" input (see tuner/kernels/cpu/geometry.py).
enum GeometryIndex {
  G_KH = 0, G_KW, G_SH, G_SW, G_PT, G_PB, G_PL, G_PR, G_ACT, G_COUNT
};
enum Activation { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU6 = 2 };

#define AOT_ENTRY extern "C" __attribute__((visibility("default"))) int

static inline bool dtype_is(const char *dtype, const char *want) {
  return dtype != nullptr && std::strcmp(dtype, want) == 0;
}

template <int ACT>
static inline __m512 activate(__m512 v) {
  if (ACT == ACT_RELU) return _mm512_max_ps(v, _mm512_setzero_ps());
  if (ACT == ACT_RELU6)
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f));
  return v;
}

static inline __mmask16 tail_mask(int remaining) {
  if (remaining >= 16) return (__mmask16)0xFFFF;
  if (remaining <= 0) return (__mmask16)0;
  return (__mmask16)((1u << remaining) - 1u);
}

// Per-thread scratch buffer, 64-byte aligned, grown on demand and kept for reuse.
static inline float *thread_scratch(size_t floats, int slot) {
  static thread_local float *buffers[2] = {nullptr, nullptr};
  static thread_local size_t sizes[2] = {0, 0};
  if (sizes[slot] < floats) {
    std::free(buffers[slot]);
    size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
    buffers[slot] = static_cast<float *>(std::aligned_alloc(64, bytes));
    sizes[slot] = floats;
  }
  return buffers[slot];
}
