#include "codegen/x86/fused_kernels.h"

#include "codegen/indexed_section.h"
#include "codegen/x86/elf_object.h"
#include "codegen/x86/vector_ops.h"
#include "codegen/x86/x86_backend.h"
#include "ir/error.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>

namespace bitnet::x86 {
namespace {

constexpr char kMagic[8] = {'B', 'N', 'X', '8', '6', 'K', 'O', '1'};

// The fallbacks: vector_ops.h behind the generated kernels' signatures.
float norm_quant_fallback(const float* x, const float* residual, float* sum_out, const float* w, float eps, int64_t k, int8_t* q) {
  if (residual) {
    for (int64_t i = 0; i < k; ++i) sum_out[i] = x[i] + residual[i];
    x = sum_out;
  }
  thread_local std::vector<float> normed;
  normed.resize(static_cast<size_t>(k));
  rmsnorm_row(x, k, w, eps, normed.data());
  int32_t unused;
  return quantize_row_int8(normed.data(), k, q, &unused);
}
void rmsnorm_fallback(const float* x, const float* w, float eps, int64_t n, float* y) { rmsnorm_row(x, n, w, eps, y); }
void glu_relu2_fallback(const float* g, const float* u, int64_t n, float* y) { glu_row(g, u, n, true, y); }
void attend_f16_fallback(const float* q, const void* k, const void* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out) {
  attend_head(q, static_cast<const uint16_t*>(k), static_cast<const uint16_t*>(v), stride, n, d, scores, out);
}
void attend_f32_fallback(const float* q, const void* k, const void* v, int64_t stride, int64_t n, int64_t d, float* scores, float* out) {
  attend_head(q, static_cast<const float*>(k), static_cast<const float*>(v), stride, n, d, scores, out);
}
void lm_head_f16_fallback(const uint16_t* w, const float* x, int64_t T, int64_t k, int64_t rows, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) dot_f16_rows(w + r * k, x, k, T, k, y + r, ldy);
}
void lm_head_i8_fallback(const int8_t* w, const float* scales, const float* x, int64_t T, int64_t k, int64_t rows, float* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r) dot_i8_rows(w + r * k, scales[r], x, k, T, k, y + r, ldy);
}

}  // namespace

std::string FusedKernelSpec::name() const {
  const char* kv = kv_f32 ? "f32" : "f16";
  switch (kind) {
    case FusedKind::NormQuant: return fmt::format("norm_quant.k{}", k);
    case FusedKind::AddNormQuant: return fmt::format("add_norm_quant.k{}", k);
    case FusedKind::RmsNorm: return fmt::format("rmsnorm.k{}", k);
    case FusedKind::Quantize: return fmt::format("quantize.k{}", k);
    case FusedKind::GluRelu2: return "glu_relu2";
    case FusedKind::RopeQkv: return fmt::format("rope_qkv.d{}.h{}.kv{}.{}", head_dim, n_head, n_head_kv, kv);
    case FusedKind::Attend: return fmt::format("attend.d{}.{}", head_dim, kv);
    case FusedKind::LmHeadF16: return fmt::format("lm_head_f16.k{}", k);
    case FusedKind::LmHeadI8: return fmt::format("lm_head_i8.k{}", k);
  }
  return "?";
}

bool kv_cache_f32(const ir::Module& module) {
  for (const ir::Node& node : module.nodes) {
    const auto attr = node.attrs.find("act_quant");
    if (attr != node.attrs.end() && std::get<std::string>(attr->second) == "none") return true;
  }
  return false;
}

std::vector<FusedKernelSpec> fused_kernel_specs(const ir::Module& m, const ir::Node& node, bool kv_f32) {
  auto features = [&](size_t i) { return m.values[node.operands[i]].type.dims.back(); };
  switch (node.op) {
    case ir::Op::RmsNormQuant: return {{FusedKind::NormQuant, m.values[node.result].type.dims.back()}};
    case ir::Op::AddRmsNormQuant: return {{FusedKind::AddNormQuant, m.values[node.extra_results[0]].type.dims.back()}};
    case ir::Op::RmsNorm: return {{FusedKind::RmsNorm, m.values[node.result].type.dims.back()}};
    case ir::Op::BitLinear:
    case ir::Op::BitLinearGlu:
    case ir::Op::QkvRopeCache: {
      std::vector<FusedKernelSpec> specs;
      const bool act_int8 = node.attrs.count("act_quant") && m.attr_string(node, "act_quant") == "int8_token";
      if (m.values[node.operands[0]].type.dtype == ir::DType::F32 && act_int8) specs.push_back({FusedKind::Quantize, features(0)});
      if (node.op == ir::Op::BitLinearGlu && m.attr_string(node, "act") == "relu2") specs.push_back({FusedKind::GluRelu2});
      if (node.op == ir::Op::QkvRopeCache) {
        specs.push_back({.kind = FusedKind::RopeQkv, .head_dim = m.attr_int(node, "head_dim"), .n_head = m.attr_int(node, "n_head"),
                         .n_head_kv = m.attr_int(node, "n_head_kv"), .kv_f32 = kv_f32});
      }
      return specs;
    }
    case ir::Op::Attention:
    case ir::Op::Attend:
      return {{.kind = FusedKind::Attend, .head_dim = features(0) / m.attr_int(node, "n_head"), .kv_f32 = kv_f32}};
    case ir::Op::MatMul: {
      const ir::DType dt = m.weights[node.weights[0]].type.dtype;
      if (dt == ir::DType::F16) return {{FusedKind::LmHeadF16, features(0)}};
      if (dt == ir::DType::I8) return {{FusedKind::LmHeadI8, features(0)}};
      return {};
    }
    default: return {};
  }
}

