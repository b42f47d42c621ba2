#!/usr/bin/env bash
# The inside of `scripts/bench --pam`: run ONLY through tests/e2e/ns, which gives it a throwaway
# /etc, /var, /home and /run, the real sshd on 127.0.0.1:22 and a moto on the loopback:
#
#     KEYWARD_BIN=target/release/keyward tests/e2e/ns scripts/bench-pam-namespace.sh 20
#
# ROUNDS: keyboard-interactive attempts per kind of name and phase. What it measures is the pam
# hook (`keyward pam-create-account` under sshd's pam_exec) as an unauthenticated client sees it
# (issue 8, C3): one generic line for every name, and the same IAM reads for every valid name
# that is not yet a local account. The host is wired with `keyward install --scheduler cron` and
# `allowed_groups = ["ops"]`. Kinds of name, one attempt each per round, interleaved (the order
# rotates every round):
#   absent      ghostNN       no IAM user
#   notallowed  notallowedNN  IAM user with an Active key, in no allowed group
#   nokey       nokeyNN       IAM user in ops, no SSH key
#   create      okuserNN      IAM user in ops with an Active key, no account yet: created now
#   existing    kwexist       an account keyward created before the rounds (same name each time)
# Every refused name is fresh (NN counts up), so the hook's negative cache (a refused name is not
# asked again for 10 minutes) never answers; the shared budget (60 lookups a minute, the file
# /var/lib/keyward/negative/.budget) is removed before each round (4 lookups a round), so it never
# refuses either. Every attempt is checked: an account exists afterwards exactly for create and
# existing, and the client saw the generic line exactly once.
#
# Two phases, ROUNDS rounds each, fresh names in each:
#   A "as installed": the PAM line `keyward install` wrote, keyward talks to moto directly.
#     Measured: the ssh client's wall time (spawn to exit) and its time to the password prompt
#     (askpass is run by ssh when pam_unix prompts, after the hook's line arrived).
#   B "instrumented": the PAM line runs a bash wrapper that times `keyward --stats
#     pam-create-account` itself ($EPOCHREALTIME around it; the wrapper's own start, ~1-2 ms, is
#     outside that span) and keyward talks to moto through tests/faultproxy.py with no rules,
#     which logs each request's IAM action and user name: the IAM calls per attempt.
# Prints one JSON object on stdout (progress on stderr) for scripts/bench to tabulate.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

if ! (($# == 1)) || ! [[ $1 =~ ^[1-9][0-9]*$ ]] || (($1 > 99)); then
    fail "usage: bench-pam-namespace.sh ROUNDS (1..99)"
fi
ROUNDS=$1
OUT=$E2E_WORK/bench
mkdir -p "$OUT"
KINDS=(absent notallowed nokey create existing)
GENERIC='keyward: if you may log in here, your account is ready or being prepared: connect again with your SSH key.'
BUDGET=/var/lib/keyward/negative/.budget

# name KIND N: the login name of attempt N (1..2*ROUNDS; phase B uses ROUNDS+1..).
name() {
    case $1 in
        absent) printf 'ghost%02d' "$2" ;;
        notallowed) printf 'notallowed%02d' "$2" ;;
        nokey) printf 'nokey%02d' "$2" ;;
        create) printf 'okuser%02d' "$2" ;;
        existing) printf 'kwexist' ;;
    esac
}

step "IAM: group ops; per attempt a notallowed (key, no group), a nokey (ops) and an okuser (ops, key)"
n=$((2 * ROUNDS))
keydir=$E2E_WORK/keys
mkdir -m 0700 "$keydir"
for ((i = 1; i <= n; i++)); do
    for who in "$(name notallowed "$i")" "$(name create "$i")"; do
        ssh-keygen -q -t ed25519 -N '' -C "$who@bench" -f "$keydir/$who" </dev/null >/dev/null
    done
done
ssh-keygen -q -t ed25519 -N '' -C kwexist@bench -f "$keydir/kwexist" </dev/null >/dev/null
iam py '
import os
n, keydir = int(args[0]), args[1]
iam.create_group(GroupName="ops")
def user(name, group=None, key=False):
    iam.create_user(UserName=name)
    if group:
        iam.add_user_to_group(GroupName=group, UserName=name)
    if key:
        body = open(os.path.join(keydir, name + ".pub")).read().strip()
        iam.upload_ssh_public_key(UserName=name, SSHPublicKeyBody=body)
user("kwexist", "ops", key=True)
for i in range(1, n + 1):
    user(f"notallowed{i:02d}", key=True)
    user(f"nokey{i:02d}", "ops")
    user(f"okuser{i:02d}", "ops", key=True)
' "$n" "$keydir" || fail "seeding moto failed"

