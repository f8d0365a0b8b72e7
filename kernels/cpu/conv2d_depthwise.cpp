// Depthwise 2-D convolution (groups = channels, one filter per channel), float32, NCHW.
// Each (image, channel) plane is copied once into a thread-local zero-padded buffer split
// into SW column phases (phase q holds padded columns q, q+SW, ...), so that every tap of
// every stride reads contiguous 16-wide vectors: padded column ow*SW + kw lives in phase
// kw % SW at index ow + kw / SW. The epilogue (bias, optional residual, ReLU/ReLU6) is
// fused into the store.
//
// Inputs:  x (N,C,H,W) f32, weight (C, KH*KW) f32, bias (C) f32, geometry int32,
//          [residual (N,C,OH,OW) f32]
// Output:  out (N,C,OH,OW) f32
//
// Tiling parameters (compile-time, -D):
//   OW_VECS   16-wide output vectors computed together along a row
//   OH_ROWS   output rows computed together (shares the input row loads between rows)
//   MAX_TAPS  largest supported KH*KW (weights are held in registers / stack)
#include "conv_common.h"

#ifndef OW_VECS
#define OW_VECS 2
#endif
#ifndef OH_ROWS
#define OH_ROWS 1
#endif
#ifndef MAX_TAPS
#define MAX_TAPS 49
#endif

static_assert(OW_VECS >= 1 && OW_VECS <= 8, "OW_VECS out of range");
static_assert(OH_ROWS >= 1 && OH_ROWS <= 4, "OH_ROWS out of range");