std::vector<FusedKernelSpec> fused_kernel_specs(const ir::Module& m) {
  std::vector<FusedKernelSpec> specs;
  const bool kv_f32 = kv_cache_f32(m);
  for (const ir::Node& node : m.nodes) {
    for (const FusedKernelSpec& s : fused_kernel_specs(m, node, kv_f32)) {
      if (std::find(specs.begin(), specs.end(), s) == specs.end()) specs.push_back(s);
    }
  }
  return specs;
}

std::string serialize_x86_kernels(const X86KernelsSection& s) {
  std::string blobs;
  nlohmann::json index{{"llvm", s.llvm_version}, {"objects", nlohmann::json::array()}};
  for (const auto& o : s.objects) {
    index["objects"].push_back({{"level", o.level}, {"needs", o.needs}, {"kernels", o.kernels}, {"offset", blobs.size()}, {"size", o.elf.size()}});
    blobs += o.elf;
  }
  return write_indexed_section(kMagic, index, blobs);
}

X86KernelsSection parse_x86_kernels(std::span<const uint8_t> bytes, const std::string& where) {
  const IndexedSection section = read_indexed_section(bytes, kMagic, where, "an x86 kernels section");
  X86KernelsSection s;
  try {
    s.llvm_version = section.index.at("llvm").get<std::string>();
    for (const auto& o : section.index.at("objects")) {
      KernelObject object;
      object.level = o.at("level").get<std::string>();
      if (object.level != "avx2" && object.level != "avx512") fail("{}: level '{}' is not avx2 or avx512", where, object.level);
      object.needs = o.at("needs").get<std::vector<std::string>>();
      object.kernels = o.at("kernels").get<std::vector<std::string>>();
      const auto elf = section.blob(o, "object " + object.level);
      object.elf.assign(elf.begin(), elf.end());
      s.objects.push_back(std::move(object));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: index: {}", where, e.what());
  }
  return s;
}

FusedKernels::FusedKernels(std::span<const uint8_t> section, const std::string& where, bool avx512) {
  if (section.empty()) return;
  const X86KernelsSection s = parse_x86_kernels(section, where);
  const KernelObject* chosen = nullptr;
  for (const auto& o : s.objects) {
    if (o.level == "avx2" && (!chosen || !avx512)) chosen = &o;
    if (o.level == "avx512" && avx512) chosen = &o;
  }
  if (!chosen) return;
  const auto missing = missing_isa(chosen->needs, CpuFeatures::detect());
  if (!missing.empty()) fail("{}: object {} needs {} which this CPU lacks", where, chosen->level, missing.front());
  object_ = std::make_unique<ElfObject>(std::span(reinterpret_cast<const uint8_t*>(chosen->elf.data()), chosen->elf.size()), where + ": object " + chosen->level);
  for (const auto& name : chosen->kernels) {
    if (!object_->symbol(name)) fail("{}: object {}: kernel '{}' is listed but not defined", where, chosen->level, name);
  }
  level_ = chosen->level;
  n_kernels_ = chosen->kernels.size();
}

FusedKernels::~FusedKernels() = default;

void* FusedKernels::bind(const FusedKernelSpec& spec) const {
  if (object_) {
    const std::string name = spec.name();
    if (void* fn = object_->symbol(name)) {
      bound_.insert(name);
      return fn;
    }
  }
  switch (spec.kind) {
    case FusedKind::NormQuant:
    case FusedKind::AddNormQuant: return reinterpret_cast<void*>(&norm_quant_fallback);
    case FusedKind::RmsNorm: return reinterpret_cast<void*>(&rmsnorm_fallback);
    case FusedKind::Quantize: return reinterpret_cast<void*>(&quantize_row_int8);
    case FusedKind::GluRelu2: return reinterpret_cast<void*>(&glu_relu2_fallback);
    case FusedKind::RopeQkv: return nullptr;
    case FusedKind::Attend: return reinterpret_cast<void*>(spec.kv_f32 ? &attend_f32_fallback : &attend_f16_fallback);
    case FusedKind::LmHeadF16: return reinterpret_cast<void*>(&lm_head_f16_fallback);
    case FusedKind::LmHeadI8: return reinterpret_cast<void*>(&lm_head_i8_fallback);
  }
  return nullptr;
}

std::string FusedKernels::describe() const {
  if (!object_) return "intrinsics (no LLVM kernels in the bundle)";
  return fmt::format("llvm {}: {} of {} kernels bound", level_, bound_.size(), n_kernels_);
}

}  // namespace bitnet::x86
