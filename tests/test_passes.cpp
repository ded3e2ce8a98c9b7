// Passes preserve semantics: the ref backend gives bitwise the same logits before and after the default
// pipeline (merging matmuls does not change any row's arithmetic; the memory plan only moves buffers), and
// the memory plan never lets two simultaneously live values share bytes.
#include "frontend/compile.h"
#include "frontend/synth.h"
#include "passes/memory_plan.h"
#include "runtime/model.h"
#include "tests/testdata.h"

#include <filesystem>
#include <random>

namespace bitnet::test {
namespace {

std::vector<float> run_prompt(const std::string& bundle, const std::vector<int32_t>& prompt, const std::vector<int32_t>& more) {
  auto model = Model::load(bundle);
  Engine engine(*model, 64, 1);
  std::vector<int32_t> pos(prompt.size()), seq(prompt.size(), 0);
  for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
  auto l = engine.step(prompt, pos, seq);
  std::vector<float> out(l.begin(), l.end());
  for (size_t k = 0; k < more.size(); ++k) {
    int32_t p = static_cast<int32_t>(prompt.size() + k), s = 0;
    auto row = engine.step({&more[k], 1}, {&p, 1}, {&s, 1});
    out.insert(out.end(), row.begin(), row.end());
  }
  return out;
}

}  // namespace

TEST_CASE("the default pipeline preserves ref results bitwise on random inputs", "[passes]") {
  auto dir = std::filesystem::temp_directory_path() / "bitnetc-passes";
  std::filesystem::create_directories(dir);
  SynthOptions synth;
  synth.shape = parse_synth_shape("hidden=256,layers=2,heads=4,kv-heads=2,ffn=512,vocab=600,context=64");
  synth.vocab_path = local_testdata("llama3-vocab.gguf");
  synth.seed = 7;
  std::string gguf = (dir / "m.gguf").string();
  synthesize_model(synth, gguf);
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> token(0, 599);
  std::vector<int32_t> prompt(9), more(5);
  for (auto& t : prompt) t = token(rng);
  for (auto& t : more) t = token(rng);
  for (std::string act : {"int8_token", "none"}) {
    CompileOptions plain, optimized;
    plain.lower.act_quant = optimized.lower.act_quant = act;
    plain.pipeline = std::vector<std::string>{};
    compile_gguf(gguf, (dir / "plain.bundle").string(), plain);
    auto report = compile_gguf(gguf, (dir / "opt.bundle").string(), optimized);
    CHECK(report.n_ops != report.n_ops_lowered);  // the pipeline did rewrite something
    auto a = run_prompt((dir / "plain.bundle").string(), prompt, more);
    auto b = run_prompt((dir / "opt.bundle").string(), prompt, more);
    REQUIRE(a.size() == b.size());
    size_t differing = 0;
    for (size_t i = 0; i < a.size(); ++i) differing += a[i] != b[i];
    INFO("act_quant " << act);
    CHECK(differing == 0);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("memory plan: simultaneously live values never overlap", "[passes]") {
  const std::string rel = "golden/p2-mha/model-tq2_0.gguf";
  if (!have_shared(rel)) return;
  for (bool optimize : {false, true}) {
    auto text = lowered_ir_text(shared_testdata(rel), LowerOptions{}, optimize ? passes::default_pipeline("ref") : std::vector<std::string>{});
    ir::Module m = ir::parse(text, "plan-test");
    auto plan = passes::plan_memory(m);
    CHECK(plan.floats_per_token < plan.naive_floats_per_token);
    // Lifetimes in node order: [producer, last use]; the output lives to the end.
    std::vector<size_t> last(m.values.size(), 0);
    for (size_t i = 0; i < m.nodes.size(); ++i)
      for (int v : m.nodes[i].operands) last[v] = std::max(last[v], i);
    std::vector<std::pair<int, size_t>> results;  // (value, producing node), every result of every node
    for (size_t i = 0; i < m.nodes.size(); ++i) m.nodes[i].for_each_result([&](int r) { results.push_back({r, i}); });
    for (size_t x = 0; x < results.size(); ++x)
      for (size_t y = x + 1; y < results.size(); ++y) {
        auto [a, i] = results[x];
        auto [b, j] = results[y];
        size_t end_a = a == m.output ? m.nodes.size() : std::max(i, last[a]);
        size_t end_b = b == m.output ? m.nodes.size() : std::max(j, last[b]);
        bool live_together = j <= end_a && i <= end_b;
        if (!live_together) continue;
        int64_t oa = plan.offsets.at(m.values[a].name), ob = plan.offsets.at(m.values[b].name);
        int64_t sa = ir::floats_per_row(m.values[a].type), sb = ir::floats_per_row(m.values[b].type);
        INFO(m.values[a].name << " and " << m.values[b].name);
        CHECK((oa + sa <= ob || ob + sb <= oa));
      }
  }
}

}  // namespace bitnet::test
