// Kernel selection per op. Each kernel is named after everything its source depends on, so two ops with
// the same shape (every layer of a model) share one kernel, and the runtime finds by name the kernels the
// compiler generated.
#include "codegen/cuda/kernel_plan.h"

#include "codegen/cuda/kernel_source.h"
#include "ir/error.h"

#include <algorithm>

namespace bitnet::cuda {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

class Planner {
 public:
  explicit Planner(const ir::Module& m) : m_(m) {
    for (const auto& n : m.nodes) {
      const auto it = n.attrs.find("act_quant");
      if (it != n.attrs.end() && std::get<std::string>(it->second) == "none") plan_.kv_f32 = true;
    }
    plan_.nodes.resize(m.nodes.size());
    count_consumers();
  }

  ModulePlan run() {
    find_fusions();
    for (size_t i = 0; i < m_.nodes.size(); ++i) plan_node(i);
    const int64_t n_vocab = m_.values[m_.output].type.dims.back();
    plan_.argmax = add(fmt::format("argmax_n{}", n_vocab), "argmax.cu.in", {{"N", str(n_vocab)}});
    plan_.read_probe = add("read_probe", "read_probe.cu.in", {});
    plan_step();
    return std::move(plan_);
  }

 private:
  // The q8 value of a norm goes straight into the next node's GEMV prologue when that node is its only
  // reader: a ternary op of the next line taking it as input.
  void find_fusions() {
    for (size_t i = 0; i + 1 < m_.nodes.size(); ++i) {
      const ir::Node& norm = m_.nodes[i];
      if (norm.op != ir::Op::RmsNormQuant && norm.op != ir::Op::AddRmsNormQuant) continue;
      const int q8 = norm.op == ir::Op::RmsNormQuant ? norm.result : norm.extra_results.at(0);
      const ir::Node& next = m_.nodes[i + 1];
      if (!is_ternary(next) || next.operands[0] != q8 || consumers_[q8] != 1 || q8 == m_.output) continue;
      plan_.nodes[i].fused_into = static_cast<int>(i + 1);
      plan_.nodes[i + 1].fused_norm = static_cast<int>(i);
    }
  }

  void count_consumers() {
    consumers_.assign(m_.values.size(), 0);
    for (const auto& n : m_.nodes)
      for (int v : n.operands) ++consumers_[v];
    ++consumers_[m_.output];
  }

  bool is_ternary(const ir::Node& n) const {
    return (n.op == ir::Op::BitLinear || n.op == ir::Op::BitLinearGlu || n.op == ir::Op::QkvRopeCache) &&
           m_.weights[n.weights[0]].type.dtype == ir::DType::T2;
  }

  const std::string& add(const std::string& name, const std::string& file, std::map<std::string, std::string> holes, bool entry = true,
                         int dynamic_smem = 0) {
    for (const auto& k : plan_.kernels)
      if (k.name == name) return k.name;
    plan_.kernels.push_back({name, file, std::move(holes), entry, dynamic_smem});
    return plan_.kernels.back().name;
  }

