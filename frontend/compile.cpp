#include "frontend/compile.h"

#include "codegen/x86/x86_backend.h"
#ifdef BITNETC_CUDA
#include "codegen/cuda/cuda_layout.h"
#include "codegen/cuda/nvrtc_compiler.h"
#endif
#include "frontend/tokenizer_gguf.h"
#include "ir/atomic_file.h"
#include "ir/error.h"
#include "ir/half.h"
#include "ir/weight_layout.h"
#include "passes/memory_plan.h"
#include "runtime/bundle.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>

namespace bitnet {
namespace {

// Rows of each source stacked: t2 stacks the code rows, then the scales; float types stack rows.
void concatenate(const ir::Type& merged, const std::vector<ir::Type>& types, const std::vector<const WeightPayload*>& sources,
                 uint8_t* out) {
  std::vector<uint8_t> buffer;
  const int64_t n = merged.dims[0], k = merged.dims[1];
  int64_t row = 0;
  for (size_t i = 0; i < sources.size(); ++i) {
    const int64_t rows = types[i].dims[0];
    buffer.assign(sources[i]->nbytes, 0);
    sources[i]->fill(buffer.data());
    if (merged.dtype == ir::DType::T2) {
      std::memcpy(out + row * t2_row_bytes(k), buffer.data(), static_cast<size_t>(rows * t2_row_bytes(k)));
      std::memcpy(out + t2_scales_offset(n, k) + 4 * row, buffer.data() + t2_scales_offset(rows, k), static_cast<size_t>(rows) * 4);
    } else {
      std::memcpy(out + row * (buffer.size() / rows), buffer.data(), buffer.size());
    }
    row += rows;
  }
}

// Payloads for the optimized module's weights. A concatenated weight is built from its sources' payloads;
// then the provenance is dropped and the sources pruned, so the bundle's IR declares only what it reads.
std::vector<WeightPayload> materialize_weights(ir::Module& m, const std::map<std::string, const WeightPayload*>& payload_of) {
  std::map<std::string, WeightPayload> by_name;
  for (const auto& w : m.weights) {
    if (w.concat_of.empty()) {
      by_name[w.name] = *payload_of.at(w.name);
      continue;
    }
    std::vector<ir::Type> types;
    std::vector<const WeightPayload*> sources;
    for (int s : w.concat_of) {
      types.push_back(m.weights[s].type);
      sources.push_back(payload_of.at(m.weights[s].name));
    }
    by_name[w.name] = {weight_nbytes(w.type), [merged = w.type, types, sources](uint8_t* out) { concatenate(merged, types, sources, out); }};
  }
  for (auto& w : m.weights) w.concat_of.clear();
  m.prune_weights();
  std::vector<WeightPayload> out;
  for (const auto& w : m.weights) out.push_back(by_name.at(w.name));
  return out;
}

// --lm-head int8: the output matmul reads a new weight @output.int8 (i8, per-row absmax) quantized from
// the f16/f32 one it read; the original stays for whatever else uses it (the tied embedding's lookups).
void quantize_lm_head(ir::Module& m, std::map<std::string, const WeightPayload*>& payload_of, std::vector<WeightPayload>& storage) {
  ir::Node* head = nullptr;
  for (auto& n : m.nodes) {
    if (n.result == m.output && n.op == ir::Op::MatMul) head = &n;
  }
  if (!head) fail("--lm-head int8: the model's output is not a matmul");
  const ir::Weight source = m.weights[head->weights[0]];
  const int64_t n = source.type.dims[0], k = source.type.dims[1];
  const ir::Type type{ir::DType::I8, {n, k}};
  const WeightPayload* from = payload_of.at(source.name);
  storage.push_back({weight_nbytes(type), [from, dtype = source.type.dtype, n, k](uint8_t* out) {
                       std::vector<uint8_t> bytes(from->nbytes);
                       from->fill(bytes.data());
                       std::vector<float> row(static_cast<size_t>(k));
                       std::vector<uint8_t> one(static_cast<size_t>(k + 4 + 4));
                       float* scales = const_cast<float*>(i8_scales(out, n, k));
                       for (int64_t r = 0; r < n; ++r) {
                         for (int64_t i = 0; i < k; ++i) {
                           row[i] = dtype == ir::DType::F16 ? f16_to_f32(static_cast<uint16_t>(bytes[2 * (r * k + i)] | (bytes[2 * (r * k + i) + 1] << 8)))
                                                            : reinterpret_cast<const float*>(bytes.data())[r * k + i];
                         }
                         quantize_rows_i8(row.data(), 1, k, one.data());
                         std::memcpy(out + r * k, one.data(), static_cast<size_t>(k));
                         scales[r] = *i8_scales(one.data(), 1, k);
                       }
                     }});
  const std::string name = "output.int8";
  head->weights[0] = m.add_weight(name, type);
  payload_of[name] = &storage.back();
}

}  // namespace

CompileReport compile_gguf(const std::string& gguf_path, const std::string& bundle_path, const CompileOptions& options,
                           const std::function<void(size_t, size_t)>& progress) {
#ifdef BITNETC_CUDA
  if (options.target != "ref" && options.target != "x86" && options.target != "cuda") {
    fail("--target: '{}' is not available in this build (available: x86, cuda, ref)", options.target);
  }
#else
  if (options.target != "ref" && options.target != "x86") {
    fail("--target: '{}' is not available in this build (available: x86, ref; cuda needs a build with BITNETC_CUDA)", options.target);
  }
#endif
  auto file = gguf::File::open(gguf_path);
  LoweredModel lowered = lower_model(file, options.lower);
  TokenizerVocab vocab = read_tokenizer_vocab(file);
  try {
    Tokenizer check(vocab);  // refuse at compile time what the runtime would refuse at load
  } catch (const Error& e) {
    fail("{}: tokenizer: {}", gguf_path, e.what());
  }
  const HParams& hp = lowered.hparams;
  CompileReport report;
  report.n_ops_lowered = lowered.module.nodes.size();

  // Payloads by weight name: passes renumber and merge weights, names stay.
  std::map<std::string, const WeightPayload*> payload_of;
  for (size_t i = 0; i < lowered.weights.size(); ++i) payload_of[lowered.module.weights[i].name] = &lowered.weights[i];
  passes::PassContext context;
  ir::Module& module = lowered.module;
  report.passes = passes::run_pipeline(module, options.pipeline.value_or(passes::default_pipeline(options.target)), options.printing, context);
  report.remarks = context.remarks;
  std::vector<WeightPayload> extra_payloads;
  extra_payloads.reserve(1);
  if (options.lm_head == "int8") {
    quantize_lm_head(module, payload_of, extra_payloads);
  } else if (options.lm_head != "exact") {
    fail("--lm-head: '{}' is not one of exact, int8", options.lm_head);
  }
  std::vector<WeightPayload> payloads = materialize_weights(module, payload_of);
  if (options.target == "x86") {  // ternary weights into the layout the x86 kernels stream
    for (size_t i = 0; i < payloads.size(); ++i) {
      const ir::Type& t = module.weights[i].type;
      if (t.dtype != ir::DType::T2) continue;
      payloads[i] = {x86_t2_nbytes(t.dims[0], t.dims[1]), [source = payloads[i], n = t.dims[0], k = t.dims[1]](uint8_t* out) {
                       std::vector<uint8_t> t2(source.nbytes);
                       source.fill(t2.data());
                       repack_t2_for_x86(t2.data(), n, k, out);
                     }};
    }
  }

  std::string x86_kernels;
  if (options.target == "x86" && options.x86_kernels) {
    const auto start = std::chrono::steady_clock::now();
    std::string ir_text;
    const x86::X86KernelsSection section = options.x86_kernels(module, options.dump_kernels.empty() ? nullptr : &ir_text);
    std::string levels;
    for (const auto& o : section.objects) levels += fmt::format("{}{} {} KB", levels.empty() ? "" : ", ", o.level, (o.elf.size() + 1023) / 1024);
    report.notes.push_back(fmt::format("x86: {} fused kernels generated as LLVM IR and compiled by LLVM {} ({}) in {:.1f} s",
                                       section.objects.empty() ? 0 : section.objects[0].kernels.size(), section.llvm_version, levels,
                                       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
    if (!options.dump_kernels.empty()) {
      AtomicFile out(options.dump_kernels);
      out.write(ir_text.data(), ir_text.size());
      out.commit();
    }
    x86_kernels = x86::serialize_x86_kernels(section);
  }

#ifdef BITNETC_CUDA
  std::string cuda_kernels;
  if (options.target == "cuda") {  // ternary weights into the CUDA layout (same size); every kernel through NVRTC
    for (size_t i = 0; i < payloads.size(); ++i) {
      const ir::Type& t = module.weights[i].type;
      if (t.dtype != ir::DType::T2) continue;
      if (t.dims[1] % 16 != 0) fail("--target cuda: weight @{}: {} input features; the CUDA layout needs a multiple of 16", module.weights[i].name, t.dims[1]);
      payloads[i] = {payloads[i].nbytes, [source = payloads[i], n = t.dims[0], k = t.dims[1]](uint8_t* out) {
                       std::vector<uint8_t> t2(source.nbytes);
                       source.fill(t2.data());
                       cuda::repack_t2_for_cuda(t2.data(), n, k, out);
                     }};
    }
    const auto start = std::chrono::steady_clock::now();
    const cuda::KernelsSection section = cuda::build_kernels(module, options.cuda_sm);
    std::string images;
    for (const auto& image : section.images) images += (images.empty() ? "" : " + ") + image.arch + (image.ptx ? " PTX" : " cubin");
    report.notes.push_back(fmt::format("cuda: {} kernels compiled by NVRTC {} for {} in {:.1f} s", section.kernels.size(), section.nvrtc_version, images,
                                       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()));
    if (!options.dump_kernels.empty()) {
      AtomicFile out(options.dump_kernels);
      out.write(section.source.data(), section.source.size());
      out.commit();
    }
    cuda_kernels = cuda::serialize_kernels_section(section);
  }
#endif

  nlohmann::json meta{{"arch", hp.arch}, {"name", hp.name}, {"n_vocab", hp.n_vocab}, {"n_ctx_train", hp.n_ctx_train},
                      {"n_embd", hp.n_embd}, {"n_layer", hp.n_layer}, {"n_ff", hp.n_ff}, {"n_head", hp.n_head},
                      {"n_head_kv", hp.n_head_kv}, {"head_dim", hp.head_dim}, {"ffn_act", ffn_activation_name(hp.ffn_act)},
                      {"act_quant", options.lower.act_quant}, {"target", options.target},
                      {"source", std::filesystem::path(gguf_path).filename().string()}};
  if (options.target == "x86") meta["isa"] = x86::required_isa();
  if (options.target == "cuda") meta["cuda_sm"] = options.cuda_sm;

  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < payloads.size(); ++i) {
    const auto& w = module.weights[i];
    if (payloads[i].nbytes != weight_nbytes_for_target(w.type, options.target)) fail("internal: weight @{} payload size mismatch", w.name);
    offsets.push_back(offset);
    table.push_back({{"name", w.name}, {"offset", offset}, {"nbytes", payloads[i].nbytes}});
    offset = (offset + payloads[i].nbytes + kBundleAlignment - 1) / kBundleAlignment * kBundleAlignment;
  }
  passes::MemoryPlan memory = passes::plan_memory(module);
  report.arena_bytes_per_token = static_cast<uint64_t>(memory.floats_per_token) * 4;
  report.naive_bytes_per_token = static_cast<uint64_t>(memory.naive_floats_per_token) * 4;
  nlohmann::json plan{{"weights", table}, {"n_ops", module.nodes.size()},
                      {"arena", {{"floats_per_token", memory.floats_per_token}, {"offsets", memory.offsets}}}};

  BundleWriter writer(options.target, "bitnetc " BITNETC_VERSION);
  writer.add_section("meta", meta.dump(1));
  auto vocab_bytes = vocab.serialize();
  writer.add_section("tokenizer", std::string(vocab_bytes.begin(), vocab_bytes.end()));
  writer.add_section("ir", ir::print(module));
  writer.add_section("plan", plan.dump(1));
  if (!x86_kernels.empty()) writer.add_section("x86_kernels", std::move(x86_kernels));
#ifdef BITNETC_CUDA
  if (options.target == "cuda") writer.add_section("kernels", std::move(cuda_kernels));
#endif
  writer.add_section("weights", offset, [&](uint8_t* out) {
    for (size_t i = 0; i < payloads.size(); ++i) {
      payloads[i].fill(out + offsets[i]);
      if (progress) progress(i + 1, payloads.size());
    }
  });
  writer.write(bundle_path);
  report.bundle_bytes = std::filesystem::file_size(bundle_path);
  report.n_ops = module.nodes.size();
  report.n_weights = module.weights.size();
  report.notes.insert(report.notes.begin(), lowered.notes.begin(), lowered.notes.end());
  return report;
}

std::string lowered_ir_text(const std::string& gguf_path, const LowerOptions& options, const std::vector<std::string>& pipeline) {
  auto file = gguf::File::open(gguf_path);
  ir::Module module = lower_model(file, options).module;
  passes::PassContext context;
  passes::run_pipeline(module, pipeline, {}, context);
  return ir::print(module);
}

}  // namespace bitnet
