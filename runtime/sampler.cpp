// The token sampler (see sampler.h and spec section 6). sample() works on a copy of the logits: bias and
// penalties edit it in place, then the candidate ids are ordered best first (ties: lower id first) and each
// filter only shortens the candidate prefix, so top-p, min-p and the draw all walk one list. Without top-k,
// only the part of that list min-p can keep is sorted (see sample).
#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ir/error.h"

namespace bitnet {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// First capacity of the history when the window is the whole history (-1), the one case where it grows.
constexpr size_t kWholeHistoryReserve = 4096;

uint32_t pick_seed(uint32_t requested) {
  if (requested != kRandomSeed) return requested;
  return std::random_device{}();
}

void check_in_unit_interval(const char* flag, float value) {
  if (!(value >= 0.0f && value <= 1.0f)) fail("{}: {} is not in [0, 1]", flag, value);
}

void check_finite(const char* flag, float value) {
  if (!std::isfinite(value)) fail("{}: {} is not a finite number", flag, value);
}

void validate(const SamplingParams& p, size_t n_vocab) {
  if (n_vocab == 0 || n_vocab > size_t(std::numeric_limits<int32_t>::max()))
    fail("sampler: vocabulary size {} is not in [1, {}]", n_vocab, std::numeric_limits<int32_t>::max());
  check_in_unit_interval("--top-p", p.top_p);
  check_in_unit_interval("--min-p", p.min_p);
  check_finite("--temp", p.temp);
  if (p.penalty_last_n < -1) fail("--repeat-last-n: {} is below -1 (-1 = whole history, 0 = off)", p.penalty_last_n);
  check_finite("--repeat-penalty", p.penalty_repeat);
  if (p.penalty_repeat <= 0.0f) fail("--repeat-penalty: {} is not above 0 (1 = off)", p.penalty_repeat);
  check_finite("--frequency-penalty", p.penalty_freq);
  check_finite("--presence-penalty", p.penalty_present);
  if (p.min_keep < 0) fail("--min-keep: {} is negative", p.min_keep);
  for (auto [token, bias] : p.logit_bias) {
    if (token < 0 || size_t(token) >= n_vocab)
      fail("--logit-bias: token {} is not in [0, {})", token, n_vocab);
    // -inf is how a token is banned; +inf or NaN would poison the softmax.
    if (std::isnan(bias) || bias == kInf) fail("--logit-bias: bias {} of token {} is not < +inf", bias, token);
  }
}

}  // namespace

Sampler::Sampler(SamplingParams params, size_t n_vocab) : params_(std::move(params)), n_vocab_(n_vocab) {
  validate(params_, n_vocab_);
  logits_.resize(n_vocab_);
  order_.resize(n_vocab_);
  probs_.resize(n_vocab_);
  counts_.assign(n_vocab_, 0);
  // The window is trimmed by halves (see accept), so twice its length is all it ever holds.
  if (params_.penalty_last_n > 0) history_.reserve(2 * size_t(params_.penalty_last_n));
  if (params_.penalty_last_n < 0) history_.reserve(kWholeHistoryReserve);
  seed_ = pick_seed(params_.seed);
  rng_.seed(seed_);
}

void Sampler::reset() {
  history_.clear();
  seed_ = pick_seed(params_.seed);
  rng_.seed(seed_);
}

void Sampler::accept(int32_t token) {
  if (token < 0 || size_t(token) >= n_vocab_) fail("sampler: accepted token {} is not in [0, {})", token, n_vocab_);
  const int32_t last_n = params_.penalty_last_n;
  if (last_n == 0) return;
  // Dropping the older half at once keeps accept amortised O(1) without a ring buffer, and never reallocates.
  if (last_n > 0 && history_.size() == 2 * size_t(last_n))
    history_.erase(history_.begin(), history_.begin() + last_n);
  history_.push_back(token);
}

void Sampler::apply_penalties() {
  const SamplingParams& p = params_;
  if (p.penalty_last_n == 0 || (p.penalty_repeat == 1.0f && p.penalty_freq == 0.0f && p.penalty_present == 0.0f))
    return;
  size_t window = history_.size();
  if (p.penalty_last_n > 0) window = std::min(window, size_t(p.penalty_last_n));
  const std::span<const int32_t> recent(history_.data() + history_.size() - window, window);
  for (int32_t t : recent) ++counts_[t];
  // The second pass zeroes each count as it is used, so each distinct token is penalised once and counts_ is
  // clean for the next call without a pass over the whole vocabulary.
  for (int32_t t : recent) {
    const int32_t c = counts_[t];
    if (c == 0) continue;
    counts_[t] = 0;
    float& l = logits_[t];
    // Dividing a negative logit would raise it, so negative ones are multiplied: both move away from likely.
    l = l <= 0.0f ? l * p.penalty_repeat : l / p.penalty_repeat;
    l -= float(c) * p.penalty_freq + p.penalty_present;
  }
}

