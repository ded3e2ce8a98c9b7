// `bitnetc compile model.gguf -o model.bundle` and `bitnetc dump-ir model.gguf|model.bundle`.
#include "frontend/compile.h"
#include "ir/atomic_file.h"
#include "ir/error.h"
#include "ir/progress.h"
#include "runtime/bundle.h"
#include "tools/commands.h"
#ifdef BITNETC_LLVM
#include "codegen/x86/llvm/kernel_generator.h"
#endif

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>

namespace bitnet::tools {
namespace {

// --print-before=PASS, --print-after=PASS, --print-after-all, --time-passes (as LLVM's opt spells them).
struct PipelineFlags {
  std::vector<std::string> before, after;
  bool after_all = false, time_passes = false;
  passes::PipelineOptions options() const {
    passes::PipelineOptions o;
    for (auto& p : before) o.print_before.insert(passes::find_pass(p).name);
    for (auto& p : after) o.print_after.insert(passes::find_pass(p).name);
    o.print_after_all = after_all;
    return o;
  }
};

void add_pipeline_flags(CLI::App* cmd, PipelineFlags& flags) {
  cmd->add_option("--print-before", flags.before, "print the IR before this pass (repeatable)");
  cmd->add_option("--print-after", flags.after, "print the IR after this pass (repeatable)");
  cmd->add_flag("--print-after-all", flags.after_all, "print the IR after every pass");
  cmd->add_flag("--time-passes", flags.time_passes, "print each pass's time and op counts");
}

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

// IR text to stdout, or to `path` through a temporary file and a rename.
void write_text(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::cout << text;
    return;
  }
  AtomicFile out(path);
  out.write(text.data(), text.size());
  out.commit();
}

void print_pass_runs(const CompileReport& report) {
  std::fprintf(stderr, "%-20s %10s %8s %8s %s\n", "pass", "ms", "ops in", "ops out", "changed");
  for (auto& run : report.passes) {
    std::fprintf(stderr, "%-20s %10.3f %8zu %8zu %s\n", run.name.c_str(), run.ms, run.ops_before, run.ops_after, run.changed ? "yes" : "no");
  }
}

void print_stats(const CompileReport& report) {
  std::fprintf(stderr, "ops per step: %zu as lowered, %zu after the passes\n", report.n_ops_lowered, report.n_ops);
  if (report.arena_bytes_per_token > 0) {
    std::fprintf(stderr, "activation arena: %llu bytes per token (naive sum of all intermediates: %llu, %.1fx less)\n",
                 static_cast<unsigned long long>(report.arena_bytes_per_token), static_cast<unsigned long long>(report.naive_bytes_per_token),
                 static_cast<double>(report.naive_bytes_per_token) / static_cast<double>(report.arena_bytes_per_token));
  }
  for (auto& remark : report.remarks) std::fprintf(stderr, "  %s\n", remark.c_str());
}

}  // namespace

