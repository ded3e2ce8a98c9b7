// Each kernel is written here as explicit vector IR of the level's width W (8 floats for AVX2, 16 for
// AVX-512): the shapes are constants, so loops over features have known trip counts and the accumulators
// of attention and of the LM head are chosen to fit the level's registers; LLVM then schedules, allocates
// registers and selects instructions for the level. Where the result must equal ref bit for bit (the
// norm's quantization, RoPE) the IR uses the same f32 operations in the same order and no fast-math
// flags; reductions whose order is free (dot products, sums of squares in double) carry `reassoc`.
#include "codegen/x86/llvm/kernel_generator.h"

#include "ir/error.h"

#include <llvm/Config/llvm-config.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>

#include <cmath>
#include <functional>
#include <mutex>

namespace bitnet::x86 {
namespace {

using llvm::BasicBlock;
using llvm::Function;
using llvm::Type;
using llvm::Value;

struct Level {
  const char* name;
  const char* features;  // what LLVM may use: exactly what `needs` checks on the running CPU
  int width;             // floats per vector
  std::vector<std::string> needs;
};
const Level kLevels[] = {
    {"avx2", "+avx2,+fma,+f16c", 8, {"avx2", "fma", "f16c"}},
    {"avx512", "+avx2,+fma,+f16c,+avx512f,+avx512bw,+avx512vl", 16, {"avx2", "fma", "f16c", "avx512"}},
};
constexpr const char* kTriple = "x86_64-pc-linux-gnu";

// The largest power of two <= max that divides n.
int width_dividing(int64_t n, int max) {
  int w = max;
  while (w > 1 && n % w != 0) w /= 2;
  return w;
}

class Generator {
 public:
  Generator(llvm::Module& module, const Level& level)
      : ctx_(module.getContext()), mod_(module), level_(level), W(level.width), b(ctx_) {
    f32 = b.getFloatTy(), f64 = b.getDoubleTy(), i8 = b.getInt8Ty(), i16 = b.getInt16Ty(), i32 = b.getInt32Ty(), i64 = b.getInt64Ty();
    half = b.getHalfTy(), ptr = b.getPtrTy();
  }

  void generate(const FusedKernelSpec& s) {
    switch (s.kind) {
      case FusedKind::NormQuant:
      case FusedKind::AddNormQuant: norm_quant(s); break;
      case FusedKind::RmsNorm: rmsnorm(s); break;
      case FusedKind::Quantize: quantize(s); break;
      case FusedKind::GluRelu2: glu_relu2(s); break;
      case FusedKind::RopeQkv: rope_qkv(s); break;
      case FusedKind::Attend: attend(s); break;
      case FusedKind::LmHeadF16:
      case FusedKind::LmHeadI8: lm_head(s); break;
    }
  }

 private:
  // ---- scaffolding ----
  Function* begin(const FusedKernelSpec& s, Type* ret, std::vector<Type*> params) {
    Function* f = Function::Create(llvm::FunctionType::get(ret, params, false), Function::ExternalLinkage, s.name(), mod_);
    f->addFnAttr(llvm::Attribute::NoUnwind);
    f->addFnAttr("target-cpu", "x86-64");
    f->addFnAttr("target-features", level_.features);
    f->addFnAttr("no-builtins");
    const std::string bits = std::to_string(32 * W);
    f->addFnAttr("prefer-vector-width", bits);
    f->addFnAttr("min-legal-vector-width", bits);
    b.SetInsertPoint(BasicBlock::Create(ctx_, "entry", f));
    return f;
  }
  Value* arg(Function* f, unsigned i) { return f->getArg(i); }

