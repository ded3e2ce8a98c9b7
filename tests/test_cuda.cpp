// The CUDA backend. On every machine: the weight layout, the template filler, the kernels section, every
// generated kernel through NVRTC with a clean log (no GPU needed), the refusal of a CUDA bundle where
// there is no driver or no device, and the whole executor against codegen/ref on the host emulator (the
// generated kernels compiled for the CPU, each CUDA thread a fiber: indexing, synchronisation, graphs and
// arithmetic, not speed). On a machine with a GPU ([gpu], scripts/device_cuda.sh): parity with the HF
// goldens, batched sequences, CUDA-graph replay against eager launches, and the same ref comparison.
#ifdef BITNETC_CUDA

#include "codegen/cuda/cuda_backend.h"
#include "codegen/cuda/cuda_layout.h"
#include "codegen/cuda/emu/host_driver.h"
#include "codegen/cuda/kernel_plan.h"
#include "codegen/cuda/kernel_source.h"
#include "codegen/cuda/kernels_section.h"
#include "codegen/cuda/nvrtc_compiler.h"
#include "frontend/compile.h"
#include "frontend/synth.h"
#include "ir/error.h"
#include "ir/weight_layout.h"
#include "runtime/model.h"
#include "tests/testdata.h"

#include <dlfcn.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

namespace bitnet::test {
namespace {

bool have_nvrtc() {
  try {
    cuda::nvrtc_version();
    return true;
  } catch (const Error& e) {
    WARN("SKIPPED: " << e.what());
    return false;
  }
}

// The real driver when this machine has a GPU, else nullptr (with the reason as a warning).
std::shared_ptr<const cuda::DriverApi> gpu() {
  try {
    return cuda::load_driver("test");
  } catch (const Error& e) {
    WARN("SKIPPED (GPU tests): " << e.what());
    return nullptr;
  }
}

struct Diff {
  double max_abs = 0, cosine = 1;
};
Diff compare(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double dot = 0, a2 = 0, b2 = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    REQUIRE(std::isfinite(b[i]));
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(a[i]) - b[i]));
    dot += static_cast<double>(a[i]) * b[i];
    a2 += static_cast<double>(a[i]) * a[i];
    b2 += static_cast<double>(b[i]) * b[i];
  }
  return {max_abs, dot / std::sqrt(a2 * b2)};
}

// A CUDA bundle's model with an executor on `driver` (the host emulator or the GPU).
struct CudaModel {
  std::unique_ptr<Model> model;
  std::unique_ptr<cuda::CudaStepExecutor> exec;
  std::vector<float> step(const std::vector<int32_t>& ids, const std::vector<int32_t>& pos, const std::vector<int32_t>& seq, bool all = true) {
    auto l = exec->run({ids, pos, seq, all});
    return {l.begin(), l.end()};
  }
};

CudaModel open_cuda(const std::string& bundle, int64_t n_ctx, int64_t n_seq, cuda::CudaOptions options) {
  CudaModel c;
  c.model = Model::load(bundle);
  const auto& meta = c.model->meta();
  const int64_t kv_dim = meta.at("n_head_kv").get<int64_t>() * meta.at("head_dim").get<int64_t>();
  c.exec = std::make_unique<cuda::CudaStepExecutor>(bundle, c.model->module(), c.model->weights(), c.model->section("kernels"),
                                                    meta.at("n_layer").get<int64_t>(), n_seq, n_ctx, kv_dim, options);
  return c;
}

// The host emulator with the bundle's kernels compiled for this CPU (once per bundle path and tmp dir).
std::shared_ptr<const cuda::DriverApi> emulator_for(const std::string& bundle, const TempDir& tmp) {
  auto model = Model::load(bundle);
  const std::string source = cuda::generate_source(cuda::plan_module(model->module()).kernels, cuda::Flavor::Host);
  return cuda::emu::host_driver(cuda::emu::build_kernel_library(source, tmp.path.string(), BITNETC_HOST_CXX));
}

bool emulator_usable() {
#if defined(__SANITIZE_ADDRESS__)
  WARN("SKIPPED: the host emulator switches stacks (fibers), which AddressSanitizer does not follow");
  return false;
#else
  return true;
#endif
}

std::string compile_for(const std::string& gguf, const std::string& target, const std::string& act_quant, const TempDir& tmp) {
  CompileOptions options;
  options.target = target;
  options.lower.act_quant = act_quant;
  const std::string out = tmp.file(target + "-" + act_quant + ".bundle");
  compile_gguf(gguf, out, options);
  return out;
}

// The sequence the x86 tests use: a 12-token prompt in one step (the tensor-core path), then 8 decode
// steps (the GEMV path with fused norms, graphs when enabled).
const std::vector<int32_t> kPrompt = {768, 219, 218, 61, 432, 356, 163, 480, 63, 211, 78, 344};

// With `prompt_tokens` > 12, a longer prompt of made-up ids: decoding then runs past 32 positions, where
// attention splits the context into ranges merged by the kernel's last block.
template <class Step>
std::vector<float> prompt_then_decode(Step&& step, int32_t prompt_tokens = 12) {
  std::vector<int32_t> prompt = kPrompt, pos, seq(static_cast<size_t>(prompt_tokens), 0);
  for (int32_t i = 12; i < prompt_tokens; ++i) prompt.push_back((i * 53 + 7) % 768);
  for (int32_t i = 0; i < prompt_tokens; ++i) pos.push_back(i);
  std::vector<float> rows = step(prompt, pos, seq);
  for (int32_t p = prompt_tokens; p < prompt_tokens + 8; ++p) {
    const std::vector<int32_t> id{(p * 37) % 768}, at{p}, slot{0};
    auto d = step(id, at, slot);
    rows.insert(rows.end(), d.begin(), d.end());
  }
  return rows;
}

std::vector<float> ref_rows(const std::string& bundle, int32_t prompt_tokens = 12) {
  auto m = Model::load(bundle);
  Engine engine(*m, 256, 1);
  return prompt_then_decode(
      [&](const std::vector<int32_t>& ids, const std::vector<int32_t>& pos, const std::vector<int32_t>& seq) {
        auto l = engine.step(ids, pos, seq);
        return std::vector<float>(l.begin(), l.end());
      },
      prompt_tokens);
}

