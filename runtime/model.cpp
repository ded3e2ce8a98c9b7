#include "runtime/model.h"

#include "codegen/x86/x86_backend.h"
#ifdef BITNETC_CUDA
#include "codegen/cuda/cuda_backend.h"
#endif
#include "ir/error.h"

#include <algorithm>
#include <cstdlib>

namespace bitnet {

std::unique_ptr<Model> Model::load(const std::string& path) { return from_bundle(Bundle::open(path)); }

std::unique_ptr<Model> Model::from_bundle(Bundle bundle) {
  const std::string path = bundle.path();
  if (bundle.target() != "ref" && bundle.target() != "x86" && bundle.target() != "cuda") {
    fail("{}: target: the bundle was compiled for '{}' but this runtime executes 'ref', 'x86' and 'cuda' bundles (recompile with --target x86)", path, bundle.target());
  }
  std::unique_ptr<Model> m(new Model(std::move(bundle)));
  const Bundle& b = m->bundle_;
  try {
    m->meta_ = nlohmann::json::parse(b.section_text("meta"));
    (void)m->n_vocab();
    (void)m->n_ctx_train();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: section 'meta': {}", path, e.what());
  }
  if (b.target() == "x86") {  // refuse before any AVX2 code runs
    std::vector<std::string> required;
    try {
      required = m->meta_.at("isa").get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      fail("{}: section 'meta': isa: {}", path, e.what());
    }
    const auto cpu = x86::CpuFeatures::detect();
    const auto missing = x86::missing_isa(required, cpu);
    if (!missing.empty()) {
      std::string names;
      for (const auto& n : missing) names += (names.empty() ? "" : ", ") + n;
      fail("{}: isa: the bundle's x86 kernels need {} but this CPU has only {} (recompile with --target ref)", path, names, cpu.describe());
    }
  }
  if (b.target() == "cuda" && !b.has("kernels")) fail("{}: target cuda: the bundle has no 'kernels' section", path);
  m->module_ = ir::parse(b.section_text("ir"), path + ":ir");
  m->tokenizer_ = std::make_unique<Tokenizer>(TokenizerVocab::deserialize(b.section("tokenizer"), path + ":tokenizer"));

  auto weights = b.section("weights");
  nlohmann::json plan;
  try {
    plan = nlohmann::json::parse(b.section_text("plan"));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: section 'plan': {}", path, e.what());
  }
  if (!plan.is_object() || !plan.contains("weights")) fail("{}: section 'plan': no weight table", path);
  const auto& table = plan.at("weights");
  if (!table.is_array() || table.size() != m->module_.weights.size()) {
    fail("{}: section 'plan': weight table has {} entries but the IR declares {} weights", path, table.size(), m->module_.weights.size());
  }
  for (size_t i = 0; i < table.size(); ++i) {
    const auto& w = m->module_.weights[i];
    if (!table[i].is_object() || !table[i].contains("offset") || !table[i].contains("nbytes") || !table[i].contains("name") ||
        !table[i]["offset"].is_number_unsigned() || !table[i]["nbytes"].is_number_unsigned() || !table[i]["name"].is_string()) {
      fail("{}: section 'plan': weight entry {} is malformed", path, i);
    }
    uint64_t offset = table[i].at("offset").get<uint64_t>(), nbytes = table[i].at("nbytes").get<uint64_t>();
    if (table[i].at("name").get<std::string>() != w.name) fail("{}: section 'plan': entry {} names '{}' but the IR has @{}", path, i, table[i].at("name").get<std::string>(), w.name);
    const uint64_t expected = weight_nbytes_for_target(w.type, b.target());
    if (nbytes != expected) fail("{}: weight @{}: {} bytes but its type {} needs {} for target {}", path, w.name, nbytes, ir::type_to_string(w.type), expected, b.target());
    if (offset > weights.size() || nbytes > weights.size() - offset) fail("{}: weight @{}: [{}, +{}) is outside the weights section", path, w.name, offset, nbytes);
    if (offset % 4 != 0) fail("{}: weight @{}: offset {} is misaligned", path, w.name, offset);
    m->weights_.push_back({&w.type, weights.data() + offset});
    m->weight_bytes_ += nbytes;
  }
  m->arena_ = ref::ArenaLayout::separate(m->module_);
  if (plan.contains("arena")) try {  // the compiler's memory plan; bundles without one get a slot per value
    const auto& arena = plan.at("arena");
    ref::ArenaLayout layout;
    layout.floats_per_token = arena.at("floats_per_token").get<int64_t>();
    layout.offset.assign(m->module_.values.size(), -1);
    const auto& offsets = arena.at("offsets");
    for (auto& node : m->module_.nodes) {
      node.for_each_result([&](int r) {
        const std::string& name = m->module_.values[r].name;
        if (!offsets.contains(name)) fail("{}: section 'plan': the arena has no place for %{}", path, name);
        layout.offset[r] = offsets.at(name).get<int64_t>();
      });
    }
    m->arena_ = std::move(layout);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: section 'plan': arena: {}", path, e.what());
  }
  if (static_cast<int64_t>(m->tokenizer_->vocab_size()) > m->n_vocab()) {
    fail("{}: tokenizer has {} tokens but the model's vocabulary is {}", path, m->tokenizer_->vocab_size(), m->n_vocab());
  }
  return m;
}

uint64_t Model::weight_bytes_per_token() const {
  std::vector<bool> only_looked_up(module_.weights.size(), true);
  for (const auto& n : module_.nodes) {
    for (int w : n.weights) {
      if (n.op != ir::Op::Embed) only_looked_up[w] = false;
    }
  }
  uint64_t total = 0;
  for (size_t i = 0; i < module_.weights.size(); ++i) {
    const ir::Type& t = module_.weights[i].type;
    const uint64_t whole = weight_nbytes_for_target(t, target());
    total += only_looked_up[i] ? whole / static_cast<uint64_t>(t.dims[0]) : whole;
  }
  return total;
}

namespace {
// The KV cache the module's attention ops need: K/V features per position and the number of layers.
int64_t kv_dim_of(const ir::Module& m) {
  for (auto& n : m.nodes) {
    if (n.op == ir::Op::Attention) return m.values[n.operands[1]].type.dims[1];
    if (n.op == ir::Op::QkvRopeCache || n.op == ir::Op::Attend) {
      return m.values[n.result].type.dims[1] / m.attr_int(n, "n_head") * m.attr_int(n, "n_head_kv");
    }
  }
  return 0;
}
int64_t n_layers_of(const ir::Module& m) {
  int64_t layers = 0;
  for (auto& n : m.nodes) {
    if (n.op == ir::Op::Attention || n.op == ir::Op::QkvRopeCache || n.op == ir::Op::Attend) layers = std::max(layers, m.attr_int(n, "layer") + 1);
  }
  return layers;
}
}  // namespace

Engine::Engine(const Model& model, int64_t n_ctx, int64_t n_seq, const EngineOptions& options) : model_(model), n_ctx_(n_ctx), n_seq_(n_seq) {
  if (n_ctx < 1) fail("-c/--ctx-size: {} must be at least 1", n_ctx);
  if (n_seq < 1) fail("sequence slots: {} must be at least 1", n_seq);
  if (options.threads < 0) fail("-t/--threads: {} must be at least 1", options.threads);
  const ir::Module& m = model.module();
  if (model.target() == "x86") {
    x86::X86Options x86_options;
    x86_options.threads = options.threads;
    x86_options.isa = options.isa;
    // BITNETC_X86_FUSED=intrinsics runs the intrinsics even where the bundle has generated kernels (A/B
    // measurements; fuzzing, where mutated machine code would crash by design).
    const char* fused = std::getenv("BITNETC_X86_FUSED");
    const bool intrinsics = fused && std::string(fused) == "intrinsics";
    if (model.has_section("x86_kernels") && !intrinsics) x86_options.fused_kernels = model.section("x86_kernels");
    x86_options.fused_kernels_where = model.path() + ": section 'x86_kernels'";
    auto executor = std::make_unique<x86::X86StepExecutor>(m, model.weights(), model.arena_layout(), n_layers_of(m), n_seq, n_ctx, kv_dim_of(m), x86_options);
    threads_ = executor->threads();
    isa_ = x86::isa_name(executor->isa());
    fused_kernels_ = executor->fused_kernels();
    executor_ = std::move(executor);
  } else if (model.target() == "cuda") {  // needs the driver and a device: refused here, with the reason, where there is none
#ifdef BITNETC_CUDA
    auto executor = std::make_unique<cuda::CudaStepExecutor>(model.path(), m, model.weights(), model.section("kernels"), n_layers_of(m), n_seq,
                                                             n_ctx, kv_dim_of(m), cuda::cuda_options_from_env());
    isa_ = executor->describe();
    executor_ = std::move(executor);
#else
    fail("{}: target cuda: this runtime was built without the CUDA backend (BITNETC_CUDA=OFF)", model.path());
#endif
  } else {
    executor_ = std::make_unique<ref::RefStepExecutor>(m, model.weights(), model.arena_layout(), n_layers_of(m), n_seq, n_ctx, kv_dim_of(m));
  }
}

Engine::~Engine() = default;

std::span<const float> Engine::step(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq,
                                    bool all_logits) {
  check_step(tokens, pos, seq);
  return executor_->run({tokens, pos, seq, all_logits});
}

std::vector<int32_t> Engine::step_greedy(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq,
                                         bool all_logits) {
  check_step(tokens, pos, seq);
  return executor_->run_greedy({tokens, pos, seq, all_logits});
}

void Engine::check_step(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq) const {
  if (tokens.size() != pos.size() || tokens.size() != seq.size() || tokens.empty()) fail("step: tokens, positions and slots must be non-empty and of equal length");
  for (size_t t = 0; t < tokens.size(); ++t) {
    if (tokens[t] < 0 || tokens[t] >= model_.n_vocab()) fail("token id {} is outside the vocabulary [0, {})", tokens[t], model_.n_vocab());
    if (pos[t] < 0 || pos[t] >= n_ctx()) fail("position {} is outside the context of {} tokens (-c)", pos[t], n_ctx());
    if (seq[t] < 0 || seq[t] >= n_seq()) fail("sequence slot {} is outside [0, {})", seq[t], n_seq());
  }
}

}  // namespace bitnet