  // for (i = start; i < end; i += step) carried = body(i, carried); returns the carried values at exit.
  using Body = std::function<std::vector<Value*>(Value* i, const std::vector<Value*>& carried)>;
  std::vector<Value*> loop(Value* start, Value* end, int64_t step, std::vector<Value*> init, const Body& body) {
    BasicBlock* pre = b.GetInsertBlock();
    Function* f = pre->getParent();
    BasicBlock* head = BasicBlock::Create(ctx_, "loop", f);
    BasicBlock* inside = BasicBlock::Create(ctx_, "body", f);
    BasicBlock* exit = BasicBlock::Create(ctx_, "exit", f);
    b.CreateBr(head);
    b.SetInsertPoint(head);
    llvm::PHINode* i = b.CreatePHI(i64, 2);
    i->addIncoming(start, pre);
    std::vector<Value*> carried;
    for (Value* v : init) {
      llvm::PHINode* phi = b.CreatePHI(v->getType(), 2);
      phi->addIncoming(v, pre);
      carried.push_back(phi);
    }
    b.CreateCondBr(b.CreateICmpSLT(i, end), inside, exit);
    b.SetInsertPoint(inside);
    const std::vector<Value*> next = body(i, carried);
    BasicBlock* latch = b.GetInsertBlock();
    i->addIncoming(b.CreateAdd(i, b.getInt64(step)), latch);
    for (size_t k = 0; k < carried.size(); ++k) llvm::cast<llvm::PHINode>(carried[k])->addIncoming(next[k], latch);
    b.CreateBr(head);
    b.SetInsertPoint(exit);
    return carried;
  }
  // A loop over [0, n) in steps of `width` elements, then the remainder one at a time: `body` gets the
  // index and the width (W-wide vectors or scalars) and returns the new carried values. `merge` turns
  // the vector loop's carried values into the scalar loop's initial ones (horizontal reductions).
  using ChunkBody = std::function<std::vector<Value*>(Value* i, int width, const std::vector<Value*>& carried)>;
  std::vector<Value*> chunks(Value* n, int width, std::vector<Value*> init, const ChunkBody& body,
                             const std::function<std::vector<Value*>(const std::vector<Value*>&)>& merge) {
    Value* whole = b.CreateAnd(n, b.getInt64(~static_cast<int64_t>(width - 1)));
    auto vec = loop(b.getInt64(0), whole, width, init, [&](Value* i, const std::vector<Value*>& c) { return body(i, width, c); });
    auto scalar_init = merge(vec);
    if (width == 1) return scalar_init;
    return loop(whole, n, 1, scalar_init, [&](Value* i, const std::vector<Value*>& c) { return body(i, 1, c); });
  }

  Type* vec(Type* t, int n) { return n == 1 ? t : llvm::FixedVectorType::get(t, n); }
  Value* at(Type* t, Value* base, Value* index) { return b.CreateInBoundsGEP(t, base, index); }
  Value* load(Type* t, Value* base, Value* index, int n) {
    return b.CreateAlignedLoad(vec(t, n), at(t, base, index), llvm::Align(t->getPrimitiveSizeInBits() / 8));
  }
  void store(Value* v, Type* t, Value* base, Value* index) { b.CreateAlignedStore(v, at(t, base, index), llvm::Align(t->getPrimitiveSizeInBits() / 8)); }
  Value* splat(Value* s, int n) { return n == 1 ? s : b.CreateVectorSplat(n, s); }
  Value* fconst(float v, int n) { return splat(llvm::ConstantFP::get(f32, v), n); }
  Value* dconst(double v, int n) { return splat(llvm::ConstantFP::get(f64, v), n); }
  Value* iconst(Type* t, int64_t v, int n) { return splat(llvm::ConstantInt::get(t, v, true), n); }
  int lanes(Value* v) { return v->getType()->isVectorTy() ? static_cast<int>(llvm::cast<llvm::FixedVectorType>(v->getType())->getNumElements()) : 1; }
  Value* fma(Value* a, Value* x, Value* c) { return b.CreateIntrinsic(llvm::Intrinsic::fma, {a->getType()}, {a, x, c}); }
  Value* reassoc(Value* v) {
    if (auto* inst = llvm::dyn_cast<llvm::Instruction>(v)) inst->setHasAllowReassoc(true);
    return v;
  }
  Value* fadd_r(Value* x, Value* y) { return reassoc(b.CreateFAdd(x, y)); }
  // The sum of a vector's lanes in any order; a scalar as it is.
  Value* hsum(Value* v) {
    if (!v->getType()->isVectorTy()) return v;
    return reassoc(b.CreateFAddReduce(llvm::ConstantFP::getNegativeZero(v->getType()->getScalarType()), v));
  }
  Value* hmax_u32(Value* v) { return v->getType()->isVectorTy() ? b.CreateIntMaxReduce(v, false) : v; }
  Value* hsum_i32(Value* v) { return v->getType()->isVectorTy() ? b.CreateAddReduce(v) : v; }
  // IEEE halves (as i16) to f32.
  Value* widen_halves(Value* v) { return b.CreateFPExt(b.CreateBitCast(v, vec(half, lanes(v))), vec(f32, lanes(v))); }
  Value* narrow_to_halves(Value* v) { return b.CreateBitCast(b.CreateFPTrunc(v, vec(half, lanes(v))), vec(i16, lanes(v))); }

