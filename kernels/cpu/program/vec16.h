// Vec16: 16 floats as one AVX-512 register, or as two AVX2 registers on a CPU without AVX-512
// (AMD Zen 3, many laptops), with the few operations the runtime's own kernels (winograd.h)
// use. With AVX-512 each function is exactly the intrinsic it wraps; the AVX2 form needs FMA.
// `load`/`store` want 64-byte aligned addresses with AVX-512 (32 with AVX2), the `u` forms none;
// a Mask16 (lanes) selects the first lanes of a partial vector. v_exp: Cephes' expf polynomial
// (relative error ~1e-7 on [-87, 88], inputs clamped there); v_reciprocal ~3e-7 (finite,
// nonzero inputs).
#pragma once
#include <immintrin.h>

#include <algorithm>

namespace {

#define VEC16_INLINE inline __attribute__((always_inline))

#if defined(__AVX512F__)
using Vec16 = __m512;
using Mask16 = __mmask16;

VEC16_INLINE Vec16 v_zero() { return _mm512_setzero_ps(); }
VEC16_INLINE Vec16 v_set1(float x) { return _mm512_set1_ps(x); }
VEC16_INLINE Vec16 v_load(const float *p) { return _mm512_load_ps(p); }
VEC16_INLINE Vec16 v_loadu(const float *p) { return _mm512_loadu_ps(p); }
VEC16_INLINE void v_store(float *p, Vec16 a) { _mm512_store_ps(p, a); }
VEC16_INLINE void v_storeu(float *p, Vec16 a) { _mm512_storeu_ps(p, a); }
VEC16_INLINE Vec16 v_add(Vec16 a, Vec16 b) { return _mm512_add_ps(a, b); }
VEC16_INLINE Vec16 v_sub(Vec16 a, Vec16 b) { return _mm512_sub_ps(a, b); }
VEC16_INLINE Vec16 v_mul(Vec16 a, Vec16 b) { return _mm512_mul_ps(a, b); }
VEC16_INLINE Vec16 v_max(Vec16 a, Vec16 b) { return _mm512_max_ps(a, b); }
VEC16_INLINE Vec16 v_min(Vec16 a, Vec16 b) { return _mm512_min_ps(a, b); }
VEC16_INLINE Vec16 v_fmadd(Vec16 a, Vec16 b, Vec16 c) { return _mm512_fmadd_ps(a, b, c); }
VEC16_INLINE Vec16 v_fnmadd(Vec16 a, Vec16 b, Vec16 c) { return _mm512_fnmadd_ps(a, b, c); }
VEC16_INLINE Vec16 v_rcp_estimate(Vec16 a) { return _mm512_rcp14_ps(a); }  // 2^-14 relative
VEC16_INLINE Vec16 v_round(Vec16 a) {
  return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
VEC16_INLINE Vec16 v_times_pow2(Vec16 a, Vec16 n) { return _mm512_scalef_ps(a, n); }  // a * 2^n

VEC16_INLINE Mask16 lanes(int remaining) {
  return remaining >= 16 ? (Mask16)0xFFFF : (Mask16)((1u << std::max(remaining, 0)) - 1u);
}
VEC16_INLINE Vec16 v_maskz_loadu(Mask16 mask, const float *p) {
  return _mm512_maskz_loadu_ps(mask, p);
}
VEC16_INLINE void v_mask_storeu(float *p, Mask16 mask, Vec16 a) {
  _mm512_mask_storeu_ps(p, mask, a);
}

#elif defined(__AVX2__) && defined(__FMA__)
struct Vec16 {
  __m256 lo, hi;
};
struct Mask16 {
  int count;  // the first `count` lanes (0 to 16)
};

VEC16_INLINE Vec16 v_zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
VEC16_INLINE Vec16 v_set1(float x) { return {_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
VEC16_INLINE Vec16 v_load(const float *p) { return {_mm256_load_ps(p), _mm256_load_ps(p + 8)}; }
VEC16_INLINE Vec16 v_loadu(const float *p) {
  return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
VEC16_INLINE void v_store(float *p, Vec16 a) {
  _mm256_store_ps(p, a.lo);
  _mm256_store_ps(p + 8, a.hi);
}
VEC16_INLINE void v_storeu(float *p, Vec16 a) {
  _mm256_storeu_ps(p, a.lo);
  _mm256_storeu_ps(p + 8, a.hi);
}
#define VEC16_BINARY(name, intrinsic) \
  VEC16_INLINE Vec16 name(Vec16 a, Vec16 b) { return {intrinsic(a.lo, b.lo), intrinsic(a.hi, b.hi)}; }
VEC16_BINARY(v_add, _mm256_add_ps)
VEC16_BINARY(v_sub, _mm256_sub_ps)
VEC16_BINARY(v_mul, _mm256_mul_ps)
VEC16_BINARY(v_max, _mm256_max_ps)
VEC16_BINARY(v_min, _mm256_min_ps)
#undef VEC16_BINARY
VEC16_INLINE Vec16 v_fmadd(Vec16 a, Vec16 b, Vec16 c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
VEC16_INLINE Vec16 v_fnmadd(Vec16 a, Vec16 b, Vec16 c) {
  return {_mm256_fnmadd_ps(a.lo, b.lo, c.lo), _mm256_fnmadd_ps(a.hi, b.hi, c.hi)};
}
VEC16_INLINE Vec16 v_rcp_estimate(Vec16 a) {  // 1.5 * 2^-12 relative
  return {_mm256_rcp_ps(a.lo), _mm256_rcp_ps(a.hi)};
}
VEC16_INLINE Vec16 v_round(Vec16 a) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  return {_mm256_round_ps(a.lo, kNearest), _mm256_round_ps(a.hi, kNearest)};
}
VEC16_INLINE __m256 pow2_times(__m256 a, __m256 n) {  // n integral, in [-126, 127]
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n),
                                                          _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(a, _mm256_castsi256_ps(bits));
}
VEC16_INLINE Vec16 v_times_pow2(Vec16 a, Vec16 n) {
  return {pow2_times(a.lo, n.lo), pow2_times(a.hi, n.hi)};
}

// A Mask16 of AVX2 is the count of its first lanes: the halves it fills are plain loads and
// stores, only a partial half is masked (AVX2's masked stores cost AMD Zen tens of cycles
// each, so a mask of all lanes must not become one).
VEC16_INLINE Mask16 lanes(int remaining) {  // lane i is on where i < remaining
  return {std::min(std::max(remaining, 0), 16)};
}
VEC16_INLINE __m256i half_lanes(int count) {  // lane i of an 8-lane half is on where i < count
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
VEC16_INLINE __m256 half_loadu(const float *p, int count) {
  return count >= 8 ? _mm256_loadu_ps(p)
                    : count > 0 ? _mm256_maskload_ps(p, half_lanes(count)) : _mm256_setzero_ps();
}
VEC16_INLINE void half_storeu(float *p, int count, __m256 a) {
  if (count >= 8)
    _mm256_storeu_ps(p, a);
  else if (count > 0)
    _mm256_maskstore_ps(p, half_lanes(count), a);
}
VEC16_INLINE Vec16 v_maskz_loadu(Mask16 mask, const float *p) {
  return {half_loadu(p, mask.count), half_loadu(p + 8, mask.count - 8)};
}
VEC16_INLINE void v_mask_storeu(float *p, Mask16 mask, Vec16 a) {
  half_storeu(p, mask.count, a.lo);
  half_storeu(p + 8, mask.count - 8, a.hi);
}
#endif

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
VEC16_INLINE Vec16 v_exp(Vec16 x) {
  x = v_max(v_min(x, v_set1(88.3762626647949f)), v_set1(-87.3365478515625f));
  const Vec16 n = v_round(v_mul(x, v_set1(1.44269504088896341f)));
  Vec16 r = v_fnmadd(n, v_set1(0.693359375f), x);
  r = v_fnmadd(n, v_set1(-2.12194440e-4f), r);
  Vec16 p = v_set1(1.9875691500e-4f);
  p = v_fmadd(p, r, v_set1(1.3981999507e-3f));
  p = v_fmadd(p, r, v_set1(8.3334519073e-3f));
  p = v_fmadd(p, r, v_set1(4.1665795894e-2f));
  p = v_fmadd(p, r, v_set1(1.6666665459e-1f));
  p = v_fmadd(p, r, v_set1(5.0000001201e-1f));
  p = v_fmadd(p, v_mul(r, r), v_add(r, v_set1(1.f)));
  return v_times_pow2(p, n);
}

VEC16_INLINE Vec16 v_reciprocal(Vec16 a) {  // the estimate and a Newton step: ~2^-22 relative
  const Vec16 r = v_rcp_estimate(a);
  return v_mul(r, v_fnmadd(a, r, v_set1(2.f)));
}
#endif

#undef VEC16_INLINE

}  // namespace
