// The x86 executor. Shapes use the IR's letters: T tokens in the step, K input and N output features,
// F the gated FFN width, d the head dimension. Activations are row-major [T, N] f32 in the arena planned by
// the compiler; q8 values keep the IR layout (K int8, padded to 4 bytes, then the f32 multiplier).
#include "codegen/x86/x86_backend.h"

#include "codegen/x86/vector_ops.h"
#include "ir/error.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bitnet::x86 {
namespace {

constexpr int kPrefillTokens = 8;   // C of the prefill tile: tokens sharing each unpacked weight vector
constexpr int64_t kPrefillGroups = 16;  // row groups per prefill chunk (64 rows stay in L2 across token tiles)
constexpr int64_t kInlineAttentionWork = 1 << 18;  // q·k products below which attention stays on one thread

const float* f32_weight(const WeightView& w) { return reinterpret_cast<const float*>(w.data); }
const uint16_t* f16_weight(const WeightView& w) { return reinterpret_cast<const uint16_t*>(w.data); }

// The trit of row n, column k of an x86-layout ternary weight (the slow path of float-mode BitLinear).
int x86_trit(const uint8_t* data, int64_t k_pad, int64_t n, int64_t k) {
  const int64_t in_block = k % kX86BlockK;
  const uint8_t byte = data[(n / kX86RowsPerGroup) * k_pad + (k / kX86BlockK * kX86RowsPerGroup + n % kX86RowsPerGroup) * 32 + in_block % 32];
  return ((byte >> (2 * (in_block / 32))) & 3) - 1;
}

Isa choose_isa(const std::string& wanted) {
  const CpuFeatures cpu = CpuFeatures::detect();
  if (wanted == "avx2") return Isa::Avx2;
  if (wanted == "avx512vnni") {
    if (!cpu.avx512_vnni) fail("--isa avx512vnni: this CPU has {}", cpu.describe());
    return Isa::Avx512Vnni;
  }
  if (wanted != "auto") fail("--isa: '{}' is not one of auto, avx2, avx512vnni", wanted);
  return cpu.avx512_vnni ? Isa::Avx512Vnni : Isa::Avx2;
}

}  // namespace

struct X86StepExecutor::Int8Rows {
  const int8_t* data;
  int64_t stride;  // bytes between token rows
  const float* mult;
  const int32_t* sum;
};

X86StepExecutor::X86StepExecutor(const ir::Module& module, std::vector<WeightView> weights, ref::ArenaLayout layout, int64_t n_layer,
                                 int64_t n_seq, int64_t n_ctx, int64_t kv_dim, const X86Options& options)
    : m_(module), weights_(std::move(weights)), layout_(std::move(layout)), n_layer_(n_layer), n_seq_(n_seq), n_ctx_(n_ctx),
      kv_dim_(kv_dim), n_vocab_(module.values[module.output].type.dims.back()), options_(options), isa_(choose_isa(options.isa)),
      pool_(options.threads > 0 ? options.threads : physical_cores()),
      fused_(options.fused_kernels, options.fused_kernels_where, isa_ == Isa::Avx512Vnni) {
  const char* profile = std::getenv("BITNETC_PROFILE");
  profile_ = profile && *profile && std::string(profile) != "0";
  if (options_.max_step_tokens < 1) fail("x86 backend: step slices of {} tokens", options_.max_step_tokens);
  const size_t kv_elements = static_cast<size_t>(n_layer * n_seq * n_ctx * kv_dim);
  kv_f32_ = kv_cache_f32(m_);
  if (kv_f32_) {
    k_f32_.reset(new float[kv_elements]);
    v_f32_.reset(new float[kv_elements]);
  } else {
    k_half_.reset(new uint16_t[kv_elements]);
    v_half_.reset(new uint16_t[kv_elements]);
  }
  scores_.resize(static_cast<size_t>(pool_.size() * n_ctx));
  for (const ir::Node& node : m_.nodes) {
    NodeKernels& k = node_kernels_.emplace_back();
    for (const FusedKernelSpec& spec : fused_kernel_specs(m_, node, kv_f32_)) {
      switch (spec.kind) {
        case FusedKind::NormQuant:
        case FusedKind::AddNormQuant: k.norm_quant = fused_.bind_as<NormQuantFn>(spec); break;
        case FusedKind::RmsNorm: k.rmsnorm = fused_.bind_as<RmsNormFn>(spec); break;
        case FusedKind::Quantize: k.quantize = fused_.bind_as<QuantizeFn>(spec); break;
        case FusedKind::GluRelu2: k.glu_relu2 = fused_.bind_as<GluFn>(spec); break;
        case FusedKind::RopeQkv: k.rope_qkv = fused_.bind_as<RopeQkvFn>(spec); break;
        case FusedKind::Attend: k.attend = fused_.bind_as<AttendFn>(spec); break;
        case FusedKind::LmHeadF16: k.lm_head_f16 = fused_.bind_as<LmHeadF16Fn>(spec); break;
        case FusedKind::LmHeadI8: k.lm_head_i8 = fused_.bind_as<LmHeadI8Fn>(spec); break;
      }
    }
  }
  // JIT the kernels of every ternary shape now, so a step never generates code.
  for (const ir::Node& node : m_.nodes) {
    for (int wi : node.weights) {
      const ir::Type& t = m_.weights[wi].type;
      if (t.dtype != ir::DType::T2) continue;
      const int64_t k = t.dims[1], k_pad = x86_t2_padded_k(k);
      const bool q8_in = m_.values[node.operands[0]].type.dtype == ir::DType::Q8 && k % kX86BlockK == 0;
      const int64_t stride = q8_in ? ir::floats_per_row(m_.values[node.operands[0]].type) * 4 : k_pad;
      kernel(k_pad, stride, 4, 1);
      for (int c = 1; c <= kPrefillTokens; ++c) kernel(k_pad, stride, prefill_rows(), c);
    }
  }
}

