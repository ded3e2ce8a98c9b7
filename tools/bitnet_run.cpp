// bitnet-run: executes a bundle (or compiles a GGUF on the fly) with llama-cli's habits: one prompt and a
// generation, or a chat (-cnv). Parity scripts use --prompt-ids, --force-ids and --dump-logits; benchmarks
// use --json. Errors are one line on stderr and a non-zero exit.
#include "codegen/x86/x86_backend.h"
#include "frontend/compile.h"
#include "tools/bitnet_run.h"
#include "ir/error.h"
#include "ir/text_utils.h"
#include "runtime/model.h"
#include "runtime/sampler.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace bitnet {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Peak resident set in decimal megabytes (ru_maxrss is in KiB).
double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss * 1024.0 / 1e6;
}

std::vector<int32_t> parse_ids(const std::string& flag, const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      long long v = std::stoll(item, &used);
      if (used != item.size() || v < 0 || v > INT32_MAX) throw std::invalid_argument(item);
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      fail("{}: '{}' is not a token id", flag, item);
    }
  }
  if (ids.empty()) fail("{}: no token ids given", flag);
  return ids;
}

struct Args {
  std::string model, prompt, prompt_file, prompt_ids, force_ids, dump_logits, act_quant = "int8-token";
  std::string isa = "auto";
  int n_predict = -1, n_ctx = 0, n_threads = 0;
  bool ignore_eos = false, chat = false, json = false, perplexity = false;
  SamplingParams sampling;
};

}  // namespace

// Loads a bundle, or compiles a GGUF into a temporary bundle first (removed once mapped): for x86 when
// this CPU can run its kernels, else for ref.
std::unique_ptr<Model> load_model(const std::string& path, const std::string& act_quant) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) fail("{}: cannot open: {}", path, std::strerror(errno));
  char magic[4] = {};
  probe.read(magic, 4);
  if (std::memcmp(magic, "GGUF", 4) != 0) return Model::load(path);
  CompileOptions options;
  options.target = x86::missing_isa(x86::required_isa(), x86::CpuFeatures::detect()).empty() ? "x86" : "ref";
  if (act_quant == "none") options.lower.act_quant = "none";
  else if (act_quant != "int8-token" && act_quant != "int8_token") fail("--act-quant: '{}' is not one of int8-token, none", act_quant);
  auto temp = std::filesystem::temp_directory_path() / ("bitnet-run-" + std::to_string(::getpid()) + ".bundle");
  compile_gguf(path, temp.string(), options);
  try {
    auto model = Model::load(temp.string());
    std::filesystem::remove(temp);
    return model;
  } catch (...) {
    std::filesystem::remove(temp);
    throw;
  }
}

namespace {

class Runner {
 public:
  Runner(const Args& a, const Model& model, Engine& engine, Sampler& sampler)
      : a_(a), model_(model), engine_(engine), sampler_(sampler), tok_(model.tokenizer()), n_vocab_(model.n_vocab()) {
    if (!a.dump_logits.empty()) {
      dump_.open(a.dump_logits, std::ios::binary | std::ios::trunc);
      if (!dump_) fail("--dump-logits: {}: cannot create", a.dump_logits);
    }
  }

  // Feeds `ids` at the next positions of sequence 0 and returns the logits of the last one.
  std::span<const float> feed(const std::vector<int32_t>& ids) {
    if (n_past_ + static_cast<int64_t>(ids.size()) > engine_.n_ctx()) {
      fail("the prompt needs {} positions but the context is {} tokens (-c)", n_past_ + ids.size(), engine_.n_ctx());
    }
    std::vector<int32_t> pos(ids.size()), seq(ids.size(), 0);
    for (size_t i = 0; i < ids.size(); ++i) pos[i] = static_cast<int32_t>(n_past_ + i);
    auto logits = engine_.step(ids, pos, seq, dump_.is_open());
    if (dump_) dump_.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * 4));
    n_past_ += static_cast<int64_t>(ids.size());
    for (int32_t id : ids) sampler_.accept(id);
    return logits.subspan(logits.size() - n_vocab_);
  }

  // Generates after the prompt; returns the generated ids. Streams text to `out` unless null.
  std::vector<int32_t> generate(std::span<const float> logits, std::ostream* out, std::vector<int32_t> forced) {
    std::vector<int32_t> generated;
    std::vector<float> last(logits.begin(), logits.end());
    TokenStreamDecoder stream(tok_);
    int64_t limit = !forced.empty() ? static_cast<int64_t>(forced.size()) : a_.n_predict;
    while (limit < 0 || static_cast<int64_t>(generated.size()) < limit) {
      int32_t id = !forced.empty() ? forced[generated.size()] : sampler_.sample(last);
      if (!a_.ignore_eos && forced.empty() && tok_.is_eog(id)) {
        generated.push_back(id);
        break;
      }
      generated.push_back(id);
      if (out) {
        *out << stream.push(id);
        out->flush();
      }
      if (n_past_ >= engine_.n_ctx()) break;  // context full: llama-cli stops too
      auto next = feed({id});
      ++decode_steps_;
      last.assign(next.begin(), next.end());
    }
    if (out) *out << stream.finish();
    return generated;
  }

  int64_t n_past() const { return n_past_; }
  int64_t decode_steps() const { return decode_steps_; }

 private:
  const Args& a_;
  const Model& model_;
  Engine& engine_;
  Sampler& sampler_;
  const Tokenizer& tok_;
  int64_t n_vocab_;
  int64_t n_past_ = 0;
  int64_t decode_steps_ = 0;
  std::ofstream dump_;
};

