// Dense (groups=1) 2-D convolution, float32, NCHW in and out, as an implicit GEMM:
//   out[n][oc][p] = sum_k A[oc][k] * B_n[k][p],  k = (ic, kh, kw),  p = (oh, ow)
// A is the (BatchNorm-folded) weight, packed once in Python into panels of MR rows:
//   packed[panel][k][r] = W[panel*MR + r][k]  (zero-padded rows).
// B is the im2col view of the input with the batch folded into the columns
// (column = image * OH*OW + oh*OW + ow, so small feature maps still fill whole vectors);
// a KC x NC block of it is packed per task into a thread-local buffer (never
// materialised whole). An MR x (16*NV) register tile of AVX-512 accumulators is updated
// per k and accumulated into a thread-local MC x NC block of C; once all k blocks are
// done, the epilogue (bias, residual add, ReLU/ReLU6) is applied while the block is
// scattered to the NCHW output (or, with DIRECT_OUTPUT and a single k block, straight
// from the registers).
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
//   DIRECT_OUTPUT    1: when the whole reduction fits one k block, register tiles are
//                    stored straight to the output with the epilogue (no C block)
//   DIRECT_POINTWISE 1: 1x1/stride-1/unpadded convs read B from the input without packing
//   BALANCE     1: when there are few tasks, split the columns (then the output channels)
//               further, below NC/MC, until the task count is a multiple of the threads
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
#ifndef DIRECT_OUTPUT
#define DIRECT_OUTPUT 1
#endif
#ifndef DIRECT_POINTWISE
#define DIRECT_POINTWISE 1
#endif
#ifndef BALANCE
#define BALANCE 1
#endif

#define NR (16 * NV)

#include "gemm_tile.h"

static_assert(MR >= 1 && MR <= 32, "MR out of range");
static_assert(NV >= 1 && NV <= 4, "NV out of range");
static_assert(MR * NV <= 28, "register tile needs more than 28 zmm accumulators");

namespace {

constexpr int kNcEff = ((NC + NR - 1) / NR) * NR;
constexpr int kMcEff = ((MC + MR - 1) / MR) * MR;

struct Geometry : ConvGeometry {
  int K() const { return C * KH * KW; }
  int P() const { return OH * OW; }
  bool pointwise() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0; }
};

// Lanes t of a 16-wide vector with lo <= t < hi.
inline __mmask16 range_mask(int lo, int hi) {
  return (__mmask16)(tail_mask(hi) & ~tail_mask(lo));
}

// One output row segment of im2col row (ic, kh, kw): dst[t] = padded input at column
// (ow + t) * SW - PL + kw of input row `ih`, for t in [0, seg). Masked AVX-512 loads read
// only in-bounds elements (masked-out lanes never fault), so no memset/memcpy calls.
inline void pack_segment(const Geometry &g, const float *plane, int ih, int ow, int kw, int seg,
                         float *dst) {
  if (ih < 0 || ih >= g.H) {
    for (int t0 = 0; t0 < seg; t0 += 16)
      _mm512_mask_storeu_ps(dst + t0, tail_mask(seg - t0), _mm512_setzero_ps());
    return;
  }
  const float *src = plane + (size_t)ih * g.W;
  const int iw0 = ow * g.SW - g.PL + kw;
  // valid t: 0 <= iw0 + t*SW < W
  const int lo = iw0 >= 0 ? 0 : (-iw0 + g.SW - 1) / g.SW;
  const int hi = g.W - iw0 > 0 ? (g.W - iw0 + g.SW - 1) / g.SW : 0;
  if (g.SW == 1) {
    for (int t0 = 0; t0 < seg; t0 += 16) {
      const __mmask16 valid = range_mask(lo - t0, hi - t0) & tail_mask(seg - t0);
      const __m512 v = _mm512_maskz_loadu_ps(valid, src + (iw0 + t0));
      _mm512_mask_storeu_ps(dst + t0, tail_mask(seg - t0), v);
    }
  } else if (g.SW == 2) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int t0 = 0; t0 < seg; t0 += 16) {
      const unsigned valid = range_mask(lo - t0, hi - t0) & tail_mask(seg - t0);
      const unsigned spread = _pdep_u32(valid, 0x55555555u);  // lane t -> element 2t
      const float *base = src + (iw0 + 2 * t0);
      const __m512 a = _mm512_maskz_loadu_ps((__mmask16)(spread & 0xFFFFu), base);
      const __m512 b = _mm512_maskz_loadu_ps((__mmask16)(spread >> 16), base + 16);
      _mm512_mask_storeu_ps(dst + t0, tail_mask(seg - t0), _mm512_permutex2var_ps(a, even, b));
    }
  } else {
    for (int t = 0; t < seg; ++t) dst[t] = (t >= lo && t < hi) ? src[iw0 + t * g.SW] : 0.0f;
  }
}