X86StepExecutor::~X86StepExecutor() {
  if (!profile_) return;
  double total = 0;
  for (auto& [op, t] : op_seconds_) total += t.first;
  std::fprintf(stderr, "x86 profile (%d threads, %s):\n", pool_.size(), isa_name(isa_));
  for (auto& [op, t] : op_seconds_) {
    std::fprintf(stderr, "  %-20s %9.3f ms %5.1f%%  %lld calls\n", op.c_str(), t.first * 1e3, 100 * t.first / total, static_cast<long long>(t.second));
  }
}

const TernaryKernel& X86StepExecutor::kernel(int64_t k_pad, int64_t act_stride, int rows, int tokens) {
  auto key = std::make_tuple(k_pad, act_stride, rows, tokens);
  auto it = kernels_.find(key);
  if (it == kernels_.end()) {
    it = kernels_.emplace(key, std::make_unique<TernaryKernel>(TernaryKernelConfig{isa_, k_pad, act_stride, rows, tokens})).first;
  }
  return *it->second;
}

// y[t, n] = (sum_k code[n][k] q[t][k] - sum_k q[t][k]) / a[t] * scale[n]: the same f32 operations as ref,
// on the same integer dot product, so the result is bit-identical.
template <class Epilogue>
void X86StepExecutor::ternary_matmul(const Int8Rows& x, int64_t T, const WeightView& w, float* y, int64_t ldy, int bands, Epilogue&& epilogue) {
  const int64_t N = w.type->dims[0], K = w.type->dims[1], k_pad = x86_t2_padded_k(K), n_pad = x86_t2_padded_rows(N);
  if (bands < 1 || N % (bands * kX86RowsPerGroup) != 0) bands = 1;
  const int64_t band_groups = n_pad / kX86RowsPerGroup / bands;
  const float* scales = reinterpret_cast<const float*>(w.data + x86_t2_scales_offset(N, K));
  if (acc_.size() < static_cast<size_t>(T * n_pad)) acc_.resize(static_cast<size_t>(T * n_pad));
  int32_t* acc = acc_.data();
  const TernaryKernelFn decode = T == 1 ? kernel(k_pad, x.stride, 4, 1).fn() : nullptr;
  const TernaryKernelFn full = T > 1 ? kernel(k_pad, x.stride, prefill_rows(), kPrefillTokens).fn() : nullptr;
  const TernaryKernelFn tail = T > 1 && T % kPrefillTokens ? kernel(k_pad, x.stride, prefill_rows(), static_cast<int>(T % kPrefillTokens)).fn() : nullptr;
  // Decode: about eight chunks per thread, so a descheduled thread's share is taken by the others.
  const int64_t grain = T == 1 ? std::max<int64_t>(4, band_groups / (8 * pool_.size())) : kPrefillGroups;
  pool_.parallel_for(band_groups, grain, [&](int64_t b0, int64_t b1, int) {
    for (int band = 0; band < bands; ++band) {
      const int64_t g0 = band * band_groups + b0, g1 = band * band_groups + b1;
      if (T == 1) {
        decode(w.data + g0 * k_pad, x.data, acc + g0 * kX86RowsPerGroup, g1 - g0, n_pad * 4);
      } else {
        for (int64_t c0 = g0; c0 < g1; c0 += kPrefillGroups) {
          const int64_t count = std::min(kPrefillGroups, g1 - c0);
          for (int64_t t0 = 0; t0 < T; t0 += kPrefillTokens) {
            const TernaryKernelFn fn = T - t0 >= kPrefillTokens ? full : tail;
            fn(w.data + c0 * k_pad, x.data + t0 * x.stride, acc + t0 * n_pad + c0 * kX86RowsPerGroup, count, n_pad * 4);
          }
        }
      }
      const int64_t n0 = g0 * kX86RowsPerGroup, n1 = std::min(N, g1 * kX86RowsPerGroup);
      for (int64_t t = 0; t < T; ++t) {
        const int32_t* a = acc + t * n_pad;
        float* yt = y + t * ldy;
        for (int64_t n = n0; n < n1; ++n) yt[n] = static_cast<float>(a[n] - x.sum[t]) / x.mult[t] * scales[n];
      }
    }
    epilogue(b0 * kX86RowsPerGroup, std::min(N / bands, b1 * kX86RowsPerGroup));
  });
}

