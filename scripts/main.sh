#!/usr/bin/env bash
# The main job: install, build, prepare the default corpus (King James Bible -> BPE 4096
# tokenizer -> shards), train the default model on the CPU, then evaluate it and print the
# outlier metrics. Extra arguments go to `qtrain train` (e.g. --set attn.softmax=ncs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
[ -s data/kjv.txt ] || bash scripts/get_corpus.sh
[ -s data/kjv/tokenizer.bin ] || ./build/qtrain prepare --input data/kjv.txt --out data/kjv
./build/qtrain train --config configs/default.conf --out runs/default "$@"
./build/qtrain eval --ckpt runs/default/ckpt.bin
echo
./build/qtrain sample --ckpt runs/default/ckpt.bin --prompt "And God said" --tokens 60
