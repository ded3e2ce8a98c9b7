// The xbyak generator for TernaryKernel. One class, the ISA a parameter of two emitting helpers
// (`emit_block_avx2`, `emit_block_avx512`); the loops, the ABI and the reduction are shared.
//
// Register table (System V arguments first):
//   rdi  reg_groups   the current row group (advances k_pad bytes per group)
//   rsi  reg_act      activations of token 0, block 0 (constant)
//   rdx  reg_out      out + 4 * (first row of the current group) (advances 16 bytes per group)
//   rcx  reg_n_groups groups left
//   r8   reg_ldo      bytes between two tokens' outputs
//   r9   reg_w        the tile's weights at the current block
//   r10  reg_a        the activations at the current block
//   r11  reg_tmp      output address while storing
//   rax  reg_blocks   blocks left in the current chunk
//   AVX2:     ymm0..7 int16 accumulators acc(r, c); ymm10..13 unpacked codes; ymm9 product; ymm14 ones
//             (int16) for widening; ymm15 the 0x03 byte mask; int32 partial sums live on the stack.
//   AVX-512:  zmm0..15 int32 accumulators acc(pair, c); zmm16..23 unpacked codes of two row pairs;
//             zmm24..27 broadcast activation slices; zmm31 the 0x03 byte mask.
#include "codegen/x86/ternary_kernel.h"

#include "ir/error.h"

#include <xbyak/xbyak.h>

namespace bitnet::x86 {

const char* isa_name(Isa isa) { return isa == Isa::Avx2 ? "avx2" : "avx512vnni"; }

namespace {
constexpr int kBlockBytes = 128;        // 4 rows × 32 bytes of one 128-column block
constexpr int kMaxInt16Blocks = 16;     // |4 pair sums| <= 2048 per block, so 16 blocks fit in int16
// Weights are a single forward stream, but the hardware prefetchers alone keep too few lines in flight
// while the core is busy unpacking: a GEMV streaming from memory ran at 11.6 GB/s per core with AVX2
// (24 in L2) and 25.6 with VNNI; touching the lines 4 KB ahead brought it to 24.2 and 30.6 (2048: 22.4 /
// 29.1, 8192: 20.2 / 27.2). Prefetches never fault, so reading past the matrix's end is harmless.
constexpr int kPrefetchBytes = 4096;
}  // namespace

struct TernaryKernel::Generator : Xbyak::CodeGenerator {
  const TernaryKernelConfig cfg;
  const Xbyak::Reg64 reg_groups = rdi, reg_act = rsi, reg_out = rdx, reg_n_groups = rcx, reg_ldo = r8, reg_w = r9, reg_a = r10,
                     reg_tmp = r11, reg_blocks = rax;
  int blocks() const { return static_cast<int>(cfg.k_pad / 128); }
  int stack_bytes() const { return cfg.rows * cfg.tokens * 32; }

  explicit Generator(const TernaryKernelConfig& c) : Xbyak::CodeGenerator(64 * 1024), cfg(c) {
    if (cfg.isa == Isa::Avx2) {
      generate_avx2();
    } else {
      generate_avx512();
    }
    ready();
  }

  // Stores the sum of the eight int32 lanes of `acc` to the output of row `row`, token `token`
  // (clobbers t0, t1 and reg_tmp).
  void store_sum(const Xbyak::Ymm& acc, int row, int token, const Xbyak::Xmm& t0, const Xbyak::Xmm& t1) {
    if (cfg.isa == Isa::Avx2) {
      vextracti128(t1, acc, 1);
    } else {
      vextracti32x4(t1, acc, 1);  // the EVEX form reaches registers 16..31
    }
    vpaddd(t0, Xbyak::Xmm(acc.getIdx()), t1);
    vpshufd(t1, t0, 0x4E);
    vpaddd(t0, t0, t1);
    vpshufd(t1, t0, 0xB1);
    vpaddd(t0, t0, t1);
    mov(reg_tmp, reg_out);
    for (int c = 0; c < token; ++c) add(reg_tmp, reg_ldo);
    vmovd(ptr[reg_tmp + row * 4], t0);
  }

  // The two cache lines of the block kPrefetchBytes ahead of reg_w.
  void prefetch_ahead() {
    prefetcht0(ptr[reg_w + kPrefetchBytes]);
    prefetcht0(ptr[reg_w + kPrefetchBytes + 64]);
  }

