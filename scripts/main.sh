#!/usr/bin/env bash
# The main job: install, build, prepare the default corpus (King James Bible -> BPE 4096
# tokenizer -> shards), train the default model on the CPU, then evaluate it (perplexity and
# the outlier metrics), evaluate its W8A8 post-training quantization, and sample from it.
# Extra arguments go to `qtrain train` (e.g. --set attn.softmax=ncs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
[ -s data/kjv.txt ] || bash scripts/get_corpus.sh
[ -s data/kjv/tokenizer.bin ] || ./build/qtrain prepare --input data/kjv.txt --out data/kjv
./build/qtrain train --config configs/default.conf --out runs/default "$@"
./build/qtrain eval --ckpt runs/default/ckpt.bin
echo
# W8A8 post-training quantization: FP, fake-quantized and INT8-GEMM perplexity side by side.
./build/qtrain eval --ckpt runs/default/ckpt.bin --quant w8a8
echo
./build/qtrain sample --ckpt runs/default/ckpt.bin --prompt "And God said" --tokens 60
