#!/usr/bin/env bash
# get_corpus.sh: writes the default training corpus, data/kjv.txt: the King James Bible, one
# verse per line, clean English text (~4.1 MB, 31102 verses).
#
# Source: Debian's bible-kjv package (installed by the project's setup; by hand:
# `apt-get install bible-kjv`). `bible -f gen1:1-rev22:21` prints every verse on its own line,
# prefixed by its reference ("Ge1:1 In the beginning ..."); we strip the reference. The output
# is checked to be complete (31102 verses, ending in Revelation 22:21) before it replaces any
# earlier file, so a partial run never leaves a short corpus behind.
#
# Usage: scripts/get_corpus.sh [OUTPUT]   (default: data/kjv.txt under the repository root)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/data/kjv.txt}"
expected_verses=31102

if ! command -v bible >/dev/null 2>&1; then
    echo "get_corpus.sh: error: the 'bible' program is missing; install it with" \
         "'apt-get install bible-kjv' (as root) and run this script again" >&2
    exit 1
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
raw="$out.raw.$$"
trap 'rm -f "$tmp" "$raw"' EXIT

# -f toggles pretty-printing off: one verse per line with its reference, no line wrapping.
bible -f gen1:1-rev22:21 > "$raw"

last="$(tail -n 1 "$raw")"
case "$last" in
    Rev22:21\ *) ;;
    *) echo "get_corpus.sh: error: bible output is incomplete: it ends in '${last:0:40}'," \
            "not Revelation 22:21; reinstall bible-kjv-text" >&2
       exit 1 ;;
esac
verses="$(wc -l < "$raw")"
if [ "$verses" -ne "$expected_verses" ]; then
    echo "get_corpus.sh: error: bible printed $verses verses, expected $expected_verses;" \
         "reinstall bible-kjv-text" >&2
    exit 1
fi
# Every line must start with a reference (book, chapter:verse); anything else means the
# program's output format changed and the stripping below would leave junk in the text.
if LC_ALL=C grep -qvE '^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ ' "$raw"; then
    echo "get_corpus.sh: error: unexpected line format in bible output:" \
         "$(LC_ALL=C grep -m1 -vE '^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ ' "$raw" | cut -c1-60)" >&2
    exit 1
fi

LC_ALL=C sed -E 's/^[1-3]?[A-Za-z]+[0-9]+:[0-9]+ //' "$raw" > "$tmp"
sync "$tmp" 2>/dev/null || true
mv -f "$tmp" "$out"
echo "get_corpus.sh: wrote $out ($(wc -c < "$out") bytes, $verses verses)"
