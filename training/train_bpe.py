#!/usr/bin/env python3
"""Byte-level BPE trainer for a Llama-3-style tokenizer (GGUF tokenizer model "gpt2", pre-tokenizer
"llama-bpe"; spec section 5), written for this project.

1. The text is cut into pre-tokens with the Llama-3 split regex (needs the `regex` module for \\p{L} and
   \\p{N}: Debian's python3-regex, run with /usr/bin/python3). Merges never cross a pre-token boundary.
2. Each pre-token's UTF-8 bytes are spelled with GPT-2's byte-to-unicode characters (spec 5.2), so every
   token is a printable string and the 256 single characters are the first 256 tokens (ids = byte order).
3. Classic BPE: repeatedly merge the most frequent adjacent pair (ties: the pair whose two strings sort
   first), counting each pre-token type once per occurrence in the text. Pair counts are updated
   incrementally, touching only the words that contain the merged pair; a heap with lazy deletion finds
   the best pair.
4. The special tokens <|begin_of_text|> (BOS), <|end_of_text|> (EOS) and <|eot_id|> take the last three ids.

Output JSON (read by `bitnetc import --tokenizer`):
  {"format": "bitnetc-bpe-v1", "model": "gpt2", "pre": "llama-bpe",
   "tokens": [...], "merges": ["left right", ...], "bos_id": N, "eos_id": N, "eot_id": N}
tokens[i] is the text of id i; merges are in rank order; the three special ids name CONTROL tokens.

The C++ tokenizer (runtime/tokenizer.cpp) is what encodes text at use time, training data included; this
trainer only has to produce a consistent vocabulary and merge list.

Usage: train_bpe.py training/work/train.txt --vocab-size 4096 -o training/work/tokenizer.json
"""
import argparse
import collections
import heapq
import json
import sys
import time

try:
    import regex
except ImportError:
    sys.exit("train_bpe.py needs the 'regex' module (Debian: apt-get install python3-regex; run /usr/bin/python3)")

LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]


def bytes_to_unicode():
    """GPT-2's byte -> character table: printable Latin-1 bytes map to themselves, the other 68 bytes to
    U+0100 onwards in increasing byte order."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {}
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


def count_pretokens(text):
    byte_char = bytes_to_unicode()
    counts = collections.Counter(regex.findall(LLAMA3_SPLIT, text))
    words = collections.Counter()
    for piece, n in counts.items():
        words["".join(byte_char[b] for b in piece.encode("utf-8"))] += n
    return words


def train(words, n_new_tokens, log_every=500):
    """words: {mapped pre-token: count}. Merges until n_new_tokens tokens beyond the 256 bytes exist (two
    merges can make the same string, e.g. a+bc and ab+c; the second adds a merge but no token). Returns
    the merges as (left, right) pairs in rank order and the new tokens in the order they appeared."""
    symbols = [list(w) for w in words]           # each word as its current list of symbols
    freq = list(words.values())
    pair_count = collections.Counter()
    pair_words = collections.defaultdict(set)    # pair -> indices of words that (may) contain it
    for i, syms in enumerate(symbols):
        for pair in zip(syms, syms[1:]):
            pair_count[pair] += freq[i]
            pair_words[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_count.items()]
    heapq.heapify(heap)

    merges = []
    new_tokens = []
    known = set(bytes_to_unicode().values())
    start = time.time()
    while len(new_tokens) < n_new_tokens and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg or -neg <= 0:
            continue  # stale entry: the count changed since it was pushed
        left, right = pair
        merged = left + right
        merges.append(pair)
        if merged not in known:
            known.add(merged)
            new_tokens.append(merged)
        changed = set()
        for i in pair_words.pop(pair, ()):
            syms = symbols[i]
            if len(syms) < 2:
                continue
            # Remove this word's old pairs, rewrite it, add its new pairs.
            for p in zip(syms, syms[1:]):
                pair_count[p] -= freq[i]
                changed.add(p)
            out = []
            k = 0
            while k < len(syms):
                if k + 1 < len(syms) and syms[k] == left and syms[k + 1] == right:
                    out.append(merged)
                    k += 2
                else:
                    out.append(syms[k])
                    k += 1
            symbols[i] = out
            for p in zip(out, out[1:]):
                pair_count[p] += freq[i]
                pair_words[p].add(i)
                changed.add(p)
        pair_count.pop(pair, None)
        for p in changed:
            c = pair_count.get(p, 0)
            if c > 0:
                heapq.heappush(heap, (-c, p))
            else:
                pair_count.pop(p, None)
        if log_every and len(merges) % log_every == 0:
            print(f"  {len(merges)} merges, last {left!r}+{right!r} x{-neg}, {time.time() - start:.1f} s", flush=True)
    return merges, new_tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("text", help="training text (UTF-8)")
    parser.add_argument("--vocab-size", type=int, default=4096, help="total tokens incl. 256 bytes and 3 specials")
    parser.add_argument("-o", "--output", required=True, help="tokenizer JSON to write")
    args = parser.parse_args()
    n_new = args.vocab_size - 256 - len(SPECIALS)
    if n_new < 0:
        sys.exit(f"--vocab-size {args.vocab_size}: must be at least {256 + len(SPECIALS)}")

    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    words = count_pretokens(text)
    print(f"{args.text}: {len(text)} characters, {sum(words.values())} pre-tokens, {len(words)} distinct")
    merges, new_tokens = train(words, n_new)
    if len(new_tokens) < n_new:
        print(f"warning: the text allows only {len(new_tokens)} merged tokens (asked for {n_new})")

    byte_char = bytes_to_unicode()
    tokens = [byte_char[b] for b in range(256)] + new_tokens
    if len(set(tokens)) != len(tokens):
        sys.exit("internal error: duplicate token")
    first_special = len(tokens)
    tokens += SPECIALS
    result = {
        "format": "bitnetc-bpe-v1",
        "model": "gpt2",
        "pre": "llama-bpe",
        "tokens": tokens,
        "merges": [f"{l} {r}" for l, r in merges],
        "bos_id": first_special,
        "eos_id": first_special + 1,
        "eot_id": first_special + 2,
    }
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {args.output}: {len(tokens)} tokens, {len(merges)} merges")


if __name__ == "__main__":
    main()
