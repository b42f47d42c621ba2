#!/usr/bin/env bash
# The inside of `scripts/bench --sync`: run ONLY through tests/e2e/ns, which gives it a throwaway
# /etc, /var, /home and /run (real useradd, groupadd, gpasswd) and a moto on 127.0.0.1:
#
#     KEYWARD_BIN=target/release/keyward E2E_TIMEOUT=1800 tests/e2e/ns scripts/bench-sync-namespace.sh 2000 100
#
# USERS GROUPS: IAM users user0000.. spread round-robin over groups keyward_g000.. (group_prefix
# "keyward_", so every group becomes a Linux group g000..), each user in exactly one group.
# allowed_groups lists the GROUPS groups by name, the normal deployment (a host lets in the teams
# it names; ListUsers is not read). Then, timed (posix_spawn + wait4, CPU of keyward and every
# shadow-utils child it waited for):
#   1. `keyward --stats sync --dry-run --json`  IAM read + plan of the whole creation, no change
#   2. `keyward --stats sync --json`            the first sync: creates everything
#   3. `keyward --stats sync --json`            no IAM change: must plan and change nothing
#   3b. NOOP_ROUNDS (default 9; 0 skips it: a binary without sync_concurrency) rounds, each in a shuffled order: the no-op sync, the no-op
#       with sync_concurrency = 1 (the group reads one after another, as before), and one curl
#       process making the same 1 + GROUPS requests one after another (--next); and the same
#       three again through a proxy that delays each request SYNC_RTT_MS (default 20; 0 skips
#       it) before passing it to moto, in parallel: the round trip to a distant IAM
#   4. the same with allowed_groups = ["*"]     no-op as well, reads ListUsers instead
# and checks the facts with getent: USERS accounts with hashed UIDs, their ownership records,
# GROUPS groups holding every membership. Any fact that does not hold fails the run (exit 1).
# Prints one JSON object on stdout (progress on stderr) for scripts/bench to tabulate.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

