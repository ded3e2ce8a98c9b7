// The prelude of every generated CUDA source compiled by NVRTC: fixed-width names, and the handful of
// device primitives the kernel templates use (f16 conversion, shuffles, dp4a, int8 mma, programmatic
// dependent launch, cache-bypassing loads). codegen/cuda/kernels/prelude_host.h defines the same names for
// the host emulator (tests), so a template uses only what both define. No headers: NVRTC needs none.
typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

#define KFN __device__ __forceinline__
#define KERNEL_ENTRY(name, Args)
#define KINF __int_as_float(0x7f800000)

KFN float f16_to_f32(u16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}
KFN u16 f32_to_f16(float f) {  // round to nearest even, as the CPU backends
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}

template <typename T>
KFN T shfl_xor(T v, int mask) { return __shfl_xor_sync(0xffffffffu, v, mask); }

KFN void sync_warp() { __syncwarp(); }

KFN int dp4a(u32 a, u32 b, int c) { return __dp4a(static_cast<int>(a), static_cast<int>(b), c); }

// D += A B for one warp: A 16x32 int8 (row), B 32x8 int8 (col), D 16x8 int32. Fragments as the PTX ISA
// lays them out for lane = 4 * g + i: a[0] = A[g][4i..4i+3], a[1] = A[g+8][4i..], a[2] = A[g][16+4i..],
// a[3] = A[g+8][16+4i..]; b0 = B[4i..4i+3][g], b1 = B[16+4i..][g]; d[0] = D[g][2i], d[1] = D[g][2i+1],
// d[2] = D[g+8][2i], d[3] = D[g+8][2i+1].
KFN void mma_s8_16832(int (&d)[4], const int (&a)[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// D += A B for one warp on the f16 tensor cores with f32 accumulation: A 16x16 f16 (row), B 16x8 f16
// (col), two halves per register, the lower column (or k) in the low 16 bits. For lane = 4 * g + i:
// a[0] = A[g][2i..2i+1], a[1] = A[g+8][2i..], a[2] = A[g][2i+8..], a[3] = A[g+8][2i+8..]; b0 = B[2i..2i+1][g],
// b1 = B[2i+8..2i+9][g]; d as for mma_s8_16832.
KFN void mma_f16_16816(float (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// ldmatrix.x4 of b16: lane l names row l % 8 of matrix l / 8 (16 bytes of shared memory, 16-byte aligned);
// r[m] of lane 4g + i is elements 2i, 2i + 1 of row g of matrix m: an mma fragment in one instruction.
KFN void ldmatrix_x4(u32 (&r)[4], const void* smem_row) {
  const unsigned at = static_cast<unsigned>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(at) : "memory");
}

// Asynchronous 16-byte copies global -> shared (sm_80+), in groups: `valid` false fills zeros instead.
KFN void cp_async16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(gmem), "r"(valid ? 16 : 0) : "memory");
}
KFN void cp_async4(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(dst), "l"(gmem), "r"(valid ? 4 : 0) : "memory");
}
KFN void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int PENDING>
KFN void cp_async_wait() {  // until at most PENDING of this thread's newest groups are in flight
  asm volatile("cp.async.wait_group %0;" ::"n"(PENDING) : "memory");
}

// Programmatic dependent launch (sm_90): a kernel may start while the previous one finishes; it reads
// nothing the previous kernels wrote, and writes nothing, before grid_dependency_wait().
KFN void grid_dependency_wait() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
KFN void allow_dependent_launch() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

KFN float load_bypass_l1(const float* p) { return __ldcg(p); }
KFN int load_bypass_l1(const int* p) { return __ldcg(p); }
KFN uint4 load_bypass_l1(const uint4* p) { return __ldcg(p); }
KFN uint2 load_bypass_l1(const uint2* p) { return __ldcg(p); }
KFN float4 load_bypass_l1(const float4* p) { return __ldcg(p); }
KFN u16 load_bypass_l1(const u16* p) { return __ldcg(p); }

// The persistent step kernel's grid barrier (common.cuh): an acquire load of the arrival counter, a pause
// while spinning (none: the wait is short and latency is what counts), and its dynamic shared memory.
KFN u32 load_acquire(const u32* p) {
  u32 v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
KFN u32 load_relaxed(const u32* p) {
  u32 v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
KFN void spin_pause() {}
KFN void add_release(u32* p, u32 v) { asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory"); }
KFN void atomic_max_u64(unsigned long long* p, unsigned long long v) { atomicMax(p, v); }
KFN void grid_barrier_stuck() { __trap(); }  // the launch fails instead of hanging
KFN void prefetch_l2(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }
KFN void prefetch_l1(const void* p) { asm volatile("prefetch.global.L1 [%0];" ::"l"(p)); }
KFN char* dynamic_shared() {
  extern __shared__ __align__(16) char dynamic_smem[];
  return dynamic_smem;
}
KFN unsigned long long global_timer_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
KFN u32 atomic_add(u32* p, u32 v) { return atomicAdd(p, v); }
KFN void memory_fence() { __threadfence(); }
KFN float fmin_f(float a, float b) { return fminf(a, b); }
KFN float fmax_f(float a, float b) { return fmaxf(a, b); }
KFN double fmax_d(double a, double b) { return fmax(a, b); }