  // The persistent step kernel, when every op of a one-token step has a phase function: the op's main
  // kernel's template provides it (`phase` in its namespace), the ternary GEMVs have their own.
  static constexpr int64_t kNormScratchBytes = 32 * 8 + 32 * 4 * 2;  // common.cuh NormScratch
  static constexpr int64_t kPhaseBytes = 256;                        // args.h Phase
  void plan_step() {
    struct Kind {
      std::string ns, member;
    };
    std::vector<Kind> kinds;
    int64_t smem = 0;
    std::vector<int> phase(m_.nodes.size(), -1);
    for (size_t i = 0; i < m_.nodes.size(); ++i) {
      const ir::Node& node = m_.nodes[i];
      const NodeKernels& k = plan_.nodes[i];
      std::string ns, member;
      int64_t bytes = 0;
      switch (node.op) {
        case ir::Op::Embed: ns = k.main, member = "embed"; break;
        case ir::Op::RmsNorm: ns = k.main, member = "norm", bytes = 32 * 8; break;
        case ir::Op::RmsNormQuant:
        case ir::Op::AddRmsNormQuant:
          if (k.fused_into >= 0) continue;
          ns = k.main, member = "norm", bytes = kNormScratchBytes;
          break;
        case ir::Op::BitLinear:
        case ir::Op::BitLinearGlu:
        case ir::Op::QkvRopeCache:
          if (!phase_specs_.count(i)) {
            plan_.step_refusal = fmt::format("{} has float activations", where(node));
            return;
          }
          ns = phase_specs_.at(i), member = "ternary", bytes = phase_smem_.at(i);
          break;
        case ir::Op::Attend: {
          const int64_t heads = m_.attr_int(node, "n_head"), kv_heads = m_.attr_int(node, "n_head_kv"), g = heads / kv_heads;
          const int64_t d = width(node.result) / heads;
          ns = k.main, member = "attend", bytes = attend_smem_bytes(d, g, plan_.kv_f32 ? 4 : 2);
          break;
        }
        case ir::Op::Scale:
        case ir::Op::AddBias:
        case ir::Op::Add:
        case ir::Op::Mul:
        case ir::Op::Relu2:
        case ir::Op::Silu:
        case ir::Op::Slice:
          ns = k.main, member = "eltwise";
          break;
        case ir::Op::MatMul:
          if (node.result == m_.output) continue;  // the LM head: its own kernel after the step kernel
          [[fallthrough]];
        default:
          plan_.step_refusal = fmt::format("{} has no phase", where(node));
          return;
      }
      int kind = 0;
      while (kind < static_cast<int>(kinds.size()) && kinds[kind].ns != ns) ++kind;
      if (kind == static_cast<int>(kinds.size())) kinds.push_back({ns, member});
      phase[i] = kind;
      smem = std::max(smem, bytes);
    }
    std::string cases, checks;
    for (size_t c = 0; c < kinds.size(); ++c) {
      cases += fmt::format("      case {}: k_{}::phase(ph.{}, bar, scratch); break;\n", c, kinds[c].ns, kinds[c].member);
      checks += fmt::format("static_assert(sizeof(k_{}::Scratch) <= SCRATCH, \"the planner's shared memory bound\");\n", kinds[c].ns);
    }
    if (!cases.empty()) cases.pop_back();
    if (!checks.empty()) checks.pop_back();
    plan_.step_smem = static_cast<int>((kPhaseBytes + smem + 127) / 128 * 128);
    plan_.step_kernel = add("decode_step_t1", "step_t1.cu.in", {{"SMEM", str(plan_.step_smem)}, {"CASES", cases}, {"CHECKS", checks}});
    for (size_t i = 0; i < m_.nodes.size(); ++i) plan_.nodes[i].phase = phase[i];
  }

  std::string kv_type() const { return plan_.kv_f32 ? "float" : "u16"; }
  std::string kv_tag() const { return plan_.kv_f32 ? "f32" : "f16"; }
  std::string where(const ir::Node& n) const { return fmt::format("op '{}' (%{})", ir::op_info(n.op).text, m_.values[n.result].name); }
  int64_t width(int value) const { return m_.values[value].type.dims.back(); }

