// Reference semantics of every op in ir/ops.def. Shapes use the IR's letters: T tokens in this step, D/N/K
// feature counts, V vocabulary, d head dimension. Activations are row-major [T, N] f32 buffers.
#include "codegen/ref/ref_backend.h"

#include "ir/error.h"
#include "ir/half.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace bitnet::ref {
namespace {

// Row r of a float matrix weight as f32.
void weight_row(const WeightView& w, int64_t r, int64_t k, float* out) {
  if (w.type->dtype == ir::DType::I8) {
    const int8_t* q = reinterpret_cast<const int8_t*>(w.data) + r * k;
    const float scale = i8_scales(w.data, w.type->dims[0], k)[r];
    for (int64_t i = 0; i < k; ++i) out[i] = q[i] * scale;
  } else if (w.type->dtype == ir::DType::F16) {
    const uint8_t* p = w.data + 2 * r * k;
    for (int64_t i = 0; i < k; ++i) out[i] = f16_to_f32(static_cast<uint16_t>(p[2 * i] | (p[2 * i + 1] << 8)));
  } else {
    std::memcpy(out, w.data + 4 * r * k, static_cast<size_t>(k) * 4);
  }
}

const float* f32_weight(const WeightView& w) { return reinterpret_cast<const float*>(w.data); }

int ternary(const uint8_t* row, int64_t i) { return ((row[i / 4] >> (2 * (i % 4))) & 3) - 1; }

// BitNet b1.58 activation quantization of one row (spec 4.9): per-token absmax to int8, round half to even.
float quantize_row_int8(const float* x, int64_t k, int8_t* q) {
  double amax = 1e-5;
  for (int64_t i = 0; i < k; ++i) amax = std::max(amax, static_cast<double>(std::fabs(x[i])));
  float a = static_cast<float>(127.0 / amax);
  for (int64_t i = 0; i < k; ++i) {
    float r = std::nearbyint(x[i] * a);
    // A NaN here means corrupt weights upstream; converting it to int8 would be undefined behaviour.
    q[i] = std::isnan(r) ? 0 : static_cast<int8_t>(std::clamp(r, -128.0f, 127.0f));
  }
  return a;
}

void rmsnorm_row(const float* x, int64_t n, const float* weight, float eps, float* y) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
  float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * weight[i];
}

// A q8 row: K int8 values padded to 4 bytes, then the f32 multiplier (ir.h, DType::Q8).
int8_t* q8_values(float* row) { return reinterpret_cast<int8_t*>(row); }
float& q8_multiplier(float* row, int64_t k) { return row[(k + 3) / 4]; }

// x is f32 [T, K] or, when `x_is_q8`, q8 [T, K] (already quantized: int8_act must be set).
void bitlinear(const float* x, bool x_is_q8, int64_t T, int64_t K, const WeightView& w, int64_t N, bool int8_act, float* y) {
  const bool packed = w.type->dtype == ir::DType::T2;
  const int64_t stride = t2_row_bytes(K), q8_row = (K + 3) / 4 + 1;
  const float* scales = packed ? t2_scales(w.data, N, K) : nullptr;
  std::vector<int8_t> q(static_cast<size_t>(K));
  for (int64_t t = 0; t < T; ++t) {
    const float* xt = x + t * (x_is_q8 ? q8_row : K);
    float a = 1.0f;
    if (x_is_q8) {
      float* row = const_cast<float*>(xt);
      std::memcpy(q.data(), q8_values(row), static_cast<size_t>(K));
      a = q8_multiplier(row, K);
    } else if (int8_act) {
      a = quantize_row_int8(xt, K, q.data());
    }
    for (int64_t n = 0; n < N; ++n) {
      if (packed && int8_act) {
        const uint8_t* row = w.data + n * stride;
        int32_t acc = 0;
        for (int64_t i = 0; i < K; ++i) acc += ternary(row, i) * q[i];
        y[t * N + n] = static_cast<float>(acc) / a * scales[n];
      } else if (packed) {
        const uint8_t* row = w.data + n * stride;
        double acc = 0;
        for (int64_t i = 0; i < K; ++i) acc += ternary(row, i) * static_cast<double>(xt[i]);
        y[t * N + n] = static_cast<float>(acc * scales[n]);
      } else {
        const float* row = f32_weight(w) + n * K;
        double acc = 0;
        for (int64_t i = 0; i < K; ++i) acc += static_cast<double>(row[i]) * (int8_act ? q[i] : xt[i]);
        y[t * N + n] = int8_act ? static_cast<float>(acc) / a : static_cast<float>(acc);
      }
    }
  }
}

