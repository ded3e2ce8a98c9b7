// `bitnet-run bench MODEL [-p 512] [-n 128] [-b 1,8,64] [-r 5] [-t N] [--json]`: prompt processing (pp: one
// step of p tokens, logits of the last one only, as llama-bench; its time is also the time to the first
// token of a p-token prompt) and text generation (tg: n steps of one token from each of b sequences, all
// b decoded together) on random token ids, r repetitions after one warm-up each, reported as median tok/s
// (all sequences together) with the spread.
// It also measures the read bandwidth of the memory the weights stream from -- the host's with the same
// thread count (before the model is mapped, so its buffer does not count in the peak RSS), or for a CUDA
// bundle the GPU's (a probe kernel; the host's is then reported under another name) -- and divides it by
// the bytes a decoded token reads (every weight once: the ternary matrices and the LM head) to give the
// decode roofline and the fraction of it that batch-1 decoding reached.
#include "ir/error.h"
#include "tools/bitnet_run.h"
#include "codegen/x86/thread_pool.h"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/mman.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

namespace bitnet {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// GB/s of `threads` threads each summing its share of a 512 MiB buffer; the best of 20 passes (single
// passes on a shared VM vary by a third).
double measure_read_bandwidth(int threads) {
  const size_t bytes = size_t{512} << 20, words = bytes / 8;
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) fail("bench: cannot map {} bytes for the bandwidth test", bytes);
  auto* data = static_cast<uint64_t*>(mem);
  for (size_t i = 0; i < words; ++i) data[i] = i;
  double best = 0;
  std::vector<uint64_t> sinks(static_cast<size_t>(threads) * 8);
  for (int pass = 0; pass < 20; ++pass) {
    auto start = Clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        const size_t begin = words * t / threads, end = words * (t + 1) / threads;
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = begin; i + 4 <= end; i += 4) {
          s0 += data[i];
          s1 += data[i + 1];
          s2 += data[i + 2];
          s3 += data[i + 3];
        }
        sinks[static_cast<size_t>(t) * 8] = s0 + s1 + s2 + s3;
      });
    }
    for (auto& th : pool) th.join();
    best = std::max(best, bytes / seconds_since(start) / 1e9);
  }
  munmap(mem, bytes);
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double stddev(const std::vector<double>& v) {
  double mean = 0, sq = 0;
  for (double x : v) mean += x;
  mean /= v.size();
  for (double x : v) sq += (x - mean) * (x - mean);
  return v.size() > 1 ? std::sqrt(sq / (v.size() - 1)) : 0.0;
}

// Peak resident set in decimal megabytes (ru_maxrss is in KiB).
double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss * 1024.0 / 1e6;
}

}  // namespace

