# shellcheck shell=bash
# Shared helpers for scripts/test, scripts/demo and scripts/bench.
#
# Source it from a script running under `set -euo pipefail`:
#
#     . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#     keyward_venv            # Python venv with moto[server] + boto3 at $REPO/.venv
#     moto_start              # moto on a random loopback port; exports AWS_* for it
#     iam user alice          # seed IAM through scripts/seed.py (see its --help)
#
# Everything here talks to 127.0.0.1 only (plus the package registries while a
# venv is being built). Cleanups run from ONE EXIT trap that this file owns:
# register yours with `keyward_on_exit 'command'` instead of `trap ... EXIT`,
# or moto_start's cleanup would be overwritten (and moto left running).

# Repo root, from this file's location, so callers may run from any directory.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
KEYWARD_VENV="$REPO/.venv"
# Python used to create venvs; override for an unusual machine.
KEYWARD_PYTHON="${KEYWARD_PYTHON:-python3}"
# Requirements of $KEYWARD_VENV. boto3 >= 1.34 honours AWS_ENDPOINT_URL.
# cfn-lint checks deploy/issuer.yaml (tests/issuer.rs).
KEYWARD_VENV_REQUIREMENTS=('moto[server]>=5,<6' 'boto3>=1.34' 'cfn-lint>=1,<2')

kw_log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
kw_die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# Cleanup on exit

_KEYWARD_CLEANUPS=()

