#include "codegen/x86/vector_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <immintrin.h>

// Everything defined below may use AVX2, FMA and F16C; nothing here runs before the backend has checked
// the CPU. A pragma rather than -mavx2 on the file, so inline library code shared with other files is
// never compiled for AVX2 by accident.
#pragma GCC target("avx2,fma,f16c")

namespace bitnet::x86 {
namespace {

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
__m256 load8(const uint16_t* p) { return load_f16(p); }
__m256 load8(const float* p) { return _mm256_loadu_ps(p); }
float to_float(uint16_t h) { return _cvtsh_ss(h); }
float to_float(float f) { return f; }

// e^x for x <= 0 (softmax arguments): 2^(x log2 e) split into an integer power and a degree-6 polynomial
// of the fraction; below -87 the result flushes to 0 as expf would underflow.
__m256 exp_nonpositive(__m256 x) {
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
  __m256 t = _mm256_mul_ps(x, log2e);
  __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // f = x - n ln2 in two parts for accuracy.
  __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
  f = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), f);
  __m256 p = _mm256_set1_ps(1.0f / 720);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

}  // namespace

void rmsnorm_row(const float* x, int64_t n, const float* w, float eps, float* y) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
    s0 = _mm256_fmadd_pd(lo, lo, s0);
    s1 = _mm256_fmadd_pd(hi, hi, s1);
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
  const __m256 vs = _mm256_set1_ps(scale);
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(w + i)));
  for (; i < n; ++i) y[i] = x[i] * scale * w[i];
}

float quantize_row_int8(const float* x, int64_t k, int8_t* q, int32_t* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  float amax = hmax(vmax);
  for (; i < k; ++i) amax = std::max(amax, std::fabs(x[i]));
  // As ref: the floor 1e-5 is a double, and 127 / amax is divided in double and rounded to f32 once.
  const float a = static_cast<float>(127.0 / std::max(1e-5, static_cast<double>(amax)));
  const __m256 va = _mm256_set1_ps(a), lo = _mm256_set1_ps(-128.0f), hi = _mm256_set1_ps(127.0f);
  __m256i total = _mm256_setzero_si256();
  for (i = 0; i + 32 <= k; i += 32) {
    __m256i part[4];
    for (int j = 0; j < 4; ++j) {
      __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), va), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      r = _mm256_and_ps(_mm256_min_ps(_mm256_max_ps(r, lo), hi), _mm256_cmp_ps(r, r, _CMP_ORD_Q));  // NaN -> 0 as ref
      part[j] = _mm256_cvtps_epi32(r);
    }
    __m256i p01 = _mm256_packs_epi32(part[0], part[1]), p23 = _mm256_packs_epi32(part[2], part[3]);
    __m256i bytes = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(p01, p23), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), bytes);
    total = _mm256_add_epi32(total, _mm256_madd_epi16(_mm256_add_epi16(p01, p23), _mm256_set1_epi16(1)));
  }
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) s += lanes[j];
  for (; i < k; ++i) {
    float r = std::nearbyint(x[i] * a);
    q[i] = std::isnan(r) ? 0 : static_cast<int8_t>(std::clamp(r, -128.0f, 127.0f));
    s += q[i];
  }
  *sum = s;
  return a;
}

int32_t sum_int8(const int8_t* q, int64_t k) {
  __m256i total = _mm256_setzero_si256();
  int64_t i = 0;
  for (; i + 32 <= k; i += 32) {
    __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i));
    __m256i w = _mm256_maddubs_epi16(_mm256_set1_epi8(1), v);  // pairs, int16
    total = _mm256_add_epi32(total, _mm256_madd_epi16(w, _mm256_set1_epi16(1)));
  }
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
  int32_t s = 0;
  for (int j = 0; j < 8; ++j) s += lanes[j];
  for (; i < k; ++i) s += q[i];
  return s;
}

float dot_f16(const uint16_t* w, const float* x, int64_t k) {
  float y;
  dot_f16_rows(w, x, k, 1, k, &y, 1);
  return y;
}

