// A loaded bundle: the mapped file, its optimized IR parsed back, the tokenizer, the metadata, and a view of
// every weight. Engine runs steps on it: it owns the KV cache (n_ctx positions for each of n_seq sequence
// slots) and checks every token id, position and slot before a backend sees them.
#pragma once

#include "codegen/ref/ref_backend.h"
#include "ir/ir.h"
#include "ir/weight_layout.h"
#include "runtime/bundle.h"
#include "runtime/tokenizer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <span>
#include <string>

namespace bitnet {

class Model {
 public:
  // Opens and validates `path`; refuses a bundle whose target this runtime cannot execute.
  static std::unique_ptr<Model> load(const std::string& path);
  // Validates and binds an opened bundle (fuzzing and tests hand one built in memory).
  static std::unique_ptr<Model> from_bundle(Bundle bundle);

  const std::string& path() const { return bundle_.path(); }
  const std::string& target() const { return bundle_.target(); }
  const ir::Module& module() const { return module_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const nlohmann::json& meta() const { return meta_; }
  const std::vector<WeightView>& weights() const { return weights_; }
  int64_t n_vocab() const { return meta_.at("n_vocab").get<int64_t>(); }
  int64_t n_ctx_train() const { return meta_.at("n_ctx_train").get<int64_t>(); }
  uint64_t weight_bytes() const { return weight_bytes_; }
  const ref::ArenaLayout& arena_layout() const { return arena_; }

 private:
  explicit Model(Bundle bundle) : bundle_(std::move(bundle)) {}
  Bundle bundle_;
  ir::Module module_;
  nlohmann::json meta_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<WeightView> weights_;
  uint64_t weight_bytes_ = 0;
  ref::ArenaLayout arena_;
};

class Engine {
 public:
  Engine(const Model& model, int64_t n_ctx, int64_t n_seq);
  // Runs T tokens (each with its position and sequence slot) and returns logits [T, n_vocab].
  std::span<const float> step(std::span<const int32_t> tokens, std::span<const int32_t> pos, std::span<const int32_t> seq);
  int64_t n_ctx() const { return cache_.n_ctx(); }
  int64_t n_seq() const { return cache_.n_seq(); }
  const ref::Executor& executor() const { return executor_; }

 private:
  const Model& model_;
  ref::KvCache cache_;
  ref::Executor executor_;
};

}  // namespace bitnet
