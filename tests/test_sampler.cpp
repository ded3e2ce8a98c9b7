// Tests of the token sampler (runtime/sampler.h) against hand-computed cuts from spec section 6. Filters are
// checked from outside: with a fixed seed, thousands of draws must produce exactly the expected set of
// survivors (every survivor has renormalised probability >= 0.1, so missing one would take ~0.9^4000 bad
// luck), and frequencies must match softmax(logits / temp) within many standard deviations.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "ir/error.h"
#include "runtime/sampler.h"

using bitnet::Sampler;
using bitnet::SamplingParams;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Only the filter under test is on; temp 1 so the draw follows the filtered softmax.
SamplingParams filters_off() {
  SamplingParams p;
  p.seed = 1234;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.temp = 1.0f;
  return p;
}

std::vector<float> logits_of(const std::vector<double>& probs) {
  std::vector<float> logits;
  for (double p : probs) logits.push_back(float(std::log(p)));
  return logits;
}

std::map<int32_t, int> draw_counts(const SamplingParams& params, const std::vector<float>& logits, int n_draws) {
  Sampler sampler(params, logits.size());
  std::map<int32_t, int> counts;
  for (int i = 0; i < n_draws; ++i) ++counts[sampler.sample(logits)];
  return counts;
}

std::set<int32_t> survivors(const SamplingParams& params, const std::vector<float>& logits) {
  std::set<int32_t> ids;
  for (auto [id, count] : draw_counts(params, logits, 4000)) ids.insert(id);
  return ids;
}

std::vector<int32_t> sequence(const SamplingParams& params, size_t n_vocab, int length) {
  Sampler sampler(params, n_vocab);
  const std::vector<float> flat(n_vocab, 0.0f);
  std::vector<int32_t> ids;
  for (int i = 0; i < length; ++i) ids.push_back(sampler.sample(flat));
  return ids;
}

int32_t greedy_after(SamplingParams params, const std::vector<int32_t>& accepted, const std::vector<float>& logits) {
  params.temp = 0.0f;
  Sampler sampler(params, logits.size());
  for (int32_t t : accepted) sampler.accept(t);
  return sampler.sample(logits);
}

