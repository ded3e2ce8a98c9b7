// End-to-end parity with logits made by engines we did not write (../shared/testdata): HuggingFace
// transformers' BitNet (golden/, modes float and act_int8) and llama.cpp (llamacpp*/, F32 goldens compared
// in float mode). The prompt is fed as one step, then the golden greedy tokens are forced one at a time
// through the decode path; every logits row is compared with the bounds the data's README states.
#include "codegen/x86/x86_backend.h"
#include "frontend/compile.h"
#ifdef BITNETC_LLVM
#include "codegen/x86/llvm/kernel_generator.h"
#endif
#include "runtime/model.h"
#include "tests/testdata.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

namespace bitnet::test {
namespace {

std::vector<float> read_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), {});
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);
  return out;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

struct RowStats {
  double max_abs = 0, cosine = 1;
};

RowStats compare_row(std::span<const float> ours, std::span<const float> gold) {
  double dot = 0, a2 = 0, b2 = 0, max_abs = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    dot += static_cast<double>(ours[i]) * gold[i];
    a2 += static_cast<double>(ours[i]) * ours[i];
    b2 += static_cast<double>(gold[i]) * gold[i];
    max_abs = std::max(max_abs, std::fabs(static_cast<double>(ours[i]) - gold[i]));
  }
  return {max_abs, dot / std::sqrt(a2 * b2)};
}

struct Golden {
  std::vector<int32_t> prompt, forced;
  std::vector<double> margins;
  std::vector<float> prefill, decode;  // [rows × n_vocab]
};

// Runs the model and returns every logits row: prompt rows, then one per forced token.
std::vector<float> run_rows(const std::string& gguf, const CompileOptions& options, const Golden& g, const EngineOptions& engine_options = {}) {
  auto dir = std::filesystem::temp_directory_path() / "bitnetc-parity";
  std::filesystem::create_directories(dir);
  auto bundle = (dir / (std::filesystem::path(gguf).parent_path().filename().string() + "-" +
                        std::filesystem::path(gguf).stem().string() + "-" + options.lower.act_quant + options.lower.ffn_act + "-" + options.target +
                        (options.x86_kernels ? "-llvm" : "") + ".bundle")).string();
  compile_gguf(gguf, bundle, options);
  auto model = Model::load(bundle);
  Engine engine(*model, 256, 1, engine_options);
  if (options.x86_kernels) {  // every fused kernel of the bundle is the generated one
    const std::string used = engine.fused_kernels();
    INFO(used);
    REQUIRE(used.rfind("llvm ", 0) == 0);
    const auto of = used.find(" of ");
    REQUIRE(of != std::string::npos);
    CHECK(used.substr(used.find(": ") + 2, of - used.find(": ") - 2) == used.substr(of + 4, used.find(" kernels") - of - 4));
  }
  std::vector<int32_t> pos(g.prompt.size()), seq(g.prompt.size(), 0);
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  auto logits = engine.step(g.prompt, pos, seq);
  std::vector<float> rows(logits.begin(), logits.end());
  for (size_t k = 0; k < g.forced.size(); ++k) {
    int32_t p = static_cast<int32_t>(g.prompt.size() + k), s = 0;
    auto row = engine.step({&g.forced[k], 1}, {&p, 1}, {&s, 1});
    rows.insert(rows.end(), row.begin(), row.end());
  }
  std::filesystem::remove(bundle);
  return rows;
}

struct Bounds {
  double max_abs, min_cosine, greedy_margin;
};

// Asserts every row within bounds and greedy agreement where the golden margin is clear.
void check_rows(const std::vector<float>& rows, const Golden& g, size_t n_vocab, const Bounds& b) {
  std::vector<float> gold = g.prefill;
  gold.insert(gold.end(), g.decode.begin(), g.decode.end());
  REQUIRE(rows.size() == gold.size());
  size_t n_rows = rows.size() / n_vocab;
  for (size_t r = 0; r < n_rows; ++r) {
    auto stats = compare_row({rows.data() + r * n_vocab, n_vocab}, {gold.data() + r * n_vocab, n_vocab});
    INFO("row " << r << " max|d| " << stats.max_abs << " cosine " << stats.cosine);
    CHECK(stats.max_abs <= b.max_abs);
    CHECK(stats.cosine >= b.min_cosine);
  }
  // Row (n_prompt - 1 + k) chose forced token k.
  for (size_t k = 0; k < g.forced.size(); ++k) {
    if (g.margins[k] <= b.greedy_margin) continue;
    const float* row = rows.data() + (g.prompt.size() - 1 + k) * n_vocab;
    int32_t best = static_cast<int32_t>(std::max_element(row, row + n_vocab) - row);
    INFO("greedy step " << k << " margin " << g.margins[k]);
    CHECK(best == g.forced[k]);
  }
}