// One decoder layer with the 2B4T shapes (hidden 2560, 20 heads of 128 over 5 KV heads, FFN 6912,
// relu2, vocabulary 128256) as the default pipeline leaves it: the kernel shapes of the real model.
ir::Module two_b4t_layer() {
  using ir::DType;
  const int64_t T = ir::kSymbolicT, D = 2560, F = 6912, V = 128256;
  ir::Module m;
  const int tokens = m.add_input("tokens", {DType::I32, {T}}), pos = m.add_input("pos", {DType::I32, {T}}), seq = m.add_input("seq", {DType::I32, {T}});
  const int embd = m.add_weight("token_embd.weight", {DType::F16, {V, D}});
  auto norm = [&](const std::string& name, int64_t n) { return m.add_weight(name, {DType::F32, {n}}); };
  const int attn_norm = norm("attn_norm", D), sub = norm("attn_sub_norm", D), ffn_norm = norm("ffn_norm", D), ffn_sub = norm("ffn_sub_norm", F), out_norm = norm("output_norm", D);
  const int qkv = m.add_weight("qkv", {DType::T2, {2560 + 2 * 640, D}}), o = m.add_weight("o", {DType::T2, {D, D}});
  const int gate_up = m.add_weight("gate_up", {DType::T2, {2 * F, D}}), down = m.add_weight("down", {DType::T2, {D, F}});
  const ir::Attrs eps{{"eps", 1e-5}}, int8{{"act_quant", std::string("int8_token")}};
  const int x = m.add_node(ir::Op::Embed, {tokens}, {embd}, {}, "x");
  const int h = m.add_node(ir::Op::RmsNormQuant, {x}, {attn_norm}, eps, "h");
  const int q = m.add_node(ir::Op::QkvRopeCache, {h, pos, seq}, {qkv},
                           {{"act_quant", std::string("int8_token")}, {"head_dim", int64_t{128}}, {"base", 500000.0}, {"layer", int64_t{0}}, {"n_head", int64_t{20}}, {"n_head_kv", int64_t{5}}}, "q");
  const int a = m.add_node(ir::Op::Attend, {q, pos, seq}, {}, {{"layer", int64_t{0}}, {"n_head", int64_t{20}}, {"n_head_kv", int64_t{5}}}, "a");
  const int as = m.add_node(ir::Op::RmsNormQuant, {a}, {sub}, eps, "as");
  const int ao = m.add_node(ir::Op::BitLinear, {as}, {o}, int8, "ao");
  // The two-result add_rmsnorm_quant (add_node makes one-result nodes): the residual sum, then its q8.
  const int r = static_cast<int>(m.values.size()), f = r + 1;
  m.values.push_back({"r", {DType::F32, {T, D}}, static_cast<int>(m.nodes.size())});
  m.values.push_back({"f", {DType::Q8, {T, D}}, static_cast<int>(m.nodes.size())});
  m.nodes.push_back(ir::Node{ir::Op::AddRmsNormQuant, {x, ao}, {ffn_norm}, eps, r, {f}});
  const int g = m.add_node(ir::Op::BitLinearGlu, {f}, {gate_up}, {{"act_quant", std::string("int8_token")}, {"act", std::string("relu2")}}, "g");
  const int gs = m.add_node(ir::Op::RmsNormQuant, {g}, {ffn_sub}, eps, "gs");
  const int dn = m.add_node(ir::Op::BitLinear, {gs}, {down}, int8, "dn");
  const int y = m.add_node(ir::Op::Add, {r, dn}, {}, {}, "y");
  const int yn = m.add_node(ir::Op::RmsNorm, {y}, {out_norm}, eps, "yn");
  m.output = m.add_node(ir::Op::MatMul, {yn}, {embd}, {}, "logits");
  ir::verify(m);
  return m;
}

}  // namespace

TEST_CASE("cuda: the CUDA weight layout keeps every code and scale", "[cuda]") {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> code(0, 2);
  for (auto [n, k] : {std::pair<int64_t, int64_t>{3, 16}, {5, 48}, {8, 2560}}) {
    std::vector<uint8_t> t2(t2_nbytes(n, k), 0);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) t2[r * t2_row_bytes(k) + c / 4] |= static_cast<uint8_t>(code(rng) << (2 * (c % 4)));
    float* scales = reinterpret_cast<float*>(t2.data() + t2_scales_offset(n, k));
    for (int64_t r = 0; r < n; ++r) scales[r] = 0.25f * (r + 1);
    std::vector<uint8_t> out(t2.size());
    cuda::repack_t2_for_cuda(t2.data(), n, k, out.data());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; ++c) {
        INFO("n " << n << " k " << k << " row " << r << " col " << c);
        REQUIRE(cuda::cuda_t2_code(out.data(), k, r, c) == ((t2[r * t2_row_bytes(k) + c / 4] >> (2 * (c % 4))) & 3));
      }
    // The word of columns [16w, 16w + 16) shifted by 2s and masked gives columns 16w + 4s .. + 3 byte by byte.
    const uint32_t word = static_cast<uint32_t>(out[4]) | static_cast<uint32_t>(out[5]) << 8 | static_cast<uint32_t>(out[6]) << 16 | static_cast<uint32_t>(out[7]) << 24;
    for (int s = 0; s < 4; ++s)
      for (int b = 0; b < 4; ++b) CHECK(static_cast<int>(((word >> (2 * s)) >> (8 * b)) & 3) == cuda::cuda_t2_code(out.data(), k, 0, 16 + 4 * s + b));
    CHECK(std::memcmp(out.data() + t2_scales_offset(n, k), scales, static_cast<size_t>(n) * 4) == 0);
  }
}

TEST_CASE("cuda: template holes must all be filled and all be used", "[cuda]") {
  CHECK(cuda::fill_template("a ${X} b ${Y}", {{"X", "1"}, {"Y", "2"}}, "t") == "a 1 b 2");
  CHECK_THROWS_WITH(cuda::fill_template("a ${X} b ${Y}", {{"X", "1"}}, "t"), Catch::Contains("no value for hole ${Y}"));
  CHECK_THROWS_WITH(cuda::fill_template("a ${X}", {{"X", "1"}, {"Z", "3"}}, "t"), Catch::Contains("hole ${Z} is not in the template"));
  CHECK_THROWS_WITH(cuda::kernel_template("no_such.cu.in"), Catch::Contains("no_such"));
}

