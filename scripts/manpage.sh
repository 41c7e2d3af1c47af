#!/usr/bin/env bash
# Builds a manual page from its frame in packaging/man/ and what a program
# prints, so the page cannot drift from the program: in TEMPLATE, a line
# @HELP@ becomes the output of CMD (its --help: kept as written, in a .nf
# block, escaped for roff) and a line @ROFF@ the output of CMD taken as roff
# (cascade --help-config=man). Run by the build (CMakeLists.txt, target man).
# Usage: scripts/manpage.sh TEMPLATE OUT CMD [ARGS...]
set -euo pipefail
template=$1 out=$2
shift 2
text=$("$@")
{
    while IFS= read -r line || [ -n "$line" ]; do
        case $line in
        @HELP@)
            echo ".nf"
            # \ -> \e, - -> \-, a line starting with . or ' guarded by \&
            printf '%s\n' "$text" | sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
            echo ".fi"
            ;;
        @ROFF@) printf '%s\n' "$text" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$template"
} >"$out.tmp"
mv "$out.tmp" "$out"