  // e^x for x <= 0, as vector_ops.cpp computes it: 2^n times a degree-6 polynomial of the remainder.
  Value* exp_nonpositive(Value* x) {
    const int n = lanes(x);
    x = b.CreateMaxNum(x, fconst(-87.0f, n));
    Value* t = b.CreateFMul(x, fconst(1.44269504088896341f, n));
    Value* k = b.CreateUnaryIntrinsic(llvm::Intrinsic::roundeven, t);
    Value* f = fma(b.CreateFNeg(k), fconst(0.693145751953125f, n), x);
    f = fma(b.CreateFNeg(k), fconst(1.428606765330187045e-06f, n), f);
    Value* p = fconst(1.0f / 720, n);
    for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) p = fma(p, f, fconst(c, n));
    Value* e = b.CreateShl(b.CreateAdd(b.CreateFPToSI(k, vec(i32, n)), iconst(i32, 127, n)), iconst(i32, 23, n));
    return b.CreateFMul(p, b.CreateBitCast(e, vec(f32, n)));
  }

  // ---- norms and quantization (ref's f32 operations, in ref's order) ----

  // 1 / sqrt(sum(x^2) / n + eps) with the squares summed in double; `x` read by `value(i, width)`.
  Value* rms_scale(int64_t n, Value* eps, const std::function<Value*(Value*, int)>& value) {
    Value* zero = dconst(0.0, W);
    auto sum = chunks(b.getInt64(n), W, {zero}, [&](Value* i, int w, const std::vector<Value*>& c) {
      Value* d = b.CreateFPExt(value(i, w), vec(f64, w));
      return std::vector<Value*>{fadd_r(c[0], b.CreateFMul(d, d))};
    }, [&](const std::vector<Value*>& c) { return std::vector<Value*>{hsum(c[0])}; });
    Value* mean = b.CreateFPTrunc(b.CreateFDiv(sum[0], llvm::ConstantFP::get(f64, static_cast<double>(n))), f32);
    Value* root = b.CreateUnaryIntrinsic(llvm::Intrinsic::sqrt, b.CreateFAdd(mean, eps));
    return b.CreateFDiv(fconst(1.0f, 1), root);
  }

