// The host-emulator flavor of prelude_device.cuh: the same names, implemented in plain C++ for kernels
// compiled by the host compiler and run by codegen/cuda/emu/ (every CUDA thread a fiber, blocks one after
// another, or all at once for a cooperative launch). Only for tests: it checks the kernels' logic,
// indexing and synchronisation, not their speed.
#include <math.h>

#include <cmath>
#include <cstring>
#include <limits>

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

static const EmuHooks* emu_hooks = nullptr;
extern "C" void bitnetc_emu_bind(const EmuHooks* hooks) { emu_hooks = hooks; }

#define KFN static inline
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define threadIdx (emu_hooks->current()->thread_idx)
#define blockIdx (emu_hooks->current()->block_idx)
#define blockDim (emu_hooks->current()->block_dim)
#define gridDim (emu_hooks->current()->grid_dim)
#define KINF std::numeric_limits<float>::infinity()
#define KERNEL_ENTRY(name, Args)                                                                   \
  extern "C" void bitnetc_emu_##name(void** params) { name(*static_cast<const Args*>(params[0])); } \
  extern "C" unsigned long bitnetc_emu_args_##name() { return sizeof(Args); }

struct alignas(16) uint4 {
  u32 x, y, z, w;
};
struct alignas(8) uint2 {
  u32 x, y;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
static inline uint4 make_uint4(u32 x, u32 y, u32 z, u32 w) { return uint4{x, y, z, w}; }
static inline float2 make_float2(float x, float y) { return float2{x, y}; }

static inline void __syncthreads() { emu_hooks->sync_block(); }

static inline float f16_to_f32(u16 h) {
  const u32 sign = (h >> 15) & 1, exp = (h >> 10) & 31, man = h & 1023;
  float f;
  if (exp == 0) {
    f = std::ldexp(static_cast<float>(man), -24);
  } else if (exp == 31) {
    f = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    f = std::ldexp(static_cast<float>(man | 1024), static_cast<int>(exp) - 25);
  }
  return sign ? -f : f;
}
static inline u16 f32_to_f16(float f) {  // round to nearest even
  u32 x;
  std::memcpy(&x, &f, 4);
  const u32 sign = (x >> 16) & 0x8000u;
  const u32 ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return static_cast<u16>(sign | 0x7e00u);
  if (ax >= 0x477ff000u) return static_cast<u16>(sign | 0x7c00u);  // rounds to >= 65520: infinity
  if (ax < 0x38800000u) {                                          // subnormal or zero in f16
    float a;
    std::memcpy(&a, &ax, 4);
    return static_cast<u16>(sign | static_cast<u32>(std::nearbyint(a * 16777216.0f)));
  }
  const u32 mant = ax & 0x7fffffu, exp = (ax >> 23) - 112;
  u32 h = (exp << 10) | (mant >> 13);
  const u32 rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<u16>(sign | h);
}

template <typename T>
static inline T shfl_xor(T v, int mask) {
  EmuThread* self = emu_hooks->current();
  const int lane = self->thread_idx.x & 31;
  unsigned long long bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  self->warp_slots[lane] = bits;
  emu_hooks->sync_warp();
  bits = self->warp_slots[lane ^ mask];
  emu_hooks->sync_warp();
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

static inline void sync_warp() { emu_hooks->sync_warp(); }

static inline int dp4a(u32 a, u32 b, int c) {
  for (int i = 0; i < 4; ++i) c += static_cast<i8>((a >> (8 * i)) & 0xff) * static_cast<i8>((b >> (8 * i)) & 0xff);
  return c;
}

// One warp's mma.m16n8kK as the PTX ISA lays out its fragments, for lane = 4 * g + i: a register holds
// PER consecutive elements (k or column, lowest in the low bits); A 16 x K row-major in a[0..3] (a[0] rows
// 0-7 and a[1] rows 8-15 of columns 0 .. K/2 - 1, a[2] and a[3] the same of columns K/2 ..; lane 4g + i
// holds row g's columns PER i ..), B K x 8 column-major in b0 (k < K/2) and b1; d[0], d[1] = D[g][2i, 2i + 1],
// d[2], d[3] = D[g + 8][...]. Every lane posts its registers, then reads what its outputs need; the products
// are summed as Sum (int for s8, double for f16: the tensor cores' internal order is not specified) and
// added to d once.
template <int K, int PER, typename Sum, typename Acc, typename Elem>
static inline void emulate_mma(Acc (&d)[4], const u32 (&a)[4], u32 b0, u32 b1, Elem elem) {
  EmuThread* self = emu_hooks->current();
  const int lane = self->thread_idx.x & 31;
  int* mine = self->warp_mma + 10 * lane;
  for (int i = 0; i < 4; ++i) mine[i] = static_cast<int>(a[i]);
  mine[4] = static_cast<int>(b0);
  mine[5] = static_cast<int>(b1);
  emu_hooks->sync_warp();
  auto word = [&](int l, int reg) { return static_cast<u32>(self->warp_mma[10 * l + reg]); };
  auto A = [&](int row, int col) {
    return elem(word(4 * (row % 8) + (col % (K / 2)) / PER, (row >= 8 ? 1 : 0) + (col >= K / 2 ? 2 : 0)), col % PER);
  };
  auto B = [&](int k, int n) { return elem(word(4 * n + (k % (K / 2)) / PER, 4 + (k >= K / 2 ? 1 : 0)), k % PER); };
  const int g = lane / 4, i4 = lane % 4;
  Acc out[4];
  for (int e = 0; e < 4; ++e) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * i4 + (e & 1);
    Sum s = 0;
    for (int k = 0; k < K; ++k) s += static_cast<Sum>(A(row, k)) * B(k, col);
    out[e] = static_cast<Acc>(d[e] + s);
  }
  emu_hooks->sync_warp();
  for (int e = 0; e < 4; ++e) d[e] = out[e];
}

static inline void mma_s8_16832(int (&d)[4], const int (&a)[4], u32 b0, u32 b1) {
  const u32 au[4] = {static_cast<u32>(a[0]), static_cast<u32>(a[1]), static_cast<u32>(a[2]), static_cast<u32>(a[3])};
  emulate_mma<32, 4, int>(d, au, b0, b1, [](u32 w, int i) { return static_cast<int>(static_cast<i8>((w >> (8 * i)) & 0xff)); });
}
static inline void mma_f16_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  emulate_mma<16, 2, double>(d, a, b0, b1, [](u32 w, int i) { return f16_to_f32(static_cast<u16>((w >> (16 * i)) & 0xffffu)); });
}

