// The CUDA executor. Shapes use the IR's letters: T tokens in the step, K input and N output features,
// d the head dimension. Device pointers travel in the kernels' argument structs (kernels/args.h).
#include "codegen/cuda/cuda_backend.h"

#include "codegen/cuda/driver_api.h"
#include "codegen/cuda/kernel_plan.h"
#include "codegen/cuda/kernels/args.h"
#include "codegen/cuda/kernels_section.h"
#include "ir/error.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string_view>

namespace bitnet::cuda {
namespace {

constexpr uint64_t kAlign = 256;
uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

template <typename T>
T* dptr(CUdeviceptr p) {
  return reinterpret_cast<T*>(static_cast<uintptr_t>(p));
}

// What a slice returns: nothing (a prompt's earlier slices), the last row's logits, every row's, or the
// greedy token id of every row / of the last row (the argmax on the device: only ids come back).
enum class Logits { None, Last, All, Ids, LastId };

}  // namespace

CudaOptions cuda_options_from_env() {
  CudaOptions o;
  auto flag = [](const char* name, bool fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) != "0" : fallback;
  };
  o.graphs = flag("BITNETC_CUDA_GRAPHS", o.graphs);
  o.pdl = flag("BITNETC_CUDA_PDL", o.pdl);
  if (const char* v = std::getenv("BITNETC_CUDA_SPLITS"); v && *v) o.attention_splits = std::max(1, std::atoi(v));
  o.tc_attention = flag("BITNETC_CUDA_TC_ATTENTION", o.tc_attention);
  o.tc_lm_head = flag("BITNETC_CUDA_TC_LM_HEAD", o.tc_lm_head);
  if (const char* v = std::getenv("BITNETC_CUDA_TC_GEMV"); v && *v) o.tc_gemv_tokens = std::max(0, std::atoi(v));
  if (const char* v = std::getenv("BITNETC_CUDA_TC_GEMV_GROUPS"); v && *v) o.tc_gemv_pair_groups = std::max(1, std::atoi(v));
  if (const char* v = std::getenv("BITNETC_CUDA_K_SPLITS"); v && *v) o.k_splits = std::max(0, std::atoi(v));
  o.persistent = flag("BITNETC_CUDA_PERSISTENT", o.persistent);
  o.prefetch = flag("BITNETC_CUDA_PREFETCH", o.prefetch);
  o.release_barrier = flag("BITNETC_CUDA_RELEASE_BARRIER", o.release_barrier);
  if (const char* v = std::getenv("BITNETC_CUDA_STEP_BLOCKS"); v && *v) o.step_blocks = std::max(0, std::atoi(v));
  o.profile = flag("BITNETC_CUDA_PROFILE", o.profile);
  if (const char* v = std::getenv("BITNETC_CUDA_OMIT"); v && *v) {
    for (std::string_view rest = v; !rest.empty();) {
      const size_t comma = std::min(rest.find(','), rest.size());
      if (comma > 0) o.omit_kernels.emplace_back(rest.substr(0, comma));
      rest.remove_prefix(std::min(comma + 1, rest.size()));
    }
  }
  return o;
}

struct CudaStepExecutor::Impl {
  Impl(const std::string& where, const ir::Module& module, const std::vector<WeightView>& weights, std::span<const uint8_t> kernels,
       int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim, const CudaOptions& options);
  ~Impl();

  // --- setup
  CUdeviceptr alloc(uint64_t bytes, const std::string& what);
  void load_module(std::span<const uint8_t> kernels);
  void upload_weights();
  void plan_arena();
  void build_rope_tables();
  void setup_step_kernel();
  void ok(CUresult r, const std::string& what) const { check(api, r, where + ": target cuda", what); }

  // --- steps
  void run_all(const StepInputs& in, bool greedy);
  void run_slice(const StepInputs& in, int64_t t0, int64_t T, Logits mode);
  void enqueue_step(int64_t T, Logits mode);
  void enqueue_node(size_t i, int64_t T, bool small);
  void enqueue_ternary(size_t i, int64_t T, bool small);
  const float* enqueue_logits(int64_t first_row, int64_t rows);
  void copy_logits(const float* rows_dev, int64_t rows);
  void enqueue_ids(int64_t first_row, int64_t rows, int64_t at);
  template <class Args>
  void launch(const std::string& kernel, unsigned gx, unsigned gy, unsigned gz, unsigned threads, const Args* args) {
    launch_raw(kernel, gx, gy, gz, threads, args, sizeof(Args));
  }
  void launch_raw(const std::string& kernel, unsigned gx, unsigned gy, unsigned gz, unsigned threads, const void* args, size_t args_size);
  void enqueue_step_kernel();
  // Whether the slice being enqueued (its inputs already in inputs_host) is all one sequence's tokens.
  bool one_sequence(int64_t T) const {
    const int* seq = inputs_host + 2 * max_tokens;
    return std::all_of(seq, seq + T, [&](int s) { return s == seq[0]; });
  }
  CUgraphExec graph_for(int64_t T, Logits mode);

  // --- buffers
  float* f32(int value) const { return dptr<float>(arena + static_cast<uint64_t>(offset.at(value))); }
  struct Q8 {
    signed char* q;
    float* mult;
    int* sum;
  };
  Q8 q8_at(CUdeviceptr base, int64_t k) const {
    const uint64_t data = align_up(static_cast<uint64_t>(max_tokens * k)), mult = align_up(static_cast<uint64_t>(max_tokens) * 4);
    return {dptr<signed char>(base), dptr<float>(base + data), dptr<int>(base + data + mult)};
  }
  Q8 q8(int value) const { return q8_at(arena + static_cast<uint64_t>(offset.at(value)), m.values[value].type.dims.back()); }
  const int* i32_input(int value) const {
    for (size_t i = 0; i < m.inputs.size() && i < 3; ++i)
      if (m.inputs[i] == value) return dptr<int>(inputs_dev) + i * static_cast<size_t>(max_tokens);
    fail("{}: target cuda: %{} is not an i32 input", where, m.values[value].name);
  }
  const void* weight(const ir::Node& n, size_t i) const { return dptr<void>(weight_ptr.at(static_cast<size_t>(n.weights.at(i)))); }
  void* cache(CUdeviceptr base, int64_t layer) const { return dptr<void>(base + static_cast<uint64_t>(layer * n_seq * n_ctx * kv_dim) * kv_elem); }

  std::string where;
  const ir::Module& m;
  std::vector<WeightView> host_weights;
  CudaOptions opt;
  std::shared_ptr<const DriverApi> api_holder;
  const DriverApi& api;
  ModulePlan plan;
  int64_t n_layer, n_seq, n_ctx, kv_dim, n_vocab, max_tokens;
  int lm_head = -1;  // the matmul node producing the output (writes the logits buffer), or -1

  CUdevice device = 0;
  CUcontext context = nullptr;
  CUmodule module = nullptr;
  CUstream stream = nullptr;
  struct Kernel {
    CUfunction function = nullptr;
    unsigned dynamic_smem = 0;  // bytes of dynamic shared memory every launch takes
  };
  std::map<std::string, Kernel> functions;
  std::string device_name, image_arch;
  bool image_ptx = false;