step "host wired with keyward install --scheduler cron, allowed_groups = [\"ops\"]"
write_config 'allowed_groups = ["ops"]'
wire_host
pam_line=$(grep -n 'pam_exec.so.*pam-create-account' /etc/pam.d/sshd) || fail "no keyward line in /etc/pam.d/sshd after install"
note "/etc/pam.d/sshd:$pam_line"

# The askpass ssh runs for pam_unix's password prompt: notes when (the hook has answered by
# then) and what it was shown (ssh puts the hook's line into the prompt text), answers nothing.
ASKPASS=$E2E_WORK/askpass
PROMPT_T=$OUT/prompt.t
PROMPT_TEXT=$OUT/prompt.text
cat >"$ASKPASS" <<EOF
#!/bin/bash
printf '%s\n' "\$EPOCHREALTIME" >>'$PROMPT_T'
printf '%s\n' "\$1" >>'$PROMPT_TEXT'
echo
EOF
chmod 0755 "$ASKPASS"

# attempt PHASE KIND NAME: one timed keyboard-interactive attempt; appends a JSON line to
# $OUT/attempts.jsonl; fails the bench when an outcome is not what KIND means.
attempt() {
    local phase=$1 kind=$2 who=$3 t0 t1 said rc=0 prompt calls=null hook=null stats=null
    : >"$PROMPT_T"
    : >"$PROMPT_TEXT"
    local fault_before=0 hook_before=0 moto_before=0
    if [[ $phase != B ]]; then
        moto_before=$(moto_requests)
    else
        fault_before=$(wc -l <"$E2E_FAULT_LOG")
        hook_before=$(wc -l <"$HOOK_TIMES")
    fi
    t0=$EPOCHREALTIME
    said=$(SSH_ASKPASS=$ASKPASS SSH_ASKPASS_REQUIRE=force DISPLAY='' \
        timeout 20 setsid -w ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=no -o PreferredAuthentications=keyboard-interactive \
        -o NumberOfPasswordPrompts=1 -o IdentityAgent=none -o ConnectTimeout=10 -o LogLevel=ERROR \
        -p 22 -- "$who@127.0.0.1" true </dev/null 2>&1) || rc=$?
    t1=$EPOCHREALTIME
    ((rc == 255)) || fail "$who ($kind): ssh exited $rc, expected 255 (refused): $said"
    said+=$'\n'$(cat "$PROMPT_TEXT")
    [[ $(grep -cF "$GENERIC" <<<"$said") == 1 ]] || fail "$who ($kind): the client did not see the generic line once: $said"
    prompt=$(head -n 1 "$PROMPT_T")
    [[ -n $prompt ]] || fail "$who ($kind): no password prompt reached the client"
    case $kind in
        create | existing) has_account "$who" || fail "$who ($kind): no account after the attempt" ;;
        *) ! has_account "$who" || fail "$who ($kind): got an account" ;;
    esac
    if [[ $phase != B ]]; then
        # moto logs a request after answering it: a moment for the last line to land.
        sleep 0.3
        calls=$(($(moto_requests) - moto_before))
    else
        sleep 0.3 # the same pause between attempts as in phase A
        # The proxy logs a request when it decides it, before forwarding: all of this attempt's
        # requests are in the log once the hook has exited, which it has before sshd answers.
        calls=$(tail -n +"$((fault_before + 1))" "$E2E_FAULT_LOG" | awk -v u="$who" '
            { n++; by[$1]++; if ($2 != u) other++ }
            END { printf "{\"total\": %d, \"other_name\": %d", n, other; for (a in by) printf ", \"%s\": %d", a, by[a]; print "}" }')
        local line
        line=$(tail -n +"$((hook_before + 1))" "$HOOK_TIMES" | awk '$4 == "auth"')
        [[ $(wc -l <<<"$line") == 1 && -n $line ]] || fail "$who ($kind): expected one timed hook run, got: $line"
        read -r h0 h1 hrc _ <<<"$line"
        hook="{\"t0\": $h0, \"t1\": $h1, \"exit\": $hrc}"
        stats=$(tail -n 1 "$HOOK_ERR" | sed -n 's/^keyward: iam_calls=\([0-9]*\)$/\1/p')
        [[ -n $stats ]] || fail "$who ($kind): no iam_calls=N from keyward --stats: $(tail -n 3 "$HOOK_ERR")"
    fi
    printf '{"phase": "%s", "kind": "%s", "name": "%s", "t0": %s, "prompt": %s, "t1": %s, "calls": %s, "hook": %s, "stats_calls": %s}\n' \
        "$phase" "$kind" "$who" "$t0" "$prompt" "$t1" "$calls" "$hook" "${stats:-null}" >>"$OUT/attempts.jsonl"
}

