# pod_prose.pl: the prose of Perl's POD documentation, one paragraph per output line; used by
# scripts/get_corpus.sh --corpus docs. Reads POD (or .pm files: only their POD blocks, from a
# =command to =cut) on standard input.
#
# Kept: ordinary paragraphs, joined into one line, formatting codes reduced to their text
# (L<text|target> -> text, C<< code >> -> code, B<...>, I<...>, C<...>, F<...> -> ...).
# Dropped: command paragraphs (=head1, =item, ...), verbatim (indented) paragraphs, and
# paragraphs of fewer than 8 words or with less than 85% letters and spaces.
use strict;
use warnings;

my ($in_pod, $buf) = (0, "");
while (my $line = <STDIN>) {
    if ($line =~ /^=(\w+)/) {
        $in_pod = $1 ne "cut";
        $buf .= "\n";    # a command is a paragraph of its own
        next;
    }
    $buf .= $line if $in_pod;
}
for my $p (split /\n[ \t]*\n/, $buf) {
    next if $p =~ /^\s*$/ || $p =~ /^[ \t]/;
    $p =~ s/L<([^|<>]*)\|[^<>]*>/$1/g;
    $p =~ s/[A-Z]<<+\s+(.*?)\s+>>+/$1/gs;
    1 while $p =~ s/[A-Z]<([^<>]*)>/$1/g;
    $p =~ s/\s+/ /g;
    $p =~ s/^ | $//g;
    my @words = split / /, $p;
    next if @words < 8;
    (my $letters = $p) =~ s/[^A-Za-z ]//g;
    next if length($letters) < 0.85 * length($p);
    print "$p\n";
}