  std::vector<CUdeviceptr> allocations;
  uint64_t allocated = 0;
  std::vector<CUdeviceptr> weight_ptr;
  CUdeviceptr k_cache = 0, v_cache = 0;
  uint64_t kv_elem = 2;
  CUdeviceptr arena = 0;
  std::vector<int64_t> offset;  // bytes into the arena per value id (-1: none)
  CUdeviceptr q8_scratch = 0;
  CUdeviceptr inputs_dev = 0, logits_dev = 0, ids_dev = 0, x_split = 0, part_acc = 0, part_ml = 0, counters = 0;
  int64_t logit_rows = kMaxGemvTokens;  // logits_dev's rows: more with many sequences (batched decode)
  // The tensor-core GEMM split over K when a step has too few tiles to keep the GPU busy: about
  // kSplitTilesPerSm (tile, split) blocks per SM, their accumulators and the per-tile counters. Measured
  // on the H200 (pp512, 2B4T): 2 per SM 40.1k tok/s, 3 47.3k, 4 51.7k, 6 48.9k, 8 47.2k -- at 2 the
  // narrow prefill GEMMs (o, down: 160 tiles) were not split at all and ran ~5 warps per SM.
  static constexpr int kSplitTilesPerSm = 4;
  int sms = 1;
  int64_t split_capacity = 0;  // (tile, split) blocks the partials hold
  CUdeviceptr k_partials = 0, k_counters = 0;
  int k_splits_for(int64_t tiles, int64_t k) const {
    const int64_t k_tiles = (k + kGemmTileK - 1) / kGemmTileK;
    int64_t s = opt.k_splits > 0 ? opt.k_splits : std::min<int64_t>(kSplitTilesPerSm * sms / tiles, k_tiles / 3);
    s = std::min({s, k_tiles, split_capacity / tiles});
    return s >= 2 ? static_cast<int>(s) : 1;
  }
  int32_t* inputs_host = nullptr;
  float* logits_host = nullptr;
  int32_t* ids_host = nullptr;
  std::map<size_t, std::pair<CUdeviceptr, CUdeviceptr>> rope;  // node -> (cos, sin) tables [n_ctx][d / 2]

  // BITNETC_CUDA_PROFILE: an event before each node of a step; per (op, kernel, tokens) the summed time.
  std::vector<CUevent> events;
  std::vector<std::string> event_labels;
  std::map<std::string, std::pair<double, int64_t>> profile;
  struct PhaseTime {
    double work = 0, barrier = 0;  // ms
    int64_t count = 0;
  };
  std::map<std::string, PhaseTime> phase_profile;
  std::string last_kernel;
  void profile_step(size_t n_events);
  void print_profile() const;

  // The persistent step kernel (steps of one token): its phase table is recorded once, by running
  // enqueue_node for every op with `recording` set, so each phase gets exactly its kernel's arguments.
  CUfunction step_fn = nullptr;
  unsigned step_blocks = 0;  // 0: no step kernel
  bool recording = false;
  size_t recording_node = 0;
  std::vector<Phase> phases;
  std::vector<std::string> phase_labels;
  std::vector<std::pair<const char*, uint64_t>> phase_weights;  // a ternary phase's weight bytes (codes and scales)
  CUdeviceptr phases_dev = 0, barrier_dev = 0, times_dev = 0;
  std::vector<unsigned long long> times_host;
  std::string step_note;
  bool profiled_step_kernel = false;  // profiling: the step just enqueued ran the step kernel

  std::map<std::pair<int64_t, int>, CUgraphExec> graphs;
  bool capturing = false, pdl_in_graphs = true;
  std::string graph_note;
  std::vector<float> result;
  std::vector<int32_t> ids;
};

CudaStepExecutor::Impl::Impl(const std::string& where_, const ir::Module& module_, const std::vector<WeightView>& weights,
                             std::span<const uint8_t> kernels, int64_t n_layer_, int64_t n_seq_, int64_t n_ctx_, int64_t kv_dim_,
                             const CudaOptions& options)
    : where(where_), m(module_), host_weights(weights), opt(options),
      api_holder(options.driver ? options.driver : load_driver(where_ + ": target cuda")), api(*api_holder), plan(plan_module(module_)),
      n_layer(n_layer_), n_seq(n_seq_), n_ctx(n_ctx_), kv_dim(kv_dim_), n_vocab(module_.values[module_.output].type.dims.back()),
      max_tokens(options.max_step_tokens) {
  if (max_tokens < 1) fail("{}: target cuda: step slices of {} tokens", where, max_tokens);
  if (opt.attention_splits < 1) fail("{}: target cuda: {} attention splits", where, opt.attention_splits);
  if (host_weights.size() != m.weights.size()) fail("{}: target cuda: {} weights bound but the module declares {}", where, host_weights.size(), m.weights.size());
  int count = 0;
  ok(api.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (opt.device < 0 || opt.device >= count) fail("{}: target cuda: device {} does not exist ({} CUDA devices)", where, opt.device, count);
  ok(api.cuDeviceGet(&device, opt.device), "cuDeviceGet");
  char name[256] = {};
  ok(api.cuDeviceGetName(name, sizeof name, device), "cuDeviceGetName");
  device_name = name;
  ok(api.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  ok(api.cuCtxSetCurrent(context), "cuCtxSetCurrent");
  ok(api.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  load_module(kernels);
  for (size_t i = 0; i < m.nodes.size(); ++i)
    if (m.nodes[i].op == ir::Op::MatMul && m.nodes[i].result == m.output) lm_head = static_cast<int>(i);
  upload_weights();
  kv_elem = plan.kv_f32 ? 4 : 2;
  const uint64_t kv_bytes = static_cast<uint64_t>(n_layer * n_seq * n_ctx * kv_dim) * kv_elem;
  k_cache = alloc(std::max<uint64_t>(kv_bytes, 1), "the K cache");
  v_cache = alloc(std::max<uint64_t>(kv_bytes, 1), "the V cache");
  plan_arena();
  build_rope_tables();
  // Inputs (tokens, positions, slots) and logits: pinned host buffers the graphs copy from and to.
  inputs_dev = alloc(static_cast<uint64_t>(3 * max_tokens) * 4, "the step inputs");
  ok(api.cuMemAllocHost(reinterpret_cast<void**>(&inputs_host), static_cast<size_t>(3 * max_tokens) * 4), "cuMemAllocHost (inputs)");
  std::fill(inputs_host, inputs_host + 3 * max_tokens, 0);
  // Batched decode computes every sequence's logits in one LM-head launch (up to 64 rows); one sequence
  // needs no more than the GEMV's 8 rows (a 4096-context batch-1 engine stays small).
  if (n_seq > kMaxGemvTokens) logit_rows = std::min<int64_t>(64, max_tokens);
  logit_rows = std::max<int64_t>(logit_rows, kMaxGemvTokens);
  logits_dev = alloc(static_cast<uint64_t>(logit_rows * n_vocab) * 4, "the logits");
  ok(api.cuMemAllocHost(reinterpret_cast<void**>(&logits_host), static_cast<size_t>(logit_rows * n_vocab) * 4), "cuMemAllocHost (logits)");
  ids_dev = alloc(static_cast<uint64_t>(max_tokens) * 4, "the greedy ids");
  if (lm_head >= 0 && logit_rows > kMaxGemvTokens) {  // the tensor-core LM head's f16 head and tail of its input rows
    const int64_t k = m.weights[m.nodes[static_cast<size_t>(lm_head)].weights[0]].type.dims[1];
    x_split = alloc(static_cast<uint64_t>(2 * logit_rows * k) * 2, "the LM head's f16 input rows");
  }
  ok(api.cuMemAllocHost(reinterpret_cast<void**>(&ids_host), static_cast<size_t>(max_tokens) * 4), "cuMemAllocHost (ids)");
  // Split attention: partial states for the small steps and their counters (zero between launches).
  int64_t partial = 1;
  for (const auto& n : m.nodes) {
    if (n.op != ir::Op::Attend && n.op != ir::Op::Attention) continue;
    partial = std::max(partial, kMaxGemvTokens * m.values[n.result].type.dims.back() * std::min(opt.attention_splits, 64));
  }
  part_acc = alloc(static_cast<uint64_t>(partial) * 4, "attention partials");
  part_ml = alloc(static_cast<uint64_t>(partial) * 4 * 2, "attention partials");  // >= 2 per (head, split): d >= 32
  int64_t kv_heads = 1;
  for (const auto& n : m.nodes)
    if (n.op == ir::Op::Attend || n.op == ir::Op::Attention) kv_heads = std::max(kv_heads, m.attr_int(n, "n_head_kv"));
  const uint64_t n_counters = static_cast<uint64_t>(std::max<int64_t>(kMaxGemvTokens, max_tokens) * kv_heads);  // a split step's (token, KV head)
  counters = alloc(n_counters * 4, "attention counters");
  ok(api.cuMemsetD8Async(counters, 0, n_counters * 4, stream), "cuMemsetD8Async");
  ok(api.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device), "cuDeviceGetAttribute");
  sms = std::max(sms, 1);
  split_capacity = std::max(kSplitTilesPerSm * sms, 64);
  k_partials = alloc(static_cast<uint64_t>(split_capacity) * 256 * 8 * kGemmWarpTiles * 4, "GEMM split partials");  // <= 256 threads of 2 x tiles x 4 ints
  k_counters = alloc(static_cast<uint64_t>(split_capacity) * 4, "GEMM split counters");
  ok(api.cuMemsetD8Async(k_counters, 0, static_cast<size_t>(split_capacity) * 4, stream), "cuMemsetD8Async");
  ok(api.cuStreamSynchronize(stream), "cuStreamSynchronize");
  setup_step_kernel();
}

// The step kernel's blocks (all resident at once: its grid barriers need them to be) and phase table.
void CudaStepExecutor::Impl::setup_step_kernel() {
  if (plan.step_kernel.empty() || !opt.persistent) {
    if (opt.persistent) step_note = "no persistent decode step: " + plan.step_refusal;
    return;
  }
  static_assert(sizeof(Phase) == 256, "args.h: a Phase is 256 bytes");
  const CUfunction f = functions.at(plan.step_kernel).function;
  if (plan.step_smem > 48 * 1024) ok(api.cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, plan.step_smem), "cuFuncSetAttribute");
  int per_sm = 0, sms = 0;
  ok(api.cuOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, f, 256, static_cast<size_t>(plan.step_smem)), "cuOccupancyMaxActiveBlocksPerMultiprocessor");
  ok(api.cuDeviceGetAttribute(&sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, device), "cuDeviceGetAttribute");
  // One block per SM: more would only add arrivals to every barrier (the phases' work is sized for one).
  unsigned blocks = static_cast<unsigned>(std::max(0, sms) * std::min(per_sm, 1));
  if (opt.step_blocks > 0) blocks = std::min(blocks * static_cast<unsigned>(std::max(per_sm, 1)), static_cast<unsigned>(opt.step_blocks));
  if (blocks == 0) {
    step_note = "no persistent decode step: its kernel does not fit on a multiprocessor";
    return;
  }
  recording = true;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    if (static_cast<int>(i) == lm_head) continue;
    recording_node = i;
    enqueue_node(i, 1, true);
  }
  recording = false;
  for (size_t i = 0; opt.prefetch && i + 1 < phases.size(); ++i) {
    phases[i].prefetch = phase_weights[i + 1].first;
    phases[i].prefetch_bytes = static_cast<unsigned>(phase_weights[i + 1].second);
  }
  phases_dev = alloc(phases.size() * sizeof(Phase), "the decode step's phases");
  ok(api.cuMemcpyHtoD(phases_dev, phases.data(), phases.size() * sizeof(Phase)), "cuMemcpyHtoD (phases)");
  barrier_dev = alloc(4, "the grid barrier");
  times_dev = alloc(phases.size() * 2 * 8, "phase times");
  step_fn = f;
  step_blocks = blocks;
}