# rounds PHASE FIRST: ROUNDS rounds, names FIRST..FIRST+ROUNDS-1.
rounds() {
    local phase=$1 first=$2 r k i kind
    for ((r = 0; r < ROUNDS; r++)); do
        rm -f -- "$BUDGET"
        for ((k = 0; k < ${#KINDS[@]}; k++)); do
            kind=${KINDS[(r + k) % ${#KINDS[@]}]}
            i=$((first + r))
            attempt "$phase" "$kind" "$(name "$kind" "$i")"
        done
        (((r + 1) % 5 == 0)) && note "phase $phase: $((r + 1))/$ROUNDS rounds"
    done
    return 0
}

moto_requests() { grep -cE '(GET|POST) /[^ ]* HTTP/' "$E2E_MOTO_LOG" || true; }

step "warm-up: kwexist gets its account (the existing kind), one absent name"
: >"$OUT/attempts.jsonl"
attempt W create kwexist
attempt W absent ghostwarm
has_account kwexist || fail "kwexist has no account"

step "phase A: $ROUNDS rounds as installed (keyward -> moto)"
rounds A 1

step "phase B: $ROUNDS rounds instrumented (timing wrapper; keyward -> fault proxy -> moto)"
fault_proxy_start
HOOK_TIMES=$OUT/hook.times
HOOK_ERR=$OUT/hook.err
: >"$HOOK_TIMES"
: >"$HOOK_ERR"
install -o root -g root -m 0755 /dev/stdin /run/keyward/bench-hook <<EOF
#!/bin/bash
# pam_exec runs this instead of keyward: keyward's own time, its iam_calls on a file.
t0=\$EPOCHREALTIME
$KEYWARD --stats pam-create-account 2>>'$HOOK_ERR'
rc=\$?
t1=\$EPOCHREALTIME
printf '%s %s %s %s\n' "\$t0" "\$t1" "\$rc" "\${PAM_TYPE:-none}" >>'$HOOK_TIMES'
exit \$rc
EOF
sed -i "s|pam_exec.so \(.*\)$KEYWARD pam-create-account\$|pam_exec.so \1/run/keyward/bench-hook|" /etc/pam.d/sshd
grep -q 'pam_exec.so.*/run/keyward/bench-hook$' /etc/pam.d/sshd || fail "could not point the PAM line at the timing wrapper"
rounds B $((ROUNDS + 1))

"$E2E_PY" - "$OUT/attempts.jsonl" "$ROUNDS" "$pam_line" <<'PY' || fail "the attempts are not what the bench expects"
import json, math, statistics, sys
path, rounds, pam_line = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = [json.loads(l) for l in open(path)]
kinds = ["absent", "notallowed", "nokey", "create", "existing"]


def p90(xs):
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.9 * len(xs)) - 1)]


def summary(xs):
    return {"n": len(xs), "median_ms": statistics.median(xs), "p90_ms": p90(xs),
            "min_ms": min(xs), "max_ms": max(xs)}


res = {"rounds": rounds, "pam_line": pam_line.split(":", 1)[1], "kinds": {}}
for kind in kinds:
    a = [r for r in rows if r["phase"] == "A" and r["kind"] == kind]
    b = [r for r in rows if r["phase"] == "B" and r["kind"] == kind]
    assert len(a) == len(b) == rounds, (kind, len(a), len(b))
    k = {
        "client_ms": summary([(r["t1"] - r["t0"]) * 1e3 for r in a]),
        "prompt_ms": summary([(r["prompt"] - r["t0"]) * 1e3 for r in a]),
        "b_client_ms": summary([(r["t1"] - r["t0"]) * 1e3 for r in b]),
        "hook_ms": summary([(r["hook"]["t1"] - r["hook"]["t0"]) * 1e3 for r in b]),
    }
    calls = [r["calls"] for r in b]
    k["iam_calls"] = sorted({c["total"] for c in calls})
    k["moto_requests_a"] = sorted({r["calls"] for r in a})
    k["stats_calls"] = sorted({r["stats_calls"] for r in b})
    actions = {}
    for c in calls:
        for act, cnt in c.items():
            if act not in ("total", "other_name"):
                actions.setdefault(act, set()).add(cnt)
    k["actions"] = {act: sorted(v) for act, v in sorted(actions.items())}
    k["calls_for_other_names"] = sum(c["other_name"] for c in calls)
    k["hook_exit"] = sorted({r["hook"]["exit"] for r in b})
    res["kinds"][kind] = k
for kind, k in res["kinds"].items():
    assert len(k["iam_calls"]) == 1 and k["stats_calls"] == k["iam_calls"] == k["moto_requests_a"], (kind, k)
    assert k["calls_for_other_names"] == 0, (kind, k)
print(json.dumps(res))
PY
note "all pam bench facts hold"