void X86StepExecutor::quantize_rows(QuantizeFn quantize, const float* x, int64_t T, int64_t K, Int8Rows& out) {
  const int64_t k_pad = x86_t2_padded_k(K);
  q8_scratch_.assign(static_cast<size_t>(T * k_pad), 0);
  q8_mult_.resize(static_cast<size_t>(T));
  q8_sum_.resize(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) q8_mult_[t] = quantize(x + t * K, K, q8_scratch_.data() + t * k_pad, &q8_sum_[t]);
  out = {q8_scratch_.data(), k_pad, q8_mult_.data(), q8_sum_.data()};
}

// A q8 value of the arena as the kernels read it: in place when K fills whole 128-column blocks, else
// copied into zero-padded rows.
X86StepExecutor::Int8Rows X86StepExecutor::q8_rows(const float* value, int64_t T, int64_t K) {
  const int64_t row_floats = (K + 3) / 4 + 1, k_pad = x86_t2_padded_k(K);
  q8_mult_.resize(static_cast<size_t>(T));
  q8_sum_.resize(static_cast<size_t>(T));
  const bool in_place = K % kX86BlockK == 0;
  if (!in_place) q8_scratch_.assign(static_cast<size_t>(T * k_pad), 0);
  for (int64_t t = 0; t < T; ++t) {
    const float* row = value + t * row_floats;
    const int8_t* q = reinterpret_cast<const int8_t*>(row);
    q8_mult_[t] = row[(K + 3) / 4];
    q8_sum_[t] = sum_int8(q, K);
    if (!in_place) std::memcpy(q8_scratch_.data() + t * k_pad, q, static_cast<size_t>(K));
  }
  if (in_place) return {reinterpret_cast<const int8_t*>(value), row_floats * 4, q8_mult_.data(), q8_sum_.data()};
  return {q8_scratch_.data(), k_pad, q8_mult_.data(), q8_sum_.data()};
}