CudaStepExecutor::Impl::~Impl() {
  if (api.cuCtxSetCurrent && context) api.cuCtxSetCurrent(context);
  if (stream) api.cuStreamSynchronize(stream);
  if (opt.profile) print_profile();
  for (CUevent e : events) api.cuEventDestroy(e);
  for (auto& [key, exec] : graphs) api.cuGraphExecDestroy(exec);
  for (CUdeviceptr p : allocations) api.cuMemFree(p);
  if (inputs_host) api.cuMemFreeHost(inputs_host);
  if (logits_host) api.cuMemFreeHost(logits_host);
  if (ids_host) api.cuMemFreeHost(ids_host);
  if (module) api.cuModuleUnload(module);
  if (stream) api.cuStreamDestroy(stream);
  if (context) api.cuDevicePrimaryCtxRelease(device);
}

CUdeviceptr CudaStepExecutor::Impl::alloc(uint64_t bytes, const std::string& what) {
  CUdeviceptr p = 0;
  const CUresult r = api.cuMemAlloc(&p, static_cast<size_t>(align_up(bytes)));
  if (r == CUDA_ERROR_OUT_OF_MEMORY) {
    size_t free = 0, total = 0;
    api.cuMemGetInfo(&free, &total);
    fail("{}: target cuda: out of device memory allocating {} ({:.1f} MB; {:.1f} of {:.1f} GB free): lower -c/--ctx-size", where, what,
         bytes / 1e6, free / 1e9, total / 1e9);
  }
  ok(r, "cuMemAlloc (" + what + ")");
  allocations.push_back(p);
  allocated += align_up(bytes);
  return p;
}

void CudaStepExecutor::Impl::load_module(std::span<const uint8_t> bytes) {
  const std::string section_where = where + ": section 'kernels'";
  const KernelsSection section = parse_kernels_section(bytes, section_where);
  int major = 0, minor = 0;
  ok(api.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device), "cuDeviceGetAttribute");
  ok(api.cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device), "cuDeviceGetAttribute");
  const KernelImage* image = pick_image(section, major, minor);
  if (!image) {
    std::string have;
    for (const auto& i : section.images) have += (have.empty() ? "" : ", ") + i.arch;
    fail("{}: target cuda: the bundle's kernels are built for {} but {} is sm_{}{} (recompile with --sm {}{})", where, have, device_name, major, minor, major, minor);
  }
  image_arch = image->arch;
  image_ptx = image->ptx;
  char log[8192] = {};
  CUjit_option keys[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void* values[] = {log, reinterpret_cast<void*>(static_cast<uintptr_t>(sizeof log))};
  const CUresult r = api.cuModuleLoadDataEx(&module, image->bytes.data(), 2, keys, values);
  if (r != CUDA_SUCCESS) {
    const char* name = nullptr;
    api.cuGetErrorName(r, &name);
    fail("{}: target cuda: loading the {} kernels ({}): {}{}{}", where, image->arch, image->ptx ? "PTX" : "cubin", name ? name : "error", *log ? ": " : "", log);
  }
  for (const KernelSpec& k : plan.kernels) {
    if (!k.entry) continue;
    CUfunction f = nullptr;
    if (api.cuModuleGetFunction(&f, module, k.name.c_str()) != CUDA_SUCCESS) {
      fail("{}: no kernel {} (the bundle was compiled by another version of bitnetc: recompile it)", section_where, k.name);
    }
    functions[k.name] = {f, static_cast<unsigned>(k.dynamic_smem)};
    if (k.dynamic_smem > 48 * 1024) ok(api.cuFuncSetAttribute(f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, k.dynamic_smem), "cuFuncSetAttribute (" + k.name + ")");
  }
}

void CudaStepExecutor::Impl::upload_weights() {
  uint64_t total = 0;
  std::vector<uint64_t> at;
  for (const auto& w : m.weights) {
    at.push_back(total);
    total += align_up(weight_nbytes(w.type));
  }
  const CUdeviceptr base = alloc(std::max<uint64_t>(total, 1), "the weights");
  for (size_t i = 0; i < m.weights.size(); ++i) {
    weight_ptr.push_back(base + at[i]);
    const uint64_t n = weight_nbytes(m.weights[i].type);
    if (n) ok(api.cuMemcpyHtoD(base + at[i], host_weights[i].data, static_cast<size_t>(n)), "cuMemcpyHtoD (@" + m.weights[i].name + ")");
  }
}