  // The epilogue of a ternary op: its pair mapping and per-pair code, a name tag, the number of pairs.
  struct Epilogue {
    std::string kind, tag, code;
    int64_t pairs;
  };
  Epilogue epilogue(const ir::Node& node, int64_t n) const {
    if (node.op == ir::Op::BitLinear) return {"plain", "plain", std::string(kernel_template("epilogue_plain.cu.in")), (n + 1) / 2};
    if (node.op == ir::Op::BitLinearGlu) {
      const std::string& act = m_.attr_string(node, "act");
      std::string code;
      if (act == "relu2") {
        code = "  const float r = fmax_f(gate, 0.0f), act = r * r;";
      } else if (act == "silu") {
        code = "  const float act = gate / (1.0f + expf(-gate));";
      } else {
        fail("target cuda: {}: activation '{}' is not relu2 or silu", where(node), act);
      }
      if (n % 2 != 0) fail("target cuda: {}: {} rows cannot split into gate and up", where(node), n);
      return {"glu", "glu_" + act, fill_template(kernel_template("epilogue_glu.cu.in"), {{"ACT_NAME", act}, {"ACT_CODE", code}}, "epilogue_glu"), n / 2};
    }
    const int64_t d = m_.attr_int(node, "head_dim"), heads = m_.attr_int(node, "n_head"), kv_heads = m_.attr_int(node, "n_head_kv");
    if (d % 2 != 0 || n != (heads + 2 * kv_heads) * d) fail("target cuda: {}: {} rows are not {} + 2 x {} heads of {}", where(node), n, heads, kv_heads, d);
    std::string code = fill_template(kernel_template("epilogue_qkv.cu.in"),
                                     {{"D", str(d)}, {"Q_DIM", str(heads * d)}, {"KV_DIM", str(kv_heads * d)}, {"KV_T", kv_type()}}, "epilogue_qkv");
    return {"qkv", fmt::format("qkv_d{}_h{}_kv{}_{}", d, heads, kv_heads, kv_tag()), std::move(code), n / 2};
  }