// Pack rows [k0, k0+kc) x global columns [n0, n0+nc) of the batched im2col matrix into
// dst (row stride ldb), zero-filling padding and the columns between nc and ldb.
void pack_b(const Geometry &g, const float *x, int k0, int kc, int n0, int nc, float *dst,
            int ldb) {
  const int khw = g.KH * g.KW, P = g.P();
  const size_t x_image = (size_t)g.C * g.H * g.W, plane_size = (size_t)g.H * g.W;
  const int n_end = n0 + nc;
  for (int kk = 0; kk < kc; ++kk) {
    const int k = k0 + kk;
    const int ic = k / khw, kh = (k % khw) / g.KW, kw = k % g.KW;
    float *row = dst + (size_t)kk * ldb;
    int n = n0;
    while (n < n_end) {
      const int img = n / P, p = n % P;
      const float *plane = x + img * x_image + ic * plane_size;
      int seg;
      if (g.pointwise()) {  // the im2col row is the input plane itself
        seg = std::min(P - p, n_end - n);
        std::memcpy(row, plane + p, sizeof(float) * seg);
      } else {
        const int oh = p / g.OW, ow = p % g.OW;
        seg = std::min(g.OW - ow, n_end - n);
        pack_segment(g, plane, oh * g.SH - g.PT + kh, ow, kw, seg, row);
      }
      row += seg;
      n += seg;
    }
    if (ldb > nc) std::memset(dst + (size_t)kk * ldb + nc, 0, sizeof(float) * (ldb - nc));
  }
}

// Accumulate one register tile into the C block (c: row stride ldc, all MR x NR valid).
ALWAYS_INLINE void micro_tile(int kc, const float *__restrict a, const float *__restrict b,
                              int ldb, float *__restrict c, int ldc, bool accumulate) {
  __m512 acc[MR][NV];
  multiply_tile(kc, a, b, ldb, acc);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    float *crow = c + (size_t)i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      __m512 v = acc[i][j];
      if (accumulate) v = _mm512_add_ps(v, _mm512_loadu_ps(crow + 16 * j));
      _mm512_storeu_ps(crow + 16 * j, v);
    }
  }
}

// Single-k-block case: one register tile straight to the NCHW output with the epilogue.
// out/res point at (image, channel m, position p); rows have stride ldo (= OH*OW);
// m_valid rows and n_valid columns (all inside one image) are stored.
template <int ACT, bool RES>
ALWAYS_INLINE void micro_tile_to_output(int kc, const float *__restrict a,
                                        const float *__restrict b, int ldb,
                                        float *__restrict out, const float *__restrict res,
                                        int ldo, int m_valid, int n_valid,
                                        const float *__restrict bias) {
  __m512 acc[MR][NV];
  multiply_tile(kc, a, b, ldb, acc);
  __mmask16 masks[NV];
#pragma GCC unroll 4
  for (int j = 0; j < NV; ++j) masks[j] = tail_mask(n_valid - 16 * j);
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m_valid) break;
    const __m512 bv = _mm512_set1_ps(bias[i]);
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      __m512 v = _mm512_add_ps(acc[i][j], bv);
      if (RES) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(masks[j], res + (size_t)i * ldo + 16 * j));
      _mm512_mask_storeu_ps(out + (size_t)i * ldo + 16 * j, masks[j], activate<ACT>(v));
    }
  }
}

// out = act(cblock + bias [+ residual]) for rows [m0, m0+mc) and global columns [n0, n0+nc).
template <int ACT, bool RES>
void store_block(const Geometry &g, const float *cblock, int ldc, int m0, int mc, int n0, int nc,
                 const float *bias, const float *residual, float *out) {
  const int P = g.P();
  const size_t out_image = (size_t)g.OC * P;
  for (int i = 0; i < mc; ++i) {
    const int m = m0 + i;
    const __m512 bv = _mm512_set1_ps(bias[m]);
    const float *crow = cblock + (size_t)i * ldc;
    int n = n0;
    while (n < n0 + nc) {
      const int img = n / P, p = n % P;
      const int seg = std::min(P - p, n0 + nc - n);
      const size_t off = img * out_image + (size_t)m * P + p;
      float *dst = out + off;
      const float *src = crow + (n - n0);
      for (int t = 0; t < seg; t += 16) {
        const __mmask16 mask = tail_mask(seg - t);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, src + t), bv);
        if (RES) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual + off + t));
        _mm512_mask_storeu_ps(dst + t, mask, activate<ACT>(v));
      }
      n += seg;
    }
  }
}