int run_chat(const Args& a, const Model& model, Engine& engine, Sampler& sampler) {
  Runner runner(a, model, engine, sampler);
  const Tokenizer& tok = model.tokenizer();
  std::vector<ChatMessage> first;
  if (!a.prompt.empty()) first.push_back({"system", a.prompt});
  bool have_prefix = false;
  std::string line;
  while (true) {
    std::cout << "\n> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    std::vector<ChatMessage> turn = have_prefix ? std::vector<ChatMessage>{} : first;
    turn.push_back({"user", line});
    auto ids = tok.encode_chat(turn, true);
    if (have_prefix && !ids.empty() && ids.front() == tok.bos()) ids.erase(ids.begin());  // BOS only once
    have_prefix = true;
    auto logits = runner.feed(ids);
    auto reply = runner.generate(logits, &std::cout, {});
    auto eot = tok.token_id("<|eot_id|>");
    if (reply.empty() || !tok.is_eog(reply.back())) {
      if (eot && runner.n_past() < engine.n_ctx()) runner.feed({*eot});
    } else if (runner.n_past() < engine.n_ctx()) {
      runner.feed({reply.back()});  // the end-of-turn token joins the cache, as trained
    }
    std::cout << "\n";
    if (runner.n_past() >= engine.n_ctx()) {
      std::cerr << "bitnet-run: context full (" << engine.n_ctx() << " tokens)\n";
      break;
    }
  }
  return 0;
}

