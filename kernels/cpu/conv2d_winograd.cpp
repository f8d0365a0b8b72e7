// Winograd F(m x m, 3 x 3) convolution, stride 1, any padding, float32, NCHW in and out.
//
// The output is cut into m x m tiles (T = N * ceil(OH/m) * ceil(OW/m) of them, numbered
// image by image, row by row; partial tiles at the right/bottom edges are computed whole and
// stored clipped). Each tile reads an alpha x alpha input patch (alpha = m + 2):
//   V[xi][c][t]  = (B^T d B)[xi]            input transform, xi = 0 .. alpha^2-1
//   M[xi][oc][t] = sum_c U[xi][oc][c] V[xi][c][t]   alpha^2 independent GEMMs
//   out tile     = A^T M A + bias [+ residual], then the activation.
// U = G g G^T is computed in float64 and packed ONCE in Python
// (tuner/kernels/cpu/packing.py: pack_winograd_weight) as
//   packed[xi][oc_panel][c][r] = U[xi][oc_panel*MR + r][c]   (zero-padded rows).
// Work is cut into tasks of TILE_BLOCK tiles x a range of output channels; a task transforms
// its tiles' input (all channels, 16 tiles per AVX-512 vector: masked 8-wide row loads, which
// handle padding and edges, transposed in registers) into a thread-local V block, then, per
// OC_BLOCK channels, runs the alpha^2 GEMMs with an MR x (16*NV) register tile (tiles are the
// vector lanes, weights are broadcast) into a thread-local M block and applies the output
// transform and the epilogue (m = 4: rows transposed in registers, one masked store per tile
// row).
//
// Inputs:  x (N,C,H,W) f32, packed weight f32, bias (OC) f32, geometry (G_COUNT) int32,
//          [residual (N,OC,OH,OW) f32]
// Output:  out (N,OC,OH,OW) f32
//
// Tiling parameters (compile-time, -D):
//   TILE_M      output tile size m (2 or 4)
//   MR          output channels per register tile
//   NV          16-tile vectors per register tile
//   TILE_BLOCK  tiles per task (a multiple of 16*NV)
//   OC_BLOCK    output channels per GEMM/output-transform block (rounded up to MR)
//   UNROLL      unroll factor of the channel (reduction) loop
//   TASKS_PER_THREAD  fewer tile blocks than this per thread: split the output channels
//   PREFETCH_CHANNELS the input transform prefetches the patch rows this many channels ahead
#include "conv_common.h"

#ifndef TILE_M
#define TILE_M 4
#endif
#ifndef MR
#define MR 6
#endif
#ifndef NV
#define NV 4
#endif
#ifndef TILE_BLOCK
#define TILE_BLOCK 64
#endif
#ifndef OC_BLOCK
#define OC_BLOCK 64
#endif
#ifndef UNROLL
#define UNROLL 4
#endif
#ifndef PREFETCH_CHANNELS
#define PREFETCH_CHANNELS 2
#endif
#ifndef TASKS_PER_THREAD
#define TASKS_PER_THREAD 2
#endif

#include "gemm_tile.h"

static_assert(TILE_M == 2 || TILE_M == 4, "TILE_M must be 2 or 4");
static_assert(MR * NV <= 28, "register tile needs more than 28 zmm accumulators");
static_assert(TILE_BLOCK % (16 * NV) == 0, "TILE_BLOCK must be a multiple of 16*NV");

