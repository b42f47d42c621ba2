# shellcheck shell=bash
# Helpers for end-to-end scenarios. Only meaningful inside the namespace made by tests/e2e/ns,
# which exports E2E_REPO, E2E_WORK, KEYWARD (the binary at /run/keyward/bin/keyward),
# AWS_ENDPOINT_URL (moto), E2E_AWS_CONFIG and E2E_SSHD_LOG, and runs sshd on 127.0.0.1:22.
#
# A scenario is a bash script that starts with
#     . "$E2E_LIB"
# and fails (exit non-zero, via `fail`) at the first fact that does not hold.
set -euo pipefail

[[ -n ${E2E_REPO:-} && -n ${KEYWARD:-} ]] || {
    echo "tests/e2e/lib.sh: run scenarios through tests/e2e/ns, never on the host" >&2
    exit 1
}

E2E_PY=$E2E_REPO/.venv/bin/python
# Where hashed UIDs land (keyward's default uid_range).
E2E_UID_MIN=1879048192
E2E_UID_MAX=2147352575

step() { printf '\n== %s\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------------------
# IAM (moto)

# iam SUBCOMMAND ARGS...: scripts/seed.py against this namespace's moto (see its --help);
# always moto itself, also once fault_proxy_start put a proxy in front of it for keyward.
iam() { AWS_ENDPOINT_URL=${E2E_MOTO_URL:-$AWS_ENDPOINT_URL} "$E2E_PY" "$E2E_REPO/scripts/seed.py" "$@"; }

# iam_user_id NAME: the IAM user's immutable UserId.
iam_user_id() {
    iam py 'print(iam.get_user(UserName=args[0])["User"]["UserId"])' "$1"
}

# expected_uid USER_ID: keyward's hashed UID, computed independently of keyward: the first
# 8 bytes of SHA-256(UserId) as a big-endian integer, modulo the range size, plus its start.
expected_uid() {
    "$E2E_PY" -c '
import hashlib, sys
lo, hi = int(sys.argv[2]), int(sys.argv[3])
h = int.from_bytes(hashlib.sha256(sys.argv[1].encode()).digest()[:8], "big")
print(lo + h % (hi - lo + 1))' "$1" "$E2E_UID_MIN" "$E2E_UID_MAX"
}

# keygen NAME: an ed25519 key pair at $E2E_WORK/NAME (+ .pub); prints the private key's path.
keygen() {
    local f=$E2E_WORK/$1
    ssh-keygen -q -t ed25519 -N '' -C "$1@e2e" -f "$f" </dev/null >/dev/null
    printf '%s\n' "$f"
}

# ---------------------------------------------------------------------------
# Fault-injecting proxy (tests/faultproxy.py, rules described there) in front of moto

# fault_proxy_start: start the proxy on a free loopback port in front of this namespace's moto
# and point keyward at it: AWS_ENDPOINT_URL for keyward run here, and the endpoint_url of
# $E2E_AWS_CONFIG for keyward run by sshd/PAM. `iam` keeps seeding moto directly. Sets
# E2E_MOTO_URL, E2E_PROXY_URL, E2E_PROXY_PID, E2E_FAULT_RULES and E2E_FAULT_LOG.
fault_proxy_start() {
    E2E_MOTO_URL=${E2E_MOTO_URL:-$AWS_ENDPOINT_URL}
    E2E_FAULT_RULES=$E2E_WORK/fault-rules.json
    E2E_FAULT_LOG=$E2E_WORK/fault-requests.log
    printf '[]\n' >"$E2E_FAULT_RULES"
    : >"$E2E_FAULT_LOG"
    local said=$E2E_WORK/faultproxy.stderr port=
    # Created here, not by the background job's redirection, which the first read could precede.
    : >"$said"
    "$E2E_PY" "$E2E_REPO/tests/faultproxy.py" --upstream "$E2E_MOTO_URL" --port 0 \
        --rules "$E2E_FAULT_RULES" --log "$E2E_FAULT_LOG" </dev/null >/dev/null 2>"$said" &
    E2E_PROXY_PID=$!
    local deadline=$((SECONDS + 30))
    until port=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)$|\1|p' "$said") && [[ -n $port ]]; do
        kill -0 "$E2E_PROXY_PID" 2>/dev/null || fail "tests/faultproxy.py died: $(cat "$said")"
        ((SECONDS < deadline)) || fail "tests/faultproxy.py did not announce its port within 30s"
        sleep 0.1
    done
    E2E_PROXY_URL=http://127.0.0.1:$port
    export E2E_MOTO_URL E2E_PROXY_URL AWS_ENDPOINT_URL=$E2E_PROXY_URL
    sed -i "s|^endpoint_url = .*|endpoint_url = $E2E_PROXY_URL|" "$E2E_AWS_CONFIG"
    grep -qx "endpoint_url = $E2E_PROXY_URL" "$E2E_AWS_CONFIG" || fail "could not point $E2E_AWS_CONFIG at the proxy"
    note "fault proxy on $E2E_PROXY_URL in front of moto on $E2E_MOTO_URL"
}

