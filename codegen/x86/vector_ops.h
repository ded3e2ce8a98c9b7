// The x86 backend's element-wise and reduction kernels, AVX2 + FMA + F16C (this translation unit is built
// with those enabled; the backend only calls it after checking the CPU). Shapes use the IR's letters.
// Each function matches codegen/ref where the ref result is exact (quantization rounds half to even with
// the same f32 operations; norms sum squares in double) and states its tolerance where it is not.
#pragma once

#include <cstdint>

namespace bitnet::x86 {

// y = x / sqrt(mean(x^2) + eps) * w over n features; the sum of squares in double as ref does.
void rmsnorm_row(const float* x, int64_t n, const float* w, float eps, float* y);

// BitNet per-token absmax quantization of x [K] to int8 (round half to even), bit-identical to ref.
// Writes q[0..K) and returns the multiplier a = 127 / max|x|; *sum gets sum(q).
float quantize_row_int8(const float* x, int64_t k, int8_t* q, int32_t* sum);

int32_t sum_int8(const int8_t* q, int64_t k);

// dot(w, x) with w in IEEE half; f32 FMA accumulation (within 1e-6 relative of ref's double sum).
float dot_f16(const uint16_t* w, const float* x, int64_t k);
// y[t] = dot(w, x[t]) for T token rows x [T, K] (ldx floats apart): the row of w is read once.
void dot_f16_rows(const uint16_t* w, const float* x, int64_t ldx, int64_t T, int64_t k, float* y, int64_t ldy);

// y[t] = scale * dot(q, x[t]) for an int8 weight row q [K] (the opt-in int8 LM head): half the bytes of
// f16, exact int8 -> f32 conversion, f32 FMA accumulation.
void dot_i8_rows(const int8_t* q, float scale, const float* x, int64_t ldx, int64_t T, int64_t k, float* y, int64_t ldy);

void f16_to_f32_row(const uint16_t* x, int64_t n, float* y);
void f32_to_f16_row(const float* x, int64_t n, uint16_t* y);

// Causal attention of one query head q [d] over `n` cached positions (K and V rows in half or f32,
// `stride` elements apart): softmax(q k^T / sqrt(d)) v into out [d]. `scores` holds n floats of scratch.
// f32 arithmetic with a vectorised exp (max relative error ~2e-7); within 1e-5 of ref's doubles.
void attend_head(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out);
void attend_head(const float* q, const float* k, const float* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out);

// y = act(g) * u over n features, act relu2 or silu.
void glu_row(const float* g, const float* u, int64_t n, bool relu2, float* y);

}  // namespace bitnet::x86