namespace {

constexpr int kM = TILE_M;
constexpr int kA = TILE_M + 2;  // alpha
constexpr int kXi = kA * kA;
constexpr int kOcBlock = ((OC_BLOCK + MR - 1) / MR) * MR;
constexpr int kVecs = TILE_BLOCK / 16;

// Transform matrices (Lavin & Gray; interpolation points 0, +-1 [, +-2], infinity).
#if TILE_M == 2
constexpr float kBT[kA][kA] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr float kAT[kM][kA] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
#else
constexpr float kBT[kA][kA] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                               {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr float kAT[kM][kA] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
#endif

// out[i] = sum_j coef[i][j] * in[j], skipping zero coefficients (folded after unrolling).
template <int ROWS, int COLS>
ALWAYS_INLINE void apply_matrix(const float (&coef)[ROWS][COLS], const __m512 *in, __m512 *out) {
#pragma GCC unroll 8
  for (int i = 0; i < ROWS; ++i) {
    __m512 acc = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < COLS; ++j) {
      const float c = coef[i][j];
      if (c == 1.0f) acc = _mm512_add_ps(acc, in[j]);
      else if (c == -1.0f) acc = _mm512_sub_ps(acc, in[j]);
      else if (c != 0.0f) acc = _mm512_fmadd_ps(_mm512_set1_ps(c), in[j], acc);
    }
    out[i] = acc;
  }
}

// C X C^T for an alpha x alpha X given by load(r, s) = X[r][s]: emit(i, row) receives row i
// (R vectors) of the result, R = rows of C.
template <int R, typename Load, typename Emit>
ALWAYS_INLINE void sandwich(const float (&coef)[R][kA], Load load, Emit emit) {
  __m512 partial[kA][R];  // partial[s][i] = (C X)[i][s]
#pragma GCC unroll 8
  for (int s = 0; s < kA; ++s) {
    __m512 column[kA];
#pragma GCC unroll 8
    for (int r = 0; r < kA; ++r) column[r] = load(r, s);
    apply_matrix(coef, column, partial[s]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    __m512 row[kA], out[R];
#pragma GCC unroll 8
    for (int s = 0; s < kA; ++s) row[s] = partial[s][i];
    apply_matrix(coef, row, out);
    emit(i, out);
  }
}

// Where the 16 tiles of one vector lie: per lane, the offset of the patch's top-left
// element inside its image plane (may be negative: masked lanes are never read), which
// patch rows/columns are inside the input, and the output origin and valid extent.
struct TileVector {
  int patch[16];                 // n*C*H*W + ih0*W + iw0
  __mmask8 rows[16], cols[16];   // per lane: bit r (s) set if patch row r (column s) is inside
  int out_offset[16];            // n*OC*OH*OW + oh0*OW + ow0, or -1 for lanes past the end
  int out_rows[16], out_cols[16];
};

struct Geometry : ConvGeometry {
  int TH() const { return (OH + kM - 1) / kM; }
  int TW() const { return (OW + kM - 1) / kM; }
  int tiles() const { return N * TH() * TW(); }
};

void locate(const Geometry &g, int first_tile, TileVector &tv) {
  const int per_image = g.TH() * g.TW(), total = g.tiles();
  for (int lane = 0; lane < 16; ++lane) {
    const int t = first_tile + lane;
    tv.patch[lane] = 0;
    tv.rows[lane] = tv.cols[lane] = 0;
    if (t >= total) {
      tv.out_offset[lane] = -1;
      tv.out_rows[lane] = tv.out_cols[lane] = 0;
      continue;
    }
    const int n = t / per_image, th = (t % per_image) / g.TW(), tw = t % g.TW();
    const int ih0 = th * kM - g.PT, iw0 = tw * kM - g.PL;
    tv.patch[lane] = n * g.C * g.H * g.W + ih0 * g.W + iw0;
    for (int r = 0; r < kA; ++r) {
      if (ih0 + r >= 0 && ih0 + r < g.H) tv.rows[lane] |= (__mmask8)(1u << r);
      if (iw0 + r >= 0 && iw0 + r < g.W) tv.cols[lane] |= (__mmask8)(1u << r);
    }
    tv.out_offset[lane] = n * g.OC * g.OH * g.OW + th * kM * g.OW + tw * kM;
    tv.out_rows[lane] = std::min(kM, g.OH - th * kM);
    tv.out_cols[lane] = std::min(kM, g.OW - tw * kM);
  }
}

// Row r of 8 tiles' patches (masked 8-wide loads: out-of-input elements read as 0), transposed:
// cols[s] lane t = patch row r, column s of tile `first + t`.
ALWAYS_INLINE void patch_columns8(const float *xc, const TileVector &tv, int first, int row_offset,
                                  int r, __m256 (&cols)[8]) {
  __m256 R[8];
#pragma GCC unroll 8
  for (int t = 0; t < 8; ++t) {
    const int lane = first + t;
    const __mmask8 mask = (tv.rows[lane] >> r) & 1 ? tv.cols[lane] : (__mmask8)0;
    R[t] = _mm256_maskz_loadu_ps(mask, xc + tv.patch[lane] + row_offset);
  }
  const __m256 t0 = _mm256_unpacklo_ps(R[0], R[1]), t1 = _mm256_unpackhi_ps(R[0], R[1]);
  const __m256 t2 = _mm256_unpacklo_ps(R[2], R[3]), t3 = _mm256_unpackhi_ps(R[2], R[3]);
  const __m256 t4 = _mm256_unpacklo_ps(R[4], R[5]), t5 = _mm256_unpackhi_ps(R[4], R[5]);
  const __m256 t6 = _mm256_unpacklo_ps(R[6], R[7]), t7 = _mm256_unpackhi_ps(R[6], R[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  cols[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  cols[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  cols[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  cols[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  cols[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  cols[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  cols[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  cols[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// V[xi][c][16 lanes] for one tile vector (v points at lane 0 of xi=0, c=0; ldxi floats
// between xi, TILE_BLOCK between channels).
void transform_input(const Geometry &g, const float *x, const TileVector &tv, float *v,
                     size_t ldxi) {
  const size_t plane = (size_t)g.H * g.W;
  const size_t ldc = TILE_BLOCK;
  alignas(64) float d[kA][kA][16];  // d[r][s] lane t: patch element (r, s) of tile t
  for (int c = 0; c < g.C; ++c) {
    const float *xc = x + c * plane;
    // the hardware prefetchers do not follow these short rows of many planes: fetch the
    // patch rows of a later channel (16/m consecutive tiles share a cache line)
    if (c + PREFETCH_CHANNELS < g.C) {
      const float *ahead = xc + PREFETCH_CHANNELS * plane;
      for (int lane = 0; lane < 16; lane += 16 / kM)
        for (int r = 0; r < kA; ++r)
          _mm_prefetch((const char *)(ahead + tv.patch[lane] + r * g.W), _MM_HINT_T0);
    }
#pragma GCC unroll 8
    for (int r = 0; r < kA; ++r) {
      __m256 lo[8], hi[8];
      patch_columns8(xc, tv, 0, r * g.W, r, lo);
      patch_columns8(xc, tv, 8, r * g.W, r, hi);
#pragma GCC unroll 8
      for (int s = 0; s < kA; ++s)
        _mm512_store_ps(d[r][s], _mm512_insertf32x8(_mm512_castps256_ps512(lo[s]), hi[s], 1));
    }
    sandwich(kBT, [&](int r, int s) { return _mm512_load_ps(d[r][s]); },
             [&](int i, const __m512 (&out)[kA]) {
#pragma GCC unroll 8
               for (int j = 0; j < kA; ++j)
                 _mm512_store_ps(v + (size_t)(i * kA + j) * ldxi + (size_t)c * ldc, out[j]);
             });
  }
}

template <int ACT>
ALWAYS_INLINE float activate_scalar(float v) {
  if (ACT == ACT_RELU) return v > 0.0f ? v : 0.0f;
  if (ACT == ACT_RELU6) return std::min(std::max(v, 0.0f), 6.0f);
  return v;
}

// Output transform + epilogue for channel oc of one tile vector (m: M[xi=0][oc][lane 0],
// ldm floats between xi).
template <int ACT, bool RES>
void transform_output(const Geometry &g, const TileVector &tv, const float *m, size_t ldm,
                      int oc, float bias, const float *residual, float *out) {
  const __m512 bv = _mm512_set1_ps(bias);
  const size_t plane = (size_t)g.OH * g.OW;
  alignas(64) float y[kM][kM][16];  // m = 2: the tile rows, stored lane by lane below
  const auto load = [&](int r, int s) { return _mm512_load_ps(m + (size_t)(r * kA + s) * ldm); };
  sandwich(kAT, load, [&](int i, const __m512 (&row)[kM]) {
    if constexpr (kM == 4) {
      // Transpose row i's 4 vectors in-register so that 128-bit chunk q of t[k] holds lane
      // 4q+k's 4 outputs, then store each lane's with one masked store.
      __m512 yr[kM];
      for (int j = 0; j < kM; ++j) yr[j] = _mm512_add_ps(row[j], bv);
      const __m512 a = _mm512_unpacklo_ps(yr[0], yr[1]), b = _mm512_unpackhi_ps(yr[0], yr[1]);
      const __m512 c = _mm512_unpacklo_ps(yr[2], yr[3]), d = _mm512_unpackhi_ps(yr[2], yr[3]);
      const __m512 t[4] = {_mm512_shuffle_ps(a, c, 0x44), _mm512_shuffle_ps(a, c, 0xEE),
                           _mm512_shuffle_ps(b, d, 0x44), _mm512_shuffle_ps(b, d, 0xEE)};
      for (int lane = 0; lane < 16; ++lane) {
        if (tv.out_offset[lane] < 0) break;
        if (i >= tv.out_rows[lane]) continue;
        const int q = lane / 4;
        const __mmask16 mask = (__mmask16)(tail_mask(tv.out_cols[lane]) << (4 * q));
        // lanes 4q..4q+3 of the vector land on this tile's row: shift the base back by 4q
        const size_t at = (size_t)tv.out_offset[lane] + (size_t)oc * plane + (size_t)i * g.OW;
        __m512 v = t[lane % 4];
        if (RES) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual + at - 4 * q));
        _mm512_mask_storeu_ps(out + at - 4 * q, mask, activate<ACT>(v));
      }
    } else {
#pragma GCC unroll 8
      for (int j = 0; j < kM; ++j) _mm512_store_ps(y[i][j], _mm512_add_ps(row[j], bv));
    }
  });
  if constexpr (kM == 4) return;
  for (int lane = 0; lane < 16; ++lane) {
    if (tv.out_offset[lane] < 0) break;
    const size_t base = (size_t)tv.out_offset[lane] + (size_t)oc * plane;
    for (int i = 0; i < tv.out_rows[lane]; ++i) {
      float *dst = out + base + (size_t)i * g.OW;
      const float *res = RES ? residual + base + (size_t)i * g.OW : nullptr;
      for (int j = 0; j < tv.out_cols[lane]; ++j) {
        float v = y[i][j][lane];
        if (RES) v += res[j];
        dst[j] = activate_scalar<ACT>(v);
      }
    }
  }
}

template <int ACT, bool RES>
void conv_winograd(const Geometry &g, const float *x, const float *wpack, const float *bias,
                   const float *residual, float *out) {
  const int T = g.tiles();
  const int oc_panels = (g.OC + MR - 1) / MR;
  const int tile_blocks = (T + TILE_BLOCK - 1) / TILE_BLOCK;
  // Too few tile blocks for the threads (fewer than TASKS_PER_THREAD each, so that dynamic
  // scheduling can even out a busy core): split the output channels too (each part repeats
  // its tile block's input transform).
  const int threads = omp_get_max_threads();
  int oc_parts = 1;
  while (tile_blocks * oc_parts < TASKS_PER_THREAD * threads && oc_parts * 2 * MR <= g.OC)
    oc_parts *= 2;
  const int oc_task = ((oc_panels + oc_parts - 1) / oc_parts) * MR;
  oc_parts = (g.OC + oc_task - 1) / oc_task;
  const int tasks = tile_blocks * oc_parts;
  // xi planes one cache line apart from a multiple of 4 KiB: the 36 streams the transforms
  // read and write at once then fall into different L1 sets
  const size_t ldv = (size_t)g.C * TILE_BLOCK + 16;
  const size_t ldm = (size_t)kOcBlock * TILE_BLOCK + 16;

#pragma omp parallel for schedule(dynamic, 1)
  for (int task = 0; task < tasks; ++task) {
    const int tb = task / oc_parts, part = task % oc_parts;
    const int t0 = tb * TILE_BLOCK;
    const int vecs = std::min(kVecs, (T - t0 + 15) / 16);
    const int strips = (vecs + NV - 1) / NV;
    float *v = thread_scratch((size_t)kXi * ldv, 0);
    float *m = thread_scratch((size_t)kXi * ldm, 1);
    TileVector tvs[kVecs];
    for (int k = 0; k < vecs; ++k) {
      locate(g, t0 + 16 * k, tvs[k]);
      transform_input(g, x, tvs[k], v + 16 * k, ldv);
    }
    // register strips past the valid vectors read zeros, never garbage
    for (int k = vecs; k < strips * NV; ++k)
      for (int xi = 0; xi < kXi; ++xi)
        for (int c = 0; c < g.C; ++c)
          _mm512_store_ps(v + xi * ldv + (size_t)c * TILE_BLOCK + 16 * k, _mm512_setzero_ps());

    const int oc_begin = part * oc_task, oc_end = std::min(g.OC, oc_begin + oc_task);
    for (int ob = oc_begin; ob < oc_end; ob += kOcBlock) {
      const int oc_count = std::min(kOcBlock, oc_end - ob);
      const int panels = (oc_count + MR - 1) / MR;
      for (int xi = 0; xi < kXi; ++xi) {
        const float *vx = v + xi * ldv;
        const float *ux = wpack + ((size_t)xi * oc_panels + ob / MR) * g.C * MR;
        float *mx = m + xi * ldm;
        for (int s = 0; s < strips; ++s) {
          for (int p = 0; p < panels; ++p) {
            __m512 acc[MR][NV];
            multiply_tile(g.C, ux + (size_t)p * g.C * MR, vx + 16 * NV * s, TILE_BLOCK, acc);
#pragma GCC unroll 32
            for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
              for (int j = 0; j < NV; ++j)
                _mm512_store_ps(mx + (size_t)(p * MR + i) * TILE_BLOCK + 16 * (NV * s + j),
                                acc[i][j]);
          }
        }
      }
      for (int i = 0; i < oc_count; ++i)
        for (int k = 0; k < vecs; ++k)
          transform_output<ACT, RES>(g, tvs[k], m + (size_t)i * TILE_BLOCK + 16 * k, ldm,
                                     ob + i, bias[ob + i], residual, out);
    }
  }
}

}  // namespace

// params: x, packed_weight, bias, geometry, [residual], out
C_EXPORT_INT Conv2dWinograd(int nparam, void **params, int *ndims, int64_t **shapes,
                         const char **dtypes, void * /*stream*/, void * /*extra*/) {
  return run_conv_call<Geometry>(
      nparam, params, ndims, shapes, dtypes, [](const Geometry &g) { return g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 ? 0 : 4; },
      [](const Geometry &g, const ConvCall &c, auto act, auto residual) {
        conv_winograd<act.value, residual.value>(g, c.x, c.w, c.b, c.residual, c.out);
      });
}

// The layout this library was compiled with, for the weight packing in Python (ctypes).
C_EXPORT_INT Conv2dWinogradRegisterRows() { return MR; }
C_EXPORT_INT Conv2dWinogradTileSize() { return TILE_M; }