  // The BitNet absmax quantization of the row y(i, width): codes to q, returns the multiplier; with
  // `sum` non-null also stores the sum of the codes there.
  Value* quantize_row(int64_t k, const std::function<Value*(Value*, int)>& y, Value* q, Value* sum) {
    // max |y| on the bit patterns (monotonic for non-negative floats); NaN counts as 0.
    auto amax_bits = chunks(b.getInt64(k), W, {iconst(i32, 0, W)}, [&](Value* i, int w, const std::vector<Value*>& c) {
      Value* v = y(i, w);
      Value* bits = b.CreateAnd(b.CreateBitCast(v, vec(i32, w)), iconst(i32, 0x7fffffff, w));
      bits = b.CreateSelect(b.CreateFCmpUNO(v, v), iconst(i32, 0, w), bits);
      return std::vector<Value*>{b.CreateBinaryIntrinsic(llvm::Intrinsic::umax, c[0], bits)};
    }, [&](const std::vector<Value*>& c) { return std::vector<Value*>{hmax_u32(c[0])}; });
    Value* amax = b.CreateFPExt(b.CreateBitCast(amax_bits[0], f32), f64);
    Value* a = b.CreateFPTrunc(b.CreateFDiv(dconst(127.0, 1), b.CreateMaxNum(dconst(1e-5, 1), amax)), f32);
    auto total = chunks(b.getInt64(k), W, {iconst(i32, 0, W)}, [&](Value* i, int w, const std::vector<Value*>& c) {
      Value* r = b.CreateUnaryIntrinsic(llvm::Intrinsic::roundeven, b.CreateFMul(y(i, w), splat(a, w)));
      Value* clamped = b.CreateMinNum(b.CreateMaxNum(r, fconst(-128.0f, w)), fconst(127.0f, w));
      clamped = b.CreateSelect(b.CreateFCmpUNO(r, r), fconst(0.0f, w), clamped);
      Value* codes = b.CreateFPToSI(clamped, vec(i32, w));
      store(b.CreateTrunc(codes, vec(i8, w)), i8, q, i);
      return std::vector<Value*>{b.CreateAdd(c[0], codes)};
    }, [&](const std::vector<Value*>& c) { return std::vector<Value*>{hsum_i32(c[0])}; });
    if (sum) b.CreateAlignedStore(total[0], sum, llvm::Align(4));
    return a;
  }

  // float (x, residual, sum_out, w, eps, k, q): [x + residual ->] RMSNorm -> int8.
  void norm_quant(const FusedKernelSpec& s) {
    Function* f = begin(s, f32, {ptr, ptr, ptr, ptr, f32, i64, ptr});
    const bool add = s.kind == FusedKind::AddNormQuant;
    Value *x = arg(f, 0), *residual = arg(f, 1), *sum_out = arg(f, 2), *w = arg(f, 3), *eps = arg(f, 4), *q = arg(f, 6);
    Value* scale = rms_scale(s.k, eps, [&](Value* i, int n) {
      Value* v = load(f32, x, i, n);
      if (add) {
        v = b.CreateFAdd(v, load(f32, residual, i, n));
        store(v, f32, sum_out, i);
      }
      return v;
    });
    Value* src = add ? sum_out : x;
    Value* a = quantize_row(s.k, [&](Value* i, int n) { return b.CreateFMul(b.CreateFMul(load(f32, src, i, n), splat(scale, n)), load(f32, w, i, n)); }, q, nullptr);
    b.CreateRet(a);
  }

  // void (x, w, eps, n, y)
  void rmsnorm(const FusedKernelSpec& s) {
    Function* f = begin(s, b.getVoidTy(), {ptr, ptr, f32, i64, ptr});
    Value *x = arg(f, 0), *w = arg(f, 1), *y = arg(f, 4);
    Value* scale = rms_scale(s.k, arg(f, 2), [&](Value* i, int n) { return load(f32, x, i, n); });
    chunks(b.getInt64(s.k), W, {}, [&](Value* i, int n, const std::vector<Value*>&) {
      store(b.CreateFMul(b.CreateFMul(load(f32, x, i, n), splat(scale, n)), load(f32, w, i, n)), f32, y, i);
      return std::vector<Value*>{};
    }, [](const std::vector<Value*>& c) { return c; });
    b.CreateRetVoid();
  }