  // ---------------------------------------------------------------- AVX2
  Xbyak::Ymm acc16(int r, int c) const { return Xbyak::Ymm(r * cfg.tokens + c); }
  Xbyak::Address partial(int r, int c) { return ptr[rsp + (r * cfg.tokens + c) * 32]; }

  // One 128-column block of the tile: unpack each row's 32 bytes into four code vectors (in: reg_w; clobbers
  // ymm9..13) and add code·q pair sums of every token into acc16(r, c) (activations at reg_a + c·k_pad).
  void emit_block_avx2() {
    const Xbyak::Ymm codes[4] = {ymm10, ymm11, ymm12, ymm13};
    prefetch_ahead();
    for (int r = 0; r < cfg.rows; ++r) {
      vmovdqu(codes[0], ptr[reg_w + r * 32]);
      vpsrlw(codes[1], codes[0], 2);
      vpsrlw(codes[2], codes[0], 4);
      vpsrlw(codes[3], codes[0], 6);
      for (auto& v : codes) vpand(v, v, ymm15);
      for (int c = 0; c < cfg.tokens; ++c)
        for (int s = 0; s < 4; ++s) {
          vpmaddubsw(ymm9, codes[s], ptr[reg_a + c * cfg.act_stride + 32 * s]);
          vpaddw(acc16(r, c), acc16(r, c), ymm9);
        }
    }
  }

  void generate_avx2() {
    if (cfg.rows * cfg.tokens > 8) fail("x86 kernel: tile {}x{} needs more than 8 accumulators", cfg.rows, cfg.tokens);
    sub(rsp, stack_bytes());
    mov(eax, 0x03030303);
    vmovd(xmm15, eax);
    vpbroadcastd(ymm15, xmm15);
    mov(eax, 0x00010001);
    vmovd(xmm14, eax);
    vpbroadcastd(ymm14, xmm14);
    Xbyak::Label group_loop;
    L(group_loop);
    for (int tile = 0; tile < 4 / cfg.rows; ++tile) {
      vpxor(ymm8, ymm8, ymm8);
      for (int r = 0; r < cfg.rows; ++r)
        for (int c = 0; c < cfg.tokens; ++c) vmovdqu(partial(r, c), ymm8);
      lea(reg_w, ptr[reg_groups + tile * cfg.rows * 32]);
      mov(reg_a, reg_act);
      for (int first = 0; first < blocks(); first += kMaxInt16Blocks) {
        const int chunk = std::min(kMaxInt16Blocks, blocks() - first);
        for (int i = 0; i < cfg.rows * cfg.tokens; ++i) vpxor(Xbyak::Ymm(i), Xbyak::Ymm(i), Xbyak::Ymm(i));
        mov(reg_blocks, chunk);
        Xbyak::Label block_loop;
        L(block_loop);
        emit_block_avx2();
        add(reg_w, kBlockBytes);
        add(reg_a, 128);
        dec(reg_blocks);
        jnz(block_loop, T_NEAR);
        for (int r = 0; r < cfg.rows; ++r)
          for (int c = 0; c < cfg.tokens; ++c) {
            vpmaddwd(ymm9, acc16(r, c), ymm14);
            vpaddd(ymm9, ymm9, partial(r, c));
            vmovdqu(partial(r, c), ymm9);
          }
      }
      for (int r = 0; r < cfg.rows; ++r)
        for (int c = 0; c < cfg.tokens; ++c) {
          vmovdqu(ymm8, partial(r, c));
          store_sum(ymm8, tile * cfg.rows + r, c, xmm8, xmm9);
        }
    }
    add(reg_groups, static_cast<uint32_t>(cfg.k_pad));
    add(reg_out, 16);
    dec(reg_n_groups);
    jnz(group_loop, T_NEAR);
    add(rsp, stack_bytes());
    vzeroupper();
    ret();
  }

  // ---------------------------------------------------------------- AVX-512 VNNI
  // Rows are taken two at a time: a 64-byte load holds rows 2p and 2p+1 of a block, and each activation
  // slice is broadcast to both 256-bit halves, so one vpdpbusd adds four products per lane for two rows.
  Xbyak::Zmm acc32(int pair, int c) const { return Xbyak::Zmm(pair * cfg.tokens + c); }