TEST_CASE("cuda: the kernels section round-trips and picks the image for the device", "[cuda]") {
  cuda::KernelsSection s;
  s.nvrtc_version = "13.0";
  s.kernels = {"a", "b"};
  s.source = "// source";
  s.images = {{"sm_80", false, {1, 2, 3}}, {"sm_90", false, {4, 5}}, {"compute_80", true, {'p', 't', 'x', 0}}};
  const std::string bytes = cuda::serialize_kernels_section(s);
  const auto back = cuda::parse_kernels_section({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, "x");
  CHECK(back.kernels == s.kernels);
  CHECK(back.source == s.source);
  REQUIRE(back.images.size() == 3);
  CHECK(back.images[1].bytes == std::vector<uint8_t>{4, 5});
  CHECK(cuda::pick_image(back, 9, 0)->arch == "sm_90");
  CHECK(cuda::pick_image(back, 8, 6)->arch == "sm_80");     // same major, lower minor
  CHECK(cuda::pick_image(back, 12, 0)->arch == "compute_80");  // newer GPU: the PTX
  CHECK(cuda::pick_image(back, 7, 5) == nullptr);
  const std::string cut = bytes.substr(0, bytes.size() - 2);
  CHECK_THROWS_WITH(cuda::parse_kernels_section({reinterpret_cast<const uint8_t*>(cut.data()), cut.size()}, "bundle.x: section 'kernels'"),
                    Catch::Contains("outside the section"));
}

TEST_CASE("cuda: every generated kernel compiles with NVRTC and a clean log", "[cuda]") {
  if (!have_nvrtc()) return;
  std::vector<std::pair<std::string, ir::Module>> modules;
  modules.emplace_back("2b4t layer", two_b4t_layer());
  for (std::string model : {"p1-gqa", "p2-mha"}) {
    if (!have_shared("golden/" + model)) continue;
    for (std::string mode : {"int8_token", "none"}) {
      LowerOptions lower;
      lower.act_quant = mode;
      const auto& pipeline = passes::default_pipeline("cuda");
      modules.emplace_back(model + " " + mode, ir::parse(lowered_ir_text(shared_testdata("golden/" + model + "/model-tq2_0.gguf"), lower, pipeline), "golden"));
    }
  }
  for (const auto& [name, m] : modules) {
    const cuda::ModulePlan plan = cuda::plan_module(m);
    // Int8 models have a persistent step kernel for steps of one token; float mode (verification) has none.
    INFO(name << ": " << plan.step_refusal);
    CHECK(plan.step_kernel.empty() == (name.find("none") != std::string::npos));
    const std::string source = cuda::generate_source(plan.kernels, cuda::Flavor::Device);
    for (std::string arch : {"sm_90", "compute_90"}) {
      DYNAMIC_SECTION(name << " " << arch) {
        const auto r = cuda::nvrtc_compile(source, arch, "test");
        INFO(r.log);
        CHECK(r.ok);
        CHECK(r.log.empty());
        CHECK(!r.image.empty());
        if (arch == "compute_90") {
          const std::string ptx(r.image.begin(), r.image.end());
          for (const auto& k : plan.kernels)
            if (k.entry) CHECK(ptx.find(".entry " + k.name + "(") != std::string::npos);
        }
      }
    }
  }
  // The check can fail: a kernel with a type error is refused with the line in the log.
  cuda::KernelSpec broken = cuda::plan_module(modules.front().second).kernels.front();
  broken.holes.begin()->second = "not_a_number";
  const auto r = cuda::nvrtc_compile(cuda::generate_source({broken}, cuda::Flavor::Device), "sm_90", "broken");
  CHECK(!r.ok);
  CHECK(r.log.find("error") != std::string::npos);
}

TEST_CASE("cuda: ops the backend cannot run are refused at compile time, naming them", "[cuda]") {
  ir::Module m = two_b4t_layer();
  m.weights[static_cast<size_t>(*m.find_weight("o"))].type = {ir::DType::F32, {2560, 2560}};
  CHECK_THROWS_WITH(cuda::plan_module(m), Catch::Contains("weight @o is f32") && Catch::Contains("ternary BitLinears only"));
}

TEST_CASE("cuda: a CUDA bundle is refused where there is no driver or no device", "[cuda]") {
  if (!have_nvrtc() || !have_shared("golden/p1-gqa")) return;
  if (void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL)) {
    dlclose(lib);
    if (gpu()) {
      WARN("SKIPPED: this machine has a CUDA device; the refusal is tested where there is none");
      return;
    }
    TempDir tmp("cudarefuse");
    auto m = Model::load(compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp));
    CHECK_THROWS_WITH(Engine(*m, 64, 1), Catch::Contains("target cuda: no CUDA device on this machine"));
    return;
  }
  TempDir tmp("cudarefuse");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  auto m = Model::load(bundle);  // inspecting a CUDA bundle needs no GPU
  CHECK(m->target() == "cuda");
  CHECK_THROWS_WITH(Engine(*m, 64, 1), Catch::Equals(bundle + ": target cuda: no CUDA driver (libcuda.so.1) on this machine"));
}

TEST_CASE("cuda: the executor on the host emulator stays within the stated bounds of ref", "[cuda]") {
  // Bounds as for the x86 backend (tests/test_x86.cpp): float mode (f32 KV cache, f32 sums against ref's
  // doubles) max|d| <= 1e-3; int8 mode (f16 KV cache) max|d| <= 0.35 with cosine >= 0.9995. Graph replay
  // and eager launches must agree bit for bit (the same kernels on the same data).
  // Besides the goldens, a synthetic model with the 2B4T head layout (head dim 128, four query heads per
  // KV head) and widths that are not powers of two (FFN 1408: partial GEMV word rows, 11 GEMM K tiles).
  if (!have_nvrtc() || !emulator_usable()) return;
  // And a wide FFN (4096: the GEMV's two row pairs per warp).
  for (std::string model : {"p1-gqa", "p2-mha", "synthetic-d128", "synthetic-wide"}) {
    const bool synthetic = model.rfind("synthetic", 0) == 0;
    if (!have_shared("golden/p1-gqa") || (!synthetic && !have_shared("golden/" + model))) continue;
    for (std::string mode : {"int8_token", "none"}) {
      DYNAMIC_SECTION(model << " " << mode) {
        TempDir tmp("cudaemu");
        std::string gguf = shared_testdata("golden/" + model + "/model-tq2_0.gguf");
        if (synthetic) {
          SynthOptions synth;
          synth.shape = parse_synth_shape(model == "synthetic-d128" ? "hidden=512,layers=2,heads=4,kv-heads=1,ffn=1408,vocab=771"
                                                                    : "hidden=256,layers=1,heads=2,kv-heads=1,ffn=4096,vocab=771");
          synth.vocab_path = shared_testdata("golden/p1-gqa/model-f32.gguf");  // its 771-token vocabulary
          gguf = tmp.file("synthetic.gguf");
          synthesize_model(synth, gguf);
        }
        const std::vector<float> ref = ref_rows(compile_for(gguf, "ref", mode, tmp));
        const std::string bundle = compile_for(gguf, "cuda", mode, tmp);
        cuda::CudaOptions options;
        options.driver = emulator_for(bundle, tmp);
        options.attention_splits = 4;
        // Eager, graphs, and decode op by op instead of the persistent step kernel (int8 models): the
        // same kernels' arithmetic, so the same bits.
        std::vector<float> rows[3];
        for (int v = 0; v < 3; ++v) {
          options.graphs = v == 1;
          options.persistent = v != 2;
          CudaModel c = open_cuda(bundle, 64, 1, options);
          rows[v] = prompt_then_decode([&](auto& ids, auto& pos, auto& seq) { return c.step(ids, pos, seq); });
          if (v == 1) CHECK(c.exec->graphs_captured() == 1);
          INFO(c.exec->describe());
          CHECK(c.exec->step_blocks() == (mode == "none" || v == 2 ? 0 : 4));  // the emulator's 4 multiprocessors
        }
        CHECK(rows[0] == rows[1]);
        CHECK(rows[0] == rows[2]);
        // The prompt's tensor-core GEMMs cut into 3 ranges of K each, their int32 sums merged by the
        // last block: the same bits.
        options.graphs = false, options.k_splits = 3;
        CudaModel split = open_cuda(bundle, 64, 1, options);
        CHECK(prompt_then_decode([&](auto& ids, auto& pos, auto& seq) { return split.step(ids, pos, seq); }) == rows[0]);
        const Diff d = compare(ref, rows[1]);
        INFO("max|d| " << d.max_abs << " cosine " << d.cosine);
        // The synthetic models' random weights condition int8 mode worse: the x86 backend is 0.35 from
        // ref on the d128 one too; a wrong kernel moves the cosine far below the bound.
        CHECK(d.max_abs <= (mode == "none" ? 1e-3 : synthetic ? 1.0 : 0.35));
        CHECK(d.cosine >= (mode == "none" ? 0.9999999 : synthetic ? 0.999 : 0.9995));
      }
    }
  }
}

