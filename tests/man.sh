#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The manual pages and the bash completion the build makes and installs:
#   - man/globalalloc.1 and man/globalalloc.3 exist, and render with man -l (groff: no warning);
#   - globalalloc.1 names every command the CLI knows and every environment variable the code
#     reads (each getenv("...") in src/ and tools/), and --help prints the same manual;
#   - globalalloc.3 names every public function (GA_API in the headers) and every environment
#     variable the library reads;
#   - the completion offers every command, each command's options, MODE values and heap names.
# Env: GA_BUILD_DIR, GA_SOURCE_DIR (set by ctest).
set -u
build=${GA_BUILD_DIR:?set GA_BUILD_DIR}
src=${GA_SOURCE_DIR:?set GA_SOURCE_DIR}
cli=$build/tools/globalalloc
tmp=$(mktemp -d)
heap="mantest$$"
trap 'rm -rf "$tmp" "/dev/shm/ga.$heap"' EXIT
passes=0
fails=0
ok() { passes=$((passes + 1)); }
bad() {
    fails=$((fails + 1))
    echo "man.sh: FAILED: $*"
}

# render PAGE OUT: the page as text, through man -l (or groff), with roff warnings failing.
render() {
    if command -v groff >/dev/null; then
        warnings=$(groff -man -Tutf8 -ww -z "$1" 2>&1)
        if [[ -n "$warnings" ]]; then bad "$1: groff warnings: $warnings"; else ok; fi
    fi
    if command -v man >/dev/null; then
        MANWIDTH=100 MAN_KEEP_FORMATTING= man -l "$1" 2>"$tmp/man.err" | col -b >"$2"
    else
        groff -man -Tutf8 "$1" | col -b >"$2"
    fi
    if grep -q '^NAME' "$2" && [[ $(wc -l <"$2") -gt 30 ]]; then ok; else
        bad "$1 does not render: $(head -c 300 "$tmp/man.err" 2>/dev/null)"
    fi
}
# has TEXTFILE WORD WHAT: WORD appears in TEXTFILE as a word.
has() { if grep -qw -- "$2" "$1"; then ok; else bad "$3 does not name $2"; fi; }

# every getenv("NAME") of the given directories
envs() { grep -rhoE 'getenv\("[A-Za-z_0-9]+"\)' "$@" | sed -E 's/getenv\("(.*)"\)/\1/' | sort -u; }

# ---- man 3: the API ---------------------------------------------------------------------------
page3=$build/man/globalalloc.3
if [[ -f $page3 ]]; then
    ok
    render "$page3" "$tmp/man3.txt"
    api=$(sed -nE 's/^GA_API [^(]*[ *]([A-Za-z_][A-Za-z_0-9]*)\(.*/\1/p' \
        "$src/include/globalalloc.h" "$src/include/globalalloc/win32.h")
    [[ $(wc -w <<<"$api") -gt 50 ]] && ok || bad "found only $(wc -w <<<"$api") GA_API names"
    for f in $api; do has "$tmp/man3.txt" "$f" "man 3 globalalloc"; done
    lib_envs=$(envs "$src/src")
    [[ -n "$lib_envs" ]] && ok || bad "no getenv found in src/"
    for v in $lib_envs; do has "$tmp/man3.txt" "$v" "man 3 globalalloc"; done
else
    bad "$page3 not built"
fi

# ---- man 1: the CLI ---------------------------------------------------------------------------
if [[ ! -x $cli ]]; then
    echo "man.sh: $cli not built: man 1 and the completion not checked"
    echo "man.sh: $passes passed, $fails failed"
    [[ $fails -eq 0 ]]
    exit
fi
page1=$build/man/globalalloc.1
if [[ -f $page1 ]]; then ok; else bad "$page1 not built"; fi
render "$page1" "$tmp/man1.txt"
"$cli" --help >"$tmp/help.txt"
# The commands the CLI knows: its table of command words.
commands=$(sed -n '/known\[\] = {/,/};/p' "$src/tools/globalalloc.c" | grep -o '"[a-z]*"' | tr -d '"')
[[ $(wc -w <<<"$commands") -ge 8 ]] && ok || bad "CLI command table not found: '$commands'"
for c in $commands; do
    has "$tmp/man1.txt" "$c" "man globalalloc"
    has "$tmp/help.txt" "$c" "globalalloc --help"
done
all_envs=$(envs "$src/src" "$src/tools")
for v in $all_envs; do
    has "$tmp/man1.txt" "$v" "man globalalloc"
    has "$tmp/help.txt" "$v" "globalalloc --help"
done
for section in SYNOPSIS DESCRIPTION COMMANDS OPTIONS ENVIRONMENT "EXIT STATUS" FILES EXAMPLES; do
    if grep -q "^$section" "$tmp/man1.txt" && grep -q "^$section" "$tmp/help.txt"; then ok; else
        bad "section $section missing from the man page or --help"
    fi
done

# ---- bash completion ----------------------------------------------------------------------------
comp=$src/tools/globalalloc.bash-completion
if bash -n "$comp"; then ok; else bad "$comp: syntax error"; fi
: >"/dev/shm/ga.$heap"
# complete WORDS...: the completions offered for the last word (may be empty).
complete_words() {
    bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _globalalloc
             printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
offered=$(complete_words globalalloc "")
for c in $commands; do
    if grep -qx "$c" <<<"$offered"; then ok; else bad "completion does not offer command $c"; fi
done
check_offers() { # check_offers WANT WORDS...
    local want=$1
    shift
    if complete_words "$@" | grep -qx -- "$want"; then ok; else
        bad "completion of '$*' does not offer $want"
    fi
}
check_offers --mode globalalloc create --
check_offers 0660 globalalloc create --mode ""
check_offers --all globalalloc --json owners --
check_offers --force globalalloc rm -
check_offers "$heap" globalalloc stat mantest
check_offers "$heap" globalalloc --json owners --all ""
check_offers -- globalalloc leaks -e 3 ""

echo "man.sh: $passes passed, $fails failed"
[[ $fails -eq 0 ]]