  void plan_ternary(size_t i) {
    const ir::Node& node = m_.nodes[i];
    NodeKernels& out = plan_.nodes[i];
    const ir::Type& wt = m_.weights[node.weights[0]].type;
    if (wt.dtype != ir::DType::T2) {
      fail("target cuda: {}: weight @{} is {} (not ternary x one scale); the CUDA backend runs ternary BitLinears only (use --target x86)",
           where(node), m_.weights[node.weights[0]].name, ir::dtype_name(wt.dtype));
    }
    const int64_t n = wt.dims[0], k = wt.dims[1];
    if (k % 16 != 0) fail("target cuda: {}: {} input features; the CUDA weight layout needs a multiple of 16", where(node), k);
    if (k > 16384) fail("target cuda: {}: {} input features; the CUDA GEMV holds at most 16384 per row", where(node), k);
    const Epilogue e = epilogue(node, n);
    std::map<std::string, std::string> holes{{"N", str(n)}, {"K", str(k)}, {"PAIRS", str(e.pairs)}, {"EPILOGUE_KIND", e.kind}, {"PAIR_CODE", e.code}};
    const bool q8_input = m_.values[node.operands[0]].type.dtype == ir::DType::Q8;
    const bool int8 = q8_input || m_.attr_string(node, "act_quant") == "int8_token";
    if (!int8) {
      out.float_activations = true;
      out.main = add(fmt::format("tgemv_f32_{}_n{}_k{}", e.tag, n, k), "ternary_gemv_f32.cu.in", holes);
      return;
    }
    out.gemm_warps_n = n <= 4096 ? 2 : 4;
    std::map<std::string, std::string> gemm_holes = holes;
    gemm_holes["WARPS_N"] = str(out.gemm_warps_n);
    gemm_holes["NJ"] = str(kGemmWarpTiles);
    gemm_holes["STAGES"] = str(kGemmStages);
    gemm_holes["SMEM"] = str(gemm_smem_bytes(out.gemm_warps_n));
    out.main = add(fmt::format("tgemm_{}_n{}_k{}_w{}", e.tag, n, k, out.gemm_warps_n), "ternary_gemm.cu.in", gemm_holes, true,
                   gemm_smem_bytes(out.gemm_warps_n));
    if (!q8_input) out.pre = norm_quant_kernel(k, false, false);
    std::string prologue_code;
    std::string prologue_tag;
    if (out.fused_norm >= 0) {
      const bool add_norm = m_.nodes[out.fused_norm].op == ir::Op::AddRmsNormQuant;
      out.prologue = add_norm ? Prologue::AddNorm : Prologue::Norm;
      prologue_tag = add_norm ? "addnorm" : "norm";
      prologue_code = fill_template(kernel_template("prologue_norm.cu.in"),
                                    {{"ADD", add_norm ? "true" : "false"}, {"NORM", "true"}, {"WHAT", add_norm ? "residual add, rmsnorm and int8 quantization" : "rmsnorm and int8 quantization"}},
                                    "prologue_norm");
    } else if (q8_input) {
      out.prologue = Prologue::Q8;
      prologue_tag = "q8";
      prologue_code = std::string(kernel_template("prologue_q8.cu.in"));
    } else {
      out.prologue = Prologue::Quant;
      prologue_tag = "quant";
      prologue_code = fill_template(kernel_template("prologue_norm.cu.in"), {{"ADD", "false"}, {"NORM", "false"}, {"WHAT", "int8 quantization"}}, "prologue_norm");
    }
    {  // the persistent step kernel's phase: U pairs per warp so that one turn covers the matrix on an
       // H100 (132 SMs of 8 warps), at most ~80 registers of weights per lane
      const int64_t wpl = (k / 16 + 31) / 32;
      const int64_t u = std::clamp<int64_t>((e.pairs + 1055) / 1056, 1, std::max<int64_t>(1, 40 / wpl));
      const int code = out.prologue == Prologue::Q8 ? 0 : out.prologue == Prologue::Quant ? 1 : out.prologue == Prologue::Norm ? 2 : 3;
      std::map<std::string, std::string> phase_holes = holes;
      phase_holes["U"] = str(u);
      phase_holes["PROLOGUE"] = str(code);
      phase_holes["PROLOGUE_KIND"] = prologue_tag;
      phase_specs_[i] = add(fmt::format("tgemv1_{}_n{}_k{}_{}_u{}", e.tag, n, k, prologue_tag, u), "ternary_gemv_t1.cu.in", phase_holes, false);
      phase_smem_[i] = k + 8 + kNormScratchBytes;
    }
    // One token: the GEMV computes its int8 row itself (the prologue above), so the norm costs no kernel
    // of its own. Several: a prologue per block would normalize every row once per block (measured: the
    // step time grew by ~0.65 ms per token of a batch on the H200), so the norm node's kernel (or `pre`)
    // writes the q8 rows once and the tensor-core GEMV reads them (the dp4a tiles of 2..8 tokens remain
    // for comparison, CudaOptions::tc_gemv_tokens = 0). The rows live in dynamic shared memory.
    // Big steps re-read the token rows once per block: the variant with 2 groups of pairs per block halves
    // that, for K short enough that a lane's 4 x 2 J weight words stay in registers.
    for (int variant = 0; variant < 3; ++variant) {
      const int nt = variant ? gemv_tc_wide_tiles(k) : 1, groups = variant == 2 ? 2 : 1;
      if (groups == 2 && gemv_tc_lane_words(k, 2) > 12) continue;
      std::map<std::string, std::string> tc_holes = holes;
      tc_holes["NT"] = str(nt);
      tc_holes["PG"] = str(groups);
      tc_holes["SMEM"] = str(gemv_tc_smem_bytes(k, nt));
      out.tc_gemv[variant] = add(fmt::format("tgemv_tc_{}_n{}_k{}_t{}{}", e.tag, n, k, 8 * nt, groups == 2 ? "_p32" : ""), "ternary_gemv_tc.cu.in",
                                 tc_holes, true, gemv_tc_smem_bytes(k, nt));
      out.tc_gemv_block_tokens[variant] = 8 * nt;
      out.tc_gemv_block_pairs[variant] = 16 * groups;
    }
    for (size_t ti = 0; ti < kTokenTiles.size(); ++ti) {
      const int tt = kTokenTiles[ti];
      const bool own_row = tt == 1;
      out.pairs_per_warp[ti] = gemv_pairs_per_warp(e.pairs, k, tt);
      std::map<std::string, std::string> tile_holes = holes;
      tile_holes["TT"] = str(tt);
      tile_holes["PPW"] = str(out.pairs_per_warp[ti]);
      tile_holes["PROLOGUE_KIND"] = own_row ? prologue_tag : "q8";
      tile_holes["PROLOGUE_CODE"] = own_row ? prologue_code : std::string(kernel_template("prologue_q8.cu.in"));
      const bool norm_prologue = out.prologue == Prologue::Norm || out.prologue == Prologue::AddNorm;
      tile_holes["EARLY_NORM_WEIGHT"] = own_row && norm_prologue ? "true" : "false";
      tile_holes["WARP_QSUM"] = own_row && out.prologue != Prologue::Q8 ? "true" : "false";
      out.tiles[ti] = add(fmt::format("tgemv_{}_n{}_k{}_{}_t{}_p{}", e.tag, n, k, own_row ? prologue_tag : "q8", tt, out.pairs_per_warp[ti]),
                          "ternary_gemv.cu.in", tile_holes, true, static_cast<int>(tt * k));
    }
  }