// Every f32 or q8 value gets an arena range sized for max_tokens rows, live from its producer to its last
// reader (a norm computed inside a GEMV prologue is read there: its inputs live until that GEMV); ranges
// are placed largest first at the lowest offset free for their lifetime. The logits of the LM head go
// to their own buffer, so the arena never holds [T, vocabulary].
void CudaStepExecutor::Impl::plan_arena() {
  const size_t n_nodes = m.nodes.size();
  std::vector<int64_t> def(m.values.size(), -1), last(m.values.size(), -1);
  for (size_t i = 0; i < n_nodes; ++i) {
    const auto& node = m.nodes[i];
    for (int v : node.operands) last[v] = std::max<int64_t>(last[v], static_cast<int64_t>(i));
    node.for_each_result([&](int r) { def[r] = static_cast<int64_t>(i); });
  }
  for (size_t i = 0; i < n_nodes; ++i) {
    const int c = plan.nodes[i].fused_into;
    if (c >= 0)
      for (int v : m.nodes[i].operands) last[v] = std::max<int64_t>(last[v], c);
  }
  last[m.output] = static_cast<int64_t>(n_nodes);
  struct Range {
    int value;
    int64_t begin, end;
    uint64_t bytes;
  };
  std::vector<Range> ranges;
  uint64_t max_quant_k = 0;
  for (size_t v = 0; v < m.values.size(); ++v) {
    if (def[v] < 0 || (lm_head >= 0 && static_cast<int>(v) == m.output)) continue;
    const ir::Type& t = m.values[v].type;
    const uint64_t n = static_cast<uint64_t>(t.dims.back()), T = static_cast<uint64_t>(max_tokens);
    const uint64_t bytes = t.dtype == ir::DType::Q8 ? align_up(T * n) + 2 * align_up(T * 4) : align_up(T * n * 4);
    ranges.push_back({static_cast<int>(v), def[v], std::max(def[v], last[v]), bytes});
  }
  for (size_t i = 0; i < n_nodes; ++i)
    if (!plan.nodes[i].pre.empty() && m.nodes[i].op != ir::Op::Attention) max_quant_k = std::max<uint64_t>(max_quant_k, m.values[m.nodes[i].operands[0]].type.dims.back());
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.bytes != b.bytes ? a.bytes > b.bytes : a.begin < b.begin; });
  offset.assign(m.values.size(), -1);
  std::vector<std::pair<const Range*, uint64_t>> placed;
  uint64_t arena_bytes = kAlign;
  for (const Range& r : ranges) {
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (auto& [other, at] : placed)
      if (other->begin <= r.end && r.begin <= other->end) busy.push_back({at, at + other->bytes});
    std::sort(busy.begin(), busy.end());
    uint64_t at = 0;
    for (auto& [lo, hi] : busy) {
      if (at + r.bytes <= lo) break;
      at = std::max(at, hi);
    }
    placed.push_back({&r, at});
    offset[r.value] = static_cast<int64_t>(at);
    arena_bytes = std::max(arena_bytes, at + r.bytes);
  }
  arena = alloc(arena_bytes, "the activation arena");
  if (max_quant_k) q8_scratch = alloc(align_up(static_cast<uint64_t>(max_tokens) * max_quant_k) + 2 * align_up(static_cast<uint64_t>(max_tokens) * 4), "the int8 scratch rows");
}

// cos/sin of theta = pos * inv_freq for every position of the context, with codegen/ref's f32 expressions,
// so RoPE on the device multiplies by the same numbers as ref.
void CudaStepExecutor::Impl::build_rope_tables() {
  std::map<std::tuple<int64_t, float, int>, std::pair<CUdeviceptr, CUdeviceptr>> made;
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    const ir::Node& node = m.nodes[i];
    if (node.op != ir::Op::QkvRopeCache && node.op != ir::Op::Rope) continue;
    const int64_t d = m.attr_int(node, "head_dim"), half = d / 2;
    const float base = static_cast<float>(m.attr_float(node, "base"));
    const size_t factor_slot = node.op == ir::Op::QkvRopeCache ? 1 : 0;
    const int factors_weight = node.weights.size() > factor_slot ? node.weights[factor_slot] : -1;
    const auto key = std::make_tuple(d, base, factors_weight);
    if (!made.count(key)) {
      const float* factors = factors_weight >= 0 ? reinterpret_cast<const float*>(host_weights[factors_weight].data) : nullptr;
      std::vector<float> c(static_cast<size_t>(n_ctx * half)), s(c.size());
      for (int64_t j = 0; j < half; ++j) {
        float inv_freq = 1.0f / std::pow(base, static_cast<float>(2 * j) / static_cast<float>(d));
        if (factors) inv_freq /= factors[j];
        for (int64_t p = 0; p < n_ctx; ++p) {
          const float theta = static_cast<float>(p) * inv_freq;
          c[p * half + j] = std::cos(theta);
          s[p * half + j] = std::sin(theta);
        }
      }
      const CUdeviceptr dc = alloc(c.size() * 4, "the RoPE table"), ds = alloc(s.size() * 4, "the RoPE table");
      ok(api.cuMemcpyHtoD(dc, c.data(), c.size() * 4), "cuMemcpyHtoD (RoPE table)");
      ok(api.cuMemcpyHtoD(ds, s.data(), s.size() * 4), "cuMemcpyHtoD (RoPE table)");
      made[key] = {dc, ds};
    }
    rope[i] = made[key];
  }
}

void CudaStepExecutor::Impl::launch_raw(const std::string& kernel, unsigned gx, unsigned gy, unsigned gz, unsigned threads, const void* args,
                                        size_t args_size) {
  const auto it = functions.find(kernel);
  if (it == functions.end()) fail("internal: {}: target cuda: kernel {} was not planned", where, kernel);
  if (recording) {  // a phase of the step kernel instead of a launch
    const ir::Node& node = m.nodes[recording_node];
    const int kind = plan.nodes[recording_node].phase;
    if (kind < 0 || args_size > sizeof(Phase::bytes)) fail("internal: {}: target cuda: op '{}' has no phase", where, ir::op_info(node.op).text);
    Phase p{};
    p.kind = kind;
    std::memcpy(p.bytes, args, args_size);
    phases.push_back(p);
    const bool ternary = node.op == ir::Op::BitLinear || node.op == ir::Op::BitLinearGlu || node.op == ir::Op::QkvRopeCache;
    phase_weights.emplace_back(ternary ? static_cast<const char*>(weight(node, 0)) : nullptr,
                               ternary ? weight_nbytes(m.weights[node.weights[0]].type) : 0);
    phase_labels.push_back(fmt::format("{:<18} {} (phase)", ir::op_info(node.op).text, kernel));
    return;
  }
  for (const std::string& omit : opt.omit_kernels)
    if (kernel.find(omit) != std::string::npos) return;
  void* params[] = {const_cast<void*>(args)};
  last_kernel = kernel;
  const CUfunction f = it->second.function;
  const unsigned smem = it->second.dynamic_smem;
  if (opt.pdl && !opt.profile && (!capturing || pdl_in_graphs)) {
    CUlaunchAttribute attr{};
    attr.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attr.value.programmaticStreamSerializationAllowed = 1;
    CUlaunchConfig config{};
    config.gridDimX = gx, config.gridDimY = gy, config.gridDimZ = gz;
    config.blockDimX = threads, config.blockDimY = 1, config.blockDimZ = 1;
    config.sharedMemBytes = smem;
    config.hStream = stream;
    config.attrs = &attr;
    config.numAttrs = 1;
    ok(api.cuLaunchKernelEx(&config, f, params, nullptr), "launching " + kernel);
  } else {
    ok(api.cuLaunchKernel(f, gx, gy, gz, threads, 1, 1, smem, stream, params, nullptr), "launching " + kernel);
  }
}

unsigned blocks(int64_t n, int64_t per) { return static_cast<unsigned>((n + per - 1) / per); }

