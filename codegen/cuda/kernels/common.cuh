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
KFN float warp_max_f(float v) {
  for (int m = 16; m > 0; m >>= 1) v = fmax_f(v, shfl_xor(v, m));
  return v;
}

// Online softmax: the factor that takes a state kept against max m_part to max m (-inf: an empty state).
KFN float rescale(float m_part, float m) { return m_part == -KINF ? 0.0f : expf(m_part - m); }

// f32 values for the f16 tensor cores without losing f32 precision: x = f16(x) + f16_tail(x) to ~22 bits,
// each half multiplied separately. pack_f16 makes one mma register (the lower column in the low bits).
KFN float f16_tail(float x) { return x - f16_to_f32(f32_to_f16(x)); }
KFN u32 pack_f16(float lo_col, float hi_col) {
  return static_cast<u32>(f32_to_f16(lo_col)) | (static_cast<u32>(f32_to_f16(hi_col)) << 16);
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

// Sums and maxima over the GT threads (GT / 32 warps) of one group of a block; every thread of the
// group gets the result. `red` is __shared__ scratch of blockDim / 32 entries used by this one
// reduction (a kernel gives each reduction its own, so one barrier suffices). All threads of the block
// must call it (it synchronises the block).
template <int GT>
KFN double group_sum_d(double v, double* red) {
  v = warp_sum_d(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  const int first = (threadIdx.x / GT) * (GT / 32);
  double r = 0;
  for (int w = 0; w < GT / 32; ++w) r += red[first + w];
  return r;
}
template <int GT>
KFN float group_max_f(float v, float* red) {
  v = warp_max_f(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  const int first = (threadIdx.x / GT) * (GT / 32);
  float r = red[first];
  for (int w = 1; w < GT / 32; ++w) r = fmax_f(r, red[first + w]);
  return r;
}
template <int GT>
KFN int group_sum_i(int v, int* red) {
  v = warp_sum_i(v);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  const int first = (threadIdx.x / GT) * (GT / 32);
  int r = 0;
  for (int w = 0; w < GT / 32; ++w) r += red[first + w];
  return r;
}

struct NormScratch {  // __shared__, one entry per warp for each of the three reductions
  double ss[32];
  float amax[32];
  int qsum[32];
};

// BitNet's activation multiplier from a row's largest |y| (NaNs ignored): 127 / max(absmax, 1e-5) in
// double, as ref. The max itself is taken in f32: widening is exact and monotonic, so it is the same max.
KFN float quant_multiplier(float absmax) { return static_cast<float>(127.0 / fmax_d(1e-5, static_cast<double>(absmax))); }

// One token row [K] through (ADD: x + x_add ->) (NORM: rmsnorm with weight w ->) BitNet's activation
// quantization (spec 4.9): the sum of squares in double (exact products), scale = 1 / sqrt(float(mean) +
// eps), y = v * scale * w in f32, a = quant_multiplier(absmax), q = clamp(rint(y *
// a)), a NaN giving 0 -- codegen/ref's arithmetic, so the bytes are ref's. Computed by a group of GT
// threads (the block has 256 / GT groups, one token each, all reducing at once); the row is read three
// times (the second and third from L1). Writes q[0..K), the multiplier a and the sum of the q (the GEMMs'
// zero-point term); with ADD, x + x_add to x_sum when given. Every thread of the block calls it.
template <int K, int GT, bool ADD, bool NORM>
KFN void norm_quant_row(const float* x, const float* x_add, const float* w, float eps, float* x_sum, i8* q, float* mult_out, int* sum_out,
                        NormScratch& red) {
  const int rank = threadIdx.x % GT;
  float scale = 1.0f;
  if (NORM) {
    double ss = 0;
    for (int i = rank; i < K; i += GT) {
      const float v = ADD ? x[i] + x_add[i] : x[i];
      if (ADD && x_sum) x_sum[i] = v;
      ss += static_cast<double>(v) * static_cast<double>(v);
    }
    ss = group_sum_d<GT>(ss, red.ss);
    scale = 1.0f / sqrtf(static_cast<float>(ss / K) + eps);
  }
  float amax = 0.0f;
  for (int i = rank; i < K; i += GT) {
    const float v = ADD ? x[i] + x_add[i] : x[i];
    const float y = NORM ? v * scale * w[i] : v;
    amax = fmax_f(amax, fabsf(y));
  }
  const float a = quant_multiplier(group_max_f<GT>(amax, red.amax));
  int sum = 0;
  for (int i = rank; i < K; i += GT) {
    const float v = ADD ? x[i] + x_add[i] : x[i];
    const float y = NORM ? v * scale * w[i] : v;
    const float r = rintf(y * a);
    const int qi = r != r ? 0 : static_cast<int>(fmin_f(fmax_f(r, -128.0f), 127.0f));
    q[i] = static_cast<i8>(qi);
    sum += qi;
  }
  sum = group_sum_i<GT>(sum, red.qsum);
  if (rank == 0) {
    *mult_out = a;
    *sum_out = sum;
  }
}

// A norm weight [K] as norm_quant_regs' threads use it (element i + 256 j in thread i): a weight, so a
// kernel loads it early (before waiting for its row). Held in registers even for the FFN's sub-norm (27
// per thread): reading it at use instead was measured 4 to 6 us slower per down GEMV on the H100, more
// than the second wave of blocks its registers cost (141: one block of the one-token GEMV per SM).
template <int K>
struct NormWeights {
  float w[(K + 255) / 256];
};
template <int K, bool NORM>
KFN void load_norm_weights(const float* w, NormWeights<K>& nw) {
#pragma unroll
  for (int j = 0; j < (K + 255) / 256; ++j) {
    const int i = threadIdx.x + 256 * j;
    nw.w[j] = NORM && i < K ? w[i] : 0.0f;
  }
}

// norm_quant_row for one token row and the whole block (256 threads), the row held in registers: read
// once (bypassing L1: in the persistent step kernel the row was written by other blocks), then reduced
// three times. Thread i takes elements i, i + 256, ... in that order and the reductions are group_*<256>,
// so the bytes are exactly norm_quant_row<K, 256, ...>'s. Without QSUM the sum of the q is left to the
// caller (*sum_out untouched): one block reduction fewer.
template <int K, bool ADD, bool NORM, bool QSUM = true>
KFN void norm_quant_regs(const float* x, const float* x_add, const NormWeights<K>& nw, float eps, float* x_sum, i8* q, float* mult_out, int* sum_out,
                         NormScratch& red) {
  constexpr int PER = (K + 255) / 256;
  float v[PER];
  double ss = 0;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int i = threadIdx.x + 256 * j;
    v[j] = 0.0f;
    if (i < K) v[j] = ADD ? load_bypass_l1(x + i) + load_bypass_l1(x_add + i) : load_bypass_l1(x + i);
  }
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int i = threadIdx.x + 256 * j;
    if (i >= K) continue;
    if (ADD && x_sum) x_sum[i] = v[j];
    ss += static_cast<double>(v[j]) * static_cast<double>(v[j]);
  }
  float scale = 1.0f;
  if (NORM) {
    ss = group_sum_d<256>(ss, red.ss);
    scale = 1.0f / sqrtf(static_cast<float>(ss / K) + eps);
  }
  float amax = 0.0f;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int i = threadIdx.x + 256 * j;
    if (i >= K) continue;
    v[j] = NORM ? v[j] * scale * nw.w[j] : v[j];
    amax = fmax_f(amax, fabsf(v[j]));
  }
  const float a = quant_multiplier(group_max_f<256>(amax, red.amax));
  int sum = 0;
#pragma unroll
  for (int j = 0; j < PER; ++j) {
    const int i = threadIdx.x + 256 * j;
    if (i >= K) continue;
    const float r = rintf(v[j] * a);
    const int qi = r != r ? 0 : static_cast<int>(fmin_f(fmax_f(r, -128.0f), 127.0f));
    q[i] = static_cast<i8>(qi);
    sum += qi;
  }
  if (QSUM) sum = group_sum_i<256>(sum, red.qsum);
  if (threadIdx.x == 0) {
    *mult_out = a;
    if (QSUM) *sum_out = sum;
  }
}