Golden load_hf_golden(const std::string& model_dir, const std::string& mode) {
  Golden g;
  g.prompt = read_json(model_dir + "/prompt_ids.json").get<std::vector<int32_t>>();
  auto greedy = read_json(model_dir + "/" + mode + "/greedy.json");
  g.forced = greedy.at("tokens").get<std::vector<int32_t>>();
  g.margins = greedy.at("top2_margin").get<std::vector<double>>();
  g.prefill = read_f32(model_dir + "/" + mode + "/logits_prefill.f32");
  g.decode = read_f32(model_dir + "/" + mode + "/decode_logits.f32");
  return g;
}

Golden load_llamacpp_golden(const std::string& dir) {
  Golden g;
  auto greedy = read_json(dir + "/greedy.json");
  g.prompt = greedy.at("prompt_ids").get<std::vector<int32_t>>();
  g.forced = greedy.at("generated_ids").get<std::vector<int32_t>>();
  g.margins = greedy.at("top2_margin").get<std::vector<double>>();
  g.prefill = read_f32(dir + "/logits_prefill.f32");
  g.decode = read_f32(dir + "/decode_logits.f32");
  return g;
}

const Bounds kFloatBounds{1e-3, 0.99999, 0.05};   // golden/README.md, float mode
const Bounds kInt8Bounds{0.5, 0.999, 0.5};        // golden/README.md, act_int8 mode

// The backends this machine can run: ref, and x86 with every ISA its CPU has.
struct Backend {
  std::string name, target;
  EngineOptions engine;
  bool llvm = false;  // x86 with the fused kernels LLVM generates into the bundle (else intrinsics)
  CompileOptions compile_options() const {
    CompileOptions options;
    options.target = target;
#ifdef BITNETC_LLVM
    if (llvm) options.x86_kernels = [](const ir::Module& m, std::string* text) { return x86::generate_x86_kernels(m, text); };
#endif
    return options;
  }
};
std::vector<Backend> backends() {
  std::vector<Backend> out{{"ref", "ref", {}}};
  const auto cpu = x86::CpuFeatures::detect();
  for (bool llvm : {false, true}) {
#ifndef BITNETC_LLVM
    if (llvm) break;
#endif
    const std::string suffix = llvm ? "-llvm" : "";
    if (x86::missing_isa(x86::required_isa(), cpu).empty()) out.push_back({"x86-avx2" + suffix, "x86", {2, "avx2"}, llvm});
    if (cpu.avx512_vnni) out.push_back({"x86-avx512vnni" + suffix, "x86", {2, "avx512vnni"}, llvm});
  }
  if (out.size() == 1) WARN("SKIPPED: this CPU cannot run the x86 backend (no AVX2/FMA/F16C)");
  return out;
}

}  // namespace

TEST_CASE("parity with HuggingFace goldens: every model, format and mode", "[parity]") {
  for (std::string model : {"p1-gqa", "p2-mha"}) {
    std::string dir = "golden/" + model;
    if (!have_shared(dir)) continue;
    auto config = read_json(shared_testdata(dir + "/config.json"));
    size_t n_vocab = config.at("vocab_size").get<size_t>();
    for (std::string format : {"f32", "f16", "tq1_0", "tq2_0", "i2_s"}) {
      std::string gguf = shared_testdata(dir + "/model-" + format + ".gguf");
      if (!std::filesystem::exists(gguf)) continue;
      for (std::string mode : {"float", "act_int8"}) {
        for (const Backend& backend : backends()) {
          DYNAMIC_SECTION(model << " " << format << " " << mode << " " << backend.name) {
            CompileOptions options = backend.compile_options();
            options.lower.act_quant = mode == "float" ? "none" : "int8_token";
            Golden g = load_hf_golden(shared_testdata(dir), mode);
            check_rows(run_rows(gguf, options, g, backend.engine), g, n_vocab, mode == "float" ? kFloatBounds : kInt8Bounds);
          }
        }
      }
    }
  }
}

