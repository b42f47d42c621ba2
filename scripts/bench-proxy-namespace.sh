#!/usr/bin/env bash
# The inside of `scripts/bench --proxy`: run ONLY through tests/e2e/ns (throwaway /etc, /var,
# /root, /run; moto on the loopback):
#
#     KEYWARD_BIN=target/release/keyward tests/e2e/ns scripts/bench-proxy-namespace.sh 30
#
# ROUNDS: connections per kind. What it measures is what `keyward proxy` adds to an ssh login
# (issue 12): one moto EC2 instance web-1 at 127.0.0.11 with its own sshd there, and per round,
# in an order that rotates every round, a public-key login running `true`:
#   plain  ssh root@127.0.0.11                       (no ProxyCommand)
#   cold   ssh web-1 through the `keyward ssh-config` snippet, the name cache removed first:
#          keyward proxy asks EC2 (DescribeInstances), points the known_hosts link, connects
#   warm   the same with the name cached (a run within cache_ttl before it)
# Each is one `ssh` spawned and waited for (wall time, $EPOCHREALTIME). Every run must print
# the marker; moto's request log is counted around each run: cold must ask EC2, warm and plain
# never. Then the time to the SSH banner alone (see below), which the login's own variance
# (key exchange, sshd forking, PAM) does not drown. Prints one JSON object on stdout (progress on stderr) for scripts/bench to tabulate.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

if ! (($# == 1)) || ! [[ $1 =~ ^[1-9][0-9]*$ ]] || (($1 > 999)); then
    fail "usage: bench-proxy-namespace.sh ROUNDS (1..999)"
fi
ROUNDS=$1
OUT=$E2E_WORK/bench
install -d "$OUT"

KEY=$(keygen laptop)
install -d -m 0700 /root/.ssh
cat "$KEY.pub" >/root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys

read -r WEB1 < <(iam py '
ec2 = boto3.client("ec2")
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress="127.0.0.11",
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}])
print(run["Instances"][0]["InstanceId"])
')
[[ $WEB1 == i-* ]] || fail "moto gave no instance id"
ssh-keygen -q -t ed25519 -N '' -f "$E2E_WORK/hostkey" </dev/null >/dev/null
/usr/sbin/sshd -D -e -o ListenAddress=127.0.0.11 -o Port=22 -o PidFile=/run/sshd-web1.pid \
    -o HostKey="$E2E_WORK/hostkey" -o PermitRootLogin=prohibit-password \
    -o AuthorizedKeysFile=.ssh/authorized_keys -o UseDNS=no \
    </dev/null >>"$E2E_WORK/sshd-web1.log" 2>&1 &
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.11/22) 2>/dev/null && break; sleep 0.1; done

install -d -m 0700 /root/.config/keyward
printf '[reach]\ncache_ttl = "600s"\n\n[[reach.environments]]\nname = "lab"\nhosts = ["web-*"]\n' \
    >/root/.config/keyward/laptop.toml
CFG=$E2E_WORK/ssh_config
"$KEYWARD" ssh-config >"$CFG" || fail "ssh-config failed"
# The plain login's own known_hosts, so both sides check a known key the same way.
PLAIN=$E2E_WORK/ssh_config_plain
printf 'Host *\n    UserKnownHostsFile %s\n' "$E2E_WORK/known_hosts_plain" >"$PLAIN"

# login KIND CHECKING: one login; prints its output.
login() {
    local cfg=$CFG dest=web-1
    [[ $1 != plain ]] || { cfg=$PLAIN; dest=127.0.0.11; }
    ssh -F "$cfg" -o StrictHostKeyChecking="$2" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o IdentityAgent=none -o ConnectTimeout=10 -i "$KEY" -- "root@$dest" 'echo marker-ok' </dev/null 2>&1
}
requests() { grep -c '"POST / HTTP' "$E2E_MOTO_LOG" || true; }