std::string error_of(const SamplingParams& params, size_t n_vocab = 8) {
  try {
    Sampler sampler(params, n_vocab);
  } catch (const bitnet::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Ids 0..3 with probabilities 0.1, 0.5, 0.15, 0.25: best first the order is 1, 3, 2, 0 and the cumulative
// probabilities are 0.5, 0.75, 0.9, 1.0.
const std::vector<float> kFour = logits_of({0.1, 0.5, 0.15, 0.25});

}  // namespace

TEST_CASE("argmax takes the lowest id among equal maxima", "[sampler]") {
  const std::vector<float> logits = {1.0f, 3.0f, -2.0f, 3.0f, 3.0f};
  CHECK(bitnet::argmax(logits) == 1);
  CHECK(bitnet::argmax(std::vector<float>{-kInf, -5.0f, -5.0f}) == 1);
  CHECK(bitnet::argmax(std::vector<float>{7.0f}) == 0);
}

TEST_CASE("temp <= 0 is greedy with ties to the lowest id", "[sampler]") {
  const std::vector<float> logits = {0.5f, 2.0f, 1.0f, 2.0f};
  for (float temp : {0.0f, -1.0f}) {
    SamplingParams p;
    p.seed = 7;
    p.temp = temp;
    Sampler sampler(p, logits.size());
    for (int i = 0; i < 20; ++i) CHECK(sampler.sample(logits) == 1);
  }
}

TEST_CASE("top-k = 1 equals greedy", "[sampler]") {
  std::mt19937 gen(99);
  std::uniform_int_distribution<int> level(-3, 3);  // few levels, so ties are common
  SamplingParams p;
  p.seed = 5;
  p.top_k = 1;
  Sampler sampler(p, 50);
  std::vector<float> logits(50);
  for (int round = 0; round < 200; ++round) {
    for (float& l : logits) l = float(level(gen));
    REQUIRE(sampler.sample(logits) == bitnet::argmax(logits));
  }
}

TEST_CASE("top-k keeps the k best, ties broken towards the lower id", "[sampler]") {
  SamplingParams p = filters_off();
  p.top_k = 2;
  CHECK(survivors(p, kFour) == std::set<int32_t>{1, 3});
  CHECK(survivors(p, {1.0f, 2.0f, 2.0f, 2.0f}) == std::set<int32_t>{1, 2});
  p.top_k = 100;  // more than the vocabulary: keep all
  CHECK(survivors(p, kFour) == std::set<int32_t>{0, 1, 2, 3});
}

TEST_CASE("top-p keeps the shortest prefix reaching p", "[sampler]") {
  SamplingParams p = filters_off();
  const auto with = [&](float top_p, int32_t min_keep) {
    p.top_p = top_p;
    p.min_keep = min_keep;
    return survivors(p, kFour);
  };
  CHECK(with(0.0f, 0) == std::set<int32_t>{1});
  CHECK(with(0.4f, 0) == std::set<int32_t>{1});
  CHECK(with(0.7f, 0) == std::set<int32_t>{1, 3});
  CHECK(with(0.8f, 0) == std::set<int32_t>{1, 3, 2});
  CHECK(with(0.95f, 0) == std::set<int32_t>{1, 3, 2, 0});
  CHECK(with(1.0f, 0) == std::set<int32_t>{1, 3, 2, 0});
  CHECK(with(0.4f, 3) == std::set<int32_t>{1, 3, 2});
  CHECK(with(0.7f, 99) == std::set<int32_t>{1, 3, 2, 0});
}

TEST_CASE("top-p and min-p keep a token exactly at the bound", "[sampler]") {
  // Two equal logits give probabilities of exactly 0.5 and a log-ratio of exactly 0.
  SamplingParams p = filters_off();
  p.top_p = 0.5f;
  CHECK(survivors(p, {2.0f, 2.0f}) == std::set<int32_t>{0});
  p.top_p = 0.51f;
  CHECK(survivors(p, {2.0f, 2.0f}) == std::set<int32_t>{0, 1});
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  CHECK(survivors(p, {2.0f, 2.0f, -5.0f}) == std::set<int32_t>{0, 1});
}

TEST_CASE("top-p renormalises over the top-k survivors", "[sampler]") {
  // 0.4 alone does not reach 0.55; after top-k = 2 it is 0.4 / 0.7 = 0.571 and does.
  SamplingParams p = filters_off();
  const std::vector<float> logits = logits_of({0.4, 0.3, 0.2, 0.1});
  p.top_p = 0.55f;
  CHECK(survivors(p, logits) == std::set<int32_t>{0, 1});
  p.top_k = 2;
  CHECK(survivors(p, logits) == std::set<int32_t>{0});
}

TEST_CASE("min-p keeps tokens with prob >= min_p * max_prob", "[sampler]") {
  SamplingParams p = filters_off();
  const auto with = [&](float min_p, int32_t min_keep) {
    p.min_p = min_p;
    p.min_keep = min_keep;
    return survivors(p, kFour);
  };
  CHECK(with(0.19f, 0) == std::set<int32_t>{1, 3, 2, 0});  // threshold 0.095
  CHECK(with(0.25f, 0) == std::set<int32_t>{1, 3, 2});     // threshold 0.125
  CHECK(with(0.4f, 0) == std::set<int32_t>{1, 3});         // threshold 0.2
  CHECK(with(0.6f, 0) == std::set<int32_t>{1});            // threshold 0.3
  CHECK(with(1.0f, 0) == std::set<int32_t>{1});
  CHECK(with(0.6f, 2) == std::set<int32_t>{1, 3});
}

TEST_CASE("top-p then min-p: top-p sees the whole distribution", "[sampler]") {
  // Probabilities 0.4, 0.3, 0.2, 0.1 and min-p 0.6 (threshold 0.24): only ids 0 and 1 can survive min-p, yet
  // top-p must still measure them against all four: 0.4 < 0.55 <= 0.7, so both stay.
  SamplingParams p = filters_off();
  const std::vector<float> logits = logits_of({0.4, 0.3, 0.2, 0.1});
  p.top_p = 0.55f;
  p.min_p = 0.6f;
  CHECK(survivors(p, logits) == std::set<int32_t>{0, 1});
  p.top_p = 0.35f;
  CHECK(survivors(p, logits) == std::set<int32_t>{0});
  p.top_p = 0.55f;
  p.min_keep = 3;
  CHECK(survivors(p, logits) == std::set<int32_t>{0, 1, 2});
  p.top_k = 3;
  p.min_keep = 0;
  p.top_p = 0.6f;  // over the top 3: 0.4 / 0.9 = 0.44 < 0.6 <= 0.78
  CHECK(survivors(p, logits) == std::set<int32_t>{0, 1});
}

TEST_CASE("draw frequencies follow softmax(logits / temp)", "[sampler]") {
  const std::vector<float> logits = {1.0f, 0.5f, 0.0f, -0.5f, -1.0f};
  constexpr int kDraws = 100000;  // sd of a frequency <= 0.0016; the tolerance is 6 sd
  std::map<float, double> top_frequency;
  for (float temp : {0.5f, 1.0f, 2.0f}) {
    SamplingParams p = filters_off();
    p.temp = temp;
    const auto counts = draw_counts(p, logits, kDraws);
    double sum = 0.0;
    for (float l : logits) sum += std::exp(l / temp);
    for (size_t id = 0; id < logits.size(); ++id) {
      INFO("temp " << temp << " token " << id);
      const double expected = std::exp(logits[id] / temp) / sum;
      const double seen = counts.count(int32_t(id)) ? counts.at(int32_t(id)) / double(kDraws) : 0.0;
      CHECK(std::abs(seen - expected) < 0.01);
    }
    top_frequency[temp] = counts.at(0) / double(kDraws);
  }
  // A lower temperature concentrates the mass on the best token: about 0.64 vs 0.32 vs 0.26.
  CHECK(top_frequency[0.5f] > top_frequency[1.0f] + 0.2);
  CHECK(top_frequency[1.0f] > top_frequency[2.0f] + 0.03);
}

TEST_CASE("repeat penalty divides positive logits and multiplies negative ones", "[sampler]") {
  SamplingParams p = filters_off();
  p.penalty_repeat = 2.0f;
  CHECK(greedy_after(p, {}, {3.0f, 2.0f}) == 0);
  CHECK(greedy_after(p, {0}, {3.0f, 2.0f}) == 1);    // 3 / 2 = 1.5 < 2
  CHECK(greedy_after(p, {0}, {-1.0f, -1.5f}) == 1);  // -1 * 2 = -2 < -1.5 (dividing would give -0.5)
  CHECK(greedy_after(p, {1}, {-1.0f, -1.5f}) == 0);
  p.penalty_repeat = 1.4f;
  CHECK(greedy_after(p, {0}, {3.0f, 2.0f}) == 0);  // 3 / 1.4 = 2.14 > 2
  CHECK(greedy_after(p, {0, 0, 0}, {3.0f, 2.0f}) == 0);  // applied once per distinct token
}

TEST_CASE("frequency penalty scales with the count, presence penalty does not", "[sampler]") {
  SamplingParams p = filters_off();
  p.penalty_freq = 0.6f;
  CHECK(greedy_after(p, {0}, {3.0f, 2.0f}) == 0);     // 3 - 0.6 = 2.4
  CHECK(greedy_after(p, {0, 0}, {3.0f, 2.0f}) == 1);  // 3 - 1.2 = 1.8
  p.penalty_freq = 0.0f;
  p.penalty_present = 0.9f;
  CHECK(greedy_after(p, {0, 0, 0}, {3.0f, 2.0f}) == 0);  // 3 - 0.9 = 2.1
  p.penalty_present = 1.1f;
  CHECK(greedy_after(p, {0}, {3.0f, 2.0f}) == 1);  // 3 - 1.1 = 1.9
  p.penalty_present = -2.0f;  // negative values favour repeats
  CHECK(greedy_after(p, {1}, {3.0f, 2.0f}) == 1);
}

TEST_CASE("penalties only see the last penalty_last_n accepted tokens", "[sampler]") {
  SamplingParams p = filters_off();
  p.penalty_repeat = 2.0f;
  const std::vector<int32_t> accepted = {0, 1, 1};  // token 0 is third from the end
  const std::vector<float> logits = {3.0f, 2.0f, 1.9f};
  p.penalty_last_n = 2;
  CHECK(greedy_after(p, accepted, logits) == 0);  // only 1 penalised: 3 vs 1 vs 1.9
  p.penalty_last_n = 3;
  CHECK(greedy_after(p, accepted, logits) == 2);  // 1.5 vs 1 vs 1.9
  p.penalty_last_n = -1;
  CHECK(greedy_after(p, accepted, logits) == 2);
  p.penalty_last_n = 0;
  CHECK(greedy_after(p, accepted, logits) == 0);

  // A window that has been trimmed many times still holds exactly the last n tokens.
  std::vector<int32_t> long_history(1000, 1);
  long_history[994] = 0;  // 6th from the end
  p.penalty_last_n = 5;
  CHECK(greedy_after(p, long_history, logits) == 0);
  p.penalty_last_n = 6;
  CHECK(greedy_after(p, long_history, logits) == 2);
}

TEST_CASE("logit bias is added before the penalties and the filters", "[sampler]") {
  SamplingParams p = filters_off();
  p.temp = 0.0f;
  p.logit_bias = {{0, -kInf}};
  CHECK(Sampler(p, 3).sample(std::vector<float>{3.0f, 2.0f, 1.0f}) == 1);
  p.logit_bias = {{2, 1.5f}};
  CHECK(Sampler(p, 3).sample(std::vector<float>{3.0f, 2.0f, 1.0f}) == 0);  // 2.5 < 3
  p.logit_bias = {{2, 2.5f}};
  CHECK(Sampler(p, 3).sample(std::vector<float>{3.0f, 2.0f, 1.0f}) == 2);
  // Bias first, then the penalty: (1 + 2.5) / 2 = 1.75 < 2.
  p.penalty_repeat = 2.0f;
  CHECK(greedy_after(p, {2}, {3.0f, 2.0f, 1.0f}) == 0);
  CHECK(greedy_after(p, {0, 2}, {3.0f, 2.0f, 1.0f}) == 1);
  // A banned token is never drawn.
  p = filters_off();
  p.logit_bias = {{1, -kInf}};
  CHECK(survivors(p, kFour) == std::set<int32_t>{0, 2, 3});
}

TEST_CASE("a seed fixes the sequence of draws", "[sampler]") {
  SamplingParams p = filters_off();
  p.seed = 42;
  const auto first = sequence(p, 1000, 64);
  CHECK(sequence(p, 1000, 64) == first);
  p.seed = 43;
  CHECK(sequence(p, 1000, 64) != first);

  p.seed = 42;
  Sampler sampler(p, 1000);
  CHECK(sampler.seed() == 42u);
  const std::vector<float> flat(1000, 0.0f);
  for (int i = 0; i < 64; ++i) sampler.sample(flat);
  sampler.accept(3);
  sampler.reset();
  std::vector<int32_t> replay;
  for (int i = 0; i < 64; ++i) replay.push_back(sampler.sample(flat));
  CHECK(replay == first);
}

TEST_CASE("the random seed is reported and reproduces the run", "[sampler]") {
  SamplingParams p = filters_off();
  p.seed = bitnet::kRandomSeed;
  Sampler sampler(p, 1000);
  const std::vector<float> flat(1000, 0.0f);
  std::vector<int32_t> drawn;
  for (int i = 0; i < 64; ++i) drawn.push_back(sampler.sample(flat));
  p.seed = sampler.seed();
  CHECK(sequence(p, 1000, 64) == drawn);
}

TEST_CASE("bad parameters are rejected naming the flag", "[sampler]") {
  const auto bad = [](auto edit) {
    SamplingParams p;
    edit(p);
    return error_of(p);
  };
  CHECK(bad([](SamplingParams&) {}) == "(no error)");
  CHECK(bad([](SamplingParams& p) { p.top_p = 1.5f; }) == "--top-p: 1.5 is not in [0, 1]");
  CHECK(bad([](SamplingParams& p) { p.top_p = -0.1f; }) == "--top-p: -0.1 is not in [0, 1]");
  CHECK(bad([](SamplingParams& p) { p.top_p = std::nanf(""); }) == "--top-p: nan is not in [0, 1]");
  CHECK(bad([](SamplingParams& p) { p.min_p = 2.0f; }) == "--min-p: 2 is not in [0, 1]");
  CHECK(bad([](SamplingParams& p) { p.temp = kInf; }) == "--temp: inf is not a finite number");
  CHECK(bad([](SamplingParams& p) { p.penalty_last_n = -2; }).starts_with("--repeat-last-n: -2 is below -1"));
  CHECK(bad([](SamplingParams& p) { p.penalty_repeat = 0.0f; }).starts_with("--repeat-penalty: 0 is not above 0"));
  CHECK(bad([](SamplingParams& p) { p.penalty_freq = std::nanf(""); }) ==
        "--frequency-penalty: nan is not a finite number");
  CHECK(bad([](SamplingParams& p) { p.penalty_present = -kInf; }) ==
        "--presence-penalty: -inf is not a finite number");
  CHECK(bad([](SamplingParams& p) { p.min_keep = -1; }) == "--min-keep: -1 is negative");
  CHECK(bad([](SamplingParams& p) { p.logit_bias = {{8, 1.0f}}; }) == "--logit-bias: token 8 is not in [0, 8)");
  CHECK(bad([](SamplingParams& p) { p.logit_bias = {{2, kInf}}; }) ==
        "--logit-bias: bias inf of token 2 is not < +inf");
  CHECK(error_of(SamplingParams{}, 0).starts_with("sampler: vocabulary size 0"));
}

TEST_CASE("bad inputs to accept and sample are rejected", "[sampler]") {
  SamplingParams p = filters_off();
  Sampler sampler(p, 4);
  CHECK_THROWS_WITH(sampler.accept(4), "sampler: accepted token 4 is not in [0, 4)");
  CHECK_THROWS_WITH(sampler.accept(-1), "sampler: accepted token -1 is not in [0, 4)");
  CHECK_THROWS_WITH(sampler.sample(std::vector<float>(3, 0.0f)), "sampler: got 3 logits, the vocabulary has 4");
  CHECK_THROWS_WITH(sampler.sample(std::vector<float>{0.0f, std::nanf(""), 0.0f, 0.0f}),
                    "sampler: logit of token 1 is nan");
  p.logit_bias = {{0, -kInf}, {1, -kInf}};
  Sampler banned(p, 2);
  CHECK_THROWS_WITH(banned.sample(std::vector<float>{1.0f, 2.0f}), Catch::Contains("every token has logit -inf"));
}
