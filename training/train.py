#!/usr/bin/env python3
"""Trains a small BitNet b1.58 language model with the architecture of microsoft/bitnet-b1.58-2B-4T and writes
it as a weight dump for `bitnetc import` (format: frontend/import.h).

Architecture (spec section 4; the same as bitnetc's reference backend computes):
  x = embd[token]                                   tied embedding, also the LM head
  per layer: h = rmsnorm(x)·attn_norm; q, k, v = BitLinear(h) (GQA); RoPE NEOX (pairs i, i + d/2,
             theta_i = p·base^(-2i/d)) on q and k; causal softmax attention; rmsnorm·attn_sub_norm;
             x += BitLinear_o(.)
             f = rmsnorm(x)·ffn_norm; m = relu(BitLinear_gate(f))² · BitLinear_up(f); rmsnorm·ffn_sub_norm;
             x += BitLinear_down(.)
  logits = (rmsnorm(x)·output_norm) @ embdᵀ         no biases anywhere
BitLinear while training (BitNet b1.58): weights absmean-ternary, s = max(mean|W|, 1e-5),
W_q = clamp(round(W/s), -1, 1)·s; activations per token absmax int8, a = 127/max(max|x|, 1e-5),
x_q = clamp(round(x·a), -128, 127)/a; both through straight-through estimators. Training may add dropout
on the embedding and on both residual branches (not part of the model; off at evaluation).

Data: token ids made by bitnetc's own tokenizer (raw little-endian int32, no BOS):
  bitnetc tokenize vocab.gguf -f train.txt --no-bos --ids-out train.ids   (and valid.ids, heldout.ids)
Each training window of n_ctx tokens starts at a random position and has its first token replaced by BOS,
as the perplexity procedure below does.

Schedule: AdamW, linear warmup then cosine decay to 10 %, bf16 autocast on GPU. Training ends at the
wall-clock budget (--minutes) or after --epochs passes over the training tokens, whichever comes first; the
schedule's progress is the larger of the two fractions. The validation ids are scored every --eval-every
epochs and at the end; the best state (lowest validation loss) is the one exported.

Perplexity (what `bitnet-run --perplexity` computes, in the inference arithmetic of the exported weights:
ternary × f16-rounded scale, f16 embedding, int8 per-token activations, everything else float32):
  ids = the text tokenized without BOS; chunks = len(ids) // n_ctx; for each chunk, token 0 is replaced
  by BOS; run the model on the chunk; score positions i = n_ctx/2 .. n_ctx-2 with nll(token[i+1] | logits[i]);
  ppl = exp(mean nll over all scored tokens of all chunks).

Output in --out: manifest.json + weights.bin (the dump), train_report.json (config, parameters, tokens seen,
minutes, loss curve, validation and held-out perplexity).

Runs on PyTorch 1.13 (CPU, smoke tests) and 2.x (GPU).
"""
import argparse
import contextlib
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

