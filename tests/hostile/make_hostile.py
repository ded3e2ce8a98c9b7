#!/usr/bin/env python3
"""Writes the hostile-input table: GGUF files broken in one field each (built from scratch, or patched from a
valid synthesized model), bundles with one defect each, and IR texts with one error each. Prints one line per
case: file<TAB>command (inspect|compile|run|opt)<TAB>text the one-line error must contain.
Usage: make_hostile.py OUT_DIR VALID_F16_GGUF VALID_I2S_GGUF VALID_BUNDLE"""
import os
import struct
import sys

out, f16_path, i2s_path, bundle_path = sys.argv[1:5]
cases = []


def emit(name, data, command, needle):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        f.write(data)
    cases.append((path, command, needle))


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return s(key) + struct.pack("<I", vtype) + payload


def header(n_tensors, n_kv, version=3):
    return b"GGUF" + struct.pack("<I", version) + struct.pack("<qq", n_tensors, n_kv)


def tensor_info(name, dims, ggml_type, offset):
    return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<q", d) for d in dims) + struct.pack("<IQ", ggml_type, offset)


def with_data(head, data_bytes):
    pad = (-len(head)) % 32
    return head + b"\0" * pad + data_bytes


ARCH = kv("general.architecture", 8, s("bitnet-b1.58"))
# --- header and counts
emit("version1.gguf", header(0, 0, 1) + b"\0" * 8, "inspect", "version")
emit("version4.gguf", header(0, 0, 4) + b"\0" * 8, "inspect", "version")
emit("byteswapped.gguf", header(0, 0, 0x03000000) + b"\0" * 8, "inspect", "version")
emit("ntensors_huge.gguf", header(2**63 - 1, 0) + b"\0" * 8, "inspect", "n_tensors")
emit("nkv_negative.gguf", header(0, -5) + b"\0" * 8, "inspect", "n_kv")
emit("nkv_many.gguf", header(0, 60000) + ARCH, "inspect", "n_kv")
emit("truncated_counts.gguf", header(0, 1)[:20], "inspect", "24")
emit("truncated_in_key.gguf", header(0, 1) + ARCH[:15], "inspect", "kv[0]")
emit("truncated_in_value.gguf", header(0, 1) + ARCH[:-4], "inspect", "general.architecture")
# --- keys, strings and arrays
emit("key_len_huge.gguf", header(0, 1) + struct.pack("<Q", 2**62) + b"x" * 16, "inspect", "kv[0] key")
emit("string_len_huge.gguf", header(0, 1) + s("general.name") + struct.pack("<IQ", 8, 2**40), "inspect", "general.name")
emit("duplicate_key.gguf", header(0, 2) + ARCH + ARCH, "inspect", "duplicate key")
emit("unknown_value_type.gguf", header(0, 1) + kv("general.x", 13, b"\0" * 8), "inspect", "general.x")
emit("nested_array.gguf", header(0, 1) + kv("general.x", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 4, 0)), "inspect", "nested")
emit("array_count_huge.gguf", header(0, 1) + kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 10**9)), "inspect", "tokenizer.ggml.tokens")
emit("array_elem_type_bad.gguf", header(0, 1) + kv("general.x", 9, struct.pack("<IQ", 77, 1)), "inspect", "general.x")
emit("key_not_utf8.gguf", header(0, 1) + kv(b"general.\xff\xfe", 4, struct.pack("<I", 1)), "inspect", "UTF-8")
emit("alignment_huge.gguf", header(0, 1) + kv("general.alignment", 4, struct.pack("<I", 2**30)), "inspect", "general.alignment")
emit("alignment_not_pow2.gguf", header(0, 1) + kv("general.alignment", 4, struct.pack("<I", 48)), "inspect", "general.alignment")
emit("alignment_wrong_type.gguf", header(0, 1) + kv("general.alignment", 8, s("32")), "inspect", "general.alignment")
# --- tensor infos and data
F32 = 0
emit("ndims5.gguf", with_data(header(1, 0) + tensor_info("t", [1, 1, 1, 1, 1], F32, 0), b"\0" * 32), "inspect", "n_dims")
emit("dims_overflow.gguf", with_data(header(1, 0) + tensor_info("t", [2**40, 2**40], F32, 0), b"\0" * 32), "inspect", "overflow")
emit("tensor_1tb.gguf", with_data(header(1, 0) + tensor_info("t", [2**38], F32, 0), b"\0" * 32), "inspect", "past the end")
emit("tensor_past_eof.gguf", with_data(header(1, 0) + tensor_info("t", [64], F32, 0), b"\0" * 32), "inspect", "'t'")
emit("overlap.gguf", with_data(header(2, 0) + tensor_info("a", [16], F32, 0) + tensor_info("b", [16], F32, 32), b"\0" * 128), "inspect", "overlaps")
emit("misaligned_offset.gguf", with_data(header(1, 0) + tensor_info("t", [8], F32, 4), b"\0" * 64), "inspect", "alignment")
emit("unknown_ggml_type.gguf", with_data(header(1, 0) + tensor_info("t", [32], 99, 0), b"\0" * 128), "inspect", "type 99")
emit("tl1_type.gguf", with_data(header(1, 0) + tensor_info("t", [32], 38, 0), b"\0" * 128), "inspect", "TL1")
emit("duplicate_tensor.gguf", with_data(header(2, 0) + tensor_info("t", [8], F32, 0) + tensor_info("t", [8], F32, 32), b"\0" * 64), "inspect", "duplicate tensor")
emit("tq2_bad_row.gguf", with_data(header(1, 0) + tensor_info("t", [100], 35, 0), b"\0" * 128), "inspect", "multiple of 256")

