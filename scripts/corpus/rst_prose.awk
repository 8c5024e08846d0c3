# rst_prose.awk: the prose of reStructuredText (the Linux kernel's and Python's documentation
# sources), one paragraph per output line; used by scripts/get_corpus.sh --corpus docs.
#
# Kept: paragraphs that start at column 0 (body text and list items), joined into one line,
# with inline markup reduced to its text (:role:`text` -> text, ``literal`` -> literal,
# `text <target>`_ -> text, **strong** and *emphasis* -> their words, "::" -> ":").
# Dropped: indented paragraphs (literal blocks, directive bodies, block quotes), directives and
# comments (".."), interactive sessions and shell lines (">>>", "$ ", "# "), tables (lines
# starting with + or |, or "=== ===" borders), title rules, and paragraphs of fewer than 8 words
# or with less than 85% letters and spaces (code, numbers, symbol soup). POSIX awk (mawk).
BEGIN { RS = ""; FS = "\n" }
{
    first = $1
    if (first ~ /^[ \t]/) next
    if (first ~ /^\.\./) next
    if (first ~ /^(>>>|\$ |# )/) next
    text = ""; bad = 0
    for (i = 1; i <= NF; i++) {
        line = $i
        if (line ~ /^[+|]/ || line ~ /^=+( +=+)+ *$/) { bad = 1; break }
        if (line ~ /^[-=~^"'`#*+:.][-=~^"'`#*+:.][-=~^"'`#*+:.]+ *$/) continue
        # An indented block after a "::" line is a literal block glued to its paragraph.
        if (line ~ /^[ \t]/ && i > 1 && $(i - 1) ~ /::$/) break
        text = text " " line
    }
    if (bad) next
    gsub(/[ \t]+/, " ", text)
    sub(/^ /, "", text)
    sub(/^([-*+]|[0-9]+\.|#\.|\([0-9a-z]+\)) /, "", text)
    gsub(/:[a-z:]+:`~?/, "`", text)
    gsub(/``/, "", text)
    gsub(/ <[^>`]*>`_*/, "`", text)
    gsub(/`_*/, "", text)
    gsub(/\*/, "", text)
    gsub(/\|/, "", text)
    sub(/::$/, ":", text)
    gsub(/ ::/, ":", text)
    n = split(text, words, " ")
    if (n < 8) next
    letters = text
    nl = gsub(/[A-Za-z ]/, "", letters)
    if (nl < 0.85 * length(text)) next
    print text
}
