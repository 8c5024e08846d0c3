#!/usr/bin/env bash
# get_corpus.sh: writes a training corpus of real English text from Debian packages, offline.
#
#   scripts/get_corpus.sh [--corpus kjv|docs] [OUTPUT]
#
# kjv (the default): data/kjv.txt, the King James Bible, one verse per line (~4.1 MB, 31102
#   verses, public domain). Source: Debian's bible-kjv package (installed by the project's
#   setup; by hand: `apt-get install bible-kjv`). `bible -f gen1:1-rev22:21` prints every verse
#   on its own line, prefixed by its reference ("Ge1:1 In the beginning ..."); we strip the
#   reference. The output is checked to be complete (31102 verses, ending in Revelation 22:21)
#   before it replaces any earlier file, so a partial run never leaves a short corpus behind.
#
# docs: data/docs.txt, about 22 MB (3.7M words) of English prose from three documentation
#   packages of Debian's main archive, one paragraph per line (code, tables, markup removed by
#   scripts/corpus/rst_prose.awk and pod_prose.pl; files in sorted order, so the output is the
#   same on every machine with the same package versions):
#     linux-doc     the Linux kernel's Documentation/ (reStructuredText; GPL-2.0 for most
#                   files, some GFDL-1.1-or-later, BSD-2-Clause or CC-BY-4.0, per their SPDX
#                   lines; translations/ left out)
#     python3-doc   the Python documentation's sources (html/_sources; PSF License 2.0)
#     perl-doc      Perl's manual pages (pod/) and, from perl itself, its modules' POD
#                   (GPL-1.0-or-later or Artistic License 1.0)
#   Install them first (as root, about 280 MB): apt-get install linux-doc python3-doc perl-doc
#   QT_CORPUS_ROOT=DIR reads the packages' files under DIR instead of / (e.g. .debs unpacked
#   with dpkg-deb -x).
#
# Default OUTPUT: data/<corpus>.txt under the repository root.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
corpus=kjv
if [ "${1:-}" = "--corpus" ]; then
    corpus="${2:-}"
    shift 2 || { echo "get_corpus.sh: error: --corpus needs a name: kjv or docs" >&2; exit 1; }
fi
case "$corpus" in
    kjv|docs) ;;
    *) echo "get_corpus.sh: error: --corpus $corpus is not a corpus; use kjv or docs" >&2
       exit 1 ;;
esac
out="${1:-$root/data/$corpus.txt}"

if [ "$corpus" = docs ]; then
    base="${QT_CORPUS_ROOT:-}"
    kernel=( "$base"/usr/share/doc/linux-doc-*/Documentation )
    python=()
    for d in "$base"/usr/share/doc/python3*/html/_sources; do
        [ -d "$d" ] && python+=( "$(readlink -f "$d")" )
    done
    # The python3.X-dev, -venv, -doc docs are links to one folder: read it once.
    if [ ${#python[@]} -gt 0 ]; then
        mapfile -t python < <(printf '%s\n' "${python[@]}" | LC_ALL=C sort -u)
    fi
    perl_dirs=()
    for d in "$base"/usr/share/perl/5.*; do
        [ -d "$d" ] && [ ! -L "$d" ] && perl_dirs+=( "$d" )
    done
    missing=()
    [ -d "${kernel[0]}" ] || missing+=(linux-doc)
    [ ${#python[@]} -gt 0 ] || missing+=(python3-doc)
    [ ${#perl_dirs[@]} -gt 0 ] && [ -d "${perl_dirs[0]}/pod" ] || missing+=(perl-doc)
    command -v perl >/dev/null 2>&1 || missing+=(perl)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "get_corpus.sh: error: the docs corpus needs ${missing[*]}; install them with" \
             "'apt-get install linux-doc python3-doc perl-doc' (as root, about 280 MB) and" \
             "run this script again" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$out")"
    tmp="$out.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    here="$root/scripts/corpus"
    : > "$tmp"
    for d in "${kernel[@]}"; do
        find "$d" -name '*.rst.gz' -not -path '*/translations/*' -print0 | LC_ALL=C sort -z |
            xargs -0 -r -n 200 sh -c 'for f; do gzip -dc "$f"; printf "\n\n"; done' sh |
            LC_ALL=C awk -f "$here/rst_prose.awk" >> "$tmp"
    done
    kernel_bytes=$(wc -c < "$tmp")
    for d in "${python[@]}"; do
        find "$d" -name '*.rst.txt' -print0 | LC_ALL=C sort -z |
            xargs -0 -r -n 200 sh -c 'for f; do cat "$f"; printf "\n\n"; done' sh |
            LC_ALL=C awk -f "$here/rst_prose.awk" >> "$tmp"
    done
    python_bytes=$(( $(wc -c < "$tmp") - kernel_bytes ))
    for d in "${perl_dirs[@]}"; do
        find "$d" \( -name '*.pod' -o -name '*.pm' \) -print0 | LC_ALL=C sort -z |
            xargs -0 -r -n 200 sh -c 'for f; do cat "$f"; printf "\n=cut\n\n"; done' sh |
            LC_ALL=C perl "$here/pod_prose.pl" >> "$tmp"
    done
    total=$(wc -c < "$tmp")
    perl_bytes=$(( total - kernel_bytes - python_bytes ))
    # A corpus this short means a package's layout changed and a filter found nothing.
    if [ "$kernel_bytes" -lt 1000000 ] || [ "$python_bytes" -lt 500000 ] ||
       [ "$perl_bytes" -lt 500000 ]; then
        echo "get_corpus.sh: error: the docs corpus came out short (kernel $kernel_bytes," \
             "python $python_bytes, perl $perl_bytes bytes); check the packages' files" >&2
        exit 1
    fi
    sync "$tmp" 2>/dev/null || true
    mv -f "$tmp" "$out"
    echo "get_corpus.sh: wrote $out ($total bytes, $(wc -w < "$out") words, $(wc -l < "$out")" \
         "paragraphs: Linux kernel docs $kernel_bytes, Python docs $python_bytes, Perl docs" \
         "$perl_bytes bytes)"
    exit 0
fi

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