  // float (x, k, q, sum)
  void quantize(const FusedKernelSpec& s) {
    Function* f = begin(s, f32, {ptr, i64, ptr, ptr});
    Value* x = arg(f, 0);
    b.CreateRet(quantize_row(s.k, [&](Value* i, int n) { return load(f32, x, i, n); }, arg(f, 2), arg(f, 3)));
  }

  // void (g, u, n, y): y = (g < 0 ? 0 : g)^2 * u, as std::max(g, 0) squared.
  void glu_relu2(const FusedKernelSpec& s) {
    Function* f = begin(s, b.getVoidTy(), {ptr, ptr, i64, ptr});
    Value *g = arg(f, 0), *u = arg(f, 1), *y = arg(f, 3);
    chunks(arg(f, 2), W, {}, [&](Value* i, int n, const std::vector<Value*>&) {
      Value* v = load(f32, g, i, n);
      Value* r = b.CreateSelect(b.CreateFCmpOLT(v, fconst(0.0f, n)), fconst(0.0f, n), v);
      store(b.CreateFMul(b.CreateFMul(r, r), load(f32, u, i, n)), f32, y, i);
      return std::vector<Value*>{};
    }, [](const std::vector<Value*>& c) { return c; });
    b.CreateRetVoid();
  }

  // ---- RoPE + KV write ----

  // Rotates `heads` heads of d features from src into dst (both f32, or dst halves): ref's
  // x0 c - x1 s, x1 c + x0 s, unfused.
  void rope_heads(Value* src, Value* dst, bool dst_halves, int64_t heads, int64_t d, Value* cos, Value* sin) {
    const int64_t h2 = d / 2;
    const int w = width_dividing(h2, W);
    loop(b.getInt64(0), b.getInt64(heads * d), d, {}, [&](Value* head, const std::vector<Value*>&) {
      for (int64_t i = 0; i < h2; i += w) {
        Value* lo_at = b.CreateAdd(head, b.getInt64(i));
        Value* hi_at = b.CreateAdd(head, b.getInt64(i + h2));
        Value *x0 = load(f32, src, lo_at, w), *x1 = load(f32, src, hi_at, w);
        Value *c = load(f32, cos, b.getInt64(i), w), *sn = load(f32, sin, b.getInt64(i), w);
        Value* lo = b.CreateFSub(b.CreateFMul(x0, c), b.CreateFMul(x1, sn));
        Value* hi = b.CreateFAdd(b.CreateFMul(x1, c), b.CreateFMul(x0, sn));
        if (dst_halves) {
          store(narrow_to_halves(lo), i16, dst, lo_at);
          store(narrow_to_halves(hi), i16, dst, hi_at);
        } else {
          store(lo, f32, dst, lo_at);
          store(hi, f32, dst, hi_at);
        }
      }
      return std::vector<Value*>{};
    });
  }

  // void (row, cos, sin, q_out, k_cache, v_cache)
  void rope_qkv(const FusedKernelSpec& s) {
    Function* f = begin(s, b.getVoidTy(), {ptr, ptr, ptr, ptr, ptr, ptr});
    Value *row = arg(f, 0), *cos = arg(f, 1), *sin = arg(f, 2), *q_out = arg(f, 3), *k_cache = arg(f, 4), *v_cache = arg(f, 5);
    const int64_t d = s.head_dim, q_dim = s.n_head * d, kv_dim = s.n_head_kv * d;
    rope_heads(row, q_out, false, s.n_head, d, cos, sin);
    rope_heads(at(f32, row, b.getInt64(q_dim)), k_cache, !s.kv_f32, s.n_head_kv, d, cos, sin);
    Value* v = at(f32, row, b.getInt64(q_dim + kv_dim));
    chunks(b.getInt64(kv_dim), W, {}, [&](Value* i, int n, const std::vector<Value*>&) {
      Value* x = load(f32, v, i, n);
      if (s.kv_f32) {
        store(x, f32, v_cache, i);
      } else {
        store(narrow_to_halves(x), i16, v_cache, i);
      }
      return std::vector<Value*>{};
    }, [](const std::vector<Value*>& c) { return c; });
    b.CreateRetVoid();
  }

