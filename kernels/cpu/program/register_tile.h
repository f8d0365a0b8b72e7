// The register tile of the runtime's own GEMMs (winograd.h, pointwise_depthwise.h), on Vec16s
// (vec16.h). Part of program.cpp's translation unit.
//
//   C[r][v] = act(start[r][v] + sum over k < K of A[r][k] * B[k][v])
//
// R rows of A (`lda` apart; A[r][k] broadcast), NV 16-float vectors of B's rows (`ldb` apart),
// C rows `ldc` apart. `start`: zero, C itself (accumulating over blocks of k) or `bias[v]`;
// `act`: TILE_NONE, TILE_RELU, TILE_RELU6 or TILE_SILU (x * sigmoid(x)), applied as C is stored.
#pragma once
#include "vec16.h"

namespace {

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
enum TileStart { START_ZERO = 0, START_C = 1, START_BIAS = 2 };
enum TileActivation { TILE_NONE = 0, TILE_RELU = 1, TILE_RELU6 = 2, TILE_SILU = 3 };

inline Vec16 tile_activation(Vec16 y, int act) {
  if (act == TILE_RELU) return v_max(y, v_zero());
  if (act == TILE_RELU6) return v_min(v_max(y, v_zero()), v_set1(6.f));
  if (act == TILE_SILU)
    return v_mul(y, v_reciprocal(v_add(v_set1(1.f), v_exp(v_sub(v_zero(), y)))));
  return y;
}

// acc[r][v] += sum over k < k_count of A[r][k] * B[k][v]: the k-loop of every register tile.
// With FETCH, one 64-byte line per k from `fetch` on is brought into L2 (gemm_conv.h: the next
// panel's weights); without, no prefetch is compiled in.
template <int R, int NV, bool FETCH = false>
inline void tile_accumulate(Vec16 (&acc)[R][NV], const float *a, int64_t lda, const float *b,
                            int64_t ldb, int k_count, const char *fetch = nullptr,
                            int64_t fetch_step = 0) {
#pragma GCC unroll 2
  for (int k = 0; k < k_count; k++) {
    if (FETCH) _mm_prefetch(fetch + k * fetch_step, _MM_HINT_T1);
    Vec16 w[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) w[v] = v_loadu(b + k * ldb + v * 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
      const Vec16 x = v_set1(a[r * lda + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; v++) acc[r][v] = v_fmadd(x, w[v], acc[r][v]);
    }
  }
}

template <int R, int NV, int START>
void register_tile(const float *a, int64_t lda, const float *b, int64_t ldb, int k_count,
                   float *c, int64_t ldc, const float *bias, int act) {
  Vec16 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      acc[r][v] = START == START_C      ? v_loadu(c + r * ldc + v * 16)
                  : START == START_BIAS ? v_loadu(bias + v * 16)
                                        : v_zero();
  tile_accumulate<R, NV>(acc, a, lda, b, ldb, k_count);
#pragma GCC unroll 16
  for (int r = 0; r < R; r++)
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
      v_storeu(c + r * ldc + v * 16, act ? tile_activation(acc[r][v], act) : acc[r][v]);
}

using RegisterTile = void (*)(const float *, int64_t, const float *, int64_t, int, float *,
                              int64_t, const float *, int);

// The tile of `rows` x NV vectors (rows 2, 4, 6, 8, 12, 14; 12 and 14 only with up to 2
// vectors), or null.
template <int NV, int START>
RegisterTile register_tile_for_rows(int rows) {
  constexpr int kWide = NV <= 2 ? NV : 2;
  switch (rows) {
    case 2: return register_tile<2, NV, START>;
    case 4: return register_tile<4, NV, START>;
    case 6: return register_tile<6, NV, START>;
    case 8: return register_tile<8, NV, START>;
    case 12: return NV <= 2 ? register_tile<12, kWide, START> : nullptr;
    case 14: return NV <= 2 ? register_tile<14, kWide, START> : nullptr;
    default: return nullptr;
  }
}

// The tile of `rows` x `vecs` vectors (vecs 1, 2, or 4 with up to 6 rows), or null.
template <int START>
RegisterTile register_tile_for(int rows, int vecs) {
  switch (vecs) {
    case 1: return register_tile_for_rows<1, START>(rows);
    case 2: return register_tile_for_rows<2, START>(rows);
    case 4: return rows <= 6 ? register_tile_for_rows<4, START>(rows) : nullptr;
    default: return nullptr;
  }
}
#endif

}  // namespace