template <int ACT, bool RES>
void conv_dense(const Geometry &g, const float *x, const float *wpack, const float *bias,
                const float *residual, float *out) {
  const int K = g.K();
  const int columns = g.N * g.P();
  // Equal-sized blocks of at most NC columns (whole NR panels) and MC channels (MR panels).
  const int n_panels = (columns + NR - 1) / NR, m_panels = (g.OC + MR - 1) / MR;
  int n_blocks = (columns + kNcEff - 1) / kNcEff;
  int m_blocks = (g.OC + kMcEff - 1) / kMcEff;
#if BALANCE
  // Few tasks: split further (columns first: that costs no re-packing) until every thread
  // gets the same number of tasks.
  const int threads = omp_get_max_threads();
  while (n_blocks * m_blocks < 8 * threads && (n_blocks * m_blocks) % threads != 0) {
    if (n_blocks < n_panels) ++n_blocks;
    else if (m_blocks < m_panels) ++m_blocks;
    else break;
  }
#endif
  const int nc_task = ((n_panels + n_blocks - 1) / n_blocks) * NR;
  const int mc_task = ((m_panels + m_blocks - 1) / m_blocks) * MR;
  n_blocks = (columns + nc_task - 1) / nc_task;
  m_blocks = (g.OC + mc_task - 1) / mc_task;
  const int tasks = n_blocks * m_blocks;
  const int P = g.P();
  const size_t x_image = (size_t)g.C * g.H * g.W;
  const size_t out_image = (size_t)g.OC * P;
  // The whole reduction fits one k block: tiles go straight to the output (no C block).
  const bool single_k_block = DIRECT_OUTPUT && K <= KC;

#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int mb = task % m_blocks, nb = task / m_blocks;
    const int n0 = nb * nc_task, nc = std::min(nc_task, columns - n0);
    const int ldb = ((nc + NR - 1) / NR) * NR;
    const int m0 = mb * mc_task, mc = std::min(mc_task, g.OC - m0);
    const int mc_padded = ((mc + MR - 1) / MR) * MR;
    float *bpack = thread_scratch((size_t)KC * kNcEff, 0);
    float *cblock = thread_scratch((size_t)kMcEff * kNcEff, 1);
    // A pointwise conv's B block is the input itself when the block, padded to whole
    // panels, stays inside one image's planes.
    const bool direct = DIRECT_POINTWISE && g.pointwise() && (n0 % P) + ldb <= P;

    for (int k0 = 0; k0 < K; k0 += KC) {
      const int kc = std::min(KC, K - k0);
      const bool accumulate = k0 > 0;
      const float *bsrc = bpack;
      int bstride = ldb;
      if (direct) {  // read B straight from the input planes (row stride P)
        bsrc = x + (size_t)(n0 / P) * x_image + (size_t)k0 * P + (n0 % P);
        bstride = P;
      } else {
        pack_b(g, x, k0, kc, n0, nc, bpack, ldb);
      }
      auto tile = [&](int mr0, int nr0) {
        const float *a = wpack + (size_t)((m0 + mr0) / MR) * K * MR + (size_t)k0 * MR;
        if (single_k_block) {
          const int n = n0 + nr0, n_valid = std::min(NR, nc - nr0);
          const int img = n / P, p = n % P;
          const int m = m0 + mr0, m_valid = std::min(MR, g.OC - m);
          if (m_valid <= 0) return;
          if (p + n_valid <= P) {  // the tile's columns lie in one image: store directly
            const size_t off = (size_t)img * out_image + (size_t)m * P + p;
            micro_tile_to_output<ACT, RES>(kc, a, bsrc + nr0, bstride, out + off,
                                           RES ? residual + off : nullptr, P, m_valid,
                                           n_valid, bias + m);
            return;
          }
          micro_tile(kc, a, bsrc + nr0, bstride, cblock, NR, false);
          store_block<ACT, RES>(g, cblock, NR, m, m_valid, n, n_valid, bias, residual, out);
          return;
        }
        micro_tile(kc, a, bsrc + nr0, bstride, cblock + (size_t)mr0 * ldb + nr0, ldb, accumulate);
      };
#if LOOP_ORDER == 0
      for (int nr0 = 0; nr0 < nc; nr0 += NR)
        for (int mr0 = 0; mr0 < mc_padded; mr0 += MR) tile(mr0, nr0);
#else
      for (int mr0 = 0; mr0 < mc_padded; mr0 += MR)
        for (int nr0 = 0; nr0 < nc; nr0 += NR) tile(mr0, nr0);
#endif
    }
    if (!single_k_block)
      store_block<ACT, RES>(g, cblock, ldb, m0, mc, n0, nc, bias, residual, out);
  }
}

}  // namespace

// params: x, packed_weight, bias, geometry, [residual], out
C_EXPORT_INT Conv2dDense(int nparam, void **params, int *ndims, int64_t **shapes,
                      const char **dtypes, void * /*stream*/, void * /*extra*/) {
  return run_conv_call<Geometry>(
      nparam, params, ndims, shapes, dtypes, [](const Geometry &) { return 0; },
      [](const Geometry &g, const ConvCall &c, auto act, auto residual) {
        conv_dense<act.value, residual.value>(g, c.x, c.w, c.b, c.residual, c.out);
      });
}

// The tiling this library was compiled with, for checks from Python (ctypes).
C_EXPORT_INT Conv2dDenseRegisterRows() { return MR; }
