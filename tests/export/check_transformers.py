#!/usr/bin/env python3
"""The transformers round trip of `qtrain export` (issue 13, item 4).

Trains a tiny OPT (configs/tiny.conf), an OPT variant (untied head, ReLU, no biases) and a tiny
LLaMA (configs/llama-tiny.conf, shrunk) for a few steps on a corpus made here, exports each with
`qtrain export`, loads each with transformers' AutoModelForCausalLM and compares the logits on a
batch of validation tokens with qtrain's own (tests/export/qt_export_ref.c): max |difference|
under 1e-4 in fp32. The exported tokenizer.json, loaded with AutoTokenizer, must give the token
ids of qtrain's tokenizer on the corpus and on edge cases (whitespace runs, words past the
256-byte cap, UTF-8), and decode them back. A clipped-softmax model must be flagged: the
export warns on stderr, config.json says runs_in_transformers = false, and transformers' logits
indeed differ.

Exit 0: passed; 1: failed; 77: skipped (numpy, torch or transformers missing: CTest reports
the test skipped with the reason printed here).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

SKIP = 77


def need_modules():
    missing = []
    for mod in ("numpy", "torch", "transformers", "safetensors", "tokenizers"):
        try:
            __import__(mod)
        except Exception as e:  # ImportError, or a broken install
            missing.append(f"{mod} ({type(e).__name__}: {e})")
    if missing:
        print("SKIP: the transformers round trip needs " + ", ".join(missing) +
              f" for {sys.executable}; bash scripts/install_deps.sh installs them "
              "(python3-torch and python3-numpy from Debian, transformers, safetensors and "
              "tokenizers from the Python package index into .venv/)")
        sys.exit(SKIP)


WORDS = ("the and of to in that he shall unto for his a lord they be is him not them it with all "
         "thou thy was god which my me said but ye their have will thee from as are when this out "
         "were upon man by you israel king son up there hath then people came had house into on "
         "her come one we children s before your also day land men let go against").split()
UNICODE = ["Über", "naïve", "café", "Ελλάδα", "мир", "日本語", "✓✓", "—", "€42", "ﬁn"]


def make_corpus(path):
    rng = random.Random(13)
    lines = []
    for i in range(1500):
        n = rng.randint(4, 16)
        ws = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            ws.insert(rng.randrange(n), rng.choice(UNICODE))
        if rng.random() < 0.2:
            ws.insert(rng.randrange(n), str(rng.randint(0, 100000)))
        line = " ".join(ws)
        if rng.random() < 0.2:
            line = line.capitalize() + rng.choice([".", ",", ";", ":", "!?", "...", " (sic)"])
        if rng.random() < 0.1:
            line = "\t" + line
        if rng.random() < 0.1:
            line = line.replace(" ", "  ", 1)
        lines.append(line)
    text = "\n".join(lines) + "\n"
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return text


# Texts on which qtrain's pre-tokenization rules and word cap matter.
EDGE = [
    "", " ", "  ", "a", " a", "a  b", "a \tb", "a\n\nb", "a \n b", "  leading", "trailing  ",
    "x" * 300, " " + "y" * 300, "z" * 256 + " end", " " * 300 + "w", " " * 257 + "v",
    "\t" * 257 + " u", "é" * 200, " " + "日本語" * 100, "9" * 600, "!?" * 200, "a\r\nb\r\n",
    "mixed123abc!!!  spaces\t\ttabs\u00a0nbsp", "\x01\x02 control \x7f", "emoji 😀😀 ok",
]


def hf_diff(path, tokens, ref, override=None, cls=None):
    """max |transformers' logits - ref| for the model at path (config keys overridden), loaded
    through AutoModelForCausalLM or the class `cls`."""
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM
    loader = cls or AutoModelForCausalLM
    cfg = (cls.config_class if cls else AutoConfig).from_pretrained(path)
    for k, v in (override or {}).items():
        setattr(cfg, k, v)
    model = loader.from_pretrained(path, config=cfg, torch_dtype=torch.float32,
                                   attn_implementation="eager")
    model.eval()
    x = torch.from_numpy(tokens)
    with torch.no_grad():
        got = model(x, attention_mask=torch.ones_like(x)).logits.numpy()
    diff = float(np.max(np.abs(got - ref))) if got.shape == ref.shape else float("inf")
    return diff, model


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtrain", required=True)
    ap.add_argument("--ref", required=True, help="qt_export_ref")
    ap.add_argument("--source", required=True, help="repository root (configs/)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    args.qtrain, args.ref, args.source = (os.path.abspath(p) for p in
                                          (args.qtrain, args.ref, args.source))
    # Local directories only: never ask the Hugging Face hub for anything.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    need_modules()

    import numpy as np
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(2)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    t0 = time.time()
    work = tempfile.mkdtemp(prefix="qtrain-export-")
    failures = []
    try:
        os.chdir(work)
        text = make_corpus("corpus.txt")
        run([args.qtrain, "prepare", "--input", "corpus.txt", "--out", "data", "--vocab-size",
             "512", "--val-fraction", "0.1"])
        # 100 steps at a high learning rate: logits of ~10, activations large enough that a
        # near miss (exact GELU for tanh GELU, another RoPE base) shows above 1e-4 (checked
        # below), which 8 steps from the init would not.
        common = ["--set", "data.dir=data", "--set", "train.max_steps=100", "--set",
                  "train.lr=1e-2", "--set", "train.warmup_steps=5", "--set",
                  "train.eval_every=0", "--set", "train.eval_batches=1", "--quiet"]
        tiny = os.path.join(args.source, "configs", "tiny.conf")
        llama = os.path.join(args.source, "configs", "llama-tiny.conf")
        models = {
            # name: (config, extra --set, runs in transformers)
            "opt": (tiny, [], True),
            "opt-untied-relu-nobias": (tiny, ["model.tie_embeddings=0", "model.activation=relu",
                                              "model.bias=0"], True),
            "llama": (llama, ["model.vocab_size=512", "model.max_seq_len=64", "train.seq_len=64",
                              "train.batch_size=4", "model.n_layer=2"], True),
            "opt-clipped": (tiny, ["attn.softmax=clipped", "attn.gamma=-0.03"], False),
        }
        val = np.fromfile("data/val_000.bin", dtype=np.uint16, offset=1024).astype(np.int64)
        for name, (conf, sets, runs) in models.items():
            extra = [x for s in sets for x in ("--set", s)]
            run([args.qtrain, "train", "--config", conf, *common, *extra, "--out", name])
            ex = run([args.qtrain, "export", "--ckpt", f"{name}/ckpt.bin", "--out", f"{name}/hf"])
            with open(f"{name}/hf/config.json") as f:
                cj = json.load(f)
            flagged = "stock transformers will NOT compute" in ex.stderr
            said = cj["qtrain"]["runs_in_transformers"]
            if said != runs or flagged == runs:
                failures.append(f"{name}: runs_in_transformers {said}, stderr warning "
                                f"{flagged}; expected {runs}")
            T = cj["max_position_embeddings"]
            B = 4
            tokens = val[: B * T].reshape(B, T)
            tokens.astype(np.int32).tofile(f"{name}/tokens.bin")
            run([args.ref, "logits", f"{name}/ckpt.bin", str(B), str(T), f"{name}/tokens.bin",
                 f"{name}/logits.bin"])
            ref = np.fromfile(f"{name}/logits.bin", dtype=np.float32).reshape(B, T, -1)
            if runs:
                diff, model = hf_diff(f"{name}/hf", tokens, ref)
            else:
                # AutoModelForCausalLM must refuse it; the explicit class loads it anyway.
                try:
                    AutoModelForCausalLM.from_pretrained(f"{name}/hf")
                    failures.append(f"{name}: AutoModelForCausalLM loaded a model that stock "
                                    "transformers does not compute")
                except ValueError as e:
                    print(f"{name}: AutoModelForCausalLM refuses it: {str(e)[:90]}...")
                diff, model = hf_diff(f"{name}/hf", tokens, ref,
                                      cls=transformers.OPTForCausalLM)
            print(f"{name}: {type(model).__name__}, logits {tuple(ref.shape)}, max |hf - qtrain| "
                  f"= {diff:.3g} (max |logit| {float(np.max(np.abs(ref))):.3g})")
            if runs and not diff < 1e-4:
                failures.append(f"{name}: max |hf - qtrain| = {diff:.3g} >= 1e-4")
            if not runs and not diff > 1e-3:
                failures.append(f"{name}: flagged as not running in transformers, yet its "
                                f"logits agree ({diff:.3g})")
            want_cls = "LlamaForCausalLM" if name == "llama" else "OPTForCausalLM"
            if type(model).__name__ != want_cls:
                failures.append(f"{name}: loaded as {type(model).__name__}, not {want_cls}")
            # The comparison can fail: a near miss of the mapping must show above 1e-4.
            near = {"opt": {"activation_function": "gelu"}, "llama": {"rope_theta": 20000.0}}
            if name in near:
                d, _ = hf_diff(f"{name}/hf", tokens, ref, near[name])
                print(f"{name} with {near[name]} instead: max |hf - qtrain| = {d:.3g}")
                if not d > 1e-4:
                    failures.append(f"{name}: {near[name]} is not told apart ({d:.3g})")

        tok = AutoTokenizer.from_pretrained("opt/hf")
        # The README's snippet: tokenizer and model from the directory, greedy generation.
        model = AutoModelForCausalLM.from_pretrained("opt/hf")
        enc = tok("the lord said", return_tensors="pt")
        out = model.generate(**enc, max_new_tokens=10, do_sample=False)
        n_prompt = enc["input_ids"].shape[1]
        generated = tok.decode(out[0])
        if out.shape[1] != n_prompt + 10 or not generated.startswith("the lord said"):
            failures.append(f"generate: {out.shape[1]} tokens for a {n_prompt}-token prompt "
                            f"+ 10, text {generated!r}")
        sample = run([args.qtrain, "sample", "--ckpt", "opt/ckpt.bin", "--prompt",
                      "the lord said", "--tokens", "10", "--temperature", "0", "--tokenizer",
                      "data/tokenizer.bin", "--device", "cpu"]).stdout
        sample = sample[:-1] if sample.endswith("\n") else sample  # sample ends with a newline
        # Greedy picks agree unless two logits tie within ~1e-6: printed, not asserted.
        print(f"generate: {generated!r}; qtrain sample --temperature 0: {sample!r} "
              f"({'the same' if sample == generated else 'different'})")
        for i, t in enumerate([text] + EDGE):
            with open("probe.txt", "w", encoding="utf-8", newline="") as f:
                f.write(t)
            run([args.ref, "encode", "data/tokenizer.bin", "probe.txt", "probe.ids"])
            want = np.fromfile("probe.ids", dtype=np.int32).tolist()
            got = tok(t, add_special_tokens=False)["input_ids"]
            back = tok.decode(got)
            if got != want or back != t:
                failures.append(f"tokenizer: text {i} ({t[:40]!r}...): ids equal {got == want}, "
                                f"decode equal {back == t}")
        print(f"tokenizer: {len(EDGE) + 1} texts ({len(text)} characters of corpus), "
              f"ids and decode compared")
    finally:
        os.chdir("/")
        if args.keep or failures:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"elapsed {time.time() - t0:.1f} s")
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