int bench_main(int argc, char** argv) {
  std::string model_path, isa = "auto";
  int n_prompt = 512, n_gen = 128, reps = 5, threads = 0;
  std::vector<int> batches = {1};
  bool json = false;
  CLI::App app{"bitnet-run bench: llama-bench style prompt-processing and generation speed"};
  app.add_option("model", model_path, "model.bundle or model.gguf")->required();
  app.add_option("-p,--n-prompt", n_prompt, "prompt tokens per pp test (0: skip)");
  app.add_option("-n,--n-gen", n_gen, "generated tokens per tg test (0: skip)");
  app.add_option("-b,--batch", batches, "sequences decoded together in the tg tests: 1,8,64")->delimiter(',');
  app.add_option("-r,--repetitions", reps, "repetitions of each test");
  app.add_option("-t,--threads", threads, "threads (default: physical cores)");
  app.add_option("--isa", isa, "x86 kernels: auto, avx2 or avx512vnni");
  app.add_flag("--json", json, "print one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (n_prompt < 0 || n_gen < 0 || n_prompt + n_gen == 0) fail("-p/-n: {} and {}: at least one test must have tokens", n_prompt, n_gen);
    if (reps < 1) fail("-r/--repetitions: {} must be at least 1", reps);
    if (threads < 0) fail("-t/--threads: {} must be at least 1", threads);
    if (batches.empty()) batches = {1};
    for (int b : batches)
      if (b < 1 || b > 4096) fail("-b/--batch: {} sequences: give 1 to 4096", b);
    const int max_batch = *std::max_element(batches.begin(), batches.end());
    const int bw_threads = threads > 0 ? threads : x86::physical_cores();
    const double bandwidth = measure_read_bandwidth(bw_threads);
    auto model = load_model(model_path, "int8-token");
    Engine engine(*model, std::max(1, n_prompt + n_gen), max_batch, EngineOptions{threads, isa});
    std::mt19937 rng(1234);
    std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(model->n_vocab() - 1));
    // tok/s of each repetition: a prompt of `tokens` in one step, or `tokens` steps of one token from
    // each of `batch` sequences (sequence b's token i at position i, all logits of the step computed).
    auto run_test = [&](int tokens, bool prompt, int batch) {
      std::vector<double> rates;
      for (int r = -1; r < reps; ++r) {  // r = -1: warm-up (pages of the map, caches, kernels)
        std::vector<int32_t> ids(static_cast<size_t>(tokens) * batch), pos(ids.size()), seq(ids.size(), 0);
        for (size_t i = 0; i < ids.size(); ++i) {
          ids[i] = token(rng);
          pos[i] = prompt ? static_cast<int32_t>(i) : static_cast<int32_t>(i) / batch;
          seq[i] = prompt ? 0 : static_cast<int32_t>(i) % batch;
        }
        auto start = Clock::now();
        if (prompt) {
          engine.step(ids, pos, seq, false);
        } else {
          // Each sequence's next token chosen (greedy; on a GPU without copying logits back), then fed the
          // random one: the cost of decoding, the same tokens in every backend.
          const size_t b = static_cast<size_t>(batch);
          for (size_t i = 0; i < ids.size(); i += b) engine.step_greedy({&ids[i], b}, {&pos[i], b}, {&seq[i], b});
        }
        const double s = seconds_since(start);
        if (r >= 0) rates.push_back(static_cast<double>(ids.size()) / s);
      }
      return rates;
    };
    const double bytes_per_token = static_cast<double>(model->weight_bytes_per_token());
    // A CUDA bundle's weights stream from the GPU's memory: its bandwidth, not the CPU's, is the roofline.
    const bool gpu = model->target() == "cuda";
    const double device_bandwidth = gpu ? engine.device_read_bandwidth_gb_s() : 0.0;
    const double roofline = (gpu ? device_bandwidth : bandwidth) * 1e9 / bytes_per_token;
    nlohmann::json results = nlohmann::json::array();
    auto record = [&](const std::string& name, const std::vector<double>& rates) {
      nlohmann::json r{{"test", name}, {"tok_s_median", median(rates)}, {"tok_s_stddev", stddev(rates)},
                       {"tok_s_min", *std::min_element(rates.begin(), rates.end())}, {"tok_s_max", *std::max_element(rates.begin(), rates.end())},
                       {"samples", rates}};
      if (name.rfind("tg", 0) == 0 && name.find(' ') == std::string::npos && roofline > 0) r["roofline_fraction"] = median(rates) / roofline;
      if (name.rfind("pp", 0) == 0) r["first_token_ms"] = n_prompt / median(rates) * 1e3;
      results.push_back(r);
    };
    if (n_prompt > 0) record("pp" + std::to_string(n_prompt), run_test(n_prompt, true, 1));
    for (int b : batches)
      if (n_gen > 0) record("tg" + std::to_string(n_gen) + (b > 1 ? " b" + std::to_string(b) : ""), run_test(n_gen, false, b));
    nlohmann::json out{{"model", model_path}, {"model_name", model->meta().value("name", "")}, {"target", model->target()},
                       {"isa", engine.isa()}, {"fused_kernels", engine.fused_kernels()}, {"threads", engine.threads()}, {"weight_bytes", model->weight_bytes()},
                       {"bytes_per_decoded_token", bytes_per_token}, {"peak_rss_mb", peak_rss_mb()}, {"peak_rss_gib", peak_rss_mb() * 1e6 / (1 << 30)},
                       {"repetitions", reps}, {"results", results}};
    out["read_bandwidth_gb_s"] = gpu ? device_bandwidth : bandwidth;
    out["read_bandwidth_of"] = gpu ? "gpu" : "host";
    if (gpu) out["host_read_bandwidth_gb_s"] = bandwidth;
    out["decode_roofline_tok_s"] = roofline;
    if (json) {
      std::printf("%s\n", out.dump(1).c_str());
      return 0;
    }
    std::printf("| model | size | backend | threads | test | t/s | roofline, first token |\n| --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for (const auto& r : results) {
      std::string fraction = r.contains("roofline_fraction") ? std::to_string(static_cast<int>(std::lround(100 * r["roofline_fraction"].get<double>()))) + "%" : "";
      if (r.contains("first_token_ms")) fraction = fmt::format("first token {:.1f} ms", r["first_token_ms"].get<double>());
      std::printf("| %s | %.2f GB | %s %s | %d | %s | %.2f ± %.2f | %s |\n", out["model_name"].get<std::string>().c_str(), model->weight_bytes() / 1e9,
                  model->target().c_str(), engine.isa().c_str(), engine.threads(), r["test"].get<std::string>().c_str(),
                  r["tok_s_median"].get<double>(), r["tok_s_stddev"].get<double>(), fraction.c_str());
    }
    std::printf("\nfused kernels: %s\n", engine.fused_kernels().c_str());
    if (gpu) {
      std::printf("GPU read bandwidth %.1f GB/s; a decoded token reads %.3f GB of weights -> decode roofline %.1f tok/s (host: %.1f GB/s)\n",
                  device_bandwidth, bytes_per_token / 1e9, roofline, bandwidth);
    } else {
      std::printf("read bandwidth %.1f GB/s (%d threads); a decoded token reads %.3f GB of weights -> decode roofline %.1f tok/s\n", bandwidth, bw_threads,
                  bytes_per_token / 1e9, roofline);
    }
    std::printf("peak RSS %.0f MB (%.3f GiB)\n", peak_rss_mb(), peak_rss_mb() * 1e6 / (1 << 30));
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "bitnet-run bench: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bitnet-run bench: internal error: %s\n", e.what());
    return 2;
  }
}

}  // namespace bitnet