TEST_CASE("cuda: emulated attention over a context split in ranges merges to ref's result", "[cuda]") {
  // A 140-token prompt, then decode steps at positions 140..147: each (token, KV head) takes 5 blocks of
  // positions whose states the last one merges. The same bounds as above.
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  for (std::string mode : {"int8_token", "none"}) {
    DYNAMIC_SECTION(mode) {
      TempDir tmp("cudasplit");
      const std::string gguf = shared_testdata("golden/p1-gqa/model-tq2_0.gguf");
      const std::vector<float> ref = ref_rows(compile_for(gguf, "ref", mode, tmp), 140);
      const std::string bundle = compile_for(gguf, "cuda", mode, tmp);
      cuda::CudaOptions options;
      options.driver = emulator_for(bundle, tmp);
      std::vector<float> rows[4];
      for (int v = 0; v < 4; ++v) {  // eager, graphs, op by op instead of the step kernel, f32 prefill attention
        options.graphs = v == 1;
        options.persistent = v != 2;
        options.tc_attention = v != 3;
        CudaModel c = open_cuda(bundle, 256, 1, options);
        rows[v] = prompt_then_decode([&](auto& ids, auto& pos, auto& seq) { return c.step(ids, pos, seq); }, 140);
      }
      CHECK(rows[0] == rows[1]);
      CHECK(rows[0] == rows[2]);
      // The 140-token prompt's attention on the f16 tensor cores (int8 mode: an f16 cache; head and tail
      // halves of q and P) against the f32 kernel: equal to f32 rounding (rows differ by ~1e-5), which the
      // int8 requantization of later layers turns into one rounding step in some rows (0.05-0.17 there,
      // here and on the H200); as close to ref as the f32 kernel is. A causal mask one position off moves
      // the cosine to 0.976.
      if (mode == "int8_token") {
        const Diff tc = compare(rows[3], rows[0]), tc_ref = compare(ref, rows[0]), f32_ref = compare(ref, rows[3]);
        INFO("tensor-core attention against f32: max|d| " << tc.max_abs << " cosine " << tc.cosine << "; against ref: cosine "
                                                          << tc_ref.cosine << " (f32: " << f32_ref.cosine << ")");
        CHECK(tc.max_abs <= 0.35);
        CHECK(tc.cosine >= 0.9999);
        CHECK(std::fabs(tc_ref.cosine - f32_ref.cosine) <= 2e-5);
      } else {
        CHECK(rows[0] == rows[3]);  // f32 cache: no tensor-core kernel
      }
      const Diff d = compare(ref, rows[1]);
      INFO("max|d| " << d.max_abs << " cosine " << d.cosine);
      CHECK(d.max_abs <= (mode == "none" ? 1e-3 : 0.35));
      CHECK(d.cosine >= (mode == "none" ? 0.9999999 : 0.9995));
    }
  }
}

namespace {

// The persistent step kernel's grid barrier (common.cuh) in a kernel of its own: every block of a
// cooperative launch passes a row to its neighbour each round, blocks reaching the barrier at different
// times (b % 4 extra __syncthreads); `skip_wait` leaves the wait out, `extra` waits for arrivals that
// never come. Returns the rows after every round.
const char* kRingKernel = R"(
struct RingArgs {
  unsigned* barrier;
  int* data;  // [rounds + 1][blocks][256]
  int rounds, skip_wait, extra;
};
extern "C" __global__ void __launch_bounds__(256) ring(const RingArgs a) {
  GridBarrier bar{a.barrier, gridDim.x + a.extra, 0u};
  const int n = gridDim.x, b = blockIdx.x, t = threadIdx.x;
  for (int r = 0; r < a.rounds; ++r) {
    for (int k = 0; k < b % 4; ++k) __syncthreads();
    if (!a.skip_wait) grid_wait(bar);
    a.data[((r + 1) * n + b) * 256 + t] = a.data[(r * n + (b + 1) % n) * 256 + t] + 1 + b;
    grid_arrive(bar);
  }
}
KERNEL_ENTRY(ring, RingArgs)
)";