  // ---- attention ----

  // void (q, k, v, stride, n, d, scores, out): scores, softmax, weighted sum of V, as vector_ops'
  // attend_head, with d fixed so the query and the output block stay in registers.
  void attend(const FusedKernelSpec& s) {
    Function* f = begin(s, b.getVoidTy(), {ptr, ptr, ptr, i64, i64, i64, ptr, ptr});
    Value *q = arg(f, 0), *k = arg(f, 1), *v = arg(f, 2), *stride = arg(f, 3), *n = arg(f, 4), *scores = arg(f, 6), *out = arg(f, 7);
    const int64_t d = s.head_dim;
    const int w = width_dividing(d, W);
    Type* kv = s.kv_f32 ? f32 : i16;
    auto kv_load = [&](Value* base, Value* index) {
      Value* x = load(kv, base, index, w);
      return s.kv_f32 ? x : widen_halves(x);
    };
    const float inv_sqrt_d = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
    std::vector<Value*> qv;
    for (int64_t i = 0; i < d; i += w) qv.push_back(load(f32, q, b.getInt64(i), w));
    // Scores and their maximum: four independent FMA chains per position.
    auto max = loop(b.getInt64(0), n, 1, {llvm::ConstantFP::getInfinity(f32, true)}, [&](Value* j, const std::vector<Value*>& c) {
      Value* row = b.CreateMul(j, stride);
      std::vector<Value*> acc(std::min<size_t>(4, qv.size()), nullptr);
      for (size_t c4 = 0; c4 < qv.size(); ++c4) {
        Value* kj = kv_load(k, b.CreateAdd(row, b.getInt64(static_cast<int64_t>(c4) * w)));
        Value*& a = acc[c4 % acc.size()];
        a = a ? fma(qv[c4], kj, a) : b.CreateFMul(qv[c4], kj);
      }
      Value* total = acc[0];
      for (size_t i = 1; i < acc.size(); ++i) total = fadd_r(total, acc[i]);
      Value* score = b.CreateFMul(hsum(total), fconst(inv_sqrt_d, 1));
      store(score, f32, scores, j);
      return std::vector<Value*>{b.CreateMaxNum(c[0], score)};
    });
    // Exponentials in place and their sum.
    auto sum = chunks(n, W, {fconst(0.0f, W)}, [&](Value* j, int lanes_, const std::vector<Value*>& c) {
      Value* e = exp_nonpositive(b.CreateFSub(load(f32, scores, j, lanes_), splat(max[0], lanes_)));
      store(e, f32, scores, j);
      return std::vector<Value*>{fadd_r(c[0], e)};
    }, [&](const std::vector<Value*>& c) { return std::vector<Value*>{hsum(c[0])}; });
    Value* inv = b.CreateFDiv(fconst(1.0f, 1), sum[0]);
    // out = sum_j p_j v_j / sum, a block of features at a time with its accumulators in registers.
    const int64_t block = std::min<int64_t>(d, static_cast<int64_t>(W == 16 ? 8 : 4) * w);
    for (int64_t i0 = 0; i0 < d; i0 += block) {
      const int64_t count = std::min(block, d - i0) / w;
      std::vector<Value*> init(static_cast<size_t>(count), fconst(0.0f, w));
      auto acc = loop(b.getInt64(0), n, 1, init, [&](Value* j, const std::vector<Value*>& c) {
        Value* p = splat(b.CreateAlignedLoad(f32, at(f32, scores, j), llvm::Align(4)), w);
        Value* row = b.CreateAdd(b.CreateMul(j, stride), b.getInt64(i0));
        std::vector<Value*> next;
        for (int64_t c4 = 0; c4 < count; ++c4) next.push_back(fma(p, kv_load(v, b.CreateAdd(row, b.getInt64(c4 * w))), c[c4]));
        return next;
      });
      for (int64_t c4 = 0; c4 < count; ++c4) store(b.CreateFMul(acc[c4], splat(inv, w)), f32, out, b.getInt64(i0 + c4 * w));
    }
    b.CreateRetVoid();
  }