void CudaStepExecutor::Impl::enqueue_ternary(size_t i, int64_t T, bool small) {
  const ir::Node& node = m.nodes[i];
  const NodeKernels& k = plan.nodes[i];
  const ir::Type& wt = m.weights[node.weights[0]].type;
  const int64_t n = wt.dims[0], kk = wt.dims[1];
  int64_t pairs = (n + 1) / 2;
  TernaryArgs a{};
  a.w = static_cast<const unsigned*>(weight(node, 0));
  a.w_scale = reinterpret_cast<const float*>(static_cast<const uint8_t*>(weight(node, 0)) + t2_scales_offset(n, kk));
  a.y = f32(node.result);
  a.T = static_cast<int>(T);
  a.n_ctx = static_cast<int>(n_ctx);
  if (node.op == ir::Op::BitLinearGlu) pairs = n / 2;
  if (node.op == ir::Op::QkvRopeCache) {
    pairs = n / 2;
    const int64_t layer = m.attr_int(node, "layer");
    a.k_cache = cache(k_cache, layer);
    a.v_cache = cache(v_cache, layer);
    a.pos = i32_input(node.operands[1]);
    a.seq = i32_input(node.operands[2]);
    a.rope_cos = dptr<float>(rope.at(i).first);
    a.rope_sin = dptr<float>(rope.at(i).second);
  }
  if (k.float_activations) {
    a.x = f32(node.operands[0]);
    launch(k.main, blocks(pairs, 8), static_cast<unsigned>(T), 1, 256, &a);
    return;
  }
  if (T == 1 && k.prologue != Prologue::Q8) {  // the GEMV computes its int8 row itself
    if (k.prologue == Prologue::Quant) {
      a.x = f32(node.operands[0]);
    } else {
      const ir::Node& norm = m.nodes[static_cast<size_t>(k.fused_norm)];
      a.x = f32(norm.operands[0]);
      a.norm_w = static_cast<const float*>(weight(norm, 0));
      a.eps = static_cast<float>(m.attr_float(norm, "eps"));
      if (k.prologue == Prologue::AddNorm) {
        a.x_add = f32(norm.operands[1]);
        a.x_sum = f32(norm.result);
      }
    }
    launch(k.tiles[0], blocks(pairs, 8 * k.pairs_per_warp[0]), 1, 1, 256, &a);
    return;
  }
  Q8 q{};
  if (!k.pre.empty()) {  // f32 input of an int8 BitLinear: quantize into the scratch rows first
    q = q8_at(q8_scratch, kk);
    NormArgs na{};
    na.x = f32(node.operands[0]);
    na.q = q.q, na.q_mult = q.mult, na.q_sum = q.sum;
    na.T = static_cast<int>(T);
    launch(k.pre, static_cast<unsigned>(T), 1, 1, 256, &na);
  } else {
    q = q8(node.operands[0]);
  }
  a.q = q.q, a.q_mult = q.mult, a.q_sum = q.sum;
  if (T >= 2 && T <= opt.tc_gemv_tokens) {
    // The wide kernel once the step fills its block (measured: 16 tokens in 2 blocks of 8 were 6678 tok/s
    // at batch 16, in one block of 32 6036).
    int variant = T >= k.tc_gemv_block_tokens[1] ? 1 : 0;
    // 32 pairs per block when that still leaves two blocks on every SM.
    if (variant == 1 && opt.tc_gemv_pair_groups >= 2 && !k.tc_gemv[2].empty() &&
        blocks(pairs, k.tc_gemv_block_pairs[2]) * blocks(T, k.tc_gemv_block_tokens[2]) >= 2u * static_cast<unsigned>(sms))
      variant = 2;
    launch(k.tc_gemv[variant], blocks(pairs, k.tc_gemv_block_pairs[variant]), blocks(T, k.tc_gemv_block_tokens[variant]), 1, 256, &a);
    return;
  }
  if (small) {
    const int tile = choose_tile(k.tiles, T);
    launch(k.tiles[tile], blocks(pairs, 8 * k.pairs_per_warp[tile]), blocks(T, kTokenTiles[tile]), 1, 256, &a);
    return;
  }
  const unsigned gx = blocks(pairs, gemm_block_pairs(k.gemm_warps_n)), gy = blocks(T, 64);
  a.k_splits = k_splits_for(static_cast<int64_t>(gx) * gy, kk);
  a.k_partials = dptr<int>(k_partials), a.k_counters = dptr<unsigned>(k_counters);
  launch(k.main, gx, gy, static_cast<unsigned>(a.k_splits), static_cast<unsigned>(64 * k.gemm_warps_n), &a);
}

void CudaStepExecutor::Impl::enqueue_node(size_t i, int64_t T, bool small) {
  const ir::Node& node = m.nodes[i];
  const NodeKernels& k = plan.nodes[i];
  const int64_t n = m.values[node.result].type.dims.back();
  const unsigned tokens = static_cast<unsigned>(T);
  switch (node.op) {
    case ir::Op::Embed: {
      EmbedArgs a{i32_input(node.operands[0]), weight(node, 0), f32(node.result), static_cast<int>(T)};
      launch(k.main, tokens, 1, 1, 256, &a);
      break;
    }
    case ir::Op::RmsNorm: {
      NormArgs a{};
      a.x = f32(node.operands[0]), a.w = static_cast<const float*>(weight(node, 0)), a.y = f32(node.result);
      a.eps = static_cast<float>(m.attr_float(node, "eps")), a.T = static_cast<int>(T);
      launch(k.main, tokens, 1, 1, 256, &a);
      break;
    }
    case ir::Op::RmsNormQuant:
    case ir::Op::AddRmsNormQuant: {
      if (T == 1 && k.fused_into >= 0) break;  // the next GEMV's prologue computes it
      const bool add = node.op == ir::Op::AddRmsNormQuant;
      const Q8 q = q8(add ? node.extra_results[0] : node.result);
      NormArgs a{};
      a.x = f32(node.operands[0]);
      if (add) a.x_add = f32(node.operands[1]), a.x_sum = f32(node.result);
      a.w = static_cast<const float*>(weight(node, 0));
      a.q = q.q, a.q_mult = q.mult, a.q_sum = q.sum;
      a.eps = static_cast<float>(m.attr_float(node, "eps")), a.T = static_cast<int>(T);
      launch(k.main, tokens, 1, 1, 256, &a);
      break;
    }
    case ir::Op::BitLinear:
    case ir::Op::BitLinearGlu:
    case ir::Op::QkvRopeCache:
      enqueue_ternary(i, T, small);
      break;
    case ir::Op::Attention:
    case ir::Op::Attend: {
      const int64_t layer = m.attr_int(node, "layer"), heads = m.attr_int(node, "n_head"), kv_heads = m.attr_int(node, "n_head_kv");
      const bool full = node.op == ir::Op::Attention;
      const int pos_operand = full ? 3 : 1, seq_operand = full ? 4 : 2;
      if (full) {
        KvWriteArgs w{f32(node.operands[1]), f32(node.operands[2]), cache(k_cache, layer), cache(v_cache, layer),
                      i32_input(node.operands[pos_operand]), i32_input(node.operands[seq_operand]), static_cast<int>(n_ctx), static_cast<int>(T)};
        launch(k.pre, tokens, 1, 1, 256, &w);
      }
      AttendArgs a{};
      a.q = f32(node.operands[0]), a.out = f32(node.result);
      a.k_cache = cache(k_cache, layer), a.v_cache = cache(v_cache, layer);
      a.pos = i32_input(node.operands[pos_operand]), a.seq = i32_input(node.operands[seq_operand]);
      a.part_acc = dptr<float>(part_acc), a.part_ml = dptr<float>(part_ml), a.counters = dptr<unsigned>(counters);
      a.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n / heads)));
      a.n_ctx = static_cast<int>(n_ctx), a.T = static_cast<int>(T);
      // Ranges of at least 32 positions for steps of up to kMaxGemvTokens tokens, 64 beyond (H200, 32
      // against 64 for every step: context 256..392 batch 1 / 2 / 4 / 8 +4..6%, tg128 batch 8 +2..4%, but
      // batch 16 -2.5% and 32 -5.5%, whose grids are full already and pay for the extra merges).
      a.min_range = T <= kMaxGemvTokens ? 32 : 64;
      if (!small && opt.tc_attention && !k.one_sequence.empty() && one_sequence(T)) {  // prefill
        a.splits = 1;
        launch(k.one_sequence, blocks(T, k.one_sequence_tokens), static_cast<unsigned>(kv_heads), 1, 256, &a);
        break;
      }
      // Position ranges per (token, KV head), at most 64 (the kernel's bound) and as many as the partial
      // buffers hold for T tokens (sized for kMaxGemvTokens tokens); the kernel uses fewer while the context
      // is short. Steps of up to kMaxGemvTokens tokens all take the same number, so that a sequence's ranges
      // (and bits) do not depend on its batch. A step whose (token, head) pairs alone fill two blocks per SM
      // takes one range: measured on the H200 at batch 64, 18.4k -> 18.9k tok/s (context 1..128) and
      // 12.4k -> 12.8k (256..392) against 4 ranges and their merges; at batch 16, 4 ranges instead of 16
      // were 4.5% slower (256..392), so smaller steps keep the buffers' count.
      const int most = std::min(opt.attention_splits, 64);
      const bool fills = T > kMaxGemvTokens && kv_heads * T >= 2 * sms;
      a.splits = fills ? 1 : static_cast<int>(std::clamp<int64_t>(kMaxGemvTokens * most / T, 1, most));
      launch(k.main, static_cast<unsigned>(a.splits), static_cast<unsigned>(kv_heads), tokens, 256, &a);
      break;
    }
    case ir::Op::MatMul: {  // a matmul that is not the LM head (whose rows enqueue_logits chooses)
      const int64_t kk = m.weights[node.weights[0]].type.dims[1];
      const int tile = small ? choose_tile(k.tiles, T) : static_cast<int>(k.tiles.size() - 1);
      const int64_t rows_per_warp = (kk / (m.weights[node.weights[0]].type.dtype == ir::DType::F16 ? 8 : 4) + 31) / 32 <= 10 ? 2 : 1;
      MatMulArgs a{};
      a.w = weight(node, 0), a.x = f32(node.operands[0]), a.y = f32(node.result), a.T = static_cast<int>(T);
      launch(k.tiles[tile], blocks(n, 8 * rows_per_warp), blocks(T, kTokenTiles[tile]), 1, 256, &a);
      break;
    }
    case ir::Op::Scale:
    case ir::Op::AddBias:
    case ir::Op::Add:
    case ir::Op::Mul:
    case ir::Op::Relu2:
    case ir::Op::Silu:
    case ir::Op::Slice: {
      EltwiseArgs a{};
      a.a = f32(node.operands[0]);
      if (node.operands.size() > 1) a.b = f32(node.operands[1]);
      if (!node.weights.empty()) a.w = static_cast<const float*>(weight(node, 0));
      a.y = f32(node.result);
      a.a_stride = static_cast<int>(m.values[node.operands[0]].type.dims.back());
      a.a_offset = node.op == ir::Op::Slice ? static_cast<int>(m.attr_int(node, "begin")) : 0;
      a.T = static_cast<int>(T);
      launch(k.main, blocks(n, 256), tokens, 1, 256, &a);
      break;
    }
    case ir::Op::Rope: {
      RopeArgs a{f32(node.operands[0]), f32(node.result), i32_input(node.operands[1]), dptr<float>(rope.at(i).first), dptr<float>(rope.at(i).second),
                 static_cast<int>(T)};
      launch(k.main, tokens, 1, 1, 256, &a);
      break;
    }
  }
}

