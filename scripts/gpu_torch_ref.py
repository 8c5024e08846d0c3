#!/usr/bin/env python3
"""gpu_torch_ref.py: the PyTorch baseline for qtrain's throughput (scripts/gpu_check.sh).

Builds the decoder of configs/opt-125m.conf itself (no download): token and learned position
embeddings, pre-LN blocks with a fused qkv projection, causal attention through
torch.nn.functional.scaled_dot_product_attention(is_causal=True) (flash attention on CUDA in
fp16), ReLU MLP, biases everywhere, a final LayerNorm and an LM head tied to the token
embedding; dropout 0.1 on the embeddings and residual branches, none on the attention
probabilities. It trains the way `qtrain train` steps with grad_accum 1: fp32 master weights,
fp16 autocast (AMP) with a dynamic loss scaler (GradScaler), AdamW (betas 0.9/0.95, eps 1e-8,
weight decay 0.1, fused on CUDA) after unscaling and clipping the global gradient norm to 1.0,
the learning rate of a linear warmup set every step, and the loss read back every step (qtrain
logs every step in gpu_check.sh). Batches come from llm.c-format shards (--data DIR, the same
train_*.bin qtrain reads) or, without --data, from random tokens made once on the host; each
step copies its batch to the device, as qtrain does.

Timing: the wall clock (after torch.cuda.synchronize) from the end of step --warmup to the end
of the last step. The last line printed is one JSON object: tokens_per_s, params, ms_per_step,
final loss and what was run. gpu_check.sh computes MFU from it with the same formula as for
qtrain.

  python3 scripts/gpu_torch_ref.py --device cuda --steps 40 --warmup 10 --data DIR
  python3 scripts/gpu_torch_ref.py --device cpu --tiny      # a smoke test without a GPU
"""
import argparse
import glob
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHARD_MAGIC = 20240520
SHARD_HEADER_INTS = 256

# configs/opt-125m.conf, and a tiny shape for smoke tests on a CPU.
OPT_125M = dict(n_layer=12, d_model=768, n_head=12, d_ff=3072, max_seq_len=512, vocab_size=50272,
                init_std=0.006, dropout=0.1, lr=4e-4, warmup_steps=2000, batch_size=16,
                seq_len=512)