static inline void ldmatrix_x4(u32 (&r)[4], const void* smem_row) {
  EmuThread* self = emu_hooks->current();
  const int lane = self->thread_idx.x & 31;
  self->warp_slots[lane] = reinterpret_cast<unsigned long long>(smem_row);
  emu_hooks->sync_warp();
  for (int m = 0; m < 4; ++m) {
    const char* row = reinterpret_cast<const char*>(self->warp_slots[8 * m + lane / 4]);
    std::memcpy(&r[m], row + 4 * (lane % 4), 4);
  }
  emu_hooks->sync_warp();
}

static inline void cp_async16(void* smem, const void* gmem, bool valid) {
  if (valid) {
    std::memcpy(smem, gmem, 16);
  } else {
    std::memset(smem, 0, 16);
  }
}
static inline void cp_async4(void* smem, const void* gmem, bool valid) {
  if (valid) {
    std::memcpy(smem, gmem, 4);
  } else {
    std::memset(smem, 0, 4);
  }
}
static inline void cp_async_commit() {}
template <int PENDING>
static inline void cp_async_wait() {}

static inline void grid_dependency_wait() {}
static inline void allow_dependent_launch() {}
static inline float load_bypass_l1(const float* p) { return *p; }
static inline int load_bypass_l1(const int* p) { return *p; }
static inline uint4 load_bypass_l1(const uint4* p) { return *p; }
static inline uint2 load_bypass_l1(const uint2* p) { return *p; }
static inline float4 load_bypass_l1(const float4* p) { return *p; }
static inline u16 load_bypass_l1(const u16* p) { return *p; }
static inline u32 load_acquire(const u32* p) { return *p; }
static inline u32 load_relaxed(const u32* p) { return *p; }
// A spinning thread lets the other fibers (the other blocks of a cooperative launch) run.
static inline void spin_pause() { emu_hooks->yield(); }
static inline void add_release(u32* p, u32 v) { *p += v; }
static inline void atomic_max_u64(unsigned long long* p, unsigned long long v) { *p = *p > v ? *p : v; }
static inline void grid_barrier_stuck() {}  // the emulator reports a barrier nobody can complete itself
static inline void prefetch_l2(const void*) {}
static inline void prefetch_l1(const void*) {}
static inline char* dynamic_shared() { return emu_hooks->current()->shared; }
static inline unsigned long long global_timer_ns() { return emu_hooks->now_ns(); }
static inline u32 atomic_add(u32* p, u32 v) {  // fibers of one OS thread: no concurrent access
  const u32 old = *p;
  *p = old + v;
  return old;
}
static inline void memory_fence() {}
static inline float fmin_f(float a, float b) { return std::fmin(a, b); }
static inline float fmax_f(float a, float b) { return std::fmax(a, b); }
static inline double fmax_d(double a, double b) { return std::fmax(a, b); }
static inline float __uint_as_float(u32 u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