// Logits rows [first_row, first_row + rows) of the step (rows <= logit_rows) on the device; returns where
// they are (logits_dev, or the arena when the module's output is not an LM-head matmul). Up to 8 rows:
// the few-rows tensor-core kernel (or the GEMV tiles); more: the tensor-core kernel that reads the head
// once per 64 rows.
const float* CudaStepExecutor::Impl::enqueue_logits(int64_t first_row, int64_t rows) {
  if (lm_head < 0) return f32(m.output) + first_row * n_vocab;
  const ir::Node& node = m.nodes[static_cast<size_t>(lm_head)];
  const NodeKernels& k = plan.nodes[static_cast<size_t>(lm_head)];
  const ir::Type& wt = m.weights[node.weights[0]].type;
  MatMulArgs a{};
  a.w = weight(node, 0), a.x = f32(node.operands[0]), a.y = dptr<float>(logits_dev);
  a.row0 = static_cast<int>(first_row), a.T = static_cast<int>(rows);
  if (rows > kMaxGemvTokens && !k.many_rows.empty()) {
    a.x_hi = dptr<unsigned short>(x_split), a.x_lo = a.x_hi + static_cast<size_t>(logit_rows * wt.dims[1]);
    launch(k.many_rows_split, static_cast<unsigned>(rows), 1, 1, 256, &a);
    launch(k.many_rows, blocks(n_vocab, 128), blocks(rows, 64), 1, 256, &a);
  } else if (opt.tc_lm_head && !k.few_rows.empty()) {
    launch(k.few_rows, static_cast<unsigned>(std::min<int64_t>((n_vocab + 127) / 128, 2 * sms)), 1, 1, 256, &a);
  } else {
    const int tile = choose_tile(k.tiles, rows);
    const int64_t rows_per_warp = (wt.dims[1] / (wt.dtype == ir::DType::F16 ? 8 : 4) + 31) / 32 <= 10 ? 2 : 1;
    launch(k.tiles[tile], blocks(n_vocab, 8 * rows_per_warp), blocks(rows, kTokenTiles[tile]), 1, 256, &a);
  }
  return dptr<float>(logits_dev);
}

void CudaStepExecutor::Impl::copy_logits(const float* rows_dev, int64_t rows) {
  ok(api.cuMemcpyDtoHAsync(logits_host, reinterpret_cast<CUdeviceptr>(rows_dev), static_cast<size_t>(rows * n_vocab) * 4, stream), "cuMemcpyDtoHAsync (logits)");
}

// The greedy ids of logits rows [first_row, first_row + rows) into ids_dev from `at` on.
void CudaStepExecutor::Impl::enqueue_ids(int64_t first_row, int64_t rows, int64_t at) {
  const float* logits = enqueue_logits(first_row, rows);
  ArgmaxArgs a{logits, dptr<int>(ids_dev) + at};
  launch(plan.argmax, static_cast<unsigned>(rows), 1, 1, 256, &a);
}