# fault_set JSON: replace the proxy's rules (a JSON list, see tests/faultproxy.py), atomically;
# e.g. fault_set '[{"action": "ListGroups", "fault": "drop:Groups"}]'.
fault_set() {
    printf '%s\n' "$1" >"$E2E_FAULT_RULES.tmp"
    mv -f -- "$E2E_FAULT_RULES.tmp" "$E2E_FAULT_RULES"
}

# fault_clear: no rules, every request forwarded unchanged.
fault_clear() { fault_set '[]'; }

# fault_count ACTION [FAULT]: how many ACTION requests the proxy saw (with FAULT, only those).
fault_count() {
    awk -v a="$1" -v f="${2:-}" '$1 == a && (f == "" || $3 == f) { n++ } END { print n + 0 }' "$E2E_FAULT_LOG"
}

# ---------------------------------------------------------------------------
# keyward's host configuration

# write_config TOML_LINE...: /etc/keyward/keyward.toml with these lines plus the emulator's
# settings (sshd and PAM start keyward with a bare environment: AWS_* never reach it).
write_config() {
    install -d -o root -g root -m 0755 /etc/keyward
    {
        printf 'aws_config_file = "%s"\n' "$E2E_AWS_CONFIG"
        printf '%s\n' "$@"
    } >/etc/keyward/keyward.toml
    chmod 0644 /etc/keyward/keyward.toml
}

# ---------------------------------------------------------------------------
# sshd

# The sshd that ns started: its pid survives reloads (sshd re-executes itself in place, and
# removes /run/sshd.pid meanwhile, so the file is no reliable source right after a SIGHUP).
sshd_pid() { printf '%s\n' "$E2E_SSHD_PID"; }

sshd_answers() {
    (
        exec 3<>/dev/tcp/127.0.0.1/22 || exit 1
        IFS= read -r -t 2 banner <&3 || exit 1
        [[ $banner == SSH-2.0-* ]]
    ) 2>/dev/null
}

# sshd_reload: SIGHUP (sshd re-executes itself with the new config, same pid), then wait until
# it answers again.
sshd_reload() {
    local pid
    pid=$(sshd_pid)
    /usr/sbin/sshd -t || fail "sshd -t rejects the configuration; not reloading"
    kill -HUP "$pid"
    sleep 0.5
    local deadline=$((SECONDS + 30))
    until sshd_answers; do
        kill -0 "$pid" 2>/dev/null || fail "sshd (pid $pid) died on reload"
        ((SECONDS < deadline)) || fail "sshd did not answer within 30s after reload"
        sleep 0.1
    done
}