std::vector<int> run_ring(const cuda::DriverApi& api, const std::vector<uint8_t>& image, int blocks, int rounds, int skip_wait, int extra) {
  auto check = [&](CUresult r, const char* what) { cuda::check(api, r, "ring", what); };
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  check(api.cuDeviceGet(&dev, 0), "cuDeviceGet");
  check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  check(api.cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  CUmodule module = nullptr;
  CUfunction f = nullptr;
  check(api.cuModuleLoadDataEx(&module, image.data(), 0, nullptr, nullptr), "cuModuleLoadDataEx");
  check(api.cuModuleGetFunction(&f, module, "ring"), "cuModuleGetFunction");
  const size_t n = static_cast<size_t>(rounds + 1) * blocks * 256;
  std::vector<int> data(n, 0);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < 256; ++t) data[b * 256 + t] = b * 1000 + t;
  CUdeviceptr d = 0, bar = 0;
  check(api.cuMemAlloc(&d, n * 4), "cuMemAlloc");
  check(api.cuMemAlloc(&bar, 4), "cuMemAlloc");
  check(api.cuMemcpyHtoD(d, data.data(), n * 4), "cuMemcpyHtoD");
  unsigned zero = 0;
  check(api.cuMemcpyHtoD(bar, &zero, 4), "cuMemcpyHtoD");
  struct {
    unsigned* barrier;
    int* data;
    int rounds, skip_wait, extra;
  } args{reinterpret_cast<unsigned*>(bar), reinterpret_cast<int*>(d), rounds, skip_wait, extra};
  void* params[] = {&args};
  CUlaunchAttribute attr{};
  attr.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
  attr.value.cooperative = 1;
  CUlaunchConfig config{};
  config.gridDimX = static_cast<unsigned>(blocks), config.gridDimY = 1, config.gridDimZ = 1;
  config.blockDimX = 256, config.blockDimY = 1, config.blockDimZ = 1;
  config.attrs = &attr;
  config.numAttrs = 1;
  std::string error;
  try {
    check(api.cuLaunchKernelEx(&config, f, params, nullptr), "cuLaunchKernelEx");
    check(api.cuCtxSynchronize(), "cuCtxSynchronize");
    check(api.cuMemcpyDtoHAsync(data.data(), d, n * 4, nullptr), "cuMemcpyDtoHAsync");
    check(api.cuCtxSynchronize(), "cuCtxSynchronize");
  } catch (const Error& e) {
    error = e.what();
  }
  api.cuMemFree(d);
  api.cuMemFree(bar);
  api.cuModuleUnload(module);
  api.cuDevicePrimaryCtxRelease(dev);
  if (!error.empty()) fail("{}", error);
  return data;
}

// What the ring computes when every round sees the whole previous one.
std::vector<int> ring_expected(int blocks, int rounds) {
  std::vector<int> data(static_cast<size_t>(rounds + 1) * blocks * 256);
  for (int b = 0; b < blocks; ++b)
    for (int t = 0; t < 256; ++t) data[b * 256 + t] = b * 1000 + t;
  for (int r = 0; r < rounds; ++r)
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < 256; ++t) data[((r + 1) * blocks + b) * 256 + t] = data[(r * blocks + (b + 1) % blocks) * 256 + t] + 1 + b;
  return data;
}

}  // namespace

TEST_CASE("cuda: the grid barrier orders the rounds of a cooperative launch on the emulator", "[cuda]") {
  if (!emulator_usable()) return;
  TempDir tmp("cudaring");
  const std::string source = cuda::generate_source({}, cuda::Flavor::Host) + kRingKernel;
  const auto api = cuda::emu::host_driver(cuda::emu::build_kernel_library(source, tmp.path.string(), BITNETC_HOST_CXX));
  int sms = 0;
  api->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0);
  REQUIRE(sms >= 3);
  CHECK(run_ring(*api, {}, sms, 12, 0, 0) == ring_expected(sms, 12));
  // The test can fail: without the wait, blocks read rows their neighbours have not written yet.
  CHECK(run_ring(*api, {}, sms, 12, 1, 0) != ring_expected(sms, 12));
  // A barrier that cannot complete is reported, not a hang.
  CHECK_THROWS_WITH(run_ring(*api, {}, sms, 2, 0, 1), Catch::Contains("deadlocked"));
  // Only as many blocks as the emulated GPU holds at once.
  CHECK_THROWS(run_ring(*api, {}, sms + 1, 1, 0, 0));
}

TEST_CASE("cuda: emulated batched sequences give each the logits it gets alone", "[cuda]") {
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudabatch");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  cuda::CudaOptions options;
  options.driver = emulator_for(bundle, tmp);
  std::vector<int32_t> a = {768, 219, 218, 61}, b = {768, 432, 356};
  auto alone = [&](const std::vector<int32_t>& ids) {
    CudaModel c = open_cuda(bundle, 64, 1, options);
    std::vector<float> last;
    for (size_t i = 0; i < ids.size(); ++i) last = c.step({ids[i]}, {static_cast<int32_t>(i)}, {0});
    return last;
  };
  CudaModel both = open_cuda(bundle, 64, 2, options);
  both.step({a[0], b[0]}, {0, 0}, {0, 1});
  both.step({a[1], b[1]}, {1, 1}, {0, 1});
  const auto third = both.step({a[2], b[2]}, {2, 2}, {0, 1});
  const auto fourth = both.step({a[3]}, {3}, {0});
  // Per-token quantization, integer dot products, per-(token, head) attention and per-row LM-head sums
  // do not depend on the batch: equal bit for bit.
  CHECK(std::vector<float>(third.begin() + 771, third.end()) == alone(b));
  CHECK(fourth == alone(a));
}

TEST_CASE("cuda: BITNETC_CUDA_OMIT leaves the named kernels out and the executor says so", "[cuda]") {
  setenv("BITNETC_CUDA_OMIT", "attend,,matmul", 1);
  const cuda::CudaOptions parsed = cuda::cuda_options_from_env();
  unsetenv("BITNETC_CUDA_OMIT");
  CHECK(parsed.omit_kernels == std::vector<std::string>{"attend", "matmul"});
  CHECK(cuda::cuda_options_from_env().omit_kernels.empty());
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudaomit");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  cuda::CudaOptions options;
  options.driver = emulator_for(bundle, tmp);
  CudaModel full = open_cuda(bundle, 64, 1, options);
  options.omit_kernels = {"attend"};
  CudaModel without = open_cuda(bundle, 64, 1, options);
  CHECK(full.exec->describe().find("OMITTING") == std::string::npos);
  CHECK(without.exec->describe().find("OMITTING kernels named *attend*") != std::string::npos);
  // Two tokens, so that the second one's attention (over both positions) matters to its logits.
  full.step({768}, {0}, {0});
  without.step({768}, {0}, {0});
  CHECK(full.step({219}, {1}, {0}) != without.step({219}, {1}, {0}));
}

TEST_CASE("cuda: the read-bandwidth probe reads every byte of its buffer", "[cuda]") {
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudaprobe");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  cuda::CudaOptions options;
  options.driver = emulator_for(bundle, tmp);
  // 5 full turns of 4 loads for the emulator's 32 blocks of 256 threads, then a tail of 777 words; the
  // executor throws when the blocks' sums miss a byte.
  options.read_probe_bytes = 16 * (32 * 256 * 4 * 5 + 777);
  CudaModel c = open_cuda(bundle, 64, 1, options);
  const double gb_s = c.exec->device_read_bandwidth_gb_s();
  CHECK(std::isfinite(gb_s));
  CHECK(gb_s > 0);
  // The engine still steps afterwards (the probe's buffers are gone, the stream is clean).
  CHECK(c.step({768}, {0}, {0}).size() == static_cast<size_t>(c.model->n_vocab()));
}

