// `bitnetc inspect model.gguf [--json]`: metadata, recognised architecture, tensors and a size summary.
#include "frontend/gguf.h"
#include "frontend/model.h"
#include "ir/error.h"
#include "tools/commands.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <iostream>
#include <map>

namespace bitnet::tools {
namespace {

using nlohmann::json;

json value_to_json(const gguf::File& file, const std::string& key, const gguf::Value& v) {
  using gguf::ValueType;
  switch (v.type) {
    case ValueType::STRING: return *file.get_string(key);
    case ValueType::BOOL: return *file.get_bool(key);
    case ValueType::F32: case ValueType::F64: return *file.get_float(key);
    case ValueType::ARRAY: return json{{"array", gguf::value_type_name(v.elem_type)}, {"count", v.count}};
    case ValueType::I8: case ValueType::I16: case ValueType::I32: case ValueType::I64: return *file.get_int(key);
    default: return *file.get_uint(key);
  }
}

std::string short_text(const json& j) {
  std::string s = j.is_string() ? j.get<std::string>() : j.dump();
  if (j.is_object()) s = "[" + j["array"].get<std::string>() + " × " + std::to_string(j["count"].get<uint64_t>()) + "]";
  for (auto& c : s) if (c == '\n') c = ' ';
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

Command add_inspect_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect", "show a GGUF's metadata, architecture and tensors");
  auto path = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  cmd->add_option("model", *path, "model.gguf")->required();
  cmd->add_flag("--json", *as_json, "print one JSON object");
  return [path, as_json] {
    auto file = gguf::File::open(*path);
    json out;
    out["file"] = *path;
    out["version"] = file.version();
    out["alignment"] = file.alignment();
    out["data_offset"] = file.data_offset();
    json meta = json::object();
    for (auto& kv : file.metadata()) meta[kv.key] = value_to_json(file, kv.key, kv.value);
    out["metadata"] = meta;
    json tensors = json::array();
    std::map<std::string, std::pair<uint64_t, uint64_t>> by_type;  // type -> (tensors, bytes)
    uint64_t params = 0, bytes = 0;
    for (auto& t : file.tensors()) {
      json shape = json::array();
      for (uint32_t d = 0; d < t.n_dims; ++d) shape.push_back(t.ne[d]);
      tensors.push_back({{"name", t.name}, {"type", tensor_type_name(t.type)}, {"shape", shape}, {"bytes", t.nbytes}, {"offset", t.offset}});
      auto& [count, type_bytes] = by_type[tensor_type_name(t.type)];
      ++count;
      type_bytes += t.nbytes;
      params += static_cast<uint64_t>(t.n_elements());
      bytes += t.nbytes;
    }
    out["tensors"] = tensors;
    json summary{{"tensors", file.tensors().size()}, {"params", params}, {"bytes", bytes}};
    for (auto& [type, cb] : by_type) summary["by_type"][type] = {{"tensors", cb.first}, {"bytes", cb.second}};
    out["summary"] = summary;
    try {
      auto model = describe_model(file);
      const auto& hp = model.hparams;
      out["architecture"] = {{"arch", hp.arch}, {"n_vocab", hp.n_vocab}, {"n_ctx_train", hp.n_ctx_train},
                             {"n_embd", hp.n_embd}, {"n_layer", hp.n_layer}, {"n_ff", hp.n_ff}, {"n_head", hp.n_head},
                             {"n_head_kv", hp.n_head_kv}, {"head_dim", hp.head_dim}, {"rms_eps", hp.rms_eps},
                             {"rope_base", hp.rope_base}, {"ffn_act", ffn_activation_name(hp.ffn_act)},
                             {"tied_head", hp.tied_head}};
      out["notes"] = model.notes;
    } catch (const Error& e) {
      out["architecture"] = nullptr;
      out["architecture_error"] = e.what();
    }
    out["warnings"] = file.warnings();

    if (*as_json) {
      std::cout << out.dump(1) << "\n";
      return 0;
    }
    std::printf("%s: GGUF v%u, alignment %u, %zu keys, %zu tensors\n", path->c_str(), file.version(), file.alignment(),
                file.metadata().size(), file.tensors().size());
    std::printf("\nmetadata:\n");
    for (auto& kv : file.metadata()) std::printf("  %-44s %s\n", kv.key.c_str(), short_text(meta[kv.key]).c_str());
    std::printf("\narchitecture:\n");
    if (out["architecture"].is_null()) {
      std::printf("  not recognised: %s\n", out["architecture_error"].get<std::string>().c_str());
    } else {
      for (auto& [k, v] : out["architecture"].items()) std::printf("  %-12s %s\n", k.c_str(), short_text(v).c_str());
    }
    std::printf("\ntensors:\n");
    for (auto& t : tensors) {
      std::printf("  %-32s %-6s %-20s %12llu bytes\n", t["name"].get<std::string>().c_str(), t["type"].get<std::string>().c_str(),
                  t["shape"].dump().c_str(), static_cast<unsigned long long>(t["bytes"].get<uint64_t>()));
    }
    std::printf("\nsummary: %llu parameters, %.2f MB of tensor data\n", static_cast<unsigned long long>(params), bytes / 1e6);
    for (auto& [type, cb] : by_type) {
      std::printf("  %-6s %5llu tensors %12.2f MB\n", type.c_str(), static_cast<unsigned long long>(cb.first), cb.second / 1e6);
    }
    for (auto& n : out["notes"]) std::printf("note: %s\n", n.get<std::string>().c_str());
    for (auto& w : file.warnings()) std::printf("warning: %s\n", w.c_str());
    return 0;
  };
}

}  // namespace bitnet::tools