TEST_CASE("parity with llama.cpp F32 goldens in float mode (SiLU, relu2, scale tensors)", "[parity]") {
  const char* sets[] = {"llamacpp/bitnet_s1_e256_l2_h4_kv2_ff512_v512", "llamacpp/bitnet_s2_e256_l2_h8_kv2_ff768_v384",
                        "llamacpp/bitnet_s5_scaletensors_e256_l2_h4_kv4_ff512_v320",
                        "llamacpp-relu2/bitnet_relu2_s11_e256_l2_h4_kv2_ff512_v512",
                        "llamacpp-relu2/bitnet_relu2_s12_e256_l2_h8_kv2_ff768_v384"};
  for (std::string set : sets) {
    if (!have_shared(set)) continue;
    for (std::string format : {"TQ2_0", "TQ1_0"}) {
      for (const Backend& backend : backends()) {
        DYNAMIC_SECTION(set << " " << format << " " << backend.name) {
          std::string gguf = shared_testdata(set + "/" + format + "/model.gguf");
          Golden g = load_llamacpp_golden(shared_testdata(set + "/F32"));
          size_t n_vocab = g.prefill.size() / g.prompt.size();
          CompileOptions options = backend.compile_options();
          options.lower.act_quant = "none";
          // llamacpp/README.md: float activations against F32 goldens, max |d| <= 1e-3, cosine >= 0.999999.
          check_rows(run_rows(gguf, options, g, backend.engine), g, n_vocab, {1e-3, 0.999999, 0.05});
        }
      }
    }
  }
}

TEST_CASE("a wrong FFN activation is caught by the parity bounds", "[parity]") {
  // Negative control: running the relu² model with SiLU must land far outside the float bounds, so the
  // parity test above can fail when the graph is wrong.
  std::string dir = "golden/p1-gqa";
  if (!have_shared(dir)) return;
  CompileOptions options;
  options.lower.act_quant = "none";
  options.lower.ffn_act = "silu";
  Golden g = load_hf_golden(shared_testdata(dir), "float");
  auto rows = run_rows(shared_testdata(dir + "/model-i2_s.gguf"), options, g);
  size_t n_vocab = 771;
  std::vector<float> gold = g.prefill;
  gold.insert(gold.end(), g.decode.begin(), g.decode.end());
  double min_cos = 1;
  for (size_t r = 0; r < rows.size() / n_vocab; ++r) {
    min_cos = std::min(min_cos, compare_row({rows.data() + r * n_vocab, n_vocab}, {gold.data() + r * n_vocab, n_vocab}).cosine);
  }
  CHECK(min_cos < kFloatBounds.min_cosine);
}

TEST_CASE("batched sequences give each the logits it gets alone", "[parity]") {
  std::string dir = "golden/p1-gqa";
  if (!have_shared(dir)) return;
  for (const Backend& backend : backends()) {
    for (std::string mode : {"none", "int8_token"}) {
      DYNAMIC_SECTION(backend.name << " act_quant " << mode) {
        TempDir tmp("batch");
        auto bundle = tmp.file("m.bundle");
        CompileOptions options = backend.compile_options();
        options.lower.act_quant = mode;
        compile_gguf(shared_testdata(dir + "/model-i2_s.gguf"), bundle, options);
        auto model = Model::load(bundle);
        std::vector<int32_t> a = {768, 219, 218, 61}, b = {768, 432, 356};
        auto alone = [&](const std::vector<int32_t>& ids) {
          Engine engine(*model, 64, 1, backend.engine);
          std::vector<int32_t> pos(ids.size()), seq(ids.size(), 0);
          for (size_t i = 0; i < ids.size(); ++i) pos[i] = static_cast<int32_t>(i);
          auto l = engine.step(ids, pos, seq);
          return std::vector<float>(l.end() - 771, l.end());
        };
        Engine engine(*model, 64, 2, backend.engine);
        std::vector<int32_t> tokens = {a[0], b[0], a[1], b[1], a[2], b[2], a[3]}, pos = {0, 0, 1, 1, 2, 2, 3}, seq = {0, 1, 0, 1, 0, 1, 0};
        auto both = engine.step(tokens, pos, seq);
        auto la = alone(a), lb = alone(b);
        // Every row is computed on its own (per-token quantization, integer dot products, per-head
        // attention), so the batch changes nothing but the floating-point order of ref's doubles.
        for (size_t i = 0; i < 771; ++i) {
          CHECK(both[6 * 771 + i] == Approx(la[i]).margin(1e-5));
          CHECK(both[5 * 771 + i] == Approx(lb[i]).margin(1e-5));
        }
      }
    }
  }
}

}  // namespace bitnet::test
