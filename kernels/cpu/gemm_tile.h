// The AVX-512 register tile shared by the GEMM-based kernels: an MR x (16*NV) block of
// accumulators, A broadcast (packed as kc x MR), B read as NV 16-wide vectors per row.
// The including file defines MR, NV and UNROLL (its tiling parameters) first.
#pragma once
#include <immintrin.h>

#define STR2(x) #x
#define STR(x) STR2(x)
#define ALWAYS_INLINE inline __attribute__((always_inline))

// acc = A strip (kc x MR) x B strip (kc rows, stride ldb): one MR x NR register tile.
ALWAYS_INLINE void multiply_tile(int kc, const float *__restrict a, const float *__restrict b,
                                 int ldb, __m512 (&acc)[MR][NV]) {
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();

  _Pragma(STR(GCC unroll UNROLL))
  for (int k = 0; k < kc; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = _mm512_loadu_ps(b + (size_t)k * ldb + 16 * j);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[k * MR + i]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
}