namespace {

using Geometry = ConvGeometry;

constexpr int kSlack = 16 * OW_VECS + 16;  // readable floats past the end of each phase row

// Padded row columns col = iw + pl go to phase col % 2 at index col / 2: de-interleave
// 32 input floats at a time into 16 even and 16 odd columns (masked at the row's end).
inline void split_even_odd(const float *src, int w, int pl, float *even_row, float *odd_row) {
  const __m512i even_idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd_idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  int iw = 0;
  if (pl % 2 != 0) {  // the first input column is odd: place it alone so the rest is aligned
    odd_row[pl / 2] = src[0];
    iw = 1;
  }
  for (; iw < w; iw += 32) {
    const int n = std::min(32, w - iw);
    const __m512 a = _mm512_maskz_loadu_ps(tail_mask(n), src + iw);
    const __m512 b = _mm512_maskz_loadu_ps(tail_mask(n - 16), src + iw + 16);
    const int j = (iw + pl) / 2;
    _mm512_mask_storeu_ps(even_row + j, tail_mask((n + 1) / 2), _mm512_permutex2var_ps(a, even_idx, b));
    _mm512_mask_storeu_ps(odd_row + j, tail_mask(n / 2), _mm512_permutex2var_ps(a, odd_idx, b));
  }
}

// Copy one input plane into SW phases of a zero-padded buffer:
// phases[q][r][j] = padded(r, j*SW + q), rows r in [0, HP), row stride ld.
void pad_plane(const Geometry &g, const float *plane, float *buf, int hp, int ld) {
  const size_t phase_size = (size_t)hp * ld;
  std::memset(buf, 0, sizeof(float) * phase_size * g.SW);
  for (int ih = 0; ih < g.H; ++ih) {
    const int r = ih + g.PT;
    if (r >= hp) break;
    const float *src = plane + (size_t)ih * g.W;
    float *row = buf + (size_t)r * ld;
    if (g.SW == 1) {
      std::memcpy(row + g.PL, src, sizeof(float) * g.W);
    } else if (g.SW == 2) {
      split_even_odd(src, g.W, g.PL, row, row + phase_size);
    } else {
      for (int iw = 0; iw < g.W; ++iw) {
        const int col = iw + g.PL;
        row[(size_t)(col % g.SW) * phase_size + col / g.SW] = src[iw];
      }
    }
  }
}

template <int ACT, bool RES>
void depthwise(const Geometry &g, const float *x, const float *w, const float *bias,
               const float *residual, float *out) {
  const int taps = g.KH * g.KW;
  const int hp = (g.OH - 1) * g.SH + g.KH;                       // padded rows needed
  const int wp_cols = (g.OW - 1) * g.SW + g.KW;                  // padded columns needed
  const int ld = (wp_cols + g.SW - 1) / g.SW + kSlack;            // phase row stride
  const size_t phase_size = (size_t)hp * ld;
  const int planes = g.N * g.C;
  const size_t in_plane = (size_t)g.H * g.W, out_plane = (size_t)g.OH * g.OW;

#pragma omp parallel for schedule(static)
  for (int pl = 0; pl < planes; ++pl) {
    const int ch = pl % g.C;
    float *buf = thread_scratch(phase_size * g.SW, 1);
    pad_plane(g, x + pl * in_plane, buf, hp, ld);
    __m512 wv[MAX_TAPS];
    for (int t = 0; t < taps; ++t) wv[t] = _mm512_set1_ps(w[(size_t)ch * taps + t]);
    const __m512 bv = _mm512_set1_ps(bias[ch]);
    float *o = out + pl * out_plane;
    const float *rp = RES ? residual + pl * out_plane : nullptr;

    for (int oh0 = 0; oh0 < g.OH; oh0 += OH_ROWS) {
      for (int ow0 = 0; ow0 < g.OW; ow0 += 16 * OW_VECS) {
        __m512 acc[OH_ROWS][OW_VECS];
#pragma GCC unroll 4
        for (int r = 0; r < OH_ROWS; ++r)
#pragma GCC unroll 8
          for (int v = 0; v < OW_VECS; ++v) acc[r][v] = bv;
        for (int kh = 0; kh < g.KH; ++kh) {
          for (int kw = 0; kw < g.KW; ++kw) {
            const float *base = buf + (size_t)(kw % g.SW) * phase_size + ow0 + kw / g.SW;
            const __m512 wt = wv[kh * g.KW + kw];
#pragma GCC unroll 4
            for (int r = 0; r < OH_ROWS; ++r) {
              const int row = std::min(oh0 + r, g.OH - 1) * g.SH + kh;
              const float *src = base + (size_t)row * ld;
#pragma GCC unroll 8
              for (int v = 0; v < OW_VECS; ++v)
                acc[r][v] = _mm512_fmadd_ps(wt, _mm512_loadu_ps(src + 16 * v), acc[r][v]);
            }
          }
        }
#pragma GCC unroll 4
        for (int r = 0; r < OH_ROWS; ++r) {
          if (oh0 + r >= g.OH) break;
          float *orow = o + (size_t)(oh0 + r) * g.OW + ow0;
#pragma GCC unroll 8
          for (int v = 0; v < OW_VECS; ++v) {
            const __mmask16 m = tail_mask(g.OW - ow0 - 16 * v);
            if (!m) break;
            __m512 val = acc[r][v];
            if (RES)
              val = _mm512_add_ps(val, _mm512_maskz_loadu_ps(m, rp + (orow - o) + 16 * v));
            _mm512_mask_storeu_ps(orow + 16 * v, m, activate<ACT>(val));
          }
        }
      }
    }
  }
}

}  // namespace

// params: x, weight, bias, geometry, [residual], out
C_EXPORT_INT Conv2dDepthwise(int nparam, void **params, int *ndims, int64_t **shapes,
                          const char **dtypes, void * /*stream*/, void * /*extra*/) {
  return run_conv_call<ConvGeometry>(
      nparam, params, ndims, shapes, dtypes, [](const ConvGeometry &g) { return g.KH * g.KW > MAX_TAPS ? 4 : 0; },
      [](const ConvGeometry &g, const ConvCall &c, auto act, auto residual) {
        depthwise<act.value, residual.value>(g, c.x, c.w, c.b, c.residual, c.out);
      });
}