_keyward_run_cleanups() {
    local i
    for ((i = ${#_KEYWARD_CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${_KEYWARD_CLEANUPS[i]}" || true
    done
    _KEYWARD_CLEANUPS=()
}

# keyward_on_exit 'CMD': run CMD when the script exits (last registered runs first).
# INT and TERM are turned into an exit so cleanups also run on Ctrl-C / kill.
keyward_on_exit() {
    _KEYWARD_CLEANUPS+=("$1")
    if [[ -z ${_KEYWARD_TRAPS_SET:-} ]]; then
        trap _keyward_run_cleanups EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        _KEYWARD_TRAPS_SET=1
    fi
}

# ---------------------------------------------------------------------------
# Python virtual environments

# Debian ships `venv` without `ensurepip` unless python3-venv is installed.
_keyward_ensure_venv_module() {
    "$KEYWARD_PYTHON" -c 'import venv, ensurepip' 2>/dev/null && return 0
    command -v apt-get >/dev/null \
        || kw_die "$KEYWARD_PYTHON lacks the venv/ensurepip modules and apt-get is not available to install python3-venv"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || kw_die "need root (or sudo) to apt-get install python3-venv"
        sudo=(sudo -n)
    fi
    kw_log "installing python3-venv with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 \
        || kw_die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv </dev/null >&2 \
        || kw_die "apt-get install python3-venv failed"
    "$KEYWARD_PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
        || kw_die "$KEYWARD_PYTHON still lacks venv/ensurepip after installing python3-venv (is $KEYWARD_PYTHON Debian's python3? set KEYWARD_PYTHON=/usr/bin/python3)"
}

# venv_ensure DIR REQUIREMENT...: make DIR a working venv with exactly these
# requirements installed. Silent and fast (no Python started) when the marker
# file already holds the hash of the requirements.
venv_ensure() {
    local dir=$1
    shift
    local marker="$dir/.keyward-requirements.sha256" want
    want=$(printf '%s\n' "$@" | sha256sum | cut -d' ' -f1)
    # -x follows the bin/python symlink, so a venv whose base Python went away fails here.
    if [[ -x $dir/bin/python && -f $marker && $(<"$marker") == "$want" ]]; then
        return 0
    fi

    # Serialise concurrent scripts building the same venv.
    local lock
    lock="${TMPDIR:-/tmp}/keyward-venv.$(printf '%s' "$dir" | sha256sum | cut -c1-16).lock"
    (
        exec 9>"$lock"
        flock -w 900 9 || kw_die "timed out waiting for another process building $dir"
        if [[ -x $dir/bin/python && -f $marker && $(<"$marker") == "$want" ]]; then
            exit 0
        fi
        if [[ -e $dir ]] && ! "$dir/bin/python" -c 'import sys' >/dev/null 2>&1; then
            kw_log "removing broken venv $dir"
            rm -rf -- "$dir"
        fi
        if [[ ! -x $dir/bin/python ]]; then
            _keyward_ensure_venv_module
            kw_log "creating venv $dir"
            "$KEYWARD_PYTHON" -m venv "$dir" >&2 || kw_die "python3 -m venv $dir failed"
        fi
        kw_log "pip install into $dir: $* (with their dependencies)"
        rm -f -- "$marker"
        # What pip fetches and installs, one line each, and its errors; not its progress bars.
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/python" -m pip install --progress-bar off "$@" </dev/null 2>&1 \
            | sed -nE 's/^(Collecting |Installing collected|Successfully installed|ERROR|WARNING)/    &/p' >&2 \
            || kw_die "pip install into $dir failed: $*"
        printf '%s\n' "$want" >"$marker"
    ) || exit $?
}

# keyward_venv: $REPO/.venv with moto[server], boto3 and cfn-lint.
keyward_venv() {
    venv_ensure "$KEYWARD_VENV" "${KEYWARD_VENV_REQUIREMENTS[@]}"
}

# keymaker 1.1.0 from PyPI, for the migration end-to-end test (tests/e2e_keymaker.rs runs
# keymaker's own install in a namespace). Under target/: a build product, never this host's.
KEYMAKER_VENV="$REPO/target/e2e-keymaker-venv"
KEYMAKER_VENV_REQUIREMENTS=('keymaker==1.1.0' 'boto3>=1.34')

# keymaker_venv: $KEYMAKER_VENV with keymaker 1.1.0.
keymaker_venv() {
    venv_ensure "$KEYMAKER_VENV" "${KEYMAKER_VENV_REQUIREMENTS[@]}"
}

# ---------------------------------------------------------------------------
# moto

MOTO_PID=
MOTO_LOG=

# True when an HTTP server on 127.0.0.1:$1 answers GET /moto-api/ with 200.
_moto_answers() {
    local port=$1
    (
        exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
        printf 'GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
        IFS= read -r -t 2 status <&3 || exit 1
        [[ $status == "HTTP/1."?" 200"* ]]
    ) 2>/dev/null
}

_moto_free_port() {
    "$KEYWARD_VENV/bin/python" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# moto_start: start moto_server on a free loopback port, wait (30 s at most) until it
# answers, and point the AWS SDKs (boto3, aws-sdk-rust) at it with fake credentials.
# It is stopped by moto_stop, which is registered to run on exit.
moto_start() {
    if [[ -n $MOTO_PID ]] && kill -0 "$MOTO_PID" 2>/dev/null; then
        kw_die "moto_start: moto is already running (pid $MOTO_PID)"
    fi
    [[ -x $KEYWARD_VENV/bin/moto_server ]] || kw_die "moto_start: $KEYWARD_VENV/bin/moto_server missing; call keyward_venv first"
    MOTO_LOG=$(mktemp "${TMPDIR:-/tmp}/keyward-moto.XXXXXX.log")
    keyward_on_exit moto_stop

    local attempt port deadline
    for attempt in 1 2 3; do
        port=$(_moto_free_port)
        "$KEYWARD_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$MOTO_LOG" 2>&1 &
        MOTO_PID=$!
        deadline=$((SECONDS + 30))
        while ((SECONDS < deadline)); do
            _moto_answers "$port" && break
            kill -0 "$MOTO_PID" 2>/dev/null || break
            sleep 0.1
        done
        if _moto_answers "$port"; then
            break
        fi
        if ! kill -0 "$MOTO_PID" 2>/dev/null && grep -q 'in use' "$MOTO_LOG" && ((attempt < 3)); then
            kw_log "moto_start: port $port was taken meanwhile, retrying"
            MOTO_PID=
            continue
        fi
        local why="did not answer on 127.0.0.1:$port within 30 s"
        kill -0 "$MOTO_PID" 2>/dev/null || why="exited before answering"
        printf '%s: error: moto_server %s; its log (%s):\n' "${0##*/}" "$why" "$MOTO_LOG" >&2
        sed 's/^/    /' "$MOTO_LOG" >&2
        MOTO_LOG_KEEP=1 # the message above points at it
        moto_stop
        exit 1
    done

    export MOTO_PORT=$port
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=testing
    export AWS_SECRET_ACCESS_KEY=testing
    export AWS_REGION=us-east-1
    export AWS_DEFAULT_REGION=us-east-1
    export AWS_EC2_METADATA_DISABLED=true
    unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN
}

# moto_stop: stop the moto started by moto_start. Safe to call twice or when none runs.
moto_stop() {
    local pid=$MOTO_PID i
    MOTO_PID=
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    if [[ -n $MOTO_LOG && -z ${MOTO_LOG_KEEP:-} ]]; then
        rm -f -- "$MOTO_LOG"
    fi
}

# moto_reset: forget every resource (between test cases sharing one moto).
moto_reset() {
    iam py 'import urllib.request, os
urllib.request.urlopen(urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + "/moto-api/reset", method="POST"), timeout=10)'
}

# ---------------------------------------------------------------------------
# IAM seeding

# iam SUBCOMMAND ARGS...: run scripts/seed.py against the running moto, e.g.
#   iam user alice;  id=$(iam key alice key.pub --inactive);  iam group ops;  iam member ops alice
#   iam py 'print(iam.list_users()["Users"])'
iam() {
    [[ -n ${AWS_ENDPOINT_URL:-} ]] || kw_die "iam: AWS_ENDPOINT_URL is not set; call moto_start first"
    "$KEYWARD_VENV/bin/python" "$REPO/scripts/seed.py" "$@"
}

# ---------------------------------------------------------------------------
# Debian packages

# apt_ensure CMD:PACKAGE...: install PACKAGE with apt-get when CMD is not on PATH.
# `apt-get update` runs once, only when something is missing.
apt_ensure() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || kw_die "missing ${missing[*]} and no apt-get to install them"
    ((EUID == 0)) || kw_die "missing ${missing[*]}: run as root, or install them: apt-get install ${missing[*]}"
    kw_log "installing ${missing[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2 || kw_die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >&2 \
        || kw_die "apt-get install ${missing[*]} failed"
}

# ensure_host_packages: what the end-to-end tests and the demo run inside their namespaces
# (tests/e2e/ns): the real OpenSSH server and client, iproute2, util-linux's unshare, and sudo
# (visudo checks the sudoers file sync writes), systemd and dbus (tests/e2e/ns-systemd boots
# them inside a namespace; nothing is started on this host), util-linux's nsenter.
# Installing openssh-server or dbus must not start sshd or dbus-daemon on this host: while apt
# runs, a policy-rc.d exiting 101 tells invoke-rc.d/deb-systemd-invoke "no", and
# sshd_not_to_be_run keeps Debian's ssh.service from starting it at the next boot.
ensure_host_packages() {
    local policy= had_sshd= had_daemons=1
    [[ -x /usr/sbin/sshd ]] && had_sshd=1
    [[ -n $had_sshd && -x /usr/bin/dbus-daemon && -x /lib/systemd/systemd ]] || had_daemons=
    if ((EUID == 0)) && [[ -z $had_daemons && ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        policy=/usr/sbin/policy-rc.d
        keyward_on_exit "rm -f -- $policy"
    fi
    apt_ensure ssh-keygen:openssh-client /usr/sbin/sshd:openssh-server ssh:openssh-client \
        ip:iproute2 unshare:util-linux nsenter:util-linux /usr/sbin/visudo:sudo \
        /lib/systemd/systemd:systemd /usr/bin/dbus-daemon:dbus
    [[ -z $policy ]] || rm -f -- "$policy"
    if [[ -z $had_sshd && -d /etc/ssh ]]; then
        touch /etc/ssh/sshd_not_to_be_run
    fi
}

# ---------------------------------------------------------------------------
# Packaging tools (scripts/package). Pinned: a newer release can package differently, and the
# portable build is sensitive to the zig version (aws-lc-sys, the TLS crypto, is built by zig cc).

KEYWARD_CARGO_DEB_VERSION=3.8.0
KEYWARD_CARGO_GENERATE_RPM_VERSION=0.21.1
KEYWARD_CARGO_ZIGBUILD_VERSION=0.24.1
# Verified with aws-lc-sys 0.47 (Cargo.lock). zig 0.16.0's `zig ar` cannot create archives,
# which breaks every crate built by cc-rs; check a new version with scripts/package before
# raising this.
KEYWARD_ZIG_VERSION=0.15.2
# The venv holding the `ziglang` PyPI package (zig itself, ~50 MB); under target/ like the
# build it serves.
KEYWARD_ZIG_VENV="$REPO/target/tools/zig-venv"

# ensure_cargo_tool CRATE VERSION: CRATE at exactly VERSION, `cargo install --locked` into
# ~/.cargo/bin when it is missing or another version: minutes once on 2 cores (compiled from
# crates.io), then only `cargo install --list`. ~/.cargo/bin rather than target/: CI runs in a
# fresh clone, whose target/ is empty, on a machine that keeps ~/.cargo.
ensure_cargo_tool() {
    local crate=$1 version=$2
    cargo install --list 2>/dev/null | grep -qxF "$crate v$version:" && return 0
    kw_log "installing $crate $version with cargo install (once; minutes on 2 cores)"
    cargo install --locked --force "$crate" --version "$version" >&2 \
        || kw_die "cargo install $crate $version failed"
}

# ensure_cargo_deb: cargo-deb (the .deb).
ensure_cargo_deb() { ensure_cargo_tool cargo-deb "$KEYWARD_CARGO_DEB_VERSION"; }

# ensure_packaging_tools: cargo-deb, cargo-generate-rpm (the .rpm), cargo-zigbuild (links against
# an old glibc) and zig from PyPI's `ziglang` in $KEYWARD_ZIG_VENV. Exports
# CARGO_ZIGBUILD_PYTHON_PATH, so cargo-zigbuild runs exactly that zig (`python -m ziglang`).
ensure_packaging_tools() {
    ensure_cargo_deb
    ensure_cargo_tool cargo-generate-rpm "$KEYWARD_CARGO_GENERATE_RPM_VERSION"
    ensure_cargo_tool cargo-zigbuild "$KEYWARD_CARGO_ZIGBUILD_VERSION"
    venv_ensure "$KEYWARD_ZIG_VENV" "ziglang==$KEYWARD_ZIG_VERSION"
    local have
    have=$("$KEYWARD_ZIG_VENV/bin/python" -m ziglang version) || kw_die "zig from $KEYWARD_ZIG_VENV does not run"
    [[ $have == "$KEYWARD_ZIG_VERSION" ]] || kw_die "zig in $KEYWARD_ZIG_VENV is $have, not the pinned $KEYWARD_ZIG_VERSION"
    export CARGO_ZIGBUILD_PYTHON_PATH="$KEYWARD_ZIG_VENV/bin/python"
}

# glibc_needed BINARY: the newest GLIBC_ symbol version BINARY needs (from `objdump -T`, e.g.
# 2.17), or nothing when it names none.
glibc_needed() {
    { objdump -T -- "$1" || true; } | { grep -o 'GLIBC_[0-9][0-9.]*' || true; } \
        | sed 's/^GLIBC_//' | sort -uV | tail -n 1
}

# kw_quote WORD...: the words as one line a shell reads back as the same words (for echoing
# commands a reader may paste): plain words as they are, the others in single quotes.
kw_quote() {
    local w out=()
    for w in "$@"; do
        if [[ $w =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+=("$w"); else out+=("${w@Q}"); fi
    done
    printf '%s\n' "${out[*]}"
}