TINY = dict(n_layer=2, d_model=64, n_head=4, d_ff=256, max_seq_len=32, vocab_size=512,
            init_std=0.02, dropout=0.1, lr=1e-3, warmup_steps=10, batch_size=2, seq_len=32)


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c["n_head"]
        d = c["d_model"]
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, c["d_ff"])
        self.fc2 = nn.Linear(c["d_ff"], d)
        self.drop = nn.Dropout(c["dropout"])

    def forward(self, x):
        B, T, C = x.shape
        H = self.n_head
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.fc2(F.relu(self.fc1(self.ln2(x)))))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.wte = nn.Embedding(c["vocab_size"], c["d_model"])
        self.wpe = nn.Embedding(c["max_seq_len"], c["d_model"])
        self.drop = nn.Dropout(c["dropout"])
        self.blocks = nn.ModuleList(Block(c) for _ in range(c["n_layer"]))
        self.ln_f = nn.LayerNorm(c["d_model"])
        std = c["init_std"]
        for name, p in self.named_parameters():
            if p.dim() == 2:
                # Residual projections scaled by 1/sqrt(2L), as qtrain's init.
                scale = 1 / math.sqrt(2 * c["n_layer"]) if name.endswith(("proj.weight", "fc2.weight")) else 1
                nn.init.normal_(p, 0.0, std * scale)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.shape[1]
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for b in self.blocks:
            x = b(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied LM head
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def batches(data_dir, B, T, V, seed):
    """Yields (inputs, targets) int64 host tensors of shape (B, T), cycling through the data."""
    g = torch.Generator().manual_seed(seed)
    if data_dir:
        files = sorted(glob.glob(os.path.join(data_dir, "train_*.bin")))
        if not files:
            sys.exit(f"gpu_torch_ref: error: no {data_dir}/train_*.bin shards")
        raw = open(files[0], "rb").read()
        header = torch.frombuffer(bytearray(raw[:4 * SHARD_HEADER_INTS]), dtype=torch.int32)
        if int(header[0]) != SHARD_MAGIC or int(header[1]) != 1:
            sys.exit(f"gpu_torch_ref: error: {files[0]} is not an llm.c version-1 shard")
        n = int(header[2])
        tokens = torch.frombuffer(bytearray(raw[4 * SHARD_HEADER_INTS:4 * SHARD_HEADER_INTS + 2 * n]),
                                  dtype=torch.int16).to(torch.int64) & 0xFFFF
    else:
        tokens = torch.randint(0, V, (B * T * 64 + 1,), generator=g)
    n_windows = (tokens.numel() - 1) // T
    if n_windows < B:
        sys.exit(f"gpu_torch_ref: error: {tokens.numel()} tokens hold fewer than {B} windows of {T + 1}")
    if int(tokens.max()) >= V:
        sys.exit(f"gpu_torch_ref: error: token {int(tokens.max())} is outside the vocabulary ({V})")
    while True:
        starts = torch.randint(0, n_windows, (B,), generator=g) * T
        win = torch.stack([tokens[s:s + T + 1] for s in starts.tolist()])
        yield win[:, :-1].contiguous(), win[:, 1:].contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda or cpu (default cuda)")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer d_model 64 model (smoke test)")
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps (default 40)")
    ap.add_argument("--warmup", type=int, default=10, help="steps left out of the timing (default 10)")
    ap.add_argument("--batch", type=int, default=None, help="B (default 16; 2 with --tiny)")
    ap.add_argument("--seq", type=int, default=None, help="T (default 512; 32 with --tiny)")
    ap.add_argument("--data", default=None, help="folder with llm.c train_*.bin shards")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"],
                    help="autocast dtype on CUDA (default fp16, with GradScaler)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model first")
    ap.add_argument("--seed", type=int, default=1337)
    a = ap.parse_args()
    if a.steps <= a.warmup:
        sys.exit("gpu_torch_ref: error: --steps must exceed --warmup")
    c = dict(TINY if a.tiny else OPT_125M)
    B = a.batch or c["batch_size"]
    T = a.seq or c["seq_len"]
    if T > c["max_seq_len"]:
        sys.exit(f"gpu_torch_ref: error: --seq {T} exceeds max_seq_len {c['max_seq_len']}")
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("gpu_torch_ref: error: --device cuda, but torch sees no CUDA device")
    torch.manual_seed(a.seed)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 leftovers (the loss) as qtrain's cuBLASLt
        torch.backends.cudnn.allow_tf32 = True

    model = Decoder(c).to(dev)
    params = sum(p.numel() for p in model.parameters())  # the tied LM head counted once
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}[a.dtype] if cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    opt_kw = dict(lr=c["lr"], betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    if cuda:
        opt_kw["fused"] = True
    opt = torch.optim.AdamW(model.parameters(), **opt_kw)
    step_fn = torch.compile(model) if a.compile else model
    model.train()
    data = batches(a.data, B, T, c["vocab_size"], a.seed)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    print(f"gpu_torch_ref: torch {torch.__version__}, {dev}"
          f"{' (' + torch.cuda.get_device_name(dev) + ')' if cuda else ''}, {params} parameters, "
          f"{c['n_layer']} layers d_model {c['d_model']} heads {c['n_head']} d_ff {c['d_ff']}, "
          f"B {B} x T {T}, autocast {a.dtype if amp_dtype else 'off'}, "
          f"compile {'on' if a.compile else 'off'}, data {a.data or 'random tokens'}", flush=True)
    sync()
    t_mark = None
    t_prev = time.perf_counter()
    loss_v = float("nan")
    for step in range(1, a.steps + 1):
        x, y = next(data)
        x = x.to(dev, non_blocking=True)
        y = y.to(dev, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = c["lr"] * min(1.0, step / max(1, c["warmup_steps"]))
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=dev.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            loss = step_fn(x, y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        loss_v = loss.item()  # one read-back per step, as qtrain's per-step log line
        now = time.perf_counter()
        print(f"step {step:4d}/{a.steps} | loss {loss_v:.4f} | grad_norm {float(gnorm):.3f} | "
              f"scale {scaler.get_scale() if scaler.is_enabled() else 1:g} | "
              f"{B * T / (now - t_prev):.0f} tok/s", flush=True)
        t_prev = now
        if step == a.warmup:
            sync()
            t_mark = time.perf_counter()
    sync()
    dt = time.perf_counter() - t_mark
    timed = a.steps - a.warmup
    res = dict(tokens_per_s=B * T * timed / dt, ms_per_step=1e3 * dt / timed, params=params,
               n_layer=c["n_layer"], d_model=c["d_model"], seq_len=T, batch=B, steps=a.steps,
               warmup=a.warmup, loss=loss_v, torch=torch.__version__, device=str(dev),
               gpu=torch.cuda.get_device_name(dev) if cuda else None, dtype=a.dtype if amp_dtype else "fp32",
               compile=a.compile, data=a.data or "random")
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