// cos/sin of theta = pos * inv_freq for the step's tokens, computed with ref's f32 expressions so RoPE is
// bit-identical; every layer reuses them.
void X86StepExecutor::rope_tables(const int32_t* pos, int64_t T, int64_t d, float base, const float* factors) {
  if (rope_key_T_ == T && rope_key_pos_ == pos && rope_key_base_ == base && rope_key_factors_ == factors && rope_cos_.size() == static_cast<size_t>(T * d / 2)) return;
  const int64_t half = d / 2;
  rope_cos_.resize(static_cast<size_t>(T * half));
  rope_sin_.resize(static_cast<size_t>(T * half));
  for (int64_t i = 0; i < half; ++i) {
    float inv_freq = 1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(d));
    if (factors) inv_freq /= factors[i];
    for (int64_t t = 0; t < T; ++t) {
      const float theta = static_cast<float>(pos[t]) * inv_freq;
      rope_cos_[t * half + i] = std::cos(theta);
      rope_sin_[t * half + i] = std::sin(theta);
    }
  }
  rope_key_T_ = T, rope_key_pos_ = pos, rope_key_base_ = base, rope_key_factors_ = factors;
}

namespace {
void apply_rope(float* x, int64_t T, int64_t features, int64_t d, const float* cos_table, const float* sin_table) {
  const int64_t half = d / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < features / d; ++h) {
      float* head = x + t * features + h * d;
      const float* c = cos_table + t * half;
      const float* s = sin_table + t * half;
      for (int64_t i = 0; i < half; ++i) {
        const float a = head[i], b = head[i + half];
        head[i] = a * c[i] - b * s[i];
        head[i + half] = b * c[i] + a * s[i];
      }
    }
}
}  // namespace

void X86StepExecutor::store_kv(const float* row, bool value, int64_t layer, int64_t seq, int64_t pos) {
  const size_t at = kv_index(layer, seq, pos);
  if (kv_f32_) {
    std::memcpy((value ? v_f32_ : k_f32_).get() + at, row, static_cast<size_t>(kv_dim_) * 4);
  } else {
    f32_to_f16_row(row, kv_dim_, (value ? v_half_ : k_half_).get() + at);
  }
}

void X86StepExecutor::write_kv(const float* k, const float* v, const int32_t* pos, const int32_t* seq, int64_t T, int64_t layer) {
  for (int64_t t = 0; t < T; ++t) {
    store_kv(k + t * kv_dim_, false, layer, seq[t], pos[t]);
    store_kv(v + t * kv_dim_, true, layer, seq[t], pos[t]);
  }
}

void X86StepExecutor::attend(AttendFn attend_head, const float* q, const int32_t* pos, const int32_t* seq, int64_t T, int64_t layer, int64_t n_head,
                             int64_t n_head_kv, float* out) {
  const int64_t d = kv_dim_ / n_head_kv, q_dim = n_head * d, group = n_head / n_head_kv;
  auto heads = [&](int64_t i0, int64_t i1, int thread) {
    float* scores = scores_.data() + thread * n_ctx_;
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t t = i / n_head, h = i % n_head, kv_head = h / group;
      const size_t at = kv_index(layer, seq[t], 0) + static_cast<size_t>(kv_head * d);
      const void* k = kv_f32_ ? static_cast<const void*>(k_f32_.get() + at) : k_half_.get() + at;
      const void* v = kv_f32_ ? static_cast<const void*>(v_f32_.get() + at) : v_half_.get() + at;
      attend_head(q + t * q_dim + h * d, k, v, kv_dim_, pos[t] + 1, d, scores, out + t * q_dim + h * d);
    }
  };
  // A short context is a few microseconds of work: less than waking the other threads costs.
  int64_t work = 0;
  for (int64_t t = 0; t < T; ++t) work += (pos[t] + 1) * n_head * d;
  if (work < kInlineAttentionWork) {
    heads(0, T * n_head, 0);
  } else {
    pool_.parallel_for(T * n_head, 1, heads);
  }
}

std::span<const float> X86StepExecutor::run(const StepInputs& in) {
  const int64_t T = static_cast<int64_t>(in.tokens.size()), slice = options_.max_step_tokens;
  logits_.resize(static_cast<size_t>((in.all_logits ? T : 1) * n_vocab_));
  for (int64_t t0 = 0; t0 < T; t0 += slice) {
    const int64_t n = std::min(slice, T - t0);
    const bool last_slice = t0 + n == T;
    StepInputs part{in.tokens.subspan(t0, n), in.pos.subspan(t0, n), in.seq.subspan(t0, n), in.all_logits};
    if (!in.all_logits && !last_slice) {
      run_slice(part, false, nullptr);  // only the KV cache is wanted from the early slices
    } else {
      run_slice(part, in.all_logits, logits_.data() + (in.all_logits ? t0 * n_vocab_ : 0));
    }
  }
  return logits_;
}