if ! (($# == 2)) || ! [[ $1 =~ ^[0-9]+$ && $2 =~ ^[1-9][0-9]*$ ]]; then
    fail "usage: bench-sync-namespace.sh USERS GROUPS"
fi
USERS=$1
GROUPS_N=$2
NOOP_ROUNDS=${NOOP_ROUNDS:-9}
OUT=$E2E_WORK/bench
mkdir -p "$OUT"

# timed NAME CMD...: run CMD with stdout to $OUT/NAME.out and stderr to $OUT/NAME.err, each
# stderr line also in $OUT/NAME.err.t prefixed with its arrival (ms since spawn: keyward logs each
# action once it is done, so these date the phases); the timing as JSON in $OUT/NAME.time.
# Returns CMD's exit code.
timed() {
    local name=$1
    shift
    "$E2E_PY" - "$OUT/$name" "$@" <<'PY'
import json, os, sys, time
base, argv = sys.argv[1], sys.argv[2:]
out = os.open(base + ".out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
r, w = os.pipe()
t0 = time.perf_counter_ns()
pid = os.posix_spawn(argv[0], argv, os.environ,
                     file_actions=[(os.POSIX_SPAWN_DUP2, out, 1), (os.POSIX_SPAWN_DUP2, w, 2),
                                   (os.POSIX_SPAWN_CLOSE, r)])
os.close(w)
with open(base + ".err", "wb") as err, open(base + ".err.t", "w") as stamped, os.fdopen(r, "rb") as pipe:
    for line in pipe:
        err.write(line)
        stamped.write(f"{(time.perf_counter_ns() - t0) / 1e6:.1f}\t{line.decode(errors='replace')}")
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter_ns() - t0
code = os.waitstatus_to_exitcode(status)
json.dump({"wall_ms": wall / 1e6, "user_s": ru.ru_utime, "sys_s": ru.ru_stime,
           "max_rss_mib": ru.ru_maxrss / 1024, "exit": code}, open(base + ".time", "w"))
sys.exit(code)
PY
}

# Every account the run must create, in UID range, as getent sees it.
count_accounts() {
    getent passwd | awk -F: -v lo="$E2E_UID_MIN" -v hi="$E2E_UID_MAX" '$1 ~ /^user[0-9]+$/ && $3 >= lo && $3 <= hi' | wc -l
}

step "seeding moto: $USERS IAM users in $GROUPS_N groups"
iam bulk "$USERS" "$GROUPS_N" >"$OUT/seed.json" || fail "seeding moto failed"
allowed=$("$E2E_PY" -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["groups"]))' "$OUT/seed.json")
note "$(cut -c1-120 "$OUT/seed.json")…"
# The defaults otherwise (max_removals only bounds locks and deletions; this run makes none).
write_config "allowed_groups = $allowed"

# run_sync NAME ARGS...: a timed `keyward --stats sync --json ARGS`; fails the bench on a non-zero exit.
run_sync() {
    local name=$1
    shift
    local rc=0
    timed "$name" "$KEYWARD" --stats sync --json "$@" || rc=$?
    if ((rc != 0)); then
        tail -n 30 "$OUT/$name.err" >&2
        fail "keyward sync $* ($name) exited $rc"
    fi
    note "$name: $(cat "$OUT/$name.time")"
}

step "dry run: IAM read and plan only"
run_sync dry_run --dry-run
((USERS == 0 || $(count_accounts) == 0)) || fail "the dry run created accounts"

step "first sync: $USERS accounts, $GROUPS_N groups, $USERS memberships"
run_sync first
accounts=$(count_accounts)
((accounts == USERS)) || fail "after the first sync getent shows $accounts of $USERS accounts"
records=$(find /var/lib/keyward/accounts -maxdepth 1 -type f -name 'user*' | wc -l)
((records == USERS)) || fail "$records ownership records for $USERS accounts"
getent group >"$OUT/group.txt"
"$E2E_PY" - "$OUT/group.txt" "$OUT/seed.json" "$USERS" <<'PY' || fail "the groups are not what IAM says"
import json, sys
groups = {l.split(":")[0]: l.rstrip("\n").split(":")[3] for l in open(sys.argv[1]) if l.count(":") == 3}
seed = json.load(open(sys.argv[2]))
users = int(sys.argv[3])
total = 0
for j, g in enumerate(seed["groups"]):
    linux = g[len("keyward_"):]
    assert linux in groups, f"no local group {linux} for IAM group {g}"
    members = set(filter(None, groups[linux].split(",")))
    width = max(4, len(str(users - 1)))
    want = {f"user{i:0{width}d}" for i in range(j, users, len(seed["groups"]))}
    assert members == want, f"{linux}: {len(members)} members, want {len(want)}: {sorted(members ^ want)[:5]}"
    total += len(members)
assert total == users, (total, users)
PY

step "second sync: no IAM change, nothing planned, nothing changed"
before=$(snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/keyward)
run_sync noop
same_snapshot "the no-op sync changed the account database" "$before" "$(snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/keyward)"

if ((NOOP_ROUNDS > 0)); then
step "no-op side by side ($NOOP_ROUNDS rounds): keyward, keyward with sync_concurrency = 1, curl --next"
# The same 101 requests keyward makes (ListGroups, then GetGroup of each group), one after the
# other, by one curl process (--next: one connection where the server keeps it open). moto does
# not check signatures; the Authorization header only names the access key (its account).
curl_args=()
for body in "Action=ListGroups" $("$E2E_PY" -c 'import json,sys; print(" ".join("Action=GetGroup&GroupName=" + g for g in json.load(open(sys.argv[1]))["groups"]))' "$OUT/seed.json"); do
    ((${#curl_args[@]} == 0)) || curl_args+=(--next)
    curl_args+=(-sS -o /dev/null -w '%{http_code} %{size_download}\n'
        -H "Authorization: AWS4-HMAC-SHA256 Credential=$AWS_ACCESS_KEY_ID/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0"
        --data "$body&Version=2010-05-08" "$AWS_ENDPOINT_URL/")
done
printf '%s\n' "aws_config_file = \"$E2E_AWS_CONFIG\"" "allowed_groups = $allowed" "sync_concurrency = 1" >/etc/keyward/sequential.toml
chmod 0644 /etc/keyward/sequential.toml
"$E2E_PY" - "$OUT/noop_rounds.json" "$NOOP_ROUNDS" "$((GROUPS_N + 1))" "$KEYWARD" "$(command -v curl)" "${curl_args[@]}" <<'PY' || fail "the side-by-side no-op rounds failed"
import http.client, http.server, json, os, random, sys, threading, time, urllib.parse
out, rounds, requests, keyward, curl, curl_args = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6:]
rtt = int(os.environ.get("SYNC_RTT_MS", "20"))
upstream = urllib.parse.urlsplit(os.environ["AWS_ENDPOINT_URL"])


class Delay(http.server.BaseHTTPRequestHandler):
    """Forwards to moto after `rtt` ms: a round trip to a distant IAM, in parallel (threads)."""
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms), which would add to every request's round trip.
    disable_nagle_algorithm = True
    served = 0

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(rtt / 1000)
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request("POST", self.path, body, headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        Delay.served += 1
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Delay)
threading.Thread(target=proxy.serve_forever, daemon=True).start()
proxy_url = f"http://127.0.0.1:{proxy.server_address[1]}"
moto_url = os.environ["AWS_ENDPOINT_URL"].rstrip("/") + "/"
via_proxy = dict(os.environ, AWS_ENDPOINT_URL=proxy_url)
tools = {"keyward": ([keyward, "--stats", "sync", "--json"], os.environ),
         "keyward_sequential": ([keyward, "--config", "/etc/keyward/sequential.toml", "--stats", "sync", "--json"], os.environ),
         "curl": ([curl] + curl_args, os.environ)}
if rtt:
    for name in list(tools):
        argv, _ = tools[name]
        tools[name + "_rtt"] = ([proxy_url + "/" if a == moto_url else a for a in argv], via_proxy)


def run(name, argv, env):
    r, w = os.pipe()
    er, ew = os.pipe()
    served = Delay.served
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[
        (os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_DUP2, ew, 2), (os.POSIX_SPAWN_CLOSE, r), (os.POSIX_SPAWN_CLOSE, er)])
    os.close(w); os.close(ew)
    with os.fdopen(r) as f, os.fdopen(er) as e:
        stdout, stderr = f.read(), e.read()
    _, status, _ = os.wait4(pid, 0)
    ms = (time.perf_counter_ns() - t0) / 1e6
    code = os.waitstatus_to_exitcode(status)
    # Through the proxy every request must have gone through it; directly, none.
    proxied = Delay.served - served
    routed = proxied == (requests if name.endswith("_rtt") else 0)
    if name.startswith("curl"):
        answers = stdout.split("\n")[:-1]
        ok = routed and code == 0 and len(answers) == requests and all(a.startswith("200 ") for a in answers)
        return ms, ok, {"requests": len(answers), "proxied": proxied,
                        "bytes": sum(int(a.split()[1]) for a in answers if " " in a)}
    report = json.loads(stdout) if stdout.strip() else {}
    ok = routed and code == 0 and report.get("iam_calls") == requests and report.get("actions") == []
    return ms, ok, {"iam_calls": report.get("iam_calls"), "proxied": proxied, "stderr": stderr[-300:]}


res = {name: [] for name in tools}
info = {}
rng = random.Random(9)
for i in range(rounds):
    order = list(tools.items())
    rng.shuffle(order)
    for name, (argv, env) in order:
        time.sleep(0.2)
        ms, ok, extra = run(name, argv, env)
        if not ok:
            sys.exit(f"{name} round {i}: {extra}")
        res[name].append(ms)
        info[name] = {k: v for k, v in extra.items() if k != "stderr"}
json.dump({"rounds": rounds, "rtt_ms": rtt, "ms": res, "info": info}, open(out, "w"))
PY
note "side by side: $(cat "$OUT/noop_rounds.json" | cut -c1-200)…"
same_snapshot "the side-by-side no-op runs changed the account database" "$before" "$(snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/keyward)"
fi

step "third sync: allowed_groups = [\"*\"], still a no-op"
write_config 'allowed_groups = ["*"]'
run_sync noop_star
same_snapshot "the no-op sync (allowed_groups = *) changed the account database" "$before" "$(snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /var/lib/keyward)"

"$E2E_PY" - "$OUT" "$USERS" "$GROUPS_N" "$accounts" <<'PY' || fail "the sync reports are not what the bench expects"
import json, os, re, sys
out, users, groups, accounts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
seed = json.load(open(f"{out}/seed.json"))
res = {"users": users, "groups": groups, "accounts_after_first": accounts,
       "seed": {"calls": seed["calls"], "seconds": seed["seconds"]}, "runs": {}}
for name in ("dry_run", "first", "noop", "noop_star"):
    report = json.loads(open(f"{out}/{name}.out").read())
    err = open(f"{out}/{name}.err").read()
    stats = re.findall(r"iam_calls=(\d+)", err)
    commands = re.findall(r"commands=(\d+)", err)
    run = json.load(open(f"{out}/{name}.time"))
    run.update({"iam_calls": report["iam_calls"], "iam_calls_stats": int(stats[-1]) if stats else None,
                "elapsed_ms_reported": report["elapsed_ms"], "actions": len(report["actions"]),
                "applied": report["applied"], "failed": len(report["failed"]),
                "skipped": len(report["skipped"]), "summary": report["summary"],
                "commands": int(commands[-1]) if commands else None})
    # Phases of the apply: when the first and the last action of each kind were logged (ms
    # since spawn; keyward logs an action once it is done).
    phases = {}
    for line in open(f"{out}/{name}.err.t"):
        ms, _, text = line.partition("\t")
        m = re.search(r'action="?([a-z_]+)', text)
        if m:
            p = phases.setdefault(m.group(1), {"first": float(ms), "count": 0})
            p["last"] = float(ms)
            p["count"] += 1
    run["phases"] = phases
    res["runs"][name] = run
r = res["runs"]
s = r["first"]["summary"]
assert (s["created"], s["groups_created"], s["members_added"]) == (users, groups, users), s
assert r["first"]["failed"] == 0 and r["first"]["skipped"] == 0, r["first"]
# The dry run's plan is the plan applied: one value, whatever the command shape.
assert r["dry_run"]["actions"] == r["first"]["actions"], r
assert r["dry_run"]["summary"] == r["first"]["summary"], r
if os.path.exists(f"{out}/noop_rounds.json"):
    res["noop_rounds"] = json.load(open(f"{out}/noop_rounds.json"))
for name in ("noop", "noop_star"):
    assert r[name]["applied"] and r[name]["actions"] == 0 and r[name]["failed"] == 0, (name, r[name])
print(json.dumps(res))
PY
note "all sync bench facts hold"
