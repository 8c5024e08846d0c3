#!/usr/bin/env bash
# test_corpus_filters.sh: the prose filters of scripts/get_corpus.sh --corpus docs on small
# reStructuredText and POD samples (each kind of block they must drop or keep), and the
# script's refusals: an unknown corpus name, and missing packages naming the apt-get command.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$tmp/sample.rst" <<'RST'
.. SPDX-License-Identifier: GPL-2.0

==================
The page allocator
==================

The :c:func:`alloc_pages` function hands out ``2^order`` contiguous pages, see
`the guide <https://example.org/guide>`_ for **more** details on *zones* here::

    struct page *p = alloc_pages(GFP_KERNEL, 0);

+------+------+
| a    | b    |
+------+------+

   An indented block quote that is not body text at all, even with many words.

- A list item that explains how the allocator falls back to a slower path when needed.

Too short to keep.

>>> print("an interactive session line with quite a few words in it")
RST
LC_ALL=C awk -f "$root/scripts/corpus/rst_prose.awk" "$tmp/sample.rst" > "$tmp/rst.out"
want1='The alloc_pages function hands out 2^order contiguous pages, see the guide for more details on zones here:'
want2='A list item that explains how the allocator falls back to a slower path when needed.'
[ "$(sed -n 1p "$tmp/rst.out")" = "$want1" ] || fail "rst line 1: '$(sed -n 1p "$tmp/rst.out")'"
[ "$(sed -n 2p "$tmp/rst.out")" = "$want2" ] || fail "rst line 2: '$(sed -n 2p "$tmp/rst.out")'"
[ "$(wc -l < "$tmp/rst.out")" -eq 2 ] || fail "rst kept $(wc -l < "$tmp/rst.out") lines: $(cat "$tmp/rst.out")"

cat > "$tmp/Sample.pm" <<'POD'
package Sample;
sub code_outside_pod { return "this is Perl code, never text of the corpus at all"; }
1;
__END__

=head1 DESCRIPTION

The B<sample> module calls C<< $obj->method >> and L<the manual|perlfunc/open> whenever it
needs to open I<a file> for reading and writing.

    my $verbatim = "code paragraph with enough words to pass the count";

=item *

Short item.

=cut

sub more_code { "after cut this is code again and must not appear anywhere" }
POD
perl "$root/scripts/corpus/pod_prose.pl" < "$tmp/Sample.pm" > "$tmp/pod.out"
want='The sample module calls $obj->method and the manual whenever it needs to open a file for reading and writing.'
[ "$(cat "$tmp/pod.out")" = "$want" ] || fail "pod: '$(cat "$tmp/pod.out")'"

if out="$(bash "$root/scripts/get_corpus.sh" --corpus novels "$tmp/x.txt" 2>&1)"; then
    fail "an unknown corpus was accepted"
fi
case "$out" in *"use kjv or docs"*) ;; *) fail "unknown corpus: '$out'" ;; esac
if out="$(QT_CORPUS_ROOT="$tmp/empty" bash "$root/scripts/get_corpus.sh" --corpus docs \
          "$tmp/x.txt" 2>&1)"; then
    fail "the docs corpus was made without its packages"
fi
case "$out" in *"apt-get install linux-doc python3-doc perl-doc"*) ;;
    *) fail "missing packages: '$out'" ;; esac
[ ! -e "$tmp/x.txt" ] || fail "a refused run left $tmp/x.txt behind"
echo "corpus filters: the rst and pod samples and both refusals are as expected"