  void emit_block_avx512() {
    const int pairs = cfg.rows / 2;
    prefetch_ahead();
    for (int p = 0; p < pairs; ++p) {
      const int base = 16 + 4 * p;
      vmovdqu8(Xbyak::Zmm(base), ptr[reg_w + p * 64]);
      vpsrlw(Xbyak::Zmm(base + 1), Xbyak::Zmm(base), 2);
      vpsrlw(Xbyak::Zmm(base + 2), Xbyak::Zmm(base), 4);
      vpsrlw(Xbyak::Zmm(base + 3), Xbyak::Zmm(base), 6);
      for (int s = 0; s < 4; ++s) vpandd(Xbyak::Zmm(base + s), Xbyak::Zmm(base + s), zmm31);
    }
    for (int c = 0; c < cfg.tokens; ++c) {
      for (int s = 0; s < 4; ++s) vbroadcasti64x4(Xbyak::Zmm(24 + s), ptr[reg_a + c * cfg.act_stride + 32 * s]);
      for (int p = 0; p < pairs; ++p)
        for (int s = 0; s < 4; ++s) vpdpbusd(acc32(p, c), Xbyak::Zmm(16 + 4 * p + s), Xbyak::Zmm(24 + s));
    }
  }

  void generate_avx512() {
    if (cfg.rows != 2 && cfg.rows != 4) fail("x86 kernel: AVX-512 tiles take 2 or 4 rows, not {}", cfg.rows);
    if (cfg.rows / 2 * cfg.tokens > 16) fail("x86 kernel: tile {}x{} needs more than 16 accumulators", cfg.rows, cfg.tokens);
    mov(eax, 0x03030303);
    vpbroadcastd(zmm31, eax);
    Xbyak::Label group_loop;
    L(group_loop);
    for (int tile = 0; tile < 4 / cfg.rows; ++tile) {
      for (int i = 0; i < cfg.rows / 2 * cfg.tokens; ++i) vpxord(Xbyak::Zmm(i), Xbyak::Zmm(i), Xbyak::Zmm(i));
      lea(reg_w, ptr[reg_groups + tile * cfg.rows * 32]);
      mov(reg_a, reg_act);
      mov(reg_blocks, blocks());
      Xbyak::Label block_loop;
      L(block_loop);
      emit_block_avx512();
      add(reg_w, kBlockBytes);
      add(reg_a, 128);
      dec(reg_blocks);
      jnz(block_loop, T_NEAR);
      for (int p = 0; p < cfg.rows / 2; ++p)
        for (int c = 0; c < cfg.tokens; ++c) {
          const Xbyak::Zmm acc = acc32(p, c);
          vextracti64x4(ymm30, acc, 1);  // the odd row of the pair
          store_sum(ymm30, tile * cfg.rows + 2 * p + 1, c, xmm28, xmm29);
          store_sum(Xbyak::Ymm(acc.getIdx()), tile * cfg.rows + 2 * p, c, xmm28, xmm29);
        }
    }
    add(reg_groups, static_cast<uint32_t>(cfg.k_pad));
    add(reg_out, 16);
    dec(reg_n_groups);
    jnz(group_loop, T_NEAR);
    vzeroupper();
    ret();
  }
};

TernaryKernel::TernaryKernel(const TernaryKernelConfig& config) : config_(config) {
  if (config.k_pad <= 0 || config.k_pad % 128 != 0) fail("x86 kernel: K {} is not a positive multiple of 128", config.k_pad);
  if (config.rows != 1 && config.rows != 2 && config.rows != 4) fail("x86 kernel: {} rows per tile (1, 2 or 4)", config.rows);
  if (config.act_stride < config.k_pad) fail("x86 kernel: activation rows {} bytes apart, K {}", config.act_stride, config.k_pad);
  if (config.tokens < 1) fail("x86 kernel: {} tokens per tile", config.tokens);
  try {
    gen_ = std::make_unique<Generator>(config);
  } catch (const Xbyak::Error& e) {
    fail("x86 kernel: xbyak: {}", e.what());
  }
  fn_ = gen_->getCode<TernaryKernelFn>();
}

TernaryKernel::~TernaryKernel() = default;

size_t TernaryKernel::code_size() const { return gen_->getSize(); }

}  // namespace bitnet::x86