  // ---- the LM head ----

  // f16: void (w, x, T, k, rows, y, ldy); i8: void (w, scales, x, T, k, rows, y, ldy). Each weight row
  // is read once for a tile of up to four tokens.
  void lm_head(const FusedKernelSpec& s) {
    const bool i8_rows = s.kind == FusedKind::LmHeadI8;
    Function* f = i8_rows ? begin(s, b.getVoidTy(), {ptr, ptr, ptr, i64, i64, i64, ptr, i64}) : begin(s, b.getVoidTy(), {ptr, ptr, i64, i64, i64, ptr, i64});
    unsigned a = 0;
    Value* w = arg(f, a++);
    Value* scales = i8_rows ? arg(f, a++) : nullptr;
    Value *x = arg(f, a++), *T = arg(f, a++);
    a++;  // k: fixed
    Value *rows = arg(f, a++), *y = arg(f, a++), *ldy = arg(f, a++);
    const int64_t K = s.k;
    Type* wt = i8_rows ? i8 : i16;
    auto weights = [&](Value* row, Value* i, int n) {
      Value* raw = load(wt, row, i, n);
      return i8_rows ? b.CreateSIToFP(raw, vec(f32, n)) : widen_halves(raw);
    };
    // One tile: `tokens` tokens from t0, `chains` accumulators per token over W-wide chunks.
    auto tile = [&](Value* r, Value* t0, int tokens, int chains) {
      Value* row = at(wt, w, b.CreateMul(r, b.getInt64(K)));
      const int64_t step = static_cast<int64_t>(chains) * W, whole = K / step * step;
      std::vector<Value*> xt;
      for (int t = 0; t < tokens; ++t) xt.push_back(at(f32, x, b.CreateMul(b.CreateAdd(t0, b.getInt64(t)), b.getInt64(K))));
      std::vector<Value*> init(static_cast<size_t>(tokens * chains), fconst(0.0f, W));
      auto acc = loop(b.getInt64(0), b.getInt64(whole), step, init, [&](Value* i, const std::vector<Value*>& c) {
        std::vector<Value*> next(c.size());
        for (int ch = 0; ch < chains; ++ch) {
          Value* idx = b.CreateAdd(i, b.getInt64(ch * W));
          Value* wv = weights(row, idx, W);
          for (int t = 0; t < tokens; ++t) next[t * chains + ch] = fma(wv, load(f32, xt[t], idx, W), c[t * chains + ch]);
        }
        return next;
      });
      for (int t = 0; t < tokens; ++t) {
        Value* total = acc[t * chains];
        for (int ch = 1; ch < chains; ++ch) total = fadd_r(total, acc[t * chains + ch]);
        Value* dot = hsum(total);
        if (whole < K) {  // the columns past the last whole step, one at a time
          dot = loop(b.getInt64(whole), b.getInt64(K), 1, {dot}, [&](Value* i, const std::vector<Value*>& c) {
            return std::vector<Value*>{fma(weights(row, i, 1), load(f32, xt[t], i, 1), c[0])};
          })[0];
        }
        if (i8_rows) dot = b.CreateFMul(dot, b.CreateAlignedLoad(f32, at(f32, scales, r), llvm::Align(4)));
        store(dot, f32, y, b.CreateAdd(b.CreateMul(b.CreateAdd(t0, b.getInt64(t)), ldy), r));
      }
    };
    Value* tiled = b.CreateAnd(T, b.getInt64(~int64_t{3}));
    loop(b.getInt64(0), rows, 1, {}, [&](Value* r, const std::vector<Value*>&) {
      loop(b.getInt64(0), tiled, 4, {}, [&](Value* t0, const std::vector<Value*>&) {
        tile(r, t0, 4, 2);
        return std::vector<Value*>{};
      });
      loop(tiled, T, 1, {}, [&](Value* t0, const std::vector<Value*>&) {
        tile(r, t0, 1, 4);
        return std::vector<Value*>{};
      });
      return std::vector<Value*>{};
    });
    b.CreateRetVoid();
  }

