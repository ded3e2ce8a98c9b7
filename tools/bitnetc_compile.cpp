// `bitnetc compile model.gguf -o model.bundle` and `bitnetc dump-ir model.gguf|model.bundle`.
#include "frontend/compile.h"
#include "ir/atomic_file.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "runtime/bundle.h"
#include "tools/commands.h"

#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>

namespace bitnet::tools {
namespace {

std::string act_quant_value(const std::string& flag) {
  if (flag == "int8-token" || flag == "int8_token") return "int8_token";
  if (flag == "none") return "none";
  fail("--act-quant: '{}' is not one of int8-token, none", flag);
}

bool is_bundle(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  char magic[8] = {};
  in.read(magic, 8);
  return std::memcmp(magic, kBundleMagic, 8) == 0;
}

}  // namespace

Command add_compile_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("compile", "compile a GGUF into a bundle");
  struct Args {
    std::string model, out, target = "ref", act_quant = "int8-token", ffn_act;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->model, "model.gguf")->required();
  cmd->add_option("-o,--output", a->out, "output bundle")->required();
  cmd->add_option("--target", a->target, "ref (x86 and cuda later)");
  cmd->add_option("--act-quant", a->act_quant, "int8-token (the model's semantics) or none (float activations)");
  cmd->add_option("--ffn-act", a->ffn_act, "override the FFN activation: relu2 or silu");
  return [a] {
    CompileOptions options;
    options.target = a->target;
    options.lower.act_quant = act_quant_value(a->act_quant);
    options.lower.ffn_act = a->ffn_act;
    auto start = std::chrono::steady_clock::now();
    Progress progress("compile");
    auto report = compile_gguf(a->model, a->out, options, [&](size_t d, size_t t) { progress.update(d, t); });
    progress.finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (auto& note : report.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
    std::fprintf(stderr, "compiled %s -> %s: %zu ops, %zu weights, %.1f MB, %.1f s\n", a->model.c_str(), a->out.c_str(),
                 report.n_ops, report.n_weights, report.bundle_bytes / 1e6, seconds);
    return 0;
  };
}

Command add_dump_ir_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("dump-ir", "print the IR of a GGUF (as lowered) or of a bundle (as stored)");
  struct Args {
    std::string model, out, act_quant = "int8-token", ffn_act;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->model, "model.gguf or model.bundle")->required();
  cmd->add_option("-o,--output", a->out, "write to a file instead of stdout");
  cmd->add_option("--act-quant", a->act_quant, "int8-token or none (GGUF input)");
  cmd->add_option("--ffn-act", a->ffn_act, "relu2 or silu (GGUF input)");
  return [a] {
    std::string text;
    if (is_bundle(a->model)) {
      text = Bundle::open(a->model).section_text("ir");
    } else {
      LowerOptions options;
      options.act_quant = act_quant_value(a->act_quant);
      options.ffn_act = a->ffn_act;
      text = lowered_ir_text(a->model, options);
    }
    if (a->out.empty()) {
      std::cout << text;
    } else {
      AtomicFile out(a->out);
      out.write(text.data(), text.size());
      out.commit();
    }
    return 0;
  };
}

}  // namespace bitnet::tools
