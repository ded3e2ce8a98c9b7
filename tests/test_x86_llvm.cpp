// The x86 backend's LLVM-generated fused kernels (codegen/x86/llvm) loaded by our ELF loader, against the
// intrinsics they replace (vector_ops.h, themselves tested against ref): bit for bit where ref's
// arithmetic is reproduced (norm + quantization, RoPE + KV write, relu²·up), within 1e-5 relative where
// the order of a reduction is free (attention, the LM head); on shapes with and without vector tails,
// for every level this CPU runs. Then the loader and the section on corrupt input.
#include "codegen/x86/elf_object.h"
#include "codegen/x86/fused_kernels.h"
#include "codegen/x86/vector_ops.h"
#include "codegen/x86/x86_backend.h"
#include "frontend/compile.h"
#include "ir/error.h"
#include "runtime/model.h"
#include "tests/testdata.h"
#ifdef BITNETC_LLVM
#include "codegen/x86/llvm/kernel_generator.h"
#endif

#include <catch2/catch.hpp>

#include <elf.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include <time.h>

namespace bitnet::test {
namespace {

#ifdef BITNETC_LLVM
using x86::FusedKind;
using x86::FusedKernelSpec;

std::vector<float> random_floats(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double max_relative(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0, norm = 0;
  for (float x : b) norm = std::max(norm, std::fabs(static_cast<double>(x)));
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / std::max(norm, 1e-30));
  return worst;
}

const std::vector<int64_t> kWidths = {256, 200, 37};  // whole vectors; a tail for 16-wide; a scalar tail

std::vector<FusedKernelSpec> test_specs() {
  std::vector<FusedKernelSpec> specs;
  for (int64_t k : kWidths) {
    for (FusedKind kind : {FusedKind::NormQuant, FusedKind::AddNormQuant, FusedKind::RmsNorm, FusedKind::Quantize, FusedKind::LmHeadF16, FusedKind::LmHeadI8}) {
      specs.push_back({kind, k});
    }
  }
  specs.push_back({FusedKind::GluRelu2});
  for (int64_t d : {64, 8}) {
    for (bool f32 : {false, true}) {
      specs.push_back({.kind = FusedKind::RopeQkv, .head_dim = d, .n_head = 4, .n_head_kv = 2, .kv_f32 = f32});
      specs.push_back({.kind = FusedKind::Attend, .head_dim = d, .kv_f32 = f32});
    }
  }
  return specs;
}

const std::string& test_section() {
  static const std::string section = x86::serialize_x86_kernels(x86::generate_x86_kernels(test_specs()));
  return section;
}

std::span<const uint8_t> bytes_of(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

std::vector<bool> levels() {  // avx512 flag per level this CPU runs
  const auto cpu = x86::CpuFeatures::detect();
  std::vector<bool> out;
  if (cpu.avx2 && cpu.fma && cpu.f16c) out.push_back(false);
  if (cpu.avx512) out.push_back(true);
  if (out.empty()) WARN("SKIPPED: this CPU runs neither level of the generated kernels");
  return out;
}
#endif

}  // namespace

#ifdef BITNETC_LLVM
TEST_CASE("x86 llvm: generated kernels equal the intrinsics", "[x86][llvm]") {
  for (bool avx512 : levels()) {
    DYNAMIC_SECTION((avx512 ? "avx512" : "avx2")) {
      x86::FusedKernels fused(bytes_of(test_section()), "test section", avx512);
      REQUIRE_THAT(fused.describe(), Catch::StartsWith(avx512 ? "llvm avx512" : "llvm avx2"));
      std::mt19937 rng(11);
      for (int64_t k : kWidths) {
        INFO("k = " << k);
        const auto x = random_floats(static_cast<size_t>(k), rng), r = random_floats(static_cast<size_t>(k), rng), w = random_floats(static_cast<size_t>(k), rng);
        for (bool add : {false, true}) {  // [residual +] norm + quantize: bit for bit
          std::vector<float> sum_got(k), sum_want(k);
          std::vector<int8_t> q_got(k), q_want(k);
          const float a_got = fused.bind_as<x86::NormQuantFn>({add ? FusedKind::AddNormQuant : FusedKind::NormQuant, k})(x.data(), add ? r.data() : nullptr, sum_got.data(), w.data(), 1e-5f, k, q_got.data());
          std::vector<float> src = x, normed(k);
          if (add)
            for (int64_t i = 0; i < k; ++i) src[i] = sum_want[i] = x[i] + r[i];
          x86::rmsnorm_row(src.data(), k, w.data(), 1e-5f, normed.data());
          int32_t unused;
          const float a_want = x86::quantize_row_int8(normed.data(), k, q_want.data(), &unused);
          CHECK(a_got == a_want);
          CHECK(q_got == q_want);
          if (add) CHECK(sum_got == sum_want);
        }
        std::vector<float> y_got(k), y_want(k);
        fused.bind_as<x86::RmsNormFn>({FusedKind::RmsNorm, k})(x.data(), w.data(), 1e-6f, k, y_got.data());
        x86::rmsnorm_row(x.data(), k, w.data(), 1e-6f, y_want.data());
        CHECK(y_got == y_want);
        std::vector<int8_t> q_got(k), q_want(k);
        int32_t s_got = 0, s_want = 0;
        auto big = x;
        big[k / 3] = 1e30f;  // one huge value: everything else rounds to 0 or ±1
        for (const std::vector<float>* row : {&x, static_cast<const std::vector<float>*>(&big)}) {
          CHECK(fused.bind_as<x86::QuantizeFn>({FusedKind::Quantize, k})(row->data(), k, q_got.data(), &s_got) == x86::quantize_row_int8(row->data(), k, q_want.data(), &s_want));
          CHECK(q_got == q_want);
          CHECK(s_got == s_want);
        }
        fused.bind_as<x86::GluFn>({FusedKind::GluRelu2})(x.data(), r.data(), k, y_got.data());
        x86::glu_row(x.data(), r.data(), k, true, y_want.data());
        CHECK(y_got == y_want);

        // LM head: rows × tokens tiles with and without remainders.
        const int64_t rows = 5;
        std::vector<uint16_t> wf16(rows * k);
        std::vector<int8_t> wi8(rows * k);
        std::vector<float> scales = random_floats(rows, rng);
        std::uniform_int_distribution<int> code(-127, 127);
        const auto wf = random_floats(static_cast<size_t>(rows * k), rng);
        x86::f32_to_f16_row(wf.data(), rows * k, wf16.data());
        for (auto& c : wi8) c = static_cast<int8_t>(code(rng));
        for (int64_t T : {1, 3, 4, 6}) {
          const auto xs = random_floats(static_cast<size_t>(T * k), rng);
          std::vector<float> got(T * rows), want(T * rows);
          fused.bind_as<x86::LmHeadF16Fn>({FusedKind::LmHeadF16, k})(wf16.data(), xs.data(), T, k, rows, got.data(), rows);
          for (int64_t n = 0; n < rows; ++n) x86::dot_f16_rows(wf16.data() + n * k, xs.data(), k, T, k, want.data() + n, rows);
          CHECK(max_relative(got, want) < 1e-5);
          fused.bind_as<x86::LmHeadI8Fn>({FusedKind::LmHeadI8, k})(wi8.data(), scales.data(), xs.data(), T, k, rows, got.data(), rows);
          for (int64_t n = 0; n < rows; ++n) x86::dot_i8_rows(wi8.data() + n * k, scales[n], xs.data(), k, T, k, want.data() + n, rows);
          CHECK(max_relative(got, want) < 1e-5);
        }
      }

      for (int64_t d : {64, 8}) {
        for (bool kv_f32 : {false, true}) {
          INFO("head_dim " << d << (kv_f32 ? " f32" : " f16"));
          // RoPE + KV write: ref's rotation, bit for bit, then the cache's element type.
          const int64_t n_head = 4, n_head_kv = 2, q_dim = n_head * d, kv_dim = n_head_kv * d, half = d / 2;
          const auto row = random_floats(static_cast<size_t>(q_dim + 2 * kv_dim), rng);
          const auto angles = random_floats(static_cast<size_t>(half), rng, 3.0f);
          std::vector<float> cos(half), sin(half);
          for (int64_t i = 0; i < half; ++i) cos[i] = std::cos(angles[i]), sin[i] = std::sin(angles[i]);
          std::vector<float> rotated = row;
          for (int64_t h = 0; h < n_head + n_head_kv; ++h) {
            float* head = rotated.data() + h * d;
            for (int64_t i = 0; i < half; ++i) {
              const float a = row[h * d + i], b = row[h * d + i + half];
              head[i] = a * cos[i] - b * sin[i];
              head[i + half] = b * cos[i] + a * sin[i];
            }
          }
          std::vector<float> q(q_dim), k32(kv_dim), v32(kv_dim);
          std::vector<uint16_t> k16(kv_dim), v16(kv_dim), k16_want(kv_dim), v16_want(kv_dim);
          fused.bind_as<x86::RopeQkvFn>({.kind = FusedKind::RopeQkv, .head_dim = d, .n_head = n_head, .n_head_kv = n_head_kv, .kv_f32 = kv_f32})(row.data(), cos.data(), sin.data(), q.data(), kv_f32 ? static_cast<void*>(k32.data()) : k16.data(),
                                                        kv_f32 ? static_cast<void*>(v32.data()) : v16.data());
          CHECK(q == std::vector<float>(rotated.begin(), rotated.begin() + q_dim));
          if (kv_f32) {
            CHECK(k32 == std::vector<float>(rotated.begin() + q_dim, rotated.begin() + q_dim + kv_dim));
            CHECK(v32 == std::vector<float>(row.begin() + q_dim + kv_dim, row.end()));
          } else {
            x86::f32_to_f16_row(rotated.data() + q_dim, kv_dim, k16_want.data());
            x86::f32_to_f16_row(row.data() + q_dim + kv_dim, kv_dim, v16_want.data());
            CHECK(k16 == k16_want);
            CHECK(v16 == v16_want);
          }

          // Attention over n positions of a cache whose rows are `stride` apart.
          for (int64_t n : {1, 7, 33, 100}) {
            const int64_t stride = 3 * d;
            const auto qv = random_floats(static_cast<size_t>(d), rng), kf = random_floats(static_cast<size_t>(n * stride), rng),
                       vf = random_floats(static_cast<size_t>(n * stride), rng);
            std::vector<uint16_t> kh(kf.size()), vh(vf.size());
            x86::f32_to_f16_row(kf.data(), static_cast<int64_t>(kf.size()), kh.data());
            x86::f32_to_f16_row(vf.data(), static_cast<int64_t>(vf.size()), vh.data());
            const void* kp = kv_f32 ? static_cast<const void*>(kf.data()) : kh.data();
            const void* vp = kv_f32 ? static_cast<const void*>(vf.data()) : vh.data();
            std::vector<float> scores(n), got(d), want(d);
            fused.bind_as<x86::AttendFn>({.kind = FusedKind::Attend, .head_dim = d, .kv_f32 = kv_f32})(qv.data(), kp, vp, stride, n, d, scores.data(), got.data());
            if (kv_f32) {
              x86::attend_head(qv.data(), kf.data(), vf.data(), stride, n, d, scores.data(), want.data());
            } else {
              x86::attend_head(qv.data(), kh.data(), vh.data(), stride, n, d, scores.data(), want.data());
            }
            CHECK(max_relative(got, want) < 1e-5);
          }
        }
      }
      CHECK(fused.bound() == test_specs().size());
    }
  }
}

TEST_CASE("x86 llvm: the loader refuses corrupt objects, naming the field", "[x86][llvm]") {
  const auto section = x86::parse_x86_kernels(bytes_of(test_section()), "test");
  REQUIRE(section.objects.size() == 2);
  const std::string& elf = section.objects[0].elf;
  {
    x86::ElfObject ok(bytes_of(elf), "avx2");
    CHECK(ok.symbol("glu_relu2") != nullptr);
    CHECK(ok.symbol("no_such_kernel") == nullptr);
  }
  for (size_t size : {size_t{0}, size_t{10}, size_t{63}, elf.size() / 2, elf.size() - 1}) {
    INFO("truncated to " << size);
    CHECK_THROWS_AS(x86::ElfObject(bytes_of(elf.substr(0, size)), "cut"), Error);
  }
  std::string bad = elf;
  bad[1] = 'X';
  CHECK_THROWS_WITH(x86::ElfObject(bytes_of(bad), "obj"), Catch::Contains("obj: not an ELF object"));
  bad = elf;
  reinterpret_cast<Elf64_Ehdr*>(bad.data())->e_machine = EM_AARCH64;
  CHECK_THROWS_WITH(x86::ElfObject(bytes_of(bad), "obj"), Catch::Contains("e_machine"));

  // The first relocation: an unsupported type, then a symbol index past the table.
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof eh);
  size_t rela_at = 0;
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, elf.data() + eh.e_shoff + i * sizeof sh, sizeof sh);
    if (sh.sh_type == SHT_RELA && sh.sh_size > 0 && !rela_at) rela_at = sh.sh_offset;
  }
  REQUIRE(rela_at != 0);  // the kernels' constant pools are reached through relocations
  Elf64_Rela rel;
  std::memcpy(&rel, elf.data() + rela_at, sizeof rel);
  bad = elf;
  const Elf64_Rela absolute{rel.r_offset, ELF64_R_INFO(ELF64_R_SYM(rel.r_info), R_X86_64_32), rel.r_addend};
  std::memcpy(bad.data() + rela_at, &absolute, sizeof absolute);
  CHECK_THROWS_WITH(x86::ElfObject(bytes_of(bad), "obj"), Catch::Contains("type 10 is not supported"));
  bad = elf;
  const Elf64_Rela far{rel.r_offset, ELF64_R_INFO(1u << 30, ELF64_R_TYPE(rel.r_info)), rel.r_addend};
  std::memcpy(bad.data() + rela_at, &far, sizeof far);
  CHECK_THROWS_WITH(x86::ElfObject(bytes_of(bad), "obj"), Catch::Contains("symbol index"));
}