  // Row pairs per warp of a GEMV tile: enough that every block of the grid is on the GPU at once (one
  // wave) on an H100 / H200 (132 SMs), where a second, partial wave would double the kernel's latency.
  // Blocks per SM: 2, or 1 where a one-token tile holds an input row over 4096 wide and its norm weights
  // in registers (the FFN's down projection: 141 registers). Several tokens: at most 2 (registers).
  // Measured on the H200: the down GEMV 15.4 -> 10.9 us at 2 pairs per warp (80 blocks instead of 160 in
  // two waves), 783 -> 881 tok/s batch-1 decode.
  static int gemv_pairs_per_warp(int64_t pairs, int64_t k, int tt) {
    constexpr int64_t kSms = 132;
    const int64_t per_sm = tt == 1 && k > 4096 ? 1 : 2;
    const int64_t ppw = (pairs + 8 * kSms * per_sm - 1) / (8 * kSms * per_sm);
    return static_cast<int>(std::clamp<int64_t>(ppw, 1, tt == 1 ? 4 : 2));
  }

  std::string norm_quant_kernel(int64_t k, bool add_residual, bool norm) {
    const char* tag = add_residual ? "add" : norm ? "norm" : "quant";
    const char* what = add_residual ? "residual add, rmsnorm and int8 quantization" : norm ? "rmsnorm and int8 quantization" : "int8 quantization";
    return add(fmt::format("norm_quant_k{}_{}", k, tag), "norm_quant.cu.in",
               {{"K", str(k)}, {"ADD", add_residual ? "true" : "false"}, {"NORM", norm ? "true" : "false"}, {"WHAT", what}});
  }

  // The bodies read activations with load_bypass_l1: as phases of the step kernel they read what other
  // blocks wrote (kernels/common.cuh, GridBarrier).
  std::string eltwise(const std::string& op, int64_t n, const std::string& what, const std::string& body) {
    return add(fmt::format("ew_{}_n{}", op, n), "eltwise.cu.in", {{"N", str(n)}, {"WHAT", what}, {"BODY", body}});
  }