  llvm::LLVMContext& ctx_;
  llvm::Module& mod_;
  const Level& level_;
  const int W;
  llvm::IRBuilder<> b;
  Type *f32, *f64, *i8, *i16, *i32, *i64, *half, *ptr;
};

llvm::TargetMachine& target_machine(const Level& level) {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeX86TargetInfo();
    LLVMInitializeX86Target();
    LLVMInitializeX86TargetMC();
    LLVMInitializeX86AsmPrinter();
  });
  static std::map<std::string, std::unique_ptr<llvm::TargetMachine>> machines;
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  auto& tm = machines[level.name];
  if (!tm) {
    std::string error;
    const llvm::Target* target = llvm::TargetRegistry::lookupTarget(kTriple, error);
    if (!target) fail("x86 kernels: LLVM has no x86-64 target: {}", error);
    tm.reset(target->createTargetMachine(kTriple, "x86-64", level.features, llvm::TargetOptions(), llvm::Reloc::PIC_, llvm::CodeModel::Small,
                                         llvm::CodeGenOpt::Aggressive));
    if (!tm) fail("x86 kernels: LLVM could not make a target machine for {}", level.name);
  }
  return *tm;
}

std::string compile_level(const std::vector<FusedKernelSpec>& specs, const Level& level, std::string* ir_text) {
  llvm::LLVMContext ctx;
  llvm::Module module(std::string("bitnetc_x86_kernels_") + level.name, ctx);
  llvm::TargetMachine& tm = target_machine(level);
  module.setTargetTriple(kTriple);
  module.setDataLayout(tm.createDataLayout());
  Generator generator(module, level);
  for (const auto& spec : specs) generator.generate(spec);
  std::string problems;
  llvm::raw_string_ostream problem_stream(problems);
  if (llvm::verifyModule(module, &problem_stream)) fail("x86 kernels: generated LLVM IR is invalid (a bitnetc bug): {}", problems);
  if (ir_text) {
    llvm::raw_string_ostream os(*ir_text);
    os << "; level " << level.name << "\n" << module;
  }

  // -O3 with the level's cost model; no library functions may be introduced (the loader links none).
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm);
  llvm::TargetLibraryInfoImpl tlii{llvm::Triple(kTriple)};
  tlii.disableAllFunctions();
  fam.registerPass([&] { return llvm::TargetLibraryAnalysis(tlii); });
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cgam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cgam, mam);
  pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(module, mam);

  llvm::SmallVector<char, 0> object;
  llvm::raw_svector_ostream os(object);
  llvm::legacy::PassManager emit;
  if (tm.addPassesToEmitFile(emit, os, nullptr, llvm::CGFT_ObjectFile)) fail("x86 kernels: LLVM cannot emit an object for {}", level.name);
  emit.run(module);
  return std::string(object.begin(), object.end());
}

}  // namespace

X86KernelsSection generate_x86_kernels(const ir::Module& module, std::string* ir_text) {
  return generate_x86_kernels(fused_kernel_specs(module), ir_text);
}

X86KernelsSection generate_x86_kernels(const std::vector<FusedKernelSpec>& specs, std::string* ir_text) {
  X86KernelsSection section;
  section.llvm_version = LLVM_VERSION_STRING;
  for (const Level& level : kLevels) {
    KernelObject object;
    object.level = level.name;
    object.needs = level.needs;
    for (const auto& spec : specs) object.kernels.push_back(spec.name());
    object.elf = compile_level(specs, level, ir_text);
    section.objects.push_back(std::move(object));
  }
  return section;
}

}  // namespace bitnet::x86