void rope(float* x, const int32_t* pos, int64_t T, int64_t features, int64_t d, float base, const float* freq_factors) {
  const int64_t half = d / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < features / d; ++h) {
      float* head = x + t * features + h * d;
      for (int64_t i = 0; i < half; ++i) {
        // As HF computes it: inv_freq in f32, theta = p * inv_freq in f32.
        float inv_freq = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(d));
        if (freq_factors) inv_freq /= freq_factors[i];
        float theta = static_cast<float>(pos[t]) * inv_freq;
        float c = std::cos(theta), s = std::sin(theta);
        float a = head[i], b = head[i + half];
        head[i] = a * c - b * s;
        head[i + half] = b * c + a * s;
      }
    }
}

void write_kv(const float* k, const float* v, const int32_t* pos, const int32_t* seq, int64_t T, int64_t layer, KvCache& cache) {
  const size_t bytes = static_cast<size_t>(cache.kv_dim()) * 4;
  for (int64_t t = 0; t < T; ++t) {
    std::memcpy(cache.k(layer, seq[t], pos[t]), k + t * cache.kv_dim(), bytes);
    std::memcpy(cache.v(layer, seq[t], pos[t]), v + t * cache.kv_dim(), bytes);
  }
}

// Causal GQA attention of q [T, H*d] over the cache, with online softmax: one pass over positions keeps a
// running max, the running sum of exponentials and the weighted sum of values, so memory is O(d) per query
// however long the context.
void attend(const float* q, const int32_t* pos, const int32_t* seq, int64_t T, int64_t layer, int64_t n_head,
            int64_t n_head_kv, KvCache& cache, float* out) {
  const int64_t d = cache.kv_dim() / n_head_kv, q_dim = n_head * d;
  const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> acc(static_cast<size_t>(d));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t kv_head = h / (n_head / n_head_kv);
      const float* qh = q + t * q_dim + h * d;
      double running_max = -INFINITY, sum = 0;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t j = 0; j <= pos[t]; ++j) {
        const float* kj = cache.k(layer, seq[t], j) + kv_head * d;
        const float* vj = cache.v(layer, seq[t], j) + kv_head * d;
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += static_cast<double>(qh[i]) * kj[i];
        s *= inv_sqrt_d;
        double new_max = std::max(running_max, s), rescale = std::exp(running_max - new_max), w = std::exp(s - new_max);
        sum = sum * rescale + w;
        for (int64_t i = 0; i < d; ++i) acc[i] = acc[i] * rescale + w * vj[i];
        running_max = new_max;
      }
      float* o = out + t * q_dim + h * d;
      for (int64_t i = 0; i < d; ++i) o[i] = static_cast<float>(acc[i] / sum);
    }
}

}  // namespace

KvCache::KvCache(int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim)
    : n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx), kv_dim_(kv_dim),
      k_(static_cast<size_t>(n_layer * n_seq * n_ctx * kv_dim)), v_(k_.size()) {}

ArenaLayout ArenaLayout::separate(const ir::Module& m) {
  ArenaLayout layout;
  layout.offset.assign(m.values.size(), -1);
  for (auto& n : m.nodes) {
    n.for_each_result([&](int r) {
      layout.offset[r] = layout.floats_per_token;
      layout.floats_per_token += ir::floats_per_row(m.values[r].type);
    });
  }
  return layout;
}

Executor::Executor(const ir::Module& module, std::vector<WeightView> weights, ArenaLayout layout)
    : m_(module), weights_(std::move(weights)), layout_(std::move(layout)) {
  if (weights_.size() != m_.weights.size()) fail("ref backend: {} weights bound but the module declares {}", weights_.size(), m_.weights.size());
  if (layout_.offset.size() != m_.values.size()) fail("ref backend: the arena layout covers {} values, the module has {}", layout_.offset.size(), m_.values.size());
  for (auto& n : m_.nodes) {
    n.for_each_result([&](int r) {
      int64_t off = layout_.offset[r];
      if (off < 0 || off + ir::floats_per_row(m_.values[r].type) > layout_.floats_per_token) {
        fail("ref backend: %{} has no place inside the arena", m_.values[r].name);
      }
    });
  }
}