Command add_compile_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("compile", "compile a GGUF into a bundle");
  struct Args {
    std::string model, out, target = "x86", act_quant = "int8-token", ffn_act, i2s_layout = "x86-128", lm_head = "exact";
    std::optional<std::string> pipeline;
    PipelineFlags printing;
    bool stats = false;
    std::vector<int> sm = {90};
    std::string dump_kernels;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->model, "model.gguf")->required();
  cmd->add_option("-o,--output", a->out, "output bundle")->required();
  cmd->add_option("--i2s-layout", a->i2s_layout, "I2_S byte layout: x86-128 (the published 2B4T file), arm-64, x86-1x4");
  cmd->add_option("--passes", a->pipeline, "comma-separated pass pipeline instead of the target's (\"\" runs none)");
  cmd->add_flag("--stats", a->stats, "print ops before/after the passes, per-pass time, arena size");
  add_pipeline_flags(cmd, a->printing);
  cmd->add_option("--target", a->target, "x86 (JIT kernels for the CPU, default), cuda (NVRTC-compiled kernels for NVIDIA GPUs) or ref (the scalar reference)");
  cmd->add_option("--sm", a->sm, "target cuda: GPU architectures to build cubins for, e.g. 90 or 80,90 (default 90; PTX for the lowest runs on newer GPUs)")
      ->delimiter(',');
  cmd->add_option("--dump-kernels", a->dump_kernels, "also write the generated kernels to this file: CUDA source (--target cuda) or LLVM IR (--target x86)");
  cmd->add_option("--act-quant", a->act_quant, "int8-token (the model's semantics) or none (float activations)");
  cmd->add_option("--ffn-act", a->ffn_act, "override the FFN activation: relu2 or silu");
  cmd->add_option("--lm-head", a->lm_head, "exact (default: the LM head as stored, f16) or int8 (per-row int8: half the bytes per token, see bench/RESULTS.md for its effect on logits)");
  return [a] {
    CompileOptions options;
    options.target = a->target;
    options.lm_head = a->lm_head;
    options.cuda_sm = a->sm;
    options.dump_kernels = a->dump_kernels;
    if (a->target != "cuda" && a->sm != std::vector<int>{90}) fail("--sm applies to --target cuda only");
    if (a->target == "ref" && !a->dump_kernels.empty()) fail("--dump-kernels: --target ref has no generated kernels");
#ifdef BITNETC_LLVM
    options.x86_kernels = [](const ir::Module& m, std::string* ir_text) { return x86::generate_x86_kernels(m, ir_text); };
#else
    if (a->target == "x86" && !a->dump_kernels.empty()) fail("--dump-kernels: this bitnetc was built without LLVM (BITNETC_LLVM=OFF)");
#endif
    options.lower.act_quant = act_quant_value(a->act_quant);
    options.lower.ffn_act = a->ffn_act;
    auto layout = i2s_layout_from_name(a->i2s_layout);
    if (!layout) fail("--i2s-layout: '{}' is not one of x86-128, arm-64, x86-1x4", a->i2s_layout);
    options.lower.i2s_layout = *layout;
    if (a->pipeline) options.pipeline = passes::parse_pipeline(*a->pipeline);
    options.printing = a->printing.options();
    auto start = std::chrono::steady_clock::now();
    Progress progress("compile");
    auto report = compile_gguf(a->model, a->out, options, [&](size_t d, size_t t) { progress.update(d, t); });
    progress.finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (auto& note : report.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
    if (a->stats || a->printing.time_passes) print_pass_runs(report);
    if (a->stats) print_stats(report);
    std::fprintf(stderr, "compiled %s -> %s: %zu ops, %zu weights, %.1f MB, %.1f s\n", a->model.c_str(), a->out.c_str(),
                 report.n_ops, report.n_weights, report.bundle_bytes / 1e6, seconds);
    return 0;
  };
}

Command add_opt_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("opt", "run passes on IR text: bitnetc opt in.ir -p pass1,pass2 [-o out.ir]");
  struct Args {
    std::string input, out, pipeline;
    PipelineFlags printing;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("input", a->input, "IR text file ('-' for stdin)")->required();
  cmd->add_option("-p,--passes", a->pipeline, "comma-separated passes (\"\" runs none)")->required();
  cmd->add_option("-o,--output", a->out, "write to a file instead of stdout");
  add_pipeline_flags(cmd, a->printing);
  return [a] {
    std::string text;
    if (a->input == "-") {
      text.assign(std::istreambuf_iterator<char>(std::cin), {});
    } else {
      std::ifstream in(a->input, std::ios::binary);
      if (!in) fail("{}: cannot open", a->input);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    ir::Module module = ir::parse(text, a->input == "-" ? "<stdin>" : a->input);
    passes::PassContext context;
    auto runs = passes::run_pipeline(module, passes::parse_pipeline(a->pipeline), a->printing.options(), context);
    if (a->printing.time_passes) {
      CompileReport report;
      report.passes = runs;
      print_pass_runs(report);
    }
    write_text(a->out, ir::print(module));
    return 0;
  };
}

Command add_dump_ir_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("dump-ir", "print the IR of a GGUF (as lowered) or of a bundle (as stored)");
  struct Args {
    std::string model, out, act_quant = "int8-token", ffn_act, after, target = "ref";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("model", a->model, "model.gguf or model.bundle")->required();
  cmd->add_option("--after", a->after, "GGUF input: run the target's pipeline up to and including this pass ('all' for the whole pipeline)");
  cmd->add_option("--target", a->target, "the target whose pipeline --after refers to");
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
      std::vector<std::string> pipeline;
      if (!a->after.empty()) {
        auto full = passes::default_pipeline(a->target);
        if (a->after == "all") {
          pipeline = full;
        } else {
          passes::find_pass(a->after);
          auto it = std::find(full.begin(), full.end(), a->after);
          if (it == full.end()) fail("--after: pass '{}' is not in the {} pipeline", a->after, a->target);
          pipeline.assign(full.begin(), it + 1);
        }
      }
      text = lowered_ir_text(a->model, options, pipeline);
    }
    write_text(a->out, text);
    return 0;
  };
}

}  // namespace bitnet::tools