namespace {
// Every row's logits of one step of T tokens on a fresh engine (context 64): token t is (97 t + 5) % 768,
// at position t of one sequence (a prompt) or at position 0 of sequence t of T (a batch).
std::vector<float> one_step(const std::string& bundle, const cuda::CudaOptions& options, int T, bool batch) {
  CudaModel c = open_cuda(bundle, 64, batch ? T : 1, options);
  std::vector<int32_t> ids, pos, seq;
  for (int t = 0; t < T; ++t) ids.push_back((t * 97 + 5) % 768), pos.push_back(batch ? 0 : t), seq.push_back(batch ? t : 0);
  return c.step(ids, pos, seq);
}
}  // namespace

TEST_CASE("cuda: the tensor-core GEMV of a few tokens gives the dp4a GEMV's and the GEMM's bits", "[cuda]") {
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudatcgemv");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  cuda::CudaOptions options;
  options.driver = emulator_for(bundle, tmp);
  // The first T tokens of one prompt in one step, with the ternary matmuls of 2.. tc_tokens tokens on the
  // tensor-core GEMV. Integer dot products and the same f32 epilogue: equal bits.
  auto run = [&](int tc_tokens, int T, int pair_groups = 2) {
    cuda::CudaOptions o = options;
    o.tc_gemv_tokens = tc_tokens;
    o.tc_gemv_pair_groups = pair_groups;
    return one_step(bundle, o, T, false);
  };
  const auto tc5 = run(8, 5), dp4a5 = run(0, 5);
  REQUIRE(tc5.size() == 5 * 771);
  CHECK(tc5 == dp4a5);
  // Against the int8 GEMM: 12 tokens (blocks of 8, the second partly past T) and 40 (the wide kernel, 4
  // tiles of 8 tokens per block at this model's widths, two blocks of tokens), whose blocks take 32 row
  // pairs (the emulator's 4 SMs still get two blocks each) or, with one group, 16.
  for (int T : {12, 40}) {
    INFO(T << " tokens");
    const auto gemm = run(8, T);
    REQUIRE(gemm.size() == static_cast<size_t>(T) * 771);
    CHECK(run(64, T) == gemm);
    if (T == 40) CHECK(run(64, T, 1) == gemm);
  }
}

TEST_CASE("cuda: the tensor-core LM head of a few rows gives the f32 GEMV's logits to f32 rounding", "[cuda]") {
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudatchead");
  // Float mode: every other op is the same f32 kernel either way, so the difference is the LM head's.
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "none", tmp);
  cuda::CudaOptions options;
  options.driver = emulator_for(bundle, tmp);
  auto run = [&](bool tc, int T) {  // T sequences' first tokens
    cuda::CudaOptions o = options;
    o.tc_lm_head = tc;
    return one_step(bundle, o, T, true);
  };
  for (int T : {1, 6}) {
    INFO(T << " rows");
    const auto tc = run(true, T), gemv = run(false, T);
    REQUIRE(tc.size() == static_cast<size_t>(T) * 771);
    const Diff d = compare(tc, gemv);
    INFO("max|d| " << d.max_abs << " cosine " << d.cosine);
    CHECK(d.max_abs <= 1e-4);  // dropping the f16 tails of x gives ~1e-3
  }
}

// ------------------------------------------------------------------------------------------------------
// On a GPU.