std::span<const float> Executor::run(const StepInputs& in, KvCache& cache) {
  const int64_t T = static_cast<int64_t>(in.tokens.size());
  auto i32_input = [&](int value) -> const int32_t* {
    for (size_t i = 0; i < m_.inputs.size(); ++i) {
      if (m_.inputs[i] == value) return i == 0 ? in.tokens.data() : i == 1 ? in.pos.data() : in.seq.data();
    }
    fail("ref backend: %{} is not an i32 input", m_.values[value].name);
  };
  if (arena_.size() < static_cast<size_t>(T * layout_.floats_per_token)) arena_.resize(static_cast<size_t>(T * layout_.floats_per_token));
  for (const ir::Node& node : m_.nodes) {
    const int64_t N = m_.values[node.result].type.dims.back();
    float* y = buffer(node.result, T);
    auto x = [&](size_t i) -> const float* { return buffer(node.operands[i], T); };
    auto features = [&](size_t i) { return m_.values[node.operands[i]].type.dims.back(); };
    auto is_q8 = [&](size_t i) { return m_.values[node.operands[i]].type.dtype == ir::DType::Q8; };
    auto w = [&](size_t i) -> const WeightView& { return weights_[node.weights[i]]; };
    switch (node.op) {
      case ir::Op::Embed: {
        const int32_t* tokens = i32_input(node.operands[0]);
        for (int64_t t = 0; t < T; ++t) weight_row(w(0), tokens[t], N, y + t * N);
        break;
      }
      case ir::Op::RmsNorm:
        for (int64_t t = 0; t < T; ++t) rmsnorm_row(x(0) + t * N, N, f32_weight(w(0)), static_cast<float>(m_.attr_float(node, "eps")), y + t * N);
        break;
      case ir::Op::AddRmsNormQuant: {
        float* h = buffer(node.extra_results[0], T);
        const int64_t q8_row = ir::floats_per_row(m_.values[node.extra_results[0]].type);
        scratch_.resize(static_cast<size_t>(N));
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] + x(1)[i];
        for (int64_t t = 0; t < T; ++t) {
          rmsnorm_row(y + t * N, N, f32_weight(w(0)), static_cast<float>(m_.attr_float(node, "eps")), scratch_.data());
          float* row = h + t * q8_row;
          q8_multiplier(row, N) = quantize_row_int8(scratch_.data(), N, q8_values(row));
        }
        break;
      }
      case ir::Op::RmsNormQuant: {
        scratch_.resize(static_cast<size_t>(N));
        const int64_t q8_row = ir::floats_per_row(m_.values[node.result].type);
        for (int64_t t = 0; t < T; ++t) {
          rmsnorm_row(x(0) + t * N, N, f32_weight(w(0)), static_cast<float>(m_.attr_float(node, "eps")), scratch_.data());
          float* row = y + t * q8_row;
          q8_multiplier(row, N) = quantize_row_int8(scratch_.data(), N, q8_values(row));
        }
        break;
      }
      case ir::Op::BitLinear:
        bitlinear(x(0), is_q8(0), T, features(0), w(0), N, m_.attr_string(node, "act_quant") == "int8_token", y);
        break;
      case ir::Op::BitLinearGlu: {
        const int64_t F = N;
        scratch_.resize(static_cast<size_t>(T * 2 * F));
        bitlinear(x(0), is_q8(0), T, features(0), w(0), 2 * F, m_.attr_string(node, "act_quant") == "int8_token", scratch_.data());
        const bool relu2 = m_.attr_string(node, "act") == "relu2";
        for (int64_t t = 0; t < T; ++t)
          for (int64_t i = 0; i < F; ++i) {
            float g = scratch_[t * 2 * F + i], u = scratch_[t * 2 * F + F + i];
            float a = relu2 ? std::max(g, 0.0f) * std::max(g, 0.0f) : g / (1.0f + std::exp(-g));
            y[t * F + i] = a * u;
          }
        break;
      }
      case ir::Op::MatMul: {
        const int64_t K = features(0);
        std::vector<float> row(static_cast<size_t>(K));
        for (int64_t n = 0; n < N; ++n) {
          weight_row(w(0), n, K, row.data());
          for (int64_t t = 0; t < T; ++t) {
            const float* xt = x(0) + t * K;
            double acc = 0;
            for (int64_t i = 0; i < K; ++i) acc += static_cast<double>(xt[i]) * row[i];
            y[t * N + n] = static_cast<float>(acc);
          }
        }
        break;
      }
      case ir::Op::Scale: {
        const float s = f32_weight(w(0))[0];
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] * s;
        break;
      }
      case ir::Op::AddBias:
        for (int64_t t = 0; t < T; ++t)
          for (int64_t i = 0; i < N; ++i) y[t * N + i] = x(0)[t * N + i] + f32_weight(w(0))[i];
        break;
      case ir::Op::Rope:
        std::memcpy(y, x(0), static_cast<size_t>(T * N) * 4);
        rope(y, i32_input(node.operands[1]), T, N, m_.attr_int(node, "head_dim"), static_cast<float>(m_.attr_float(node, "base")),
             node.weights.empty() ? nullptr : f32_weight(w(0)));
        break;
      case ir::Op::Attention:  // all writes first: the tokens of this step attend to each other
        write_kv(x(1), x(2), i32_input(node.operands[3]), i32_input(node.operands[4]), T, m_.attr_int(node, "layer"), cache);
        attend(x(0), i32_input(node.operands[3]), i32_input(node.operands[4]), T, m_.attr_int(node, "layer"),
               m_.attr_int(node, "n_head"), m_.attr_int(node, "n_head_kv"), cache, y);
        break;
      case ir::Op::Attend:
        attend(x(0), i32_input(node.operands[1]), i32_input(node.operands[2]), T, m_.attr_int(node, "layer"),
               m_.attr_int(node, "n_head"), m_.attr_int(node, "n_head_kv"), cache, y);
        break;
      case ir::Op::QkvRopeCache: {
        // One BitLinear into [T, q | k | v], RoPE on q and k, k and v into the cache; q is the result.
        const int64_t n_head = m_.attr_int(node, "n_head"), n_head_kv = m_.attr_int(node, "n_head_kv");
        const int64_t d = m_.attr_int(node, "head_dim"), q_dim = n_head * d, kv_dim = n_head_kv * d, width = q_dim + 2 * kv_dim;
        const float base = static_cast<float>(m_.attr_float(node, "base"));
        const float* factors = node.weights.size() > 1 ? f32_weight(w(1)) : nullptr;
        const int32_t* pos = i32_input(node.operands[1]);
        scratch_.resize(static_cast<size_t>(T * width));
        bitlinear(x(0), is_q8(0), T, features(0), w(0), width, m_.attr_string(node, "act_quant") == "int8_token", scratch_.data());
        std::vector<float>& k = k_scratch_;
        std::vector<float>& v = v_scratch_;
        k.resize(static_cast<size_t>(T * kv_dim));
        v.resize(static_cast<size_t>(T * kv_dim));
        for (int64_t t = 0; t < T; ++t) {
          std::memcpy(y + t * q_dim, scratch_.data() + t * width, static_cast<size_t>(q_dim) * 4);
          std::memcpy(k.data() + t * kv_dim, scratch_.data() + t * width + q_dim, static_cast<size_t>(kv_dim) * 4);
          std::memcpy(v.data() + t * kv_dim, scratch_.data() + t * width + q_dim + kv_dim, static_cast<size_t>(kv_dim) * 4);
        }
        rope(y, pos, T, q_dim, d, base, factors);
        rope(k.data(), pos, T, kv_dim, d, base, factors);
        write_kv(k.data(), v.data(), pos, i32_input(node.operands[2]), T, m_.attr_int(node, "layer"), cache);
        break;
      }
      case ir::Op::Add:
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] + x(1)[i];
        break;
      case ir::Op::Mul:
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] * x(1)[i];
        break;
      case ir::Op::Relu2:
        for (int64_t i = 0; i < T * N; ++i) {
          float r = std::max(x(0)[i], 0.0f);
          y[i] = r * r;
        }
        break;
      case ir::Op::Silu:
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] / (1.0f + std::exp(-x(0)[i]));
        break;
      case ir::Op::Slice: {
        const int64_t begin = m_.attr_int(node, "begin"), K = features(0);
        for (int64_t t = 0; t < T; ++t) std::memcpy(y + t * N, x(0) + t * K + begin, static_cast<size_t>(N) * 4);
        break;
      }
    }
  }
  return {buffer(m_.output, T), static_cast<size_t>(T * m_.values[m_.output].type.dims.back())};
}

}  // namespace bitnet::ref