# ssh_key USER KEY [COMMAND...]: a publickey-only login (no agent, no prompts), 20 s at most.
# Prints the command's stdout; returns ssh's exit code (255: not let in). With E2E_SSH_ALGS set
# (e.g. ssh-ed25519-cert-v01@openssh.com), ssh offers only identities of those algorithms: the
# certificate KEY-cert.pub and not the plain key.
ssh_key() {
    local user=$1 key=$2
    shift 2
    timeout 20 ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        ${E2E_SSH_ALGS:+-o PubkeyAcceptedAlgorithms="$E2E_SSH_ALGS"} \
        -o BatchMode=yes -o PreferredAuthentications=publickey -o IdentitiesOnly=yes \
        -o IdentityAgent=none -o ConnectTimeout=10 -o LogLevel=ERROR \
        -i "$key" -p 22 -- "$user@127.0.0.1" "${@:-id -u}" </dev/null
}

# ssh_kbdint USER: one keyboard-interactive attempt answering nothing, as a person without a
# password would; always refused, but PAM's auth stack (keyward's pam_exec hook) runs.
ssh_kbdint() {
    local askpass=$E2E_WORK/askpass-empty
    if [[ ! -x $askpass ]]; then
        printf '#!/bin/sh\necho\n' >"$askpass"
        chmod 0755 "$askpass"
    fi
    SSH_ASKPASS=$askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' \
        timeout 20 setsid -w ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=no -o PreferredAuthentications=keyboard-interactive \
        -o NumberOfPasswordPrompts=1 -o IdentityAgent=none -o ConnectTimeout=10 -o LogLevel=ERROR \
        -p 22 -- "$1@127.0.0.1" true </dev/null >/dev/null 2>&1
}

# expect_login USER KEY: USER gets in with KEY and is USER there; prints `id -u` output.
expect_login() {
    local out rc=0
    out=$(ssh_key "$1" "$2" 'id -un; id -u') || rc=$?
    ((rc == 0)) || fail "$1 with key $(basename "$2") was not let in (ssh exit $rc)"
    [[ $(sed -n 1p <<<"$out") == "$1" ]] || fail "$1 logged in as someone else: $out"
    sed -n 2p <<<"$out"
}

# expect_refused USER KEY: USER does not get in with KEY.
expect_refused() {
    local rc=0
    ssh_key "$1" "$2" true >/dev/null 2>&1 || rc=$?
    ((rc == 255)) || fail "$1 with key $(basename "$2"): expected refusal (ssh exit 255), got exit $rc"
}

# ---------------------------------------------------------------------------
# Local accounts and files

has_account() { getent passwd "$1" >/dev/null; }

# snapshot PATH...: one line per file under PATHs (path, mode, owner, sha256), for equality checks.
snapshot() {
    local p
    for p in "$@"; do
        [[ -e $p ]] || {
            printf '%s absent\n' "$p"
            continue
        }
        find "$p" \( -type f -o -type l -o -type d \) -printf '%p %m %U %G %l\n'
        find "$p" -type f -exec sha256sum -- {} +
    done | LC_ALL=C sort
}

# same_snapshot WHAT BEFORE AFTER: fail with the difference unless equal.
same_snapshot() {
    [[ $2 == "$3" ]] && return 0
    diff <(printf '%s\n' "$2") <(printf '%s\n' "$3") >&2 || true
    fail "$1"
}

# ---------------------------------------------------------------------------
# Hand-made wiring (what `keyward install` automates), for scenarios that test the lookup
# path alone.

# hand_wire: system user keyward, its cache dir, and an sshd drop-in asking keyward for keys.
hand_wire() {
    has_account keyward || useradd --system --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin keyward
    install -d -o keyward -g keyward -m 0755 /var/cache/keyward
    install -d -o root -g root -m 0755 /var/lib/keyward /var/lib/keyward/accounts
    cat >/etc/ssh/sshd_config.d/50-keyward-e2e.conf <<EOF
AuthorizedKeysCommand $KEYWARD authorized-keys %u %f %k
AuthorizedKeysCommandUser keyward
EOF
    sshd_reload
}