DUMP_FORMAT = "bitnetc-weights-v1"
BITLINEARS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def bf16_autocast(enabled):
    """bf16 autocast on the GPU; nothing on the CPU (PyTorch 1.13 refuses a disabled CUDA autocast there)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


# ---- model -------------------------------------------------------------------------------------------------

def ste_weight(w):
    s = w.abs().mean().clamp(min=1e-5)
    return w + ((w / s).round().clamp(-1, 1) * s - w).detach()


def ste_activation(x):
    a = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-5)
    return x + ((x * a).round().clamp(-128, 127) / a - x).detach()


class BitLinear(nn.Linear):
    def __init__(self, n_in, n_out):
        super().__init__(n_in, n_out, bias=False)

    def forward(self, x):
        # Quantize in float32 even under autocast; the matmul itself may run in bf16.
        xq = ste_activation(x.float())
        wq = ste_weight(self.weight.float())
        return F.linear(xq, wq)


class RMSNorm(nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        x = x.float()
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(n_ctx, head_dim, base, device):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    theta = torch.arange(n_ctx, dtype=torch.float32, device=device)[:, None] * inv_freq[None, :]  # [T, d/2]
    return torch.cos(theta), torch.sin(theta)


def apply_rope(x, cos, sin):
    """x: [B, H, T, d]; NEOX pairing (i, i + d/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def causal_attention(q, k, v):
    """q: [B, H, T, d], k/v: [B, H, T, d] (KV heads already repeated)."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[2]
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    mask = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores.float(), dim=-1).to(v.dtype) @ v


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, h, hkv, f, eps = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["ffn"], cfg["rms_eps"]
        hd = d // h
        self.h, self.hkv, self.hd = h, hkv, hd
        self.attn_norm = RMSNorm(d, eps)
        self.attn_q = BitLinear(d, h * hd)
        self.attn_k = BitLinear(d, hkv * hd)
        self.attn_v = BitLinear(d, hkv * hd)
        self.attn_sub_norm = RMSNorm(d, eps)
        self.attn_output = BitLinear(d, d)
        self.ffn_norm = RMSNorm(d, eps)
        self.ffn_gate = BitLinear(d, f)
        self.ffn_up = BitLinear(d, f)
        self.ffn_sub_norm = RMSNorm(f, eps)
        self.ffn_down = BitLinear(f, d)

    def forward(self, x, cos, sin, dropout):
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.attn_q(h).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.attn_k(h).view(B, T, self.hkv, self.hd).transpose(1, 2)
        v = self.attn_v(h).view(B, T, self.hkv, self.hd).transpose(1, 2)
        dt = torch.bfloat16 if torch.is_autocast_enabled() else torch.float32  # attention kernels in bf16 on GPU
        q, k = apply_rope(q.float(), cos, sin).to(dt), apply_rope(k.float(), cos, sin).to(dt)
        rep = self.h // self.hkv  # query head j uses KV head j // rep
        k = k.repeat_interleave(rep, dim=1)
        v = v.to(dt).repeat_interleave(rep, dim=1)
        a = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, self.h * self.hd)
        x = x + F.dropout(self.attn_output(self.attn_sub_norm(a)), dropout, self.training)
        f = self.ffn_norm(x)
        m = F.relu(self.ffn_gate(f)).pow(2) * self.ffn_up(f)
        x = x + F.dropout(self.ffn_down(self.ffn_sub_norm(m)), dropout, self.training)
        return x


class BitNet(nn.Module):
    def __init__(self, cfg, dropout=0.0):
        super().__init__()
        self.cfg = cfg
        self.dropout = dropout
        self.token_embd = nn.Embedding(cfg["vocab"], cfg["hidden"])
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg["layers"]))
        self.output_norm = RMSNorm(cfg["hidden"], cfg["rms_eps"])
        nn.init.normal_(self.token_embd.weight, std=0.02)
        for b in self.blocks:
            for name in BITLINEARS:
                nn.init.normal_(getattr(b, name).weight, std=0.02)

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = rope_tables(T, self.cfg["hidden"] // self.cfg["heads"], self.cfg["rope_base"], ids.device)
        x = F.dropout(self.token_embd(ids).float(), self.dropout, self.training)
        for b in self.blocks:
            x = b(x, cos, sin, self.dropout)
        x = self.output_norm(x)
        return F.linear(x, self.token_embd.weight)


# ---- export: the weights exactly as the GGUF will hold them ------------------------------------------------

def export_weights(model):
    """{gguf name: tensor} in the exported arithmetic: BitLinear → (int8 trits, f16-exact scale), embedding →
    f16, norms → f32. Everything on the CPU."""
    out = {}
    sd = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out["token_embd.weight"] = sd["token_embd.weight"].half()
    out["output_norm.weight"] = sd["output_norm.weight"]
    for l in range(model.cfg["layers"]):
        p = f"blocks.{l}."
        for norm in ["attn_norm", "attn_sub_norm", "ffn_norm", "ffn_sub_norm"]:
            out[f"blk.{l}.{norm}.weight"] = sd[p + norm + ".weight"]
        for name in BITLINEARS:
            w = sd[p + name + ".weight"]
            s = w.abs().mean().clamp(min=1e-5)
            trits = (w / s).round().clamp(-1, 1).to(torch.int8)
            scale = float(s.half().float())  # the GGUF's TQ block scale is f16; I2_S gets the same value
            out[f"blk.{l}.{name}.weight"] = (trits, scale)
    return out


def tensor_bytes(t):
    t = t.contiguous()
    try:
        return t.numpy().tobytes()
    except (RuntimeError, TypeError, ImportError):  # no numpy: slower but dependency-free
        if t.dtype == torch.float16:
            return struct.pack(f"<{t.numel()}e", *t.flatten().tolist())
        if t.dtype == torch.float32:
            return struct.pack(f"<{t.numel()}f", *t.flatten().tolist())
        return bytes(t.flatten().tolist())


def pack_trits(trits):
    """int8 trits → 2-bit codes (trit + 1), 4 per byte, element i at bits 2·(i % 4)."""
    codes = (trits.flatten().to(torch.int16) + 1).to(torch.uint8)
    pad = (-codes.numel()) % 4
    if pad:
        codes = torch.cat([codes, torch.ones(pad, dtype=torch.uint8)])
    c = codes.view(-1, 4)
    packed = c[:, 0] | (c[:, 1] << 2) | (c[:, 2] << 4) | (c[:, 3] << 6)
    return tensor_bytes(packed)


def write_dump(exported, cfg, name, out_dir):
    manifest = {"format": DUMP_FORMAT, "name": name, "config": cfg, "data": "weights.bin", "tensors": {}}
    offset = 0
    with open(os.path.join(out_dir, "weights.bin.tmp"), "wb") as f:
        for key, value in exported.items():
            if isinstance(value, tuple):
                trits, scale = value
                data = pack_trits(trits)
                entry = {"dtype": "trit2", "shape": [trits.shape[1], trits.shape[0]], "offset": offset, "scale": scale}
            else:
                data = tensor_bytes(value)
                shape = list(reversed(value.shape))  # GGUF order: ne0 first
                entry = {"dtype": "f16" if value.dtype == torch.float16 else "f32", "shape": shape, "offset": offset}
            manifest["tensors"][key] = entry
            f.write(data)
            offset += len(data)
    os.replace(os.path.join(out_dir, "weights.bin.tmp"), os.path.join(out_dir, "weights.bin"))
    with open(os.path.join(out_dir, "manifest.json.tmp"), "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(os.path.join(out_dir, "manifest.json.tmp"), os.path.join(out_dir, "manifest.json"))


# ---- inference arithmetic and perplexity -------------------------------------------------------------------

def bitlinear_infer(x, trits_f, scale):
    """Spec 4.9: per-row int8 activations, integer dot (exact in float32: |sum| < 2^24), then / a · s."""
    amax = x.abs().amax(dim=-1, keepdim=True).double().clamp(min=1e-5)
    a = (127.0 / amax).float()
    q = (x * a).round().clamp(-128, 127)
    return (q @ trits_f.t()) / a * scale


def rmsnorm_infer(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


@torch.no_grad()
def forward_infer(W, cfg, ids):
    """Float32 forward of the exported weights W (device tensors, see prepare_infer) on ids [B, T]."""
    B, T = ids.shape
    d, h, hkv, eps = cfg["hidden"], cfg["heads"], cfg["kv_heads"], cfg["rms_eps"]
    hd = d // h
    cos, sin = rope_tables(T, hd, cfg["rope_base"], ids.device)
    mask = torch.ones(T, T, dtype=torch.bool, device=ids.device).triu(1)
    x = W["token_embd.weight"][ids]
    for l in range(cfg["layers"]):
        g = lambda n: W[f"blk.{l}.{n}.weight"]
        hn = rmsnorm_infer(x, g("attn_norm"), eps)
        q = bitlinear_infer(hn, *g("attn_q")).view(B, T, h, hd).transpose(1, 2)
        k = bitlinear_infer(hn, *g("attn_k")).view(B, T, hkv, hd).transpose(1, 2)
        v = bitlinear_infer(hn, *g("attn_v")).view(B, T, hkv, hd).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k = k.repeat_interleave(h // hkv, dim=1)
        v = v.repeat_interleave(h // hkv, dim=1)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        s = s.masked_fill(mask, float("-inf"))
        a = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, d)
        x = x + bitlinear_infer(rmsnorm_infer(a, g("attn_sub_norm"), eps), *g("attn_output"))
        f = rmsnorm_infer(x, g("ffn_norm"), eps)
        m = F.relu(bitlinear_infer(f, *g("ffn_gate"))).pow(2) * bitlinear_infer(f, *g("ffn_up"))
        x = x + bitlinear_infer(rmsnorm_infer(m, g("ffn_sub_norm"), eps), *g("ffn_down"))
    x = rmsnorm_infer(x, W["output_norm.weight"], eps)
    return x @ W["token_embd.weight"].t()


def prepare_infer(exported, device):
    W = {}
    for k, v in exported.items():
        if isinstance(v, tuple):
            W[k] = (v[0].float().to(device), v[1])
        else:
            W[k] = v.float().to(device)
    return W


def make_chunks(ids, n_ctx, bos):
    """The perplexity chunks: ids [N] → [n_chunks, n_ctx] with token 0 of each replaced by BOS."""
    n_chunks = ids.numel() // n_ctx
    chunks = ids[: n_chunks * n_ctx].view(n_chunks, n_ctx).clone()
    chunks[:, 0] = bos
    return chunks


def chunk_nll(logits, chunks):
    """Sum of nll over positions n_ctx/2 .. n_ctx-2 (predicting token i+1) and the count, in float64."""
    n_ctx = chunks.shape[1]
    first = n_ctx // 2
    lp = torch.log_softmax(logits[:, first:n_ctx - 1].double(), dim=-1)
    target = chunks[:, first + 1:].to(lp.device)
    nll = -lp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    return nll.sum().item(), nll.numel()


@torch.no_grad()
def perplexity_infer(W, cfg, ids, n_ctx, bos, device, batch=16):
    chunks = make_chunks(ids, n_ctx, bos)
    total, count = 0.0, 0
    for i in range(0, chunks.shape[0], batch):
        c = chunks[i:i + batch].to(device)
        s, n = chunk_nll(forward_infer(W, cfg, c), c)
        total, count = total + s, count + n
    return math.exp(total / count), count


@torch.no_grad()
def loss_train_arith(model, chunks, device, use_bf16, batch=32):
    """Mean nll of the perplexity positions in the training arithmetic (for checkpoint selection)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, chunks.shape[0], batch):
        c = chunks[i:i + batch].to(device)
        with bf16_autocast(use_bf16):
            logits = model(c)
        s, n = chunk_nll(logits.float(), c)
        total, count = total + s, count + n
    model.train()
    return total / count