void X86StepExecutor::run_slice(const StepInputs& in, bool all_logits, float* logits_out) {
  const int64_t T = static_cast<int64_t>(in.tokens.size());
  if (arena_tokens_ < T) {
    arena_.reset(new float[static_cast<size_t>(T * layout_.floats_per_token)]);
    arena_tokens_ = T;
  }
  rope_key_T_ = -1;
  auto i32_input = [&](int value) -> const int32_t* {
    for (size_t i = 0; i < m_.inputs.size(); ++i) {
      if (m_.inputs[i] == value) return i == 0 ? in.tokens.data() : i == 1 ? in.pos.data() : in.seq.data();
    }
    fail("x86 backend: %{} is not an i32 input", m_.values[value].name);
  };
  auto buffer = [&](int value) { return arena_.get() + T * layout_.offset[value]; };
  for (const ir::Node& node : m_.nodes) {
    const NodeKernels& fn = node_kernels_[&node - m_.nodes.data()];
    const int64_t N = m_.values[node.result].type.dims.back();
    const bool is_output = node.result == m_.output;
    if (is_output && !logits_out) continue;
    float* y = buffer(node.result);
    auto x = [&](size_t i) -> float* { return buffer(node.operands[i]); };
    auto features = [&](size_t i) { return m_.values[node.operands[i]].type.dims.back(); };
    auto is_q8 = [&](size_t i) { return m_.values[node.operands[i]].type.dtype == ir::DType::Q8; };
    auto w = [&](size_t i) -> const WeightView& { return weights_[node.weights[i]]; };
    auto int8_act = [&] { return m_.attr_string(node, "act_quant") == "int8_token"; };
    struct OpTimer {  // adds this op's wall time to its kind's total when profiling
      X86StepExecutor* self;
      const char* op;
      std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
      ~OpTimer() {
        if (!self->profile_) return;
        auto& slot = self->op_seconds_[op];
        slot.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++slot.second;
      }
    } timer{this, ir::op_info(node.op).text};
    // A BitLinear of any operand kind into y [T, n_out] (ld n_out). Returns false when it took the float
    // path, whose caller must then run the GLU epilogue itself.
    auto bitlinear_with = [&](float* out, int64_t n_out, int bands, auto&& epilogue) -> bool {
      const WeightView& weight = w(0);
      const int64_t K = features(0);
      if (weight.type->dtype == ir::DType::T2 && (is_q8(0) || int8_act())) {
        Int8Rows rows{};
        if (is_q8(0)) {
          rows = q8_rows(x(0), T, K);
        } else {
          quantize_rows(fn.quantize, x(0), T, K, rows);
        }
        ternary_matmul(rows, T, weight, out, n_out, bands, epilogue);
        return true;
      }
      // Float-mode BitLinear (act_quant none) and non-ternary weights: plain loops, as exact as ref.
      if (is_q8(0)) fail("x86 backend: q8 input to a non-ternary BitLinear");
      const int64_t k_pad = x86_t2_padded_k(K);
      const float* scales = weight.type->dtype == ir::DType::T2 ? reinterpret_cast<const float*>(weight.data + x86_t2_scales_offset(n_out, K)) : nullptr;
      std::vector<int8_t> q(static_cast<size_t>(K));
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x(0) + t * K;
        float a = 1.0f;
        int32_t unused;
        if (int8_act()) a = quantize_row_int8(xt, K, q.data(), &unused);
        for (int64_t n = 0; n < n_out; ++n) {
          double acc = 0;
          for (int64_t i = 0; i < K; ++i) {
            const double wv = scales ? x86_trit(weight.data, k_pad, n, i) : f32_weight(weight)[n * K + i];
            acc += wv * (int8_act() ? q[i] : xt[i]);
          }
          out[t * n_out + n] = scales ? static_cast<float>(acc * scales[n]) : int8_act() ? static_cast<float>(acc) / a : static_cast<float>(acc);
        }
      }
      return false;
    };
    auto bitlinear = [&](float* out, int64_t n_out) { return bitlinear_with(out, n_out, 1, [](int64_t, int64_t) {}); };
    switch (node.op) {
      case ir::Op::Embed: {
        const int32_t* tokens = i32_input(node.operands[0]);
        for (int64_t t = 0; t < T; ++t) {
          if (w(0).type->dtype == ir::DType::F16) {
            f16_to_f32_row(f16_weight(w(0)) + tokens[t] * N, N, y + t * N);
          } else {
            std::memcpy(y + t * N, f32_weight(w(0)) + tokens[t] * N, static_cast<size_t>(N) * 4);
          }
        }
        break;
      }
      case ir::Op::RmsNorm:
        for (int64_t t = 0; t < T; ++t) fn.rmsnorm(x(0) + t * N, f32_weight(w(0)), static_cast<float>(m_.attr_float(node, "eps")), N, y + t * N);
        break;
      case ir::Op::AddRmsNormQuant:
      case ir::Op::RmsNormQuant: {
        const bool add = node.op == ir::Op::AddRmsNormQuant;
        const int q8_value = add ? node.extra_results[0] : node.result;
        const int64_t K = m_.values[q8_value].type.dims.back(), q8_row = ir::floats_per_row(m_.values[q8_value].type);
        float* q8 = buffer(q8_value);
        const float eps = static_cast<float>(m_.attr_float(node, "eps"));
        for (int64_t t = 0; t < T; ++t) {
          float* row = q8 + t * q8_row;
          row[(K + 3) / 4] = fn.norm_quant(x(0) + t * K, add ? x(1) + t * K : nullptr, add ? y + t * K : nullptr, f32_weight(w(0)), eps, K,
                                           reinterpret_cast<int8_t*>(row));
        }
        break;
      }
      case ir::Op::BitLinear:
        bitlinear(y, N);
        break;
      case ir::Op::BitLinearGlu: {
        const int64_t F = N;
        scratch_.resize(static_cast<size_t>(T * 2 * F));
        const bool relu2 = m_.attr_string(node, "act") == "relu2";
        auto glu = [&](int64_t i0, int64_t i1) {
          for (int64_t t = 0; t < T && i0 < i1; ++t) {
            const float* g = scratch_.data() + t * 2 * F;
            if (relu2) {
              fn.glu_relu2(g + i0, g + F + i0, i1 - i0, y + t * F + i0);
            } else {
              glu_row(g + i0, g + F + i0, i1 - i0, false, y + t * F + i0);
            }
          }
        };
        // Gate row i and up row i land on the same thread, so the epilogue needs no second dispatch.
        const bool fused = F % kX86RowsPerGroup == 0 && bitlinear_with(scratch_.data(), 2 * F, 2, glu);
        if (!fused) {
          if (F % kX86RowsPerGroup != 0) bitlinear(scratch_.data(), 2 * F);
          glu(0, F);
        }
        break;
      }
      case ir::Op::QkvRopeCache: {
        const int64_t n_head = m_.attr_int(node, "n_head"), n_head_kv = m_.attr_int(node, "n_head_kv");
        const int64_t d = m_.attr_int(node, "head_dim"), q_dim = n_head * d, kv_dim = n_head_kv * d, width = q_dim + 2 * kv_dim;
        const int32_t* pos = i32_input(node.operands[1]);
        const int32_t* seq = i32_input(node.operands[2]);
        scratch_.resize(static_cast<size_t>(T * width));
        bitlinear(scratch_.data(), width);
        rope_tables(pos, T, d, static_cast<float>(m_.attr_float(node, "base")), node.weights.size() > 1 ? f32_weight(w(1)) : nullptr);
        const int64_t layer = m_.attr_int(node, "layer");
        for (int64_t t = 0; t < T; ++t) {
          float* row = scratch_.data() + t * width;
          if (fn.rope_qkv) {
            const size_t at = kv_index(layer, seq[t], pos[t]);
            void* k = kv_f32_ ? static_cast<void*>(k_f32_.get() + at) : k_half_.get() + at;
            void* v = kv_f32_ ? static_cast<void*>(v_f32_.get() + at) : v_half_.get() + at;
            fn.rope_qkv(row, rope_cos_.data() + t * d / 2, rope_sin_.data() + t * d / 2, y + t * q_dim, k, v);
            continue;
          }
          apply_rope(row, 1, q_dim, d, rope_cos_.data() + t * d / 2, rope_sin_.data() + t * d / 2);
          apply_rope(row + q_dim, 1, kv_dim, d, rope_cos_.data() + t * d / 2, rope_sin_.data() + t * d / 2);
          std::memcpy(y + t * q_dim, row, static_cast<size_t>(q_dim) * 4);
          store_kv(row + q_dim, false, layer, seq[t], pos[t]);
          store_kv(row + q_dim + kv_dim, true, layer, seq[t], pos[t]);
        }
        break;
      }
      case ir::Op::Attention:
        write_kv(x(1), x(2), i32_input(node.operands[3]), i32_input(node.operands[4]), T, m_.attr_int(node, "layer"));
        attend(fn.attend, x(0), i32_input(node.operands[3]), i32_input(node.operands[4]), T, m_.attr_int(node, "layer"), m_.attr_int(node, "n_head"),
               m_.attr_int(node, "n_head_kv"), y);
        break;
      case ir::Op::Attend:
        attend(fn.attend, x(0), i32_input(node.operands[1]), i32_input(node.operands[2]), T, m_.attr_int(node, "layer"), m_.attr_int(node, "n_head"),
               m_.attr_int(node, "n_head_kv"), y);
        break;
      case ir::Op::MatMul: {
        // The LM head: only the rows the caller wants, written straight to the logits when this is the output.
        const int64_t K = features(0);
        const int64_t first = is_output && !all_logits ? T - 1 : 0, rows = T - first;
        float* out = is_output ? logits_out : y;
        const float* xs = x(0) + first * K;
        const WeightView& weight = w(0);
        pool_.parallel_for(N, std::max<int64_t>(64, N / (16 * pool_.size())), [&](int64_t n0, int64_t n1, int) {
          if (weight.type->dtype == ir::DType::I8) {
            fn.lm_head_i8(reinterpret_cast<const int8_t*>(weight.data) + n0 * K, i8_scales(weight.data, N, K) + n0, xs, rows, K, n1 - n0, out + n0, N);
            return;
          }
          if (weight.type->dtype == ir::DType::F16) {
            fn.lm_head_f16(f16_weight(weight) + n0 * K, xs, rows, K, n1 - n0, out + n0, N);
            return;
          }
          for (int64_t n = n0; n < n1; ++n) {
            const float* wr = f32_weight(weight) + n * K;
            for (int64_t t = 0; t < rows; ++t) {
              double acc = 0;
              for (int64_t i = 0; i < K; ++i) acc += static_cast<double>(wr[i]) * xs[t * K + i];
              out[t * N + n] = static_cast<float>(acc);
            }
          }
        });
        continue;
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
      case ir::Op::Rope: {
        const int64_t d = m_.attr_int(node, "head_dim");
        std::memcpy(y, x(0), static_cast<size_t>(T * N) * 4);
        rope_tables(i32_input(node.operands[1]), T, d, static_cast<float>(m_.attr_float(node, "base")), node.weights.empty() ? nullptr : f32_weight(w(0)));
        apply_rope(y, T, N, d, rope_cos_.data(), rope_sin_.data());
        break;
      }
      case ir::Op::Add:
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] + x(1)[i];
        break;
      case ir::Op::Mul:
        for (int64_t i = 0; i < T * N; ++i) y[i] = x(0)[i] * x(1)[i];
        break;
      case ir::Op::Relu2:
        for (int64_t i = 0; i < T * N; ++i) y[i] = std::max(x(0)[i], 0.0f) * std::max(x(0)[i], 0.0f);
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
    if (is_output) {  // an output that is not the LM head matmul: copy the wanted rows
      const int64_t first = all_logits ? 0 : T - 1;
      std::memcpy(logits_out, y + first * N, static_cast<size_t>((T - first) * N) * 4);
    }
  }
}

}  // namespace bitnet::x86