// The persistent step kernel's barrier across its blocks (all co-resident: a cooperative launch). A
// phase loads what does not depend on earlier phases (weights), then waits, computes, and arrives; the
// counter only grows (the executor zeroes it before each launch), so the n-th wait is for n * blocks
// arrivals. Arrival: the block's threads are done (__syncthreads), thread 0 makes their writes visible
// at GPU scope (fence) and counts itself. Waiting: thread 0 reads the count with acquire semantics (the
// other blocks' writes are visible to it after), the block follows it through __syncthreads.
// With `release`, thread 0 counts itself with a release reduction instead of a fence and a plain
// atomic, and polls with relaxed loads instead of acquire loads: an acquire load also invalidates the
// SM's L1 and waits for the thread's loads in flight (the next phase's weights: microseconds), and no
// phase needs it, because every read of data another phase wrote bypasses L1 (load_bypass_l1).
// Profiling (`times`): [2n] when block 0 passes the n-th wait, [2n + 1] the last arrival of phase n.
// A wait first asks L2 for the block's share of `prefetch` (the next phase's weights): after the
// phase's own loads, so those go first.
struct GridBarrier {
  u32* count;
  u32 blocks;
  u32 arrived;  // this block's arrivals so far
  unsigned long long* times;
  u32 release;
  const char* prefetch;
  u32 prefetch_bytes;
};
KFN void grid_arrive(GridBarrier& b) {
  __syncthreads();
  if (threadIdx.x == 0) {
    if (b.times) atomic_max_u64(&b.times[2 * b.arrived + 1], global_timer_ns());
    if (b.release) {
      add_release(b.count, 1u);
    } else {
      memory_fence();
      atomic_add(b.count, 1u);
    }
  }
  ++b.arrived;
}
KFN void grid_wait(GridBarrier& b) {
  const u32 share = (b.prefetch_bytes / b.blocks + 127u) / 128u * 128u;
  for (u32 at = blockIdx.x * share + threadIdx.x * 128u; at < (blockIdx.x + 1) * share && at < b.prefetch_bytes; at += blockDim.x * 128u)
    prefetch_l2(b.prefetch + at);
  b.prefetch_bytes = 0;
  if (threadIdx.x == 0) {
    const u32 target = b.arrived * b.blocks;
    for (u32 spins = 0; (b.release ? load_relaxed(b.count) : load_acquire(b.count)) < target; ++spins) {
      if (spins == (1u << 24)) grid_barrier_stuck();  // seconds: a bug, not a wait
      spin_pause();
    }
    if (b.times && blockIdx.x == 0) b.times[2 * b.arrived] = global_timer_ns();
  }
  __syncthreads();
}