int run(const Args& a) {
  if (a.n_predict < -1) fail("-n/--n-predict: {} must be -1 (until end of text) or >= 0", a.n_predict);
  if (!a.prompt.empty() && !a.prompt_file.empty()) fail("-p and -f: give the prompt one way, not both");
  if (!a.prompt_ids.empty() && (!a.prompt.empty() || !a.prompt_file.empty())) fail("--prompt-ids: cannot be combined with -p or -f");
  if (a.chat && (!a.prompt_ids.empty() || !a.force_ids.empty())) fail("-cnv: cannot be combined with --prompt-ids or --force-ids");
  if (a.n_threads < 0) fail("-t/--threads: {} must be positive", a.n_threads);

  auto start = Clock::now();
  auto model = load_model(a.model, a.act_quant);
  if (a.perplexity) {
    if (a.prompt_file.empty()) fail("--perplexity: give the text with -f FILE");
    return run_perplexity(*model, a.prompt_file, a.n_ctx, EngineOptions{a.n_threads, a.isa}, a.json);
  }
  int64_t n_ctx = a.n_ctx > 0 ? a.n_ctx : std::min<int64_t>(model->n_ctx_train(), 4096);
  Engine engine(*model, n_ctx, 1, EngineOptions{a.n_threads, a.isa});
  Sampler sampler(a.sampling, static_cast<size_t>(model->n_vocab()));
  double load_ms = ms_since(start);
  const Tokenizer& tok = model->tokenizer();
  if (a.chat) return run_chat(a, *model, engine, sampler);

  std::string text = a.prompt;
  if (!a.prompt_file.empty()) {
    std::ifstream in(a.prompt_file, std::ios::binary);
    if (!in) fail("-f: {}: cannot open", a.prompt_file);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  if (!valid_utf8(text)) fail("{}: the prompt is not valid UTF-8", a.prompt_file.empty() ? "-p" : a.prompt_file);
  std::vector<int32_t> prompt = !a.prompt_ids.empty() ? parse_ids("--prompt-ids", a.prompt_ids) : tok.encode(text, tok.add_bos(), true);
  if (prompt.empty()) fail("the prompt is empty and the model adds no BOS: nothing to run");
  for (int32_t id : prompt) {
    if (id >= model->n_vocab()) fail("--prompt-ids: {} is outside the vocabulary [0, {})", id, model->n_vocab());
  }
  std::vector<int32_t> forced = a.force_ids.empty() ? std::vector<int32_t>{} : parse_ids("--force-ids", a.force_ids);
  for (int32_t id : forced) {
    if (id >= model->n_vocab()) fail("--force-ids: {} is outside the vocabulary [0, {})", id, model->n_vocab());
  }
  if (static_cast<int64_t>(prompt.size()) > n_ctx) fail("the prompt is {} tokens but the context is {} (-c)", prompt.size(), n_ctx);

  Runner runner(a, *model, engine, sampler);
  std::ostream* out = a.json ? nullptr : &std::cout;
  if (out && a.prompt_ids.empty()) *out << text << std::flush;
  auto t0 = Clock::now();
  auto logits = runner.feed(prompt);
  double prefill_ms = ms_since(t0);
  auto t1 = Clock::now();
  auto generated = runner.generate(logits, out, forced);
  double decode_ms = ms_since(t1);
  if (out) *out << "\n";

  int64_t n_decoded = runner.decode_steps();
  nlohmann::json report{{"load_ms", load_ms}, {"n_prompt", prompt.size()}, {"n_gen", generated.size()},
                        {"prefill_tok_s", prompt.size() / (prefill_ms / 1000.0)},
                        {"decode_tok_s", n_decoded > 0 ? n_decoded / (decode_ms / 1000.0) : 0.0},
                        {"peak_rss_mb", peak_rss_mb()}, {"tokens", generated}, {"prompt_tokens", prompt},
                        {"text", tok.decode(generated, false)}, {"seed", sampler.seed()}, {"target", model->target()},
                        {"n_ctx", n_ctx}, {"threads", engine.threads()}, {"isa", engine.isa()}};
  if (a.json) {
    std::cout << report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::fprintf(stderr, "\nprompt %zu tokens %.1f tok/s | generated %zu tokens %.2f tok/s | load %.0f ms | peak RSS %.0f MB\n",
                 prompt.size(), report["prefill_tok_s"].get<double>(), generated.size(), report["decode_tok_s"].get<double>(), load_ms,
                 peak_rss_mb());
  }
  return 0;
}

}  // namespace
}  // namespace bitnet

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "bench") == 0) return bitnet::bench_main(argc - 1, argv + 1);
  bitnet::Args a;
  // llama-cli spells chat mode "-cnv"; CLI11 allows only one-letter short names, so translate it.
  std::vector<std::string> translated(argv, argv + argc);
  for (auto& arg : translated) {
    if (arg == "-cnv") arg = "--conversation";
  }
  std::vector<char*> args;
  for (auto& arg : translated) args.push_back(arg.data());
  argc = static_cast<int>(args.size());
  argv = args.data();
  CLI::App app{"bitnet-run: run a bitnetc bundle (or a BitNet GGUF)\n  bitnet-run bench MODEL [-p 512] [-n 128] [-r 5] [-t N] [--json]: llama-bench style speed test"};
  app.add_option("model", a.model, "model.bundle or model.gguf")->required();
  app.add_option("-p,--prompt", a.prompt, "prompt text (with -cnv: the system prompt)");
  app.add_option("-f,--file", a.prompt_file, "read the prompt from a file");
  app.add_option("-n,--n-predict", a.n_predict, "tokens to generate (-1: until end of text or a full context)");
  app.add_option("-c,--ctx-size", a.n_ctx, "context length (default: the model's, at most 4096)");
  app.add_option("-t,--threads", a.n_threads, "threads (default: physical cores; the ref backend uses one)");
  app.add_option("--isa", a.isa, "x86 kernels: auto (the best this CPU has), avx2 or avx512vnni");
  app.add_flag("--perplexity", a.perplexity, "perplexity of the text in -f, as llama-perplexity computes it (chunks of -c tokens)");
  app.add_option("-s,--seed", a.sampling.seed, "sampling seed (default: random)");
  app.add_option("--temp", a.sampling.temp, "temperature; <= 0 is greedy");
  app.add_option("--top-k", a.sampling.top_k, "top-k (<= 0: off)");
  app.add_option("--top-p", a.sampling.top_p, "top-p (1: off)");
  app.add_option("--min-p", a.sampling.min_p, "min-p (0: off)");
  app.add_option("--repeat-penalty", a.sampling.penalty_repeat, "repetition penalty (1: off)");
  app.add_option("--repeat-last-n", a.sampling.penalty_last_n, "tokens the penalties look back on (0: off, -1: all)");
  app.add_option("--frequency-penalty", a.sampling.penalty_freq, "frequency penalty");
  app.add_option("--presence-penalty", a.sampling.penalty_present, "presence penalty");
  app.add_flag("--ignore-eos", a.ignore_eos, "keep generating after end of text");
  app.add_flag("-i,--conversation,--chat", a.chat, "chat with the model's chat format");
  app.add_option("--prompt-ids", a.prompt_ids, "the prompt as token ids: 1,2,3");
  app.add_option("--force-ids", a.force_ids, "after the prompt, feed these ids as if sampled: 4,5,6");
  app.add_option("--dump-logits", a.dump_logits, "write every logits row (prompt, then each generated token) as raw f32");
  app.add_option("--act-quant", a.act_quant, "for a GGUF input: int8-token (default) or none");
  app.add_flag("--json", a.json, "print one JSON object at the end instead of text");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return bitnet::run(a);
  } catch (const bitnet::Error& e) {
    std::fprintf(stderr, "bitnet-run: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnet-run: internal error: %s\n", e.what());
    return 2;
  }
}
