// Reads the `tokenizer.*` keys of a GGUF into a TokenizerVocab (spec 5.1 and 1.5 item 9). Only the types
// and cross-key consistency are checked here — array element types, equal lengths, special ids in range;
// what the vocabulary means (merges naming tokens, pre-tokenizer choice) is checked by Tokenizer itself.
#pragma once

#include "frontend/gguf.h"
#include "runtime/tokenizer.h"

namespace bitnet {

// Throws bitnet::Error naming the file and the key: missing tokenizer.ggml.model / tokens / merges, a
// model other than "gpt2", a key of the wrong type, token arrays of different lengths, an id out of range.
TokenizerVocab read_tokenizer_vocab(const gguf::File& file);

}  // namespace bitnet