  void plan_node(size_t i) {
    const ir::Node& node = m_.nodes[i];
    NodeKernels& out = plan_.nodes[i];
    const int64_t n = width(node.result);
    switch (node.op) {
      case ir::Op::Embed: {
        const ir::Type& t = m_.weights[node.weights[0]].type;
        if (t.dtype != ir::DType::F16 && t.dtype != ir::DType::F32) fail("target cuda: {}: table dtype {} is not f16 or f32", where(node), ir::dtype_name(t.dtype));
        const bool f16 = t.dtype == ir::DType::F16;
        out.main = add(fmt::format("embed_{}_d{}", f16 ? "f16" : "f32", n), "embed.cu.in",
                       {{"D", str(n)}, {"TABLE_T", f16 ? "u16" : "float"}, {"LOAD", f16 ? "f16_to_f32(row[i])" : "row[i]"}});
        break;
      }
      case ir::Op::RmsNorm:
        out.main = add(fmt::format("rmsnorm_n{}", n), "rmsnorm.cu.in", {{"N", str(n)}});
        break;
      case ir::Op::RmsNormQuant:
        out.main = norm_quant_kernel(n, false, true);
        break;
      case ir::Op::AddRmsNormQuant:
        out.main = norm_quant_kernel(n, true, true);
        break;
      case ir::Op::BitLinear:
      case ir::Op::BitLinearGlu:
      case ir::Op::QkvRopeCache:
        plan_ternary(i);
        break;
      case ir::Op::Attention:
      case ir::Op::Attend: {
        const int64_t heads = m_.attr_int(node, "n_head"), kv_heads = m_.attr_int(node, "n_head_kv");
        if (heads % kv_heads != 0 || n % heads != 0) fail("target cuda: {}: {} heads over {} KV heads", where(node), heads, kv_heads);
        const int64_t d = n / heads;
        if (d % 32 != 0 || d > 256) fail("target cuda: {}: head dim {}; the CUDA attention needs a multiple of 32 up to 256", where(node), d);
        const int kv_bytes = plan_.kv_f32 ? 4 : 2, smem = attend_smem_bytes(d, heads / kv_heads, kv_bytes);
        out.main = add(fmt::format("attend_d{}_g{}_h{}_kv{}_{}", d, heads / kv_heads, heads, kv_heads, kv_tag()), "attend.cu.in",
                       {{"D", str(d)}, {"DL", str(d / 32)}, {"GROUP", str(heads / kv_heads)}, {"N_HEAD", str(heads)}, {"N_HEAD_KV", str(kv_heads)}, {"KV_T", kv_type()},
                        {"U", str(attend_chunk_rows(d, kv_bytes))}, {"SMEM", str(smem)}},
                       true, smem);
        // Prefill on the tensor cores: f16 cache rows, 64 query rows of whole tokens per block, and q and
        // the output tile in registers (head dims up to 128).
        if (const int64_t group = heads / kv_heads; !plan_.kv_f32 && 64 % group == 0 && d % 16 == 0 && d <= 128) {
          const int smem = attend_tc_smem_bytes(d);
          out.one_sequence = add(fmt::format("attend_tc_d{}_g{}_h{}_kv{}", d, group, heads, kv_heads), "attend_tc.cu.in",
                                 {{"D", str(d)}, {"GROUP", str(group)}, {"N_HEAD", str(heads)}, {"N_HEAD_KV", str(kv_heads)}, {"SMEM", str(smem)}}, true, smem);
          out.one_sequence_tokens = static_cast<int>(64 / group);
        }
        if (node.op == ir::Op::Attention) {
          const int64_t kv_dim = kv_heads * d;
          const bool f16 = !plan_.kv_f32;
          out.pre = add(fmt::format("kv_write_kv{}_{}", kv_dim, kv_tag()), "kv_write.cu.in",
                        {{"KV_DIM", str(kv_dim)}, {"KV_T", kv_type()},
                         {"STORE_K", f16 ? "f32_to_f16(a.k[static_cast<i64>(t) * KV_DIM + i])" : "a.k[static_cast<i64>(t) * KV_DIM + i]"},
                         {"STORE_V", f16 ? "f32_to_f16(a.v[static_cast<i64>(t) * KV_DIM + i])" : "a.v[static_cast<i64>(t) * KV_DIM + i]"}});
        }
        break;
      }
      case ir::Op::MatMul: {
        const ir::Type& t = m_.weights[node.weights[0]].type;
        if (t.dtype != ir::DType::F16 && t.dtype != ir::DType::F32) fail("target cuda: {}: weight dtype {} is not f16 or f32", where(node), ir::dtype_name(t.dtype));
        const bool f16 = t.dtype == ir::DType::F16;
        const int64_t k = t.dims[1], vec = f16 ? 8 : 4;
        if (k % 8 != 0) fail("target cuda: {}: {} input features; the CUDA matmul needs a multiple of 8", where(node), k);
        const int64_t chunks_per_lane = (k / vec + 31) / 32;
        const int64_t rows_per_warp = chunks_per_lane <= 10 ? 2 : 1;
        for (size_t ti = 0; ti < kTokenTiles.size(); ++ti) {
          const int tt = kTokenTiles[ti];
          out.tiles[ti] = add(fmt::format("matmul_{}_n{}_k{}_t{}", f16 ? "f16" : "f32", n, k, tt), "matmul.cu.in",
                              {{"N", str(n)}, {"K", str(k)}, {"TT", str(tt)}, {"RPW", str(rows_per_warp)}, {"VEC", str(vec)}, {"W_T", f16 ? "f16" : "f32"}});
        }
        if (f16 && k % 32 == 0) {
          const int smem = matmul_tc_few_smem_bytes(k);
          out.few_rows = add(fmt::format("matmul_tc_few_n{}_k{}", n, k), "matmul_tc_few.cu.in", {{"N", str(n)}, {"K", str(k)}, {"SMEM", str(smem)}}, true, smem);
        }
        if (f16) {
          out.many_rows = add(fmt::format("matmul_tc_n{}_k{}", n, k), "matmul_tc.cu.in",
                              {{"N", str(n)}, {"K", str(k)}, {"STAGES", str(kMatmulStages)}, {"SMEM", str(kMatmulSmemBytes)}}, true, kMatmulSmemBytes);
          out.many_rows_split = add(fmt::format("split_f16_k{}", k), "split_f16.cu.in", {{"K", str(k)}});
        }
        break;
      }
      case ir::Op::Scale:
        out.main = eltwise("scale", n, "x * s", "a.y[t * N + i] = load_bypass_l1(a.a + t * N + i) * a.w[0];");
        break;
      case ir::Op::AddBias:
        out.main = eltwise("add_bias", n, "x + b", "a.y[t * N + i] = load_bypass_l1(a.a + t * N + i) + a.w[i];");
        break;
      case ir::Op::Add:
        out.main = eltwise("add", n, "a + b", "a.y[t * N + i] = load_bypass_l1(a.a + t * N + i) + load_bypass_l1(a.b + t * N + i);");
        break;
      case ir::Op::Mul:
        out.main = eltwise("mul", n, "a * b", "a.y[t * N + i] = load_bypass_l1(a.a + t * N + i) * load_bypass_l1(a.b + t * N + i);");
        break;
      case ir::Op::Relu2:
        out.main = eltwise("relu2", n, "relu(x)^2", "const float r = fmax_f(load_bypass_l1(a.a + t * N + i), 0.0f);\n  a.y[t * N + i] = r * r;");
        break;
      case ir::Op::Silu:
        out.main = eltwise("silu", n, "x * sigmoid(x)", "const float v = load_bypass_l1(a.a + t * N + i);\n  a.y[t * N + i] = v / (1.0f + expf(-v));");
        break;
      case ir::Op::Slice:
        out.main = eltwise("slice", n, "a column slice", "a.y[t * N + i] = load_bypass_l1(a.a + t * a.a_stride + a.a_offset + i);");
        break;
      case ir::Op::Rope: {
        const int64_t d = m_.attr_int(node, "head_dim");
        if (d % 2 != 0 || n % d != 0) fail("target cuda: {}: {} features in heads of {}", where(node), n, d);
        out.main = add(fmt::format("rope_n{}_d{}", n, d), "rope.cu.in", {{"N", str(n)}, {"D", str(d)}});
        break;
      }
    }
  }

  const ir::Module& m_;
  ModulePlan plan_;
  std::vector<int> consumers_;
  std::map<size_t, std::string> phase_specs_;  // int8 ternary node -> its step-kernel phase (ternary_gemv_t1.cu.in)
  std::map<size_t, int64_t> phase_smem_;
};

}  // namespace

ModulePlan plan_module(const ir::Module& m) { return Planner(m).run(); }

int choose_tile(const std::array<std::string, 4>& tiles, int64_t T) {
  int largest = -1;
  for (size_t i = 0; i < tiles.size(); ++i) {
    if (tiles[i].empty()) continue;
    if (kTokenTiles[i] >= T) return static_cast<int>(i);
    largest = static_cast<int>(i);
  }
  if (largest < 0) fail("internal: no token tile for {} tokens", T);
  return largest;
}

}  // namespace bitnet::cuda