TEST_CASE("x86 llvm: the section's index is validated", "[x86][llvm]") {
  std::string s = test_section();
  CHECK_THROWS_WITH(x86::parse_x86_kernels(bytes_of(s.substr(0, 11)), "b: section 'x86_kernels'"), Catch::Contains("bad magic"));
  std::string big = s;
  big[11] = '\x7f';  // an index longer than the section
  CHECK_THROWS_WITH(x86::parse_x86_kernels(bytes_of(big), "b"), Catch::Contains("index of"));
  auto section = x86::parse_x86_kernels(bytes_of(s), "b");
  section.objects[0].level = "sse2";
  CHECK_THROWS_WITH(x86::parse_x86_kernels(bytes_of(x86::serialize_x86_kernels(section)), "b"), Catch::Contains("level 'sse2'"));
  // An object whose listed kernel is not defined.
  section = x86::parse_x86_kernels(bytes_of(s), "b");
  for (auto& o : section.objects) o.kernels.push_back("missing.k1");
  CHECK_THROWS_WITH(x86::FusedKernels(bytes_of(x86::serialize_x86_kernels(section)), "b", false), Catch::Contains("'missing.k1' is listed but not defined"));
}

TEST_CASE("x86 llvm: a compiled bundle runs its generated kernels unless told to use the intrinsics", "[x86][llvm]") {
  if (levels().empty() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("llvmbundle");
  CompileOptions options;
  options.target = "x86";
  options.x86_kernels = [](const ir::Module& m, std::string* text) { return x86::generate_x86_kernels(m, text); };
  compile_gguf(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), tmp.file("m.bundle"), options);
  auto model = Model::load(tmp.file("m.bundle"));
  CHECK_THAT(Engine(*model, 16, 1, {1, "avx2"}).fused_kernels(), Catch::StartsWith("llvm avx2: 8 of 8"));
  setenv("BITNETC_X86_FUSED", "intrinsics", 1);
  const std::string fallback = Engine(*model, 16, 1, {1, "avx2"}).fused_kernels();
  unsetenv("BITNETC_X86_FUSED");
  CHECK_THAT(fallback, Catch::StartsWith("intrinsics"));
  options.x86_kernels = nullptr;  // as bitnet-run compiles a GGUF on the fly
  compile_gguf(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), tmp.file("plain.bundle"), options);
  CHECK_FALSE(Model::load(tmp.file("plain.bundle"))->has_section("x86_kernels"));
}
#else
TEST_CASE("x86 llvm: generated kernels", "[x86][llvm]") { WARN("SKIPPED: built without LLVM (BITNETC_LLVM=OFF)"); }
#endif

}  // namespace bitnet::test