// Everything one slice of T tokens does after its inputs are in inputs_host: copy them in, every kernel,
// and (T <= kMaxGemvTokens) the logits out. The same calls are made eagerly or under graph capture.
void CudaStepExecutor::Impl::enqueue_step(int64_t T, Logits mode) {
  for (int i = 0; i < 3; ++i) {
    ok(api.cuMemcpyHtoDAsync(inputs_dev + static_cast<uint64_t>(i * max_tokens) * 4, inputs_host + i * max_tokens, static_cast<size_t>(T) * 4, stream),
       "cuMemcpyHtoDAsync (inputs)");
  }
  const bool small = T <= kMaxGemvTokens;
  size_t n_events = 0;
  auto mark = [&](const std::string& label) {  // profiling: an event after the work just enqueued
    if (!opt.profile || capturing) return;
    if (n_events == events.size()) {
      CUevent e = nullptr;
      ok(api.cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
      events.push_back(e);
      event_labels.emplace_back();
    }
    event_labels[n_events] = label;
    ok(api.cuEventRecord(events[n_events++], stream), "cuEventRecord");
  };
  mark("");
  if (T == 1 && step_blocks) {
    enqueue_step_kernel();
    profiled_step_kernel = opt.profile && !capturing;
    mark(fmt::format("{:<18} {} (T=1, {} phases)", "decode step", plan.step_kernel, phases.size()));
  } else {
    for (size_t i = 0; i < m.nodes.size(); ++i) {
      if (static_cast<int>(i) == lm_head) continue;
      last_kernel.clear();
      enqueue_node(i, T, small);
      if (!last_kernel.empty()) mark(fmt::format("{:<18} {} (T={})", ir::op_info(m.nodes[i].op).text, last_kernel, T));
    }
  }
  switch (mode) {
    case Logits::None:
      break;
    case Logits::Last:
      copy_logits(enqueue_logits(T - 1, 1), 1);
      break;
    case Logits::All:  // longer steps: run_slice, in chunks of logit_rows
      if (T <= kMaxGemvTokens) copy_logits(enqueue_logits(0, T), T);
      break;
    case Logits::LastId:
      enqueue_ids(T - 1, 1, 0);
      break;
    case Logits::Ids:
      for (int64_t r = 0; r < T; r += logit_rows) enqueue_ids(r, std::min(logit_rows, T - r), r);
      break;
  }
  if (mode == Logits::LastId || mode == Logits::Ids) {
    const int64_t n_ids = mode == Logits::Ids ? T : 1;
    ok(api.cuMemcpyDtoHAsync(ids_host, ids_dev, static_cast<size_t>(n_ids) * 4, stream), "cuMemcpyDtoHAsync (ids)");
  }
  if (mode != Logits::None && (mode != Logits::All || T <= kMaxGemvTokens)) mark(fmt::format("{:<18} {} (T={})", "lm head + copy", last_kernel, T));
  if (opt.profile && !capturing) profile_step(n_events);
}

// The step kernel: its barrier counter zeroed, then one cooperative launch (no PDL: it waits for nothing
// but the copies before it, and the attribute pair is not one every driver takes).
void CudaStepExecutor::Impl::enqueue_step_kernel() {
  ok(api.cuMemsetD8Async(barrier_dev, 0, 4, stream), "cuMemsetD8Async (grid barrier)");
  const bool timed = opt.profile && !capturing;
  if (timed) ok(api.cuMemsetD8Async(times_dev, 0, phases.size() * 2 * 8, stream), "cuMemsetD8Async (phase times)");
  StepArgs a{dptr<const Phase>(phases_dev), static_cast<int>(phases.size()), dptr<unsigned>(barrier_dev),
             timed ? dptr<unsigned long long>(times_dev) : nullptr, opt.release_barrier ? 1u : 0u};
  void* params[] = {&a};
  CUlaunchAttribute attr{};
  attr.id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
  attr.value.cooperative = 1;
  CUlaunchConfig config{};
  config.gridDimX = step_blocks, config.gridDimY = 1, config.gridDimZ = 1;
  config.blockDimX = 256, config.blockDimY = 1, config.blockDimZ = 1;
  config.sharedMemBytes = static_cast<unsigned>(plan.step_smem);
  config.hStream = stream;
  config.attrs = &attr;
  config.numAttrs = 1;
  ok(api.cuLaunchKernelEx(&config, step_fn, params, nullptr), "launching " + plan.step_kernel);
  last_kernel = plan.step_kernel;
}

void CudaStepExecutor::Impl::profile_step(size_t n_events) {
  if (n_events < 2) return;
  ok(api.cuEventSynchronize(events[n_events - 1]), "cuEventSynchronize");
  if (profiled_step_kernel) {
    profiled_step_kernel = false;
    // Per phase: its work (block 0 leaving the barrier before it .. the last block arriving after it)
    // and the barrier after it (.. block 0 leaving that barrier).
    times_host.resize(phases.size() * 2);
    ok(api.cuMemcpyDtoHAsync(times_host.data(), times_dev, times_host.size() * 8, stream), "cuMemcpyDtoHAsync (phase times)");
    ok(api.cuStreamSynchronize(stream), "cuStreamSynchronize");
    for (size_t i = 0; i < phases.size(); ++i) {
      auto& slot = phase_profile[phase_labels[i]];
      slot.work += static_cast<double>(times_host[2 * i + 1] - times_host[2 * i]) * 1e-6;
      if (i + 1 < phases.size()) slot.barrier += static_cast<double>(times_host[2 * i + 2] - times_host[2 * i + 1]) * 1e-6;
      ++slot.count;
    }
  }
  for (size_t i = 1; i < n_events; ++i) {
    float ms = 0;
    ok(api.cuEventElapsedTime(&ms, events[i - 1], events[i]), "cuEventElapsedTime");
    auto& slot = profile[event_labels[i]];
    slot.first += ms;
    ++slot.second;
  }
}

void CudaStepExecutor::Impl::print_profile() const {
  double total = 0;
  for (const auto& [label, t] : profile) total += t.first;
  std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows(profile.begin(), profile.end());
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
  std::fprintf(stderr, "cuda profile (%s, eager launches without PDL): %.3f ms in all\n", device_name.c_str(), total);
  for (const auto& [label, t] : rows) {
    std::fprintf(stderr, "  %9.3f ms %5.1f%% %7lld x %8.1f us  %s\n", t.first, 100 * t.first / total, static_cast<long long>(t.second),
                 1e3 * t.first / static_cast<double>(t.second), label.c_str());
  }
  if (phase_profile.empty()) return;
  double work = 0, barrier = 0;
  for (const auto& [label, t] : phase_profile) work += t.work, barrier += t.barrier;
  std::vector<std::pair<std::string, PhaseTime>> prows(phase_profile.begin(), phase_profile.end());
  std::sort(prows.begin(), prows.end(), [](const auto& a, const auto& b) { return a.second.work + a.second.barrier > b.second.work + b.second.barrier; });
  std::fprintf(stderr, "cuda profile of the persistent decode step's phases (work: from leaving the barrier before to the last block's arrival; "
                       "barrier: from there to leaving the next): %.3f ms work, %.3f ms barriers\n", work, barrier);
  for (const auto& [label, t] : prows) {
    const double n = static_cast<double>(t.count);
    std::fprintf(stderr, "  %7lld x %8.2f us work %8.2f us barrier  %s\n", static_cast<long long>(t.count), 1e3 * t.work / n, 1e3 * t.barrier / n, label.c_str());
  }
}

CUgraphExec CudaStepExecutor::Impl::graph_for(int64_t T, Logits mode) {
  const auto key = std::make_pair(T, static_cast<int>(mode));
  if (auto it = graphs.find(key); it != graphs.end()) return it->second;
  for (int attempt = 0;; ++attempt) {
    CUgraph graph = nullptr;
    ok(api.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
    capturing = true;
    std::string error;
    try {
      enqueue_step(T, mode);
    } catch (const Error& e) {
      error = e.what();
    }
    capturing = false;
    const CUresult end = api.cuStreamEndCapture(stream, &graph);
    CUgraphExec exec = nullptr;
    CUresult inst = CUDA_SUCCESS;
    if (error.empty() && end == CUDA_SUCCESS) inst = api.cuGraphInstantiate(&exec, graph, 0);
    if (graph) api.cuGraphDestroy(graph);
    if (error.empty() && end == CUDA_SUCCESS && inst == CUDA_SUCCESS) {
      graphs[key] = exec;
      return exec;
    }
    if (error.empty()) {
      const char* name = nullptr;
      api.cuGetErrorName(end != CUDA_SUCCESS ? end : inst, &name);
      error = fmt::format("{}: {}", end != CUDA_SUCCESS ? "cuStreamEndCapture" : "cuGraphInstantiate", name ? name : "error");
    }
    if (attempt == 0 && opt.pdl && pdl_in_graphs) {  // some drivers refuse programmatic launches in graphs
      pdl_in_graphs = false;
      graph_note = "graphs without PDL (" + error + ")";
      continue;
    }
    if (T == 1 && step_blocks) {  // nor cooperative launches, perhaps: decode op by op
      step_blocks = 0;
      step_note = "no persistent decode step (" + error + ")";
      attempt = -1;
      continue;
    }
    fail("{}: target cuda: capturing the step of {} tokens as a CUDA graph: {}", where, T, error);
  }
}

void CudaStepExecutor::Impl::run_slice(const StepInputs& in, int64_t t0, int64_t T, Logits mode) {
  for (int64_t t = 0; t < T; ++t) {
    inputs_host[t] = in.tokens[t0 + t];
    inputs_host[max_tokens + t] = in.pos[t0 + t];
    inputs_host[2 * max_tokens + t] = in.seq[t0 + t];
  }
  const bool small = T <= kMaxGemvTokens;
  if (small && opt.graphs && !opt.profile) {
    ok(api.cuGraphLaunch(graph_for(T, mode), stream), "cuGraphLaunch");
  } else {
    enqueue_step(T, mode);
  }
  if (mode == Logits::All && !small) {  // the LM head logit_rows rows at a time
    for (int64_t r = 0; r < T; r += logit_rows) {
      const int64_t rows = std::min<int64_t>(logit_rows, T - r);
      copy_logits(enqueue_logits(r, rows), rows);
      ok(api.cuStreamSynchronize(stream), "cuStreamSynchronize");
      std::memcpy(result.data() + (t0 + r) * n_vocab, logits_host, static_cast<size_t>(rows * n_vocab) * 4);
    }
    return;
  }
  ok(api.cuStreamSynchronize(stream), "cuStreamSynchronize");
  if (mode == Logits::Last) std::memcpy(result.data(), logits_host, static_cast<size_t>(n_vocab) * 4);
  if (mode == Logits::All) std::memcpy(result.data() + t0 * n_vocab, logits_host, static_cast<size_t>(T * n_vocab) * 4);
  if (mode == Logits::Ids) ids.insert(ids.end(), ids_host, ids_host + T);
  if (mode == Logits::LastId) ids.push_back(ids_host[0]);
}

CudaStepExecutor::CudaStepExecutor(const std::string& where, const ir::Module& module, const std::vector<WeightView>& weights,
                                   std::span<const uint8_t> kernels, int64_t n_layer, int64_t n_seq, int64_t n_ctx, int64_t kv_dim,
                                   const CudaOptions& options)
    : impl_(std::make_unique<Impl>(where, module, weights, kernels, n_layer, n_seq, n_ctx, kv_dim, options)) {}

CudaStepExecutor::~CudaStepExecutor() = default;

// Slices of at most max_tokens tokens; the last one returns what the caller asked for.
void CudaStepExecutor::Impl::run_all(const StepInputs& in, bool greedy) {
  ok(api.cuCtxSetCurrent(context), "cuCtxSetCurrent");
  const int64_t T = static_cast<int64_t>(in.tokens.size());
  if (!greedy) result.resize(static_cast<size_t>((in.all_logits ? T : 1) * n_vocab));
  ids.clear();
  for (int64_t t0 = 0; t0 < T; t0 += max_tokens) {
    const int64_t n = std::min(max_tokens, T - t0);
    const bool last = t0 + n == T;
    const Logits mode = greedy ? (in.all_logits ? Logits::Ids : last ? Logits::LastId : Logits::None)
                               : (in.all_logits ? Logits::All : last ? Logits::Last : Logits::None);
    run_slice(in, t0, n, mode);
  }
}

std::span<const float> CudaStepExecutor::run(const StepInputs& in) {
  impl_->run_all(in, false);
  return impl_->result;
}

std::vector<int32_t> CudaStepExecutor::run_greedy(const StepInputs& in) {
  impl_->run_all(in, true);
  return impl_->ids;
}

// The buffer is filled with the byte 0x5A, so every block's sums add up to (words x 4) x 0x5A5A5A5A mod
// 2^32: a probe that skipped bytes fails instead of reporting a bandwidth. Best of 10 timed passes after a
// warm-up (the first touches pages and loads the kernel), 8 blocks per SM (full occupancy).
double CudaStepExecutor::device_read_bandwidth_gb_s() {
  Impl& s = *impl_;
  s.ok(s.api.cuCtxSetCurrent(s.context), "cuCtxSetCurrent");
  uint64_t bytes = s.opt.read_probe_bytes;
  if (bytes == 0) {
    int l2 = 0;
    s.ok(s.api.cuDeviceGetAttribute(&l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, s.device), "cuDeviceGetAttribute");
    size_t free_bytes = 0, total_bytes = 0;
    s.ok(s.api.cuMemGetInfo(&free_bytes, &total_bytes), "cuMemGetInfo");
    bytes = std::min<uint64_t>(std::clamp<uint64_t>(8 * static_cast<uint64_t>(std::max(l2, 0)), uint64_t{256} << 20, uint64_t{1} << 30), free_bytes / 4);
  }
  const uint64_t words = bytes / 16;
  if (words == 0) fail("{}: target cuda: no device memory left for the read-bandwidth probe", s.where);
  const unsigned blocks = static_cast<unsigned>(8 * s.sms);
  constexpr size_t kPasses = 11;
  struct Buffers {  // the probe's own, freed on every way out (they are not the executor's allocations)
    const DriverApi& api;
    CUdeviceptr data = 0, sums = 0;
    std::vector<CUevent> marks = std::vector<CUevent>(2 * kPasses);  // before and after each pass
    ~Buffers() {
      for (CUevent e : marks)
        if (e) api.cuEventDestroy(e);
      if (sums) api.cuMemFree(sums);
      if (data) api.cuMemFree(data);
    }
  } b{s.api};
  s.ok(s.api.cuMemAlloc(&b.data, words * 16), fmt::format("cuMemAlloc ({} bytes for the read-bandwidth probe)", words * 16));
  s.ok(s.api.cuMemAlloc(&b.sums, blocks * 4u), "cuMemAlloc (read-bandwidth probe sums)");
  s.ok(s.api.cuMemsetD8Async(b.data, 0x5A, words * 16, s.stream), "cuMemsetD8Async");
  for (CUevent& e : b.marks) s.ok(s.api.cuEventCreate(&e, CU_EVENT_DEFAULT), "cuEventCreate");
  const ReadProbeArgs a{dptr<void>(b.data), dptr<unsigned>(b.sums), static_cast<long long>(words)};
  const CUfunction f = s.functions.at(s.plan.read_probe).function;
  void* params[] = {const_cast<ReadProbeArgs*>(&a)};
  for (size_t pass = 0; pass < kPasses; ++pass) {
    s.ok(s.api.cuEventRecord(b.marks[2 * pass], s.stream), "cuEventRecord");
    s.ok(s.api.cuLaunchKernel(f, blocks, 1, 1, 256, 1, 1, 0, s.stream, params, nullptr), "launching " + s.plan.read_probe);
    s.ok(s.api.cuEventRecord(b.marks[2 * pass + 1], s.stream), "cuEventRecord");
  }
  std::vector<uint32_t> got(blocks);
  s.ok(s.api.cuMemcpyDtoHAsync(got.data(), b.sums, blocks * 4u, s.stream), "cuMemcpyDtoHAsync (probe sums)");
  s.ok(s.api.cuStreamSynchronize(s.stream), "cuStreamSynchronize");
  uint32_t total = 0;
  for (uint32_t v : got) total += v;
  const uint32_t expected = static_cast<uint32_t>(words * 4) * 0x5A5A5A5Au;
  if (total != expected) fail("internal: {}: target cuda: the read-bandwidth probe summed {:#x}, expected {:#x}", s.where, total, expected);
  float best_ms = 0;
  for (size_t pass = 1; pass < kPasses; ++pass) {  // pass 0: the warm-up
    float ms = 0;
    s.ok(s.api.cuEventElapsedTime(&ms, b.marks[2 * pass], b.marks[2 * pass + 1]), "cuEventElapsedTime");
    if (ms > 0 && (best_ms == 0 || ms < best_ms)) best_ms = ms;
  }
  return best_ms > 0 ? static_cast<double>(words * 16) / (best_ms * 1e-3) / 1e9 : 0.0;
}

std::string CudaStepExecutor::describe() const {
  const Impl& s = *impl_;
  std::string d = fmt::format("{}, {} {}", s.device_name, s.image_arch, s.image_ptx ? "PTX (JIT)" : "cubin");
  if (s.opt.graphs) d += ", graphs";
  if (s.opt.pdl) d += ", PDL";
  if (s.step_blocks) {
    d += fmt::format(", persistent decode step ({} blocks{}{})", s.step_blocks, s.opt.prefetch ? "" : ", no L2 prefetch",
                     s.opt.release_barrier ? "" : ", fenced barrier");
  }
  if (!s.step_note.empty()) d += ", " + s.step_note;
  if (!s.graph_note.empty()) d += " (" + s.graph_note + ")";
  if (s.api.emulated) d += ", " + s.api.description;
  if (!s.opt.omit_kernels.empty()) d += fmt::format(", OMITTING kernels named *{}* (timing only: wrong results)", fmt::join(s.opt.omit_kernels, "*, *"));
  return d;
}

uint64_t CudaStepExecutor::device_bytes() const { return impl_->allocated; }
int CudaStepExecutor::graphs_captured() const { return static_cast<int>(impl_->graphs.size()); }
int CudaStepExecutor::step_blocks() const { return static_cast<int>(impl_->step_blocks); }

}  // namespace bitnet::cuda