# ---- training ----------------------------------------------------------------------------------------------

def load_ids(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    if len(data) % 4:
        sys.exit(f"{path}: {len(data)} bytes is not a whole number of int32 ids")
    return torch.frombuffer(data, dtype=torch.int32).long()


def lr_at(progress, peak, warmup):
    if progress < warmup:
        return peak * progress / warmup
    p = min(1.0, (progress - warmup) / max(1e-9, 1 - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="training/work", help="folder with train.ids, valid.ids, heldout.ids, tokenizer.json")
    ap.add_argument("--out", required=True, help="folder for the dump and train_report.json")
    ap.add_argument("--name", default="bitnet-brown", help="general.name of the model")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=1280)
    ap.add_argument("--ctx", type=int, default=256, help="training window and perplexity n_ctx")
    ap.add_argument("--rope-base", type=float, default=500000.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--warmup", type=float, default=0.03, help="warmup as a fraction of the run")
    ap.add_argument("--minutes", type=float, default=8.0, help="wall-clock training budget")
    ap.add_argument("--epochs", type=float, default=1e9, help="stop after this many passes over the training ids")
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke tests)")
    ap.add_argument("--eval-every", type=float, default=0.5, help="epochs between validation scores")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the perplexity must be float32, not TF32
        torch.backends.cudnn.allow_tf32 = False
    with open(os.path.join(args.data, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    bos = tok["bos_id"]
    train_ids = load_ids(os.path.join(args.data, "train.ids"))
    valid_ids = load_ids(os.path.join(args.data, "valid.ids"))
    heldout_ids = load_ids(os.path.join(args.data, "heldout.ids"))
    cfg = {"hidden": args.hidden, "layers": args.layers, "heads": args.heads, "kv_heads": args.kv_heads,
           "ffn": args.ffn, "vocab": len(tok["tokens"]), "context": args.ctx, "rope_base": args.rope_base,
           "rms_eps": 1e-5}
    for ids, what in [(train_ids, "train"), (valid_ids, "valid"), (heldout_ids, "heldout")]:
        if ids.numel() and (ids.min() < 0 or ids.max() >= cfg["vocab"]):
            sys.exit(f"{what}.ids: ids outside [0, {cfg['vocab']})")
    os.makedirs(args.out, exist_ok=True)

    model = BitNet(cfg, args.dropout).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    valid_chunks = make_chunks(valid_ids, args.ctx, bos)
    train_dev = train_ids.to(device)
    n_train = train_ids.numel()
    print(f"model: {n_params / 1e6:.2f}M parameters, cfg {cfg}; train {n_train} tokens, valid {valid_ids.numel()}, "
          f"heldout {heldout_ids.numel()}; device {device}, torch {torch.__version__}", flush=True)

    budget = args.minutes * 60.0
    tokens_per_step = args.batch * args.ctx
    max_tokens = args.epochs * n_train
    start = time.time()
    last_eval = 0  # tokens_seen at the last validation score
    step, tokens_seen, progress = 0, 0, 0.0
    curve, recent = [], []
    best = {"valid_loss": float("inf")}
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    offsets_base = torch.arange(args.ctx + 1, device=device)

    def evaluate():
        vloss = loss_train_arith(model, valid_chunks, device, use_bf16)
        train_loss = sum(recent) / len(recent) if recent else float("nan")
        point = {"step": step, "tokens": tokens_seen, "epochs": round(tokens_seen / n_train, 3),
                 "seconds": round(time.time() - start, 1), "lr": lr, "train_loss": round(train_loss, 4),
                 "valid_loss": round(vloss, 4)}
        curve.append(point)
        if vloss < best["valid_loss"]:
            best.update(valid_loss=vloss, step=step, tokens=tokens_seen, train_loss=train_loss,
                        state={k: v.detach().clone() for k, v in model.state_dict().items()})
        print(f"step {step} ep {point['epochs']:.2f} t {point['seconds']}s lr {lr:.2e} train {train_loss:.4f} "
              f"valid {vloss:.4f} (ppl {math.exp(vloss):.2f}){' *' if best.get('step') == step else ''}", flush=True)

    lr = 0.0
    model.train()
    while progress < 1.0:
        elapsed = time.time() - start
        progress = max(elapsed / budget, tokens_seen / max_tokens,
                       step / args.max_steps if args.max_steps else 0.0)
        if progress >= 1.0:
            break
        lr = lr_at(progress, args.lr, args.warmup)
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, n_train - args.ctx - 1, (args.batch,), generator=gen).to(device)
        window = train_dev[starts[:, None] + offsets_base[None, :]]
        x, y = window[:, :-1].clone(), window[:, 1:]
        x[:, 0] = bos
        with bf16_autocast(use_bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, cfg["vocab"]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens_seen += tokens_per_step
        recent.append(loss.item())
        recent = recent[-50:]
        if tokens_seen - last_eval >= args.eval_every * n_train:
            evaluate()
            last_eval = tokens_seen
    train_seconds = time.time() - start
    evaluate()
    final_train_loss = sum(recent) / len(recent)

    model.load_state_dict(best["state"])
    exported = export_weights(model)
    W = prepare_infer(exported, device)
    valid_ppl, _ = perplexity_infer(W, cfg, valid_ids, args.ctx, bos, device)
    heldout_ppl, scored = perplexity_infer(W, cfg, heldout_ids, args.ctx, bos, device)
    print(f"exported weights (best at step {best['step']}): valid ppl {valid_ppl:.4f}, heldout ppl {heldout_ppl:.4f} "
          f"({scored} scored tokens, n_ctx {args.ctx})", flush=True)
    write_dump(exported, cfg, args.name, args.out)
    report = {
        "name": args.name, "config": cfg, "parameters": n_params, "args": vars(args),
        "torch": torch.__version__, "device": torch.cuda.get_device_name(0) if use_bf16 else "cpu",
        "train_tokens": n_train, "steps": step, "tokens_seen": tokens_seen, "epochs": tokens_seen / n_train,
        "train_minutes": train_seconds / 60.0, "final_train_loss": final_train_loss,
        "best": {k: v for k, v in best.items() if k != "state"},
        "valid_ppl": valid_ppl, "heldout_ppl": heldout_ppl, "heldout_scored_tokens": scored,
        "ppl_procedure": "ids without BOS; chunks of n_ctx; token 0 of each chunk := BOS; score positions "
                         "n_ctx/2 .. n_ctx-2 (nll of token i+1 from logits i); exported weights, float32, int8 "
                         "per-token activations; ppl = exp(mean nll)",
        "n_ctx": args.ctx, "curve": curve,
    }
    with open(os.path.join(args.out, "train_report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {args.out}: manifest.json, weights.bin, train_report.json", flush=True)


if __name__ == "__main__":
    main()
