// The interface between the host emulator (codegen/cuda/emu/) and kernels compiled for it: the emulator
// runs each CUDA thread of a block as a fiber (all blocks of a cooperative launch at once) and hands the
// kernel library these hooks. Included by the emulator and pasted into every host-flavor generated source
// (before prelude_host.h).
#pragma once

struct EmuDim3 {
  unsigned x, y, z;
};

struct EmuThread {
  EmuDim3 thread_idx, block_idx, block_dim, grid_dim;
  unsigned long long* warp_slots;  // 32 exchange slots shared by the fibers of this thread's warp
  int* warp_mma;                   // 32 x 10 ints: the mma fragments of this thread's warp
  char* shared;                    // the block's dynamic shared memory (16-byte aligned)
};

struct EmuHooks {
  EmuThread* (*current)();
  void (*sync_block)();  // __syncthreads: every live fiber of the block
  void (*sync_warp)();   // every live fiber of the warp
  void (*yield)();       // a spin-wait: let the other fibers run (a grid barrier waits on other blocks)
  unsigned long long (*now_ns)();
};