namespace bitnet::test {
#ifdef BITNETC_LLVM
// Not a test: how fast each LM head kernel streams the 2B4T head (128256 × 2560 halves, 657 MB) for one
// token, on 1 and 2 threads. Run by hand: bitnetc_tests "[.x86-bench]" -s
TEST_CASE("x86 llvm: LM head bandwidth", "[.x86-bench]") {
  const int64_t rows = 128256, k = 2560;
  std::vector<uint16_t> w(static_cast<size_t>(rows * k));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint16_t>(0x3000 + (i * 7919) % 0x0c00);  // halves in [0.125, 1)
  std::vector<float> x(k, 0.5f), y(rows);
  const std::string section = x86::serialize_x86_kernels(x86::generate_x86_kernels(std::vector<FusedKernelSpec>{{FusedKind::LmHeadF16, k}}));
  for (int variant = 0; variant < 3; ++variant) {
    if (variant == 2 && !x86::CpuFeatures::detect().avx512) continue;
    x86::FusedKernels fused(variant == 0 ? std::span<const uint8_t>{} : bytes_of(section), "bench", variant == 2);
    const auto fn = fused.bind_as<x86::LmHeadF16Fn>({FusedKind::LmHeadF16, k});
    for (int threads : {1, 2}) {
      std::vector<double> seconds;
      for (int rep = 0; rep < 5; ++rep) {
        if (threads == 1) {  // thread CPU time: robust to other processes on this shared machine
          timespec t0, t1;
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
          fn(w.data(), x.data(), 1, k, rows, y.data(), rows);
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
          seconds.push_back((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9);
          continue;
        }
        const auto start = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([&, t] {
            const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
            fn(w.data() + r0 * k, x.data(), 1, k, r1 - r0, y.data() + r0, rows);
          });
        }
        for (auto& th : pool) th.join();
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      }
      std::sort(seconds.begin(), seconds.end());
      std::printf("{\"kernel\": \"%s\", \"threads\": %d, \"median_ms\": %.2f, \"gb_s\": %.1f}\n", fused.describe().c_str(), threads, seconds[2] * 1e3,
                  rows * k * 2 / seconds[2] / 1e9);
    }
  }
}
#endif
}  // namespace bitnet::test
