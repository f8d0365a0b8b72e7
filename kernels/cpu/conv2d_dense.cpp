// Dense (groups=1) 2-D convolution, float32, NCHW in and out, as an implicit GEMM:
//   out[n][oc][p] = sum_k A[oc][k] * B_n[k][p],  k = (ic, kh, kw),  p = (oh, ow)
// A is the (BatchNorm-folded) weight, packed once in Python into panels of MR rows:
//   packed[panel][k][r] = W[panel*MR + r][k]  (zero-padded rows).
// B is the im2col view of the input; a KC x NC block of it is packed per task into a
// thread-local buffer (never materialised whole). An MR x (16*NV) register tile of
// AVX-512 accumulators is updated per k; the epilogue (bias, residual add, ReLU/ReLU6)
// is fused into the store of the last k block.
//
// Inputs:  x (N,C,H,W) f32, packed weight f32, bias (OC) f32, geometry (G_COUNT) int32,
//          [residual (N,OC,OH,OW) f32]
// Output:  out (N,OC,OH,OW) f32
//
// Tiling parameters (compile-time, -D):
//   MR          output channels per register tile
//   NV          16-wide vectors of output positions per register tile (NR = 16*NV)
//   KC          reduction (ic*kh*kw) cache block
//   NC          output positions per cache block (rounded up to NR)
//   MC          output channels per cache block / task (rounded up to MR)
//   LOOP_ORDER  0: n-panel outer, m-panel inner (B strip stays in L1)
//               1: m-panel outer, n-panel inner (A strip stays in L1)
//   UNROLL      unroll factor of the k loop
#include "conv_common.h"

#ifndef MR
#define MR 8
#endif
#ifndef NV
#define NV 2
#endif
#ifndef KC
#define KC 256
#endif
#ifndef NC
#define NC 256
#endif
#ifndef MC
#define MC 128
#endif
#ifndef LOOP_ORDER
#define LOOP_ORDER 0
#endif
#ifndef UNROLL
#define UNROLL 4
#endif

#define NR (16 * NV)
#define STR2(x) #x
#define STR(x) STR2(x)

static_assert(MR >= 1 && MR <= 32, "MR out of range");
static_assert(NV >= 1 && NV <= 4, "NV out of range");
static_assert(MR * NV <= 28, "register tile needs more than 28 zmm accumulators");

namespace {

constexpr int kNcEff = ((NC + NR - 1) / NR) * NR;
constexpr int kMcEff = ((MC + MR - 1) / MR) * MR;

struct Geometry {
  int N, C, H, W, OC, OH, OW, KH, KW, SH, SW, PT, PL, act;
  int K() const { return C * KH * KW; }
  int P() const { return OH * OW; }
};

// Pack rows [k0, k0+kc) x columns [n0, n0+nc) of image x's im2col matrix into
// dst (row stride ldb), zero-filling padding and columns beyond nc up to ldb.
void pack_b(const Geometry &g, const float *x, int k0, int kc, int n0, int nc, float *dst,
            int ldb) {
  const int khw = g.KH * g.KW;
  for (int kk = 0; kk < kc; ++kk) {
    const int k = k0 + kk;
    const int ic = k / khw, kh = (k % khw) / g.KW, kw = k % g.KW;
    const float *plane = x + (size_t)ic * g.H * g.W;
    float *row = dst + (size_t)kk * ldb;
    int n = n0, oh = n0 / g.OW, ow = n0 % g.OW;
    const int n_end = n0 + nc;
    while (n < n_end) {
      const int seg = std::min(g.OW - ow, n_end - n);
      const int ih = oh * g.SH - g.PT + kh;
      if (ih < 0 || ih >= g.H) {
        std::memset(row, 0, sizeof(float) * seg);
      } else {
        const float *src = plane + (size_t)ih * g.W;
        const int iw0 = ow * g.SW - g.PL + kw;
        if (g.SW == 1) {
          const int lo = std::min(seg, std::max(0, -iw0));
          const int hi = std::max(lo, std::min(seg, g.W - iw0));
          if (lo > 0) std::memset(row, 0, sizeof(float) * lo);
          if (hi > lo) std::memcpy(row + lo, src + iw0 + lo, sizeof(float) * (hi - lo));
          if (seg > hi) std::memset(row + hi, 0, sizeof(float) * (seg - hi));
        } else {
          for (int t = 0; t < seg; ++t) {
            const int iw = iw0 + t * g.SW;
            row[t] = (iw >= 0 && iw < g.W) ? src[iw] : 0.0f;
          }
        }
      }
      row += seg;
      n += seg;
      ++oh;
      ow = 0;
    }
    if (ldb > nc) std::memset(dst + (size_t)kk * ldb + nc, 0, sizeof(float) * (ldb - nc));
  }
}

// One MR x NR register tile over kc reduction steps.
//  a: packed A strip (kc x MR), b: packed B strip (kc rows, stride ldb)
//  c: output tile origin (row stride ldc); m_valid rows and n_valid columns are stored.
template <int ACT, bool RES>
inline void micro_tile(int kc, const float *__restrict a, const float *__restrict b, int ldb,
                       float *__restrict c, int ldc, int m_valid, int n_valid, bool accumulate,
                       bool final_block, const float *__restrict bias,
                       const float *__restrict res) {
  __m512 acc[MR][NV];
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

  __mmask16 masks[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) masks[j] = tail_mask(n_valid - 16 * j);

#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m_valid) break;
    float *crow = c + (size_t)i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[i][j];
      if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[j], crow + 16 * j));
      if (final_block) {
        v = _mm512_add_ps(v, _mm512_set1_ps(bias[i]));
        if (RES) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[j], res + (size_t)i * ldc + 16 * j));
        v = activate<ACT>(v);
      }
      _mm512_mask_storeu_ps(crow + 16 * j, masks[j], v);
    }
  }
}

