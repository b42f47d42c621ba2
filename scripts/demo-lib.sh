# shellcheck shell=bash
# What the demos' namespace scripts share (scripts/demo-namespace.sh, demo-certs-namespace.sh,
# demo-reach-namespace.sh, run by tests/e2e/ns): scripts/lib.sh for kw_quote, tests/e2e/lib.sh
# for its helpers (iam, step, note, fail, ...; sourced second, so that they win), and how a demo
# shows a command and what it said.
# shellcheck source=scripts/lib.sh
. "$E2E_REPO/scripts/lib.sh"
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

# show CMD ARGS...: echo the command, quoted so that it can be pasted, then run it; its output
# indented. Returns the command's exit code.
show() {
    printf '   $ %s\n' "$(kw_quote "$@")" >&2
    "$@" 2>&1 | sed 's/^/   | /' >&2
    return "${PIPESTATUS[0]}"
}

# show_sh 'PIPELINE': echo a shell pipeline as written, then run it with bash.
show_sh() {
    printf '   $ %s\n' "$1" >&2
    bash -c "$1" 2>&1 | sed 's/^/   | /' >&2
}

# indent: stdin shown as show shows a command's output.
indent() { sed 's/^/   | /' >&2; }