void dot_f16_rows(const uint16_t* w, const float* x, int64_t ldx, int64_t T, int64_t k, float* y, int64_t ldy) {
  constexpr int kTile = 4;
  for (int64_t t0 = 0; t0 < T; t0 += kTile) {
    const int tile = static_cast<int>(std::min<int64_t>(kTile, T - t0));
    __m256 acc[kTile][2];
    for (auto& a : acc) a[0] = a[1] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
      __m256 w0 = load_f16(w + i), w1 = load_f16(w + i + 8);
      for (int t = 0; t < tile; ++t) {
        const float* xt = x + (t0 + t) * ldx + i;
        acc[t][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt), acc[t][0]);
        acc[t][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + 8), acc[t][1]);
      }
    }
    for (int t = 0; t < tile; ++t) {
      float s = hsum(_mm256_add_ps(acc[t][0], acc[t][1]));
      for (int64_t j = i; j < k; ++j) s += _cvtsh_ss(w[j]) * x[(t0 + t) * ldx + j];
      y[(t0 + t) * ldy] = s;
    }
  }
}

void dot_i8_rows(const int8_t* q, float scale, const float* x, int64_t ldx, int64_t T, int64_t k, float* y, int64_t ldy) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * ldx;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i));
      const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
      const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(bytes, 8)));
      acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xt + i), acc0);
      acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xt + i + 8), acc1);
    }
    float s = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < k; ++i) s += q[i] * xt[i];
    y[t * ldy] = s * scale;
  }
}

void f16_to_f32_row(const uint16_t* x, int64_t n, float* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16(x + i));
  for (; i < n; ++i) y[i] = _cvtsh_ss(x[i]);
}

void f32_to_f16_row(const float* x, int64_t n, uint16_t* y) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = _cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT);
}

namespace {
template <class Kv>
void attend_head_impl(const float* q, const Kv* k, const Kv* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out) {
  const float inv_sqrt_d = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  float running_max = -INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const Kv* kj = k + j * stride;
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int64_t i = 0;
    for (; i + 32 <= d; i += 32) {  // four independent FMA chains: the latency, not the loads, bounds one chain
      for (int c = 0; c < 4; ++c) acc[c] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i + 8 * c), load8(kj + i + 8 * c), acc[c]);
    }
    for (; i + 8 <= d; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), load8(kj + i), acc[0]);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
    for (; i < d; ++i) s += q[i] * to_float(kj[i]);
    scores[j] = s * inv_sqrt_d;
    running_max = std::max(running_max, scores[j]);
  }
  const __m256 vmax = _mm256_set1_ps(running_max);
  __m256 vsum = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(scores + j), vmax));
    _mm256_storeu_ps(scores + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum(vsum);
  for (; j < n; ++j) {
    scores[j] = std::exp(scores[j] - running_max);
    sum += scores[j];
  }
  // out = sum_j p_j v_j, 32 features at a time with the accumulators in registers: one pass over the
  // cached rows per 32 features, no loads or stores of `out` inside the loop over positions.
  int64_t i0 = 0;
  for (; i0 + 32 <= d; i0 += 32) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (j = 0; j < n; ++j) {
      const __m256 p = _mm256_set1_ps(scores[j]);
      const Kv* vj = v + j * stride + i0;
      for (int c = 0; c < 4; ++c) acc[c] = _mm256_fmadd_ps(p, load8(vj + 8 * c), acc[c]);
    }
    for (int c = 0; c < 4; ++c) _mm256_storeu_ps(out + i0 + 8 * c, acc[c]);
  }
  for (; i0 < d; ++i0) {
    float acc = 0;
    for (j = 0; j < n; ++j) acc += scores[j] * to_float(v[j * stride + i0]);
    out[i0] = acc;
  }
  const float inv = 1.0f / sum;
  for (int64_t i = 0; i < d; ++i) out[i] *= inv;
}
}  // namespace

void attend_head(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out) {
  attend_head_impl(q, k, v, stride, n, d, scores, out);
}
void attend_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out) {
  attend_head_impl(q, k, v, stride, n, d, scores, out);
}

void glu_row(const float* g, const float* u, int64_t n, bool relu2, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = g[i];
    const float a = relu2 ? std::max(x, 0.0f) * std::max(x, 0.0f) : x / (1.0f + std::exp(-x));
    y[i] = a * u[i];
  }
}

}  // namespace bitnet::x86