# Warm-up: accept each host key once (accept-new), fill the cache.
login plain accept-new | grep -qx marker-ok || fail "plain login failed: $(login plain accept-new)"
login cold accept-new | grep -qx marker-ok || fail "proxy login failed: $(login cold accept-new)"

: >"$OUT/runs.jsonl"
kinds=(plain cold warm)
for ((round = 0; round < ROUNDS; round++)); do
    for ((i = 0; i < 3; i++)); do
        kind=${kinds[(round + i) % 3]}
        [[ $kind != cold ]] || rm -rf /root/.cache/keyward/hosts
        before=$(requests)
        t0=$EPOCHREALTIME
        out=$(login "$kind" yes) || fail "$kind login failed: $out"
        t1=$EPOCHREALTIME
        [[ $out == marker-ok ]] || fail "$kind login printed: $out"
        calls=$(($(requests) - before))
        printf '{"kind": "%s", "ms": %s, "ec2_requests": %d}\n' "$kind" \
            "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) * 1000 }')" "$calls" >>"$OUT/runs.jsonl"
    done
    printf 'bench: proxy round %d/%d\n' "$((round + 1))" "$ROUNDS" >&2
done

# Time to the SSH banner, the proxy's own share without the key exchange and login: a TCP
# connect from Python (plain) against spawning `keyward proxy --env lab web-1 22` and reading
# its first line (cold: cache removed first; warm: cached), ROUNDS each, rotating.
"$E2E_PY" - "$KEYWARD" "$ROUNDS" >>"$OUT/runs.jsonl" <<'PY' || fail "the banner runs failed"
import json, shutil, socket, subprocess, sys, time
keyward, rounds = sys.argv[1], int(sys.argv[2])
def plain():
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.11", 22), 10) as s:
        line = s.makefile("rb").readline()
    return time.perf_counter() - t, line
def proxy():
    t = time.perf_counter()
    p = subprocess.Popen([keyward, "proxy", "--env", "lab", "web-1", "22"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = p.stdout.readline()
    dt = time.perf_counter() - t
    p.kill(); p.wait()
    return dt, line
kinds = ["banner_plain", "banner_cold", "banner_warm"]
for r in range(rounds):
    for i in range(3):
        kind = kinds[(r + i) % 3]
        if kind == "banner_cold":
            shutil.rmtree("/root/.cache/keyward/hosts", ignore_errors=True)
        dt, line = plain() if kind == "banner_plain" else proxy()
        if not line.startswith(b"SSH-2.0-"):
            sys.exit(f"{kind}: no SSH banner: {line!r}")
        print(json.dumps({"kind": kind, "ms": dt * 1000, "ec2_requests": None}))
PY

"$E2E_PY" - "$OUT/runs.jsonl" "$ROUNDS" "$(ssh -V 2>&1)" <<'PY' || fail "the runs are not what the bench expects"
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
res = {"rounds": int(sys.argv[2]), "ssh": sys.argv[3], "kinds": {}}
for kind in ("banner_plain", "banner_cold", "banner_warm"):
    ms = sorted(r["ms"] for r in rows if r["kind"] == kind)
    res["kinds"][kind] = {"median_ms": statistics.median(ms),
                          "p90_ms": ms[min(len(ms) - 1, math.ceil(0.9 * len(ms)) - 1)]}
for kind in ("plain", "cold", "warm"):
    ms = sorted(r["ms"] for r in rows if r["kind"] == kind)
    calls = sorted({r["ec2_requests"] for r in rows if r["kind"] == kind})
    if kind == "cold" and 0 in calls:
        sys.exit("a cold proxy login asked EC2 nothing")
    if kind != "cold" and calls != [0]:
        sys.exit(f"{kind} logins asked EC2: {calls}")
    res["kinds"][kind] = {"median_ms": statistics.median(ms),
                          "p90_ms": ms[min(len(ms) - 1, math.ceil(0.9 * len(ms)) - 1)],
                          "ec2_requests": calls}
print(json.dumps(res))
PY