namespace {

// Steps of T tokens from T sequences (as batched decode) on an engine with 16 sequences, whose LM head
// takes up to 64 rows at once (the tensor-core kernel beyond 8): the ids chosen on the device are the
// host's argmax of the same step's logits, for every row and for the last alone; and those logits are
// each token's alone (an engine of one sequence: the 8-row GEMV head). In float mode every layer runs the
// same f32 kernels either way, so what differs is f32 rounding, the LM head's included: a head that
// dropped the f16 tails of its inputs would be off by ~1e-3 there.
void check_greedy(const TempDir& tmp, bool emulated) {
  for (std::string mode : {"int8_token", "none"}) {
    const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", mode, tmp);
    cuda::CudaOptions options;
    if (emulated) options.driver = emulator_for(bundle, tmp);
    for (int T : {1, 5, 12}) {
      DYNAMIC_SECTION(mode << " tokens " << T) {
        std::vector<int32_t> ids, pos, seq;
        for (int t = 0; t < T; ++t) ids.push_back((t * 97 + 5) % 768), pos.push_back(0), seq.push_back(t);
        CudaModel logits_run = open_cuda(bundle, 64, 16, options), greedy_run = open_cuda(bundle, 64, 16, options),
                  last_run = open_cuda(bundle, 64, 16, options);
        const std::vector<float> logits = logits_run.step(ids, pos, seq);
        const std::vector<int32_t> greedy = greedy_run.exec->run_greedy({ids, pos, seq, true});
        const std::vector<int32_t> last = last_run.exec->run_greedy({ids, pos, seq, false});
        REQUIRE(logits.size() == static_cast<size_t>(T) * 771);
        REQUIRE(greedy.size() == static_cast<size_t>(T));
        REQUIRE(last.size() == 1);
        for (int t = 0; t < T; ++t) CHECK(greedy[t] == argmax(std::span<const float>(logits).subspan(static_cast<size_t>(t) * 771, 771)));
        CHECK(last[0] == greedy[T - 1]);
        for (int t = 0; t < T; t += 4) {
          CudaModel alone = open_cuda(bundle, 64, 1, options);
          const std::vector<float> l = alone.step({ids[t]}, {0}, {0});
          const Diff d = compare(std::vector<float>(logits.begin() + t * 771, logits.begin() + (t + 1) * 771), l);
          INFO("token " << t << ": max|d| " << d.max_abs);
          // T > 8 in int8 mode: the int8 tensor-core GEMMs, as the batch test.
          const double bound = T <= cuda::kMaxGemvTokens ? 0.0 : mode == "none" ? 1e-4 : 0.1;
          CHECK(d.max_abs <= bound);
          CHECK(d.cosine >= 0.99999);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("cuda: greedy ids chosen on the emulated device are the host's argmax", "[cuda]") {
  if (!have_nvrtc() || !emulator_usable() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudagreedy");
  check_greedy(tmp, true);
}

TEST_CASE("cuda gpu: greedy ids chosen on the GPU are the host's argmax", "[cuda][gpu]") {
  if (!have_nvrtc() || !gpu() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudagpugreedy");
  check_greedy(tmp, false);
}

TEST_CASE("cuda gpu: the read-bandwidth probe measures the GPU's memory", "[cuda][gpu]") {
  if (!have_nvrtc() || !gpu() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudagpuprobe");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  CudaModel c = open_cuda(bundle, 64, 1, cuda::CudaOptions{});
  const double gb_s = c.exec->device_read_bandwidth_gb_s();
  INFO(gb_s << " GB/s");
  // HBM of any data-centre GPU this backend targets (sm_80+): hundreds to thousands of GB/s; far above
  // would mean the buffer sat in the L2 cache.
  CHECK(gb_s > 300);
  CHECK(gb_s < 20000);
}

TEST_CASE("cuda gpu: the grid barrier orders 500 rounds across every multiprocessor", "[cuda][gpu]") {
  if (!have_nvrtc()) return;
  auto api = gpu();
  if (!api) return;
  const auto r = cuda::nvrtc_compile(cuda::generate_source({}, cuda::Flavor::Device) + kRingKernel, "sm_90", "ring");
  INFO(r.log);
  REQUIRE(r.ok);
  int sms = 0;
  api->cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, 0);
  CHECK(run_ring(*api, r.image, sms, 500, 0, 0) == ring_expected(sms, 500));
}

TEST_CASE("cuda gpu: parity with the HuggingFace goldens", "[cuda][gpu]") {
  if (!have_nvrtc() || !gpu()) return;
  for (std::string model : {"p1-gqa", "p2-mha"}) {
    if (!have_shared("golden/" + model)) continue;
    const std::string dir = shared_testdata("golden/" + model);
    std::ifstream cfg(dir + "/config.json");
    const size_t n_vocab = nlohmann::json::parse(cfg).at("vocab_size").get<size_t>();
    for (std::string format : {"i2_s", "tq2_0", "tq1_0"}) {
      for (std::string mode : {"act_int8", "float"}) {
        DYNAMIC_SECTION(model << " " << format << " " << mode) {
          TempDir tmp("cudagold");
          std::ifstream pin(dir + "/prompt_ids.json"), gin(dir + "/" + mode + "/greedy.json");
          const auto prompt = nlohmann::json::parse(pin).get<std::vector<int32_t>>();
          const auto greedy = nlohmann::json::parse(gin);
          const auto forced = greedy.at("tokens").get<std::vector<int32_t>>();
          const auto margins = greedy.at("top2_margin").get<std::vector<double>>();
          auto read = [&](const std::string& file) {
            std::ifstream in(dir + "/" + mode + "/" + file, std::ios::binary);
            std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
            std::vector<float> out(bytes.size() / 4);
            std::memcpy(out.data(), bytes.data(), out.size() * 4);
            return out;
          };
          std::vector<float> gold = read("logits_prefill.f32"), decode = read("decode_logits.f32");
          gold.insert(gold.end(), decode.begin(), decode.end());
          const std::string bundle = compile_for(dir + "/model-" + format + ".gguf", "cuda", mode == "float" ? "none" : "int8_token", tmp);
          CudaModel c = open_cuda(bundle, 256, 1, {});
          std::vector<int32_t> pos, seq(prompt.size(), 0);
          for (size_t i = 0; i < prompt.size(); ++i) pos.push_back(static_cast<int32_t>(i));
          std::vector<float> rows = c.step(prompt, pos, seq);
          for (size_t k = 0; k < forced.size(); ++k) {
            auto r = c.step({forced[k]}, {static_cast<int32_t>(prompt.size() + k)}, {0});
            rows.insert(rows.end(), r.begin(), r.end());
          }
          REQUIRE(rows.size() == gold.size());
          // golden/README.md: float cos >= 0.99999, max|d| <= 1e-3; act_int8 cos >= 0.999, max|d| <= 0.5.
          const double max_bound = mode == "float" ? 1e-3 : 0.5, cos_bound = mode == "float" ? 0.99999 : 0.999;
          for (size_t row = 0; row < rows.size() / n_vocab; ++row) {
            const Diff d = compare(std::vector<float>(gold.begin() + row * n_vocab, gold.begin() + (row + 1) * n_vocab),
                                   std::vector<float>(rows.begin() + row * n_vocab, rows.begin() + (row + 1) * n_vocab));
            INFO(c.exec->describe() << " row " << row << " max|d| " << d.max_abs << " cosine " << d.cosine);
            CHECK(d.max_abs <= max_bound);
            CHECK(d.cosine >= cos_bound);
          }
          for (size_t k = 0; k < forced.size(); ++k) {
            if (margins[k] <= (mode == "float" ? 0.05 : 0.5)) continue;
            const float* row = rows.data() + (prompt.size() - 1 + k) * n_vocab;
            CHECK(std::max_element(row, row + n_vocab) - row == forced[k]);
          }
        }
      }
    }
  }
}

TEST_CASE("cuda gpu: ref bounds, graph replay against eager launches, PDL against none", "[cuda][gpu]") {
  // Prompts of 12 and 140 tokens: decoding past 32 positions splits attention into merged ranges.
  if (!have_nvrtc() || !gpu()) return;
  for (std::string model : {"p1-gqa", "p2-mha"}) {
    if (!have_shared("golden/" + model)) continue;
    for (std::string mode : {"int8_token", "none"}) {
      for (int32_t prompt : {12, 140}) {
        DYNAMIC_SECTION(model << " " << mode << " prompt " << prompt) {
          TempDir tmp("cudagraph");
          const std::string gguf = shared_testdata("golden/" + model + "/model-tq2_0.gguf");
          const std::vector<float> ref = ref_rows(compile_for(gguf, "ref", mode, tmp), prompt);
          const std::string bundle = compile_for(gguf, "cuda", mode, tmp);
          std::vector<float> runs[6];
          // graphs + PDL, eager + PDL, eager without PDL, graphs without the step kernel; eager with the
          // prompt's GEMMs split over K in 3 ranges; eager with the prompt's attention in f32, not on the
          // tensor cores.
          for (int v = 0; v < 6; ++v) {
            cuda::CudaOptions options;
            options.graphs = v == 0 || v == 3;
            options.pdl = v != 2;
            options.persistent = v != 3 && v < 4;
            options.k_splits = v == 4 ? 3 : 0;
            options.tc_attention = v != 5;
            CudaModel c = open_cuda(bundle, 256, 1, options);
            runs[v] = prompt_then_decode([&](auto& ids, auto& pos, auto& seq) { return c.step(ids, pos, seq); }, prompt);
            INFO(c.exec->describe());
            if (v == 0 || v == 3) CHECK(c.exec->graphs_captured() == 1);
            CHECK((c.exec->step_blocks() > 0) == (mode == "int8_token" && v != 3 && v < 4));
          }
          CHECK(runs[0] == runs[1]);
          CHECK(runs[1] == runs[2]);
          CHECK(runs[0] == runs[3]);
          CHECK(runs[0] == runs[4]);
          const Diff tc = compare(runs[5], runs[0]), f32_ref = compare(ref, runs[5]);  // as in the emulator test of split attention
          INFO("tensor-core attention against f32: max|d| " << tc.max_abs << " cosine " << tc.cosine << "; f32 against ref: cosine " << f32_ref.cosine);
          CHECK(tc.max_abs <= (mode == "none" ? 0.0 : 0.35));
          CHECK(tc.cosine >= 0.9999);
          CHECK(std::fabs(compare(ref, runs[0]).cosine - f32_ref.cosine) <= 2e-5);
          const Diff d = compare(ref, runs[0]);
          INFO("max|d| " << d.max_abs << " cosine " << d.cosine);
          CHECK(d.max_abs <= (mode == "none" ? 1e-3 : 0.35));
          CHECK(d.cosine >= (mode == "none" ? 0.9999999 : 0.9995));
        }
      }
    }
  }
}

TEST_CASE("cuda gpu: batched sequences give each the logits it gets alone", "[cuda][gpu]") {
  if (!have_nvrtc() || !gpu() || !have_shared("golden/p1-gqa")) return;
  TempDir tmp("cudagpubatch");
  const std::string bundle = compile_for(shared_testdata("golden/p1-gqa/model-i2_s.gguf"), "cuda", "int8_token", tmp);
  // Eight sequences decoded together (graph of 8 tokens), then sixteen (no graph; the LM head on the
  // tensor cores), against each sequence alone (graphs of 1 token); a token's logits do not depend on its
  // batch.
  for (int batch : {8, 16}) {
    DYNAMIC_SECTION("batch " << batch) {
      CudaModel both = open_cuda(bundle, 64, batch, {});
      std::vector<std::vector<float>> last(static_cast<size_t>(batch));
      for (int32_t p = 0; p < 5; ++p) {
        std::vector<int32_t> ids, pos, seq;
        for (int s = 0; s < batch; ++s) ids.push_back((s * 97 + p * 31) % 768), pos.push_back(p), seq.push_back(s);
        auto l = both.step(ids, pos, seq);
        for (int s = 0; s < batch; ++s) last[s].assign(l.begin() + s * 771, l.begin() + (s + 1) * 771);
      }
      for (int s = 0; s < batch; s += 5) {
        CudaModel alone = open_cuda(bundle, 64, 1, {});
        std::vector<float> l;
        for (int32_t p = 0; p < 5; ++p) l = alone.step({(s * 97 + p * 31) % 768}, {p}, {0});
        INFO("sequence " << s);
        if (batch <= cuda::kMaxGemvTokens) {
          CHECK(l == last[s]);
        } else {  // the LM head's f32 sums in another order; attention in one range instead of splits
          const Diff d = compare(last[s], l);
          INFO("max|d| " << d.max_abs << " cosine " << d.cosine);
          CHECK(d.max_abs <= 0.1);
          CHECK(d.cosine >= 0.99999);
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// Measurements for bench/RESULTS.md (scripts/device_cuda.sh): not a test, run by its tag on a GPU with
// BITNETC_CUDA_BENCH_BUNDLE naming a CUDA bundle. One JSON object per line on stdout.

TEST_CASE("cuda bench: batched decode, graphs on and off, first-token time, device memory", "[.cuda-bench]") {
  const char* path = std::getenv("BITNETC_CUDA_BENCH_BUNDLE");
  auto driver = gpu();
  if (!path || !driver) {
    WARN("SKIPPED: set BITNETC_CUDA_BENCH_BUNDLE on a machine with a GPU");
    return;
  }
  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  auto print = [](const nlohmann::json& j) { std::printf("%s\n", j.dump().c_str()); std::fflush(stdout); };
  auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  driver->cuDeviceGet(&dev, 0);
  driver->cuDevicePrimaryCtxRetain(&ctx, dev);
  driver->cuCtxSetCurrent(ctx);
  size_t free0 = 0, total = 0;
  driver->cuMemGetInfo(&free0, &total);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> token(0, 127999);

  {  // a 4096-token context: time to first token of a 512-token prompt, then memory after decoding
    CudaModel c = open_cuda(path, 4096, 1, {});
    std::vector<int32_t> ids(512), pos(512), seq(512, 0);
    std::vector<double> ttft;
    for (int r = 0; r < 6; ++r) {
      for (int i = 0; i < 512; ++i) ids[i] = token(rng), pos[i] = i;
      const auto t0 = Clock::now();
      c.exec->run({ids, pos, seq, false});
      if (r > 0) ttft.push_back(seconds(t0) * 1e3);
    }
    for (int32_t p = 512; p < 640; ++p) c.step({token(rng)}, {p}, {0}, false);
    size_t free1 = 0;
    driver->cuMemGetInfo(&free1, &total);
    print({{"test", "prefill512_ctx4096"}, {"ttft_ms_median", median(ttft)}, {"ttft_ms", ttft}, {"prefill_tok_s", 512e3 / median(ttft)},
           {"engine_device_mb", c.exec->device_bytes() / 1e6}, {"device_used_delta_mb", (free0 - free1) / 1e6},
           {"device_used_total_mb", (total - free1) / 1e6}, {"device", c.exec->describe()}});
  }
  for (int batch : {1, 2, 4, 8, 16, 32, 64}) {
    for (int variant = 0; variant < 3; ++variant) {  // graphs; graphs with the step kernel on/off flipped; no graphs
      if (variant > 0 && batch > 1) continue;
      const bool graphs = variant != 2;
      cuda::CudaOptions options = cuda::cuda_options_from_env();
      options.graphs = graphs;
      if (variant == 1) options.persistent = !options.persistent;
      CudaModel c = open_cuda(path, 1024, batch, options);
      std::vector<int32_t> ids, pos, seq;
      for (int s = 0; s < batch; ++s)
        for (int i = 0; i < 256; ++i) ids.push_back(token(rng)), pos.push_back(i), seq.push_back(s);
      c.exec->run({ids, pos, seq, false});  // every sequence at position 256
      std::vector<double> step_ms;
      for (int32_t p = 256; p < 256 + 8 + 128; ++p) {
        std::vector<int32_t> t(static_cast<size_t>(batch)), at(t.size(), p), slot(t.size());
        for (int s = 0; s < batch; ++s) t[s] = token(rng), slot[s] = s;
        const auto t0 = Clock::now();
        c.exec->run_greedy({t, at, slot, true});  // every sequence's next token, chosen on the GPU
        if (p >= 256 + 8) step_ms.push_back(seconds(t0) * 1e3);
      }
      double sum = 0;
      for (double v : step_ms) sum += v;
      print({{"test", "decode"}, {"batch", batch}, {"graphs", graphs}, {"step_kernel_blocks", c.exec->step_blocks()}, {"context", "256..392"}, {"step_ms_median", median(step_ms)},
             {"tok_s", batch * 1e3 * step_ms.size() / sum}, {"device", c.exec->describe()}});
    }
  }
  driver->cuDevicePrimaryCtxRelease(dev);
}

}  // namespace bitnet::test

#endif  // BITNETC_CUDA
