// Device code shared by the kernel templates, written against the prelude's names only (so the host
// emulator runs it too). Reductions are deterministic: every thread of a warp or block gets the same,
// bitwise, result, whatever the block size, because the partial sums are combined in one fixed order.

KFN int warp_sum_i(int v) {
  for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
  return v;
}
KFN float warp_sum_f(float v) {
  for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
  return v;
}
KFN double warp_sum_d(double v) {
  for (int m = 16; m > 0; m >>= 1) v += shfl_xor(v, m);
  return v;
}
KFN double warp_max_d(double v) {
  for (int m = 16; m > 0; m >>= 1) v = fmax_d(v, shfl_xor(v, m));
  return v;
}

// Block-wide sum or max: `red` is __shared__ scratch of 32 entries; every thread returns the result.
KFN double block_sum_d(double v, double* red) {
  v = warp_sum_d(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) r += red[w];
  __syncthreads();
  return r;
}
KFN double block_max_d(double v, double* red) {
  v = warp_max_d(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  double r = red[0];
  for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w) r = fmax_d(r, red[w]);
  __syncthreads();
  return r;
}
KFN int block_sum_i(int v, int* red) {
  v = warp_sum_i(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  int r = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) r += red[w];
  __syncthreads();
  return r;
}

// The RMSNorm scale of one row as codegen/ref computes it: the sum of squares in double (each product is
// exact), 1 / sqrt(float(mean) + eps) in f32. With ADD the row is x + x_add, stored to x_sum when given.
template <bool ADD>
KFN float rms_scale(const float* x, const float* x_add, float* x_sum, int K, float eps, double* red) {
  double ss = 0;
  for (int i = threadIdx.x; i < K; i += blockDim.x) {
    const float v = ADD ? x[i] + x_add[i] : x[i];
    if (ADD && x_sum) x_sum[i] = v;
    ss += static_cast<double>(v) * static_cast<double>(v);
  }
  ss = block_sum_d(ss, red);
  return 1.0f / sqrtf(static_cast<float>(ss / K) + eps);
}

// The quantizing norms run with 256 threads per block and keep a row in registers: thread i holds
// elements i, i + 256, ... (PT of them).
template <int K>
struct RowSlice {
  static constexpr int PT = (K + 255) / 256;
};

// This thread's elements of the norm weight, loaded once (before grid_dependency_wait: weights are
// never written by a kernel).
template <int K>
KFN void load_row_slice(const float* w, float (&out)[RowSlice<K>::PT]) {
#pragma unroll
  for (int j = 0; j < RowSlice<K>::PT; ++j) {
    const int i = threadIdx.x + 256 * j;
    out[j] = w != nullptr && i < K ? w[i] : 0.0f;
  }
}

// One token row [K] through (ADD: x + x_add ->) (NORM: rmsnorm with weight w, this thread's slice ->)
// BitNet's activation quantization (spec 4.9): absmax in double from 1e-5, a = float(127 / absmax),
// q = clamp(rint(y * a)), a NaN giving 0. Writes q[0..K), the multiplier a and the sum of the q (the
// GEMMs' zero-point term); with ADD, x + x_add to x_sum when given. The same arithmetic as codegen/ref,
// so the bytes are identical; every one of the block's 256 threads calls it.
template <int K, bool ADD, bool NORM>
KFN void norm_quant_row(const float* x, const float* x_add, const float (&w)[RowSlice<K>::PT], float eps, float* x_sum, i8* q,
                        float* mult_out, int* sum_out, double* red_d, int* red_i) {
  constexpr int PT = RowSlice<K>::PT;
  float y[PT];
  double ss = 0;
#pragma unroll
  for (int j = 0; j < PT; ++j) {
    const int i = threadIdx.x + 256 * j;
    y[j] = 0.0f;
    if (i < K) {
      y[j] = ADD ? x[i] + x_add[i] : x[i];
      if (ADD && x_sum) x_sum[i] = y[j];
      ss += static_cast<double>(y[j]) * static_cast<double>(y[j]);
    }
  }
  if (NORM) {
    ss = block_sum_d(ss, red_d);
    const float scale = 1.0f / sqrtf(static_cast<float>(ss / K) + eps);
#pragma unroll
    for (int j = 0; j < PT; ++j) y[j] = y[j] * scale * w[j];
  }
  double amax = 1e-5;
#pragma unroll
  for (int j = 0; j < PT; ++j) amax = fmax_d(amax, static_cast<double>(fabsf(y[j])));  // padding elements are 0
  amax = block_max_d(amax, red_d);
  const float a = static_cast<float>(127.0 / amax);
  int sum = 0;
#pragma unroll
  for (int j = 0; j < PT; ++j) {
    const int i = threadIdx.x + 256 * j;
    if (i < K) {
      const float r = rintf(y[j] * a);
      const int qi = r != r ? 0 : static_cast<int>(fmin_f(fmax_f(r, -128.0f), 127.0f));
      q[i] = static_cast<i8>(qi);
      sum += qi;
    }
  }
  sum = block_sum_i(sum, red_i);
  if (threadIdx.x == 0) {
    *mult_out = a;
    *sum_out = sum;
  }
}