// Keeps the shortest best-first prefix whose probability reaches top_p, but at least max(1, min_keep). The
// probabilities are over all n top-k survivors; only the first n_sorted are in order, which is enough when
// min-p would cut everything after them anyway (see sample).
size_t Sampler::cut_top_p(size_t n_sorted, size_t n) const {
  const size_t keep = std::max<size_t>(1, size_t(params_.min_keep));
  const double max_logit = logits_[order_[0]];
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(double(logits_[order_[i]]) - max_logit);
  double cumulative = 0.0;
  for (size_t i = 0; i < n_sorted; ++i) {
    cumulative += std::exp(double(logits_[order_[i]]) - max_logit) / sum;
    if (cumulative >= params_.top_p && i + 1 >= keep) return i + 1;
  }
  return n_sorted;
}

// Keeps tokens with prob >= min_p * max_prob, i.e. logit >= max_logit + ln(min_p); at least max(1, min_keep).
size_t Sampler::cut_min_p(size_t n, double threshold) const {
  const size_t keep = std::min(n, std::max<size_t>(1, size_t(params_.min_keep)));
  size_t cut = 1;  // the best token always passes
  while (cut < n && double(logits_[order_[cut]]) >= threshold) ++cut;
  return std::max(cut, keep);
}

// Softmax of the first n candidates at temperature temp, then one draw.
int32_t Sampler::draw(size_t n) {
  const double inv_temp = 1.0 / double(params_.temp);
  const double max_logit = logits_[order_[0]];
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) {
    // Scaling the difference, not the logit, cannot overflow however small temp is.
    probs_[i] = std::exp((double(logits_[order_[i]]) - max_logit) * inv_temp);
    sum += probs_[i];
  }
  // A uniform from the raw 32-bit output, not std::uniform_real_distribution, whose algorithm is up to the
  // standard library: the same seed then gives the same tokens with any compiler.
  const double target = double(rng_()) * 0x1p-32 * sum;
  double cumulative = 0.0;
  for (size_t i = 0; i < n; ++i) {
    cumulative += probs_[i];
    if (cumulative > target) return order_[i];
  }
  return order_[0];  // unreachable: cumulative ends at sum > target
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.size() != n_vocab_) fail("sampler: got {} logits, the vocabulary has {}", logits.size(), n_vocab_);
  for (size_t i = 0; i < n_vocab_; ++i) {
    // NaN or +inf would break the ordering and the softmax; they mean the forward pass went wrong.
    if (!(logits[i] < kInf)) fail("sampler: logit of token {} is {}", i, logits[i]);
    logits_[i] = logits[i];
  }
  for (auto [token, bias] : params_.logit_bias) logits_[token] += bias;
  apply_penalties();

  const int32_t best = argmax(logits_);
  if (logits_[best] == -kInf) fail("sampler: every token has logit -inf (all banned by --logit-bias?)");
  // top-k, top-p and min-p always keep the argmax, so greedy needs none of them.
  if (params_.temp <= 0.0f) return best;

  const auto better = [this](int32_t a, int32_t b) {
    return logits_[a] > logits_[b] || (logits_[a] == logits_[b] && a < b);
  };
  std::iota(order_.begin(), order_.end(), 0);
  size_t n = n_vocab_;  // top-k survivors: order_[0, n)
  if (params_.top_k > 0 && size_t(params_.top_k) < n_vocab_) n = size_t(params_.top_k);
  // Without top-k, sorting a 128k vocabulary costs milliseconds. Past the tokens above the min-p threshold and
  // the min_keep best, nothing survives min-p, so only those need to be in order.
  size_t n_sorted = n;
  const double min_p_threshold = double(logits_[best]) + std::log(double(params_.min_p));
  if (params_.min_p > 0.0f && n == n_vocab_) {
    const auto passes = [&](float l) { return double(l) >= min_p_threshold; };
    const size_t above = size_t(std::count_if(logits_.begin(), logits_.end(), passes));
    n_sorted = std::min(n, std::max({above, size_t(1), size_t(params_.min_keep)}));
  }
  if (n_sorted == n_vocab_) {
    std::sort(order_.begin(), order_.end(), better);
  } else {
    std::partial_sort(order_.begin(), order_.begin() + n_sorted, order_.end(), better);
  }
  if (params_.top_p < 1.0f) n = cut_top_p(n_sorted, n);
  if (params_.min_p > 0.0f) n = cut_min_p(std::min(n, n_sorted), min_p_threshold);
  return draw(n);
}

}  // namespace bitnet