# --- model-level defects, patched into a valid synthesized model (same byte lengths, so the layout holds)
valid = open(f16_path, "rb").read()


def patched(old, new, data=valid):
    assert len(old) == len(new) and data.count(old) >= 1, old
    return data.replace(old, new, 1)


emit("wrong_arch.gguf", patched(s("bitnet-b1.58"), s("llama-b1.580")), "compile", "general.architecture")
emit("missing_hparam.gguf", patched(b"bitnet-b1.58.block_count", b"bitnet-b1.58.block_cOunt"), "compile", "block_count")
pos = valid.index(b"bitnet-b1.58.feed_forward_length") + len(b"bitnet-b1.58.feed_forward_length") + 4
emit("shape_vs_hparams.gguf", valid[:pos] + struct.pack("<I", 64) + valid[pos + 4:], "compile", "ffn")
pos = valid.index(b"bitnet-b1.58.attention.head_count_kv") + len(b"bitnet-b1.58.attention.head_count_kv") + 4
emit("kv_heads_not_dividing.gguf", valid[:pos] + struct.pack("<I", 3) + valid[pos + 4:], "compile", "head_count_kv")
m = valid.index(b"tokenizer.ggml.merges") + len(b"tokenizer.ggml.merges") + 4 + 4 + 8 + 8
emit("merge_unknown_token.gguf", valid[:m] + b"\x01" + valid[m + 1:], "compile", "merge")
# NaN scale in an I2_S tensor: the f32 after the codes of the first BitLinear (layout from inspect --json)
import json, subprocess
info = json.loads(subprocess.run([os.environ["BITNETC"], "inspect", "--json", i2s_path], capture_output=True, check=True).stdout)
i2s = open(i2s_path, "rb").read()
t = next(t for t in info["tensors"] if t["type"] == "I2_S")
n = 1
for d in t["shape"]:
    n *= d
at = info["data_offset"] + t["offset"] + n // 4
emit("nan_scale.gguf", i2s[:at] + struct.pack("<f", float("nan")) + i2s[at + 4:], "compile", t["name"])

# --- bundles
bundle = open(bundle_path, "rb").read()
emit("bundle_bad_magic.bundle", b"XITNETCB" + bundle[8:], "run", "magic")
emit("bundle_newer_version.bundle", bundle[:8] + struct.pack("<I", 9) + bundle[12:], "run", "version")
emit("bundle_other_target.bundle", bundle[:16] + b"cuda".ljust(16, b"\0") + bundle[32:], "run", "target")
emit("bundle_bad_checksum.bundle", bundle[:-1] + bytes([bundle[-1] ^ 0xFF]), "run", "checksum")
emit("bundle_offset_past_end.bundle", bundle[:64 + 16] + struct.pack("<Q", 2**40) + bundle[64 + 24:], "run", "runs past the end")
emit("bundle_truncated.bundle", bundle[: len(bundle) // 2], "run", "truncated")

# --- IR text
IR = """weight @embd : f32[64, 16]

func @step(%tokens: i32[T], %pos: i32[T], %seq: i32[T]) -> f32[T, 16] {
  %x = embed(%tokens, @embd) : f32[T, 16]
  %y = relu2(%x) : f32[T, 16]
  return %y
}
"""
emit("ir_unknown_op.ir", IR.replace("relu2(%x)", "gelu(%x)").encode(), "opt", "unknown op 'gelu'")
emit("ir_wrong_arity.ir", IR.replace("relu2(%x)", "relu2(%x, %x)").encode(), "opt", "operands")
emit("ir_type_mismatch.ir", IR.replace("%y = relu2(%x) : f32[T, 16]", "%y = relu2(%x) : f32[T, 17]").encode(), "opt", "declared type")
emit("ir_cycle.ir", IR.replace("relu2(%x)", "relu2(%y)").encode(), "opt", "before it is defined")

for path, command, needle in cases:
    print(f"{path}\t{command}\t{needle}")