template <int ACT, bool RES>
void conv_dense(const Geometry &g, const float *x, const float *wpack, const float *bias,
                const float *residual, float *out) {
  const int K = g.K(), P = g.P();
  const int n_blocks = (P + kNcEff - 1) / kNcEff;
  const int m_blocks = (g.OC + kMcEff - 1) / kMcEff;
  const int tasks = g.N * n_blocks * m_blocks;
  const size_t x_image = (size_t)g.C * g.H * g.W;
  const size_t out_image = (size_t)g.OC * P;

#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int mb = task % m_blocks;
    const int nb = (task / m_blocks) % n_blocks;
    const int img = task / (m_blocks * n_blocks);
    const int n0 = nb * kNcEff, nc = std::min(kNcEff, P - n0);
    const int ldb = ((nc + NR - 1) / NR) * NR;
    const int m0 = mb * kMcEff, mc = std::min(kMcEff, g.OC - m0);
    float *bpack = thread_scratch((size_t)KC * kNcEff, 0);
    const float *ximg = x + img * x_image;
    float *oimg = out + img * out_image;
    const float *rimg = RES ? residual + img * out_image : nullptr;

    for (int k0 = 0; k0 < K; k0 += KC) {
      const int kc = std::min(KC, K - k0);
      const bool accumulate = k0 > 0, final_block = k0 + kc >= K;
      pack_b(g, ximg, k0, kc, n0, nc, bpack, ldb);
      auto tile = [&](int mr0, int nr0) {
        const int m = m0 + mr0, n = n0 + nr0;
        const float *a = wpack + (size_t)(m / MR) * K * MR + (size_t)k0 * MR;
        const size_t c_off = (size_t)m * P + n;
        micro_tile<ACT, RES>(kc, a, bpack + nr0, ldb, oimg + c_off, P,
                             std::min(MR, g.OC - m), std::min(NR, nc - nr0), accumulate,
                             final_block, bias + m, RES ? rimg + c_off : nullptr);
      };
#if LOOP_ORDER == 0
      for (int nr0 = 0; nr0 < nc; nr0 += NR)
        for (int mr0 = 0; mr0 < mc; mr0 += MR) tile(mr0, nr0);
#else
      for (int mr0 = 0; mr0 < mc; mr0 += MR)
        for (int nr0 = 0; nr0 < nc; nr0 += NR) tile(mr0, nr0);
#endif
    }
  }
}

template <bool RES>
void dispatch_act(const Geometry &g, const float *x, const float *w, const float *b,
                  const float *r, float *o) {
  switch (g.act) {
    case ACT_RELU: conv_dense<ACT_RELU, RES>(g, x, w, b, r, o); break;
    case ACT_RELU6: conv_dense<ACT_RELU6, RES>(g, x, w, b, r, o); break;
    default: conv_dense<ACT_NONE, RES>(g, x, w, b, r, o); break;
  }
}

}  // namespace

// params: x, packed_weight, bias, geometry, [residual], out
AOT_ENTRY Conv2dDense(int nparam, void **params, int *ndims, int64_t **shapes,
                      const char **dtypes, void *stream, void *extra) {
  (void)stream;
  (void)extra;
  if (nparam != 5 && nparam != 6) return 1;
  const bool has_res = nparam == 6;
  const int out_index = nparam - 1;
  if (ndims[0] != 4 || ndims[out_index] != 4) return 2;
  if (!dtype_is(dtypes[0], "float32") || !dtype_is(dtypes[out_index], "float32")) return 3;
  const int32_t *geo = static_cast<const int32_t *>(params[3]);
  Geometry g;
  g.N = (int)shapes[0][0];
  g.C = (int)shapes[0][1];
  g.H = (int)shapes[0][2];
  g.W = (int)shapes[0][3];
  g.OC = (int)shapes[out_index][1];
  g.OH = (int)shapes[out_index][2];
  g.OW = (int)shapes[out_index][3];
  g.KH = geo[G_KH];
  g.KW = geo[G_KW];
  g.SH = geo[G_SH];
  g.SW = geo[G_SW];
  g.PT = geo[G_PT];
  g.PL = geo[G_PL];
  g.act = geo[G_ACT];
  const float *x = static_cast<const float *>(params[0]);
  const float *w = static_cast<const float *>(params[1]);
  const float *b = static_cast<const float *>(params[2]);
  float *out = static_cast<float *>(params[out_index]);
  if (has_res)
    dispatch_act<true>(g, x, w, b, static_cast<const float *>(params[4]), out);
  else
    dispatch_act<false>(g, x, w, b, nullptr, out);
  return 0;
}

// The tiling this library was compiled with, for checks from Python (ctypes).
AOT_ENTRY Conv2dDenseRegisterRows() { return MR; }