# owned_account LINUX_NAME UID [IAM_USER]: a local account as keyward would create it, with the
# root-owned ownership record (UID and IAM UserId) that makes it keyward's.
owned_account() {
    local iam_user=${3:-$1}
    # --no-log-init: no lastlog/faillog record (a sparse file as large as the UID).
    useradd --uid "$2" --user-group --create-home --no-log-init --shell /bin/sh "$1"
    install -d -o root -g root -m 0755 /var/lib/keyward /var/lib/keyward/accounts
    printf '{"iam_user": "%s", "iam_user_id": "%s", "uid": %s, "created_at": %s}\n' \
        "$iam_user" "$(iam_user_id "$iam_user")" "$2" "$(date +%s)" >"/var/lib/keyward/accounts/$1"
    chmod 0644 "/var/lib/keyward/accounts/$1"
}

# ---------------------------------------------------------------------------
# keyward install / uninstall

# The inode of /run/sshd.pid, or "none": sshd replaces the file when it restarts on SIGHUP.
_sshd_pidfile_inode() { stat -c %i /run/sshd.pid 2>/dev/null || echo none; }

# host_cmd install|uninstall ARGS...: run `keyward install/uninstall` on this host, show what it
# said, and once it reloaded sshd, wait until sshd has restarted and answers again (sshd closes
# its listening socket while it re-executes itself). Returns keyward's exit code; its output is
# in $HOST_OUT.
host_cmd() {
    local before rc=0 deadline
    before=$(_sshd_pidfile_inode)
    HOST_OUT=$("$KEYWARD" "$@" 2>&1) || rc=$?
    # shellcheck disable=SC2001 # a prefix on every line
    sed 's/^/   | /' <<<"$HOST_OUT" >&2
    # A reload shows as a new pid file; give it a moment to start (none comes when nothing changed).
    deadline=$((SECONDS + 3))
    while [[ $(_sshd_pidfile_inode) == "$before" ]] && ((SECONDS < deadline)); do
        sleep 0.1
    done
    deadline=$((SECONDS + 30))
    until [[ -s /run/sshd.pid ]] && sshd_answers; do
        kill -0 "$E2E_SSHD_PID" 2>/dev/null || fail "sshd (pid $E2E_SSHD_PID) died after keyward $1"
        ((SECONDS < deadline)) || fail "sshd did not answer within 30s after keyward $1"
        sleep 0.1
    done
    return "$rc"
}

# wire_host: `keyward install` as an admin would run it (cron: this namespace has no systemd).
wire_host() {
    host_cmd install --scheduler cron || fail "keyward install failed (exit $?)"
}

# ---------------------------------------------------------------------------
# A real systemd (scenarios run through tests/e2e/ns-systemd)

# systemd_sshd_start: Debian's ssh.service (`sshd -D`, no -e: it logs to the journal through
# /dev/log), listening on 127.0.0.1:22 only. Sets E2E_SSHD_PID, which host_cmd and sshd_reload
# use; `keyward install` reloads it with `systemctl reload ssh.service`, as on a real host.
systemd_sshd_start() {
    [[ ${E2E_SYSTEMD:-} == 1 ]] || fail "systemd_sshd_start: run the scenario through tests/e2e/ns-systemd"
    printf 'ListenAddress 127.0.0.1\n' >/etc/ssh/sshd_config.d/00-e2e-loopback.conf
    systemctl start ssh.service ||
        fail "systemctl start ssh.service failed: $(systemctl status ssh.service --no-pager 2>&1 | tail -n 20)"
    E2E_SSHD_PID=$(systemctl show -P MainPID ssh.service)
    [[ $E2E_SSHD_PID =~ ^[1-9][0-9]*$ ]] || fail "ssh.service has no main pid: $E2E_SSHD_PID"
    local deadline=$((SECONDS + 30))
    until sshd_answers; do
        ((SECONDS < deadline)) || fail "ssh.service did not answer on 127.0.0.1:22 within 30s"
        sleep 0.1
    done
}

# journal_json ARGS...: the journal's entries matching ARGS (journalctl matches or options) as
# JSON lines, after journald has stored everything sent so far.
journal_json() {
    journalctl --sync
    journalctl --no-pager -o json "$@"
}
