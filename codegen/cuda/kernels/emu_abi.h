// The interface between the host emulator (codegen/cuda/emu/) and kernels compiled for it: the emulator
// runs each CUDA thread of a block as a fiber and hands the kernel library these hooks. Included by the
// emulator and pasted into every host-flavor generated source (before prelude_host.h).
#pragma once

struct EmuDim3 {
  unsigned x, y, z;
};

struct EmuThread {
  EmuDim3 thread_idx, block_idx, block_dim, grid_dim;
  unsigned long long* warp_slots;  // 32 exchange slots shared by the fibers of this thread's warp
  int* warp_mma;                   // 32 x 10 ints: the mma fragments of this thread's warp
};

struct EmuHooks {
  EmuThread* (*current)();
  void (*sync_block)();  // __syncthreads: every live fiber of the block
  void (*sync_warp)();   // every live fiber of the warp
};
