#!/usr/bin/env bash
# The reaching-hosts demo's story, run by scripts/demo-reach inside a throwaway namespace
# (tests/e2e/ns): moto (IAM, STS, EC2) on the namespace's own loopback; the namespace's sshd on
# 127.0.0.1 is the jump host (a keyward host, `keyward install --jump`); each instance `web-1`
# is a moto instance at 127.0.0.x with an sshd of its own listening on that address (a keyward
# host too: its AuthorizedKeysCommand is keyward's); alice's laptop is a local user. Never run
# it on a host directly (tests/e2e/lib.sh refuses). It checks what it shows: any step that does
# not hold ends the demo with FAIL (tests/e2e_demo.rs runs it so that it cannot rot).
# shellcheck source=scripts/demo-lib.sh
. "$E2E_REPO/scripts/demo-lib.sh"

# ---------------------------------------------------------------------------
step "IAM (an admin, once): alice may log in (group ops) and may use the jump host (group keyward_jumpers)"
iam group ops
iam group keyward_jumpers
iam user alice
iam member ops alice
iam member keyward_jumpers alice
read -r ALICE_KEY ALICE_SECRET < <(access_key alice)
note "IAM user alice, member of ops and keyward_jumpers (sync makes the Linux group jumpers); access key $ALICE_KEY"

# ---------------------------------------------------------------------------
step "EC2: a VPC of 127.0.0.0/24; the jump host (Name bastion) at 127.0.0.1, instance web-1 at 127.0.0.11"
# The bastion's security group carries the tag that lets `keyward open` add rules to it.
read -r VPC BASTION_SG WEB_SG < <(aws_py '
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/24")["Vpc"]["VpcId"]
ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")
b = ec2.create_security_group(VpcId=vpc, GroupName="bastion-ssh", Description="ssh to the jump host",
    TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "keyward:open", "Value": "true"}]}])
w = ec2.create_security_group(VpcId=vpc, GroupName="web", Description="web servers")
print(vpc, b["GroupId"], w["GroupId"])')

# run_instance NAME ADDRESS SG: a running instance in the VPC's subnet; prints its id.
run_instance() {
    aws_py '
name, address, sg = args
subnet = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["127.0.0.0/24"]}])["Subnets"][0]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=address,
    SecurityGroupIds=[sg],
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
print(run["Instances"][0]["InstanceId"])' "$@"
}
# describe_named NAME: one line per instance tagged Name=NAME: id, state, private address.
describe_named() {
    aws_py '
for r in ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": args}])["Reservations"]:
    for i in r["Instances"]:
        print(i["InstanceId"], i["State"]["Name"], i.get("PrivateIpAddress", "-"))' "$1"
}
BASTION=$(run_instance bastion 127.0.0.1 "$BASTION_SG")
WEB_A=$(run_instance web-1 127.0.0.11 "$WEB_SG")
note "bastion $BASTION (security group $BASTION_SG, tagged keyward:open), web-1 $WEB_A (security group $WEB_SG)"
show "$KEYWARD" hosts || fail "keyward hosts failed"
[[ $(describe_named web-1) == "$WEB_A running 127.0.0.11" ]] || fail "web-1 is not running at 127.0.0.11: $(describe_named web-1)"

# ---------------------------------------------------------------------------
step "the jump host (127.0.0.1): keyward sync, then keyward install --jump"
write_config 'allowed_groups = ["ops"]' '' '[jump]' 'group = "jumpers"' 'destinations = ["127.0.0.0/24"]   # the VPC'
show cat /etc/keyward/keyward.toml
show "$KEYWARD" sync || fail "keyward sync failed"
show getent group jumpers || fail "sync made no Linux group jumpers"
getent group jumpers | grep -qw alice || fail "sync did not put alice in the Linux group jumpers"
host_cmd install --scheduler cron --jump || fail "keyward install --jump failed"
show_sh "sshd -T -C user=alice,host=laptop,addr=127.0.0.1 | grep -E '^(permittty|allowtcpforwarding|permitopen|allowagentforwarding) ' | cut -c1-100"
for_alice=$(sshd -T -C user=alice,host=laptop,addr=127.0.0.1)
grep -qx 'permittty no' <<<"$for_alice" || fail "sshd does not refuse alice a tty on the jump host"
grep -q '^permitopen 127\.0\.0\.0:22 .* 127\.0\.0\.11:22 ' <<<"$for_alice" || fail "sshd does not let alice through to port 22 of the VPC"

# ---------------------------------------------------------------------------
# An instance: an sshd of its own on its address, with its own host key (a new instance has a
# new one), keyward as its AuthorizedKeysCommand (it is a keyward host too, with the namespace's
# /etc/keyward/keyward.toml) and KEYWARD_DEMO_INSTANCE set in every session, so that a login
# shows which instance it reached.

# instance_sshd_start ID ADDRESS: sshd for instance ID on ADDRESS:22; its files in $E2E_WORK/ID,
# its log beside the namespace's (kept when the demo fails).
instance_sshd_start() {
    local id=$1 address=$2 dir=$E2E_WORK/$1
    install -d -m 0755 "$dir"
    ssh-keygen -q -t ed25519 -N '' -C "$id" -f "$dir/ssh_host_ed25519_key" </dev/null >/dev/null
    cat >"$dir/sshd_config" <<CONFIG
ListenAddress $address
Port 22
HostKey $dir/ssh_host_ed25519_key
PidFile $dir/sshd.pid
AuthorizedKeysFile none
AuthorizedKeysCommand $KEYWARD authorized-keys %u %f %k
AuthorizedKeysCommandUser keyward
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM yes
SetEnv KEYWARD_DEMO_INSTANCE=$id
LogLevel VERBOSE
CONFIG
    /usr/sbin/sshd -t -f "$dir/sshd_config" || fail "sshd -t rejects $dir/sshd_config"
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" </dev/null >>"/run/keyward/logs/sshd-$id.log" 2>&1 &
    printf '%s\n' "$!" >"$dir/pid"
    local deadline=$((SECONDS + 30))
    until (exec 3<>"/dev/tcp/$address/22") 2>/dev/null; do
        kill -0 "$(cat "$dir/pid")" 2>/dev/null || fail "the sshd of $id died: $(cat "/run/keyward/logs/sshd-$id.log")"
        ((SECONDS < deadline)) || fail "the sshd of $id did not answer on $address:22 within 30s"
        sleep 0.1
    done
}
# instance_sshd_stop ID: the instance is gone, and so is its sshd.
instance_sshd_stop() {
    local pid
    pid=$(cat "$E2E_WORK/$1/pid")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

step "instance web-1 ($WEB_A): its own sshd on 127.0.0.11, with its own host key"
instance_sshd_start "$WEB_A" 127.0.0.11
show ssh-keygen -lf "$E2E_WORK/$WEB_A/ssh_host_ed25519_key.pub"

# ---------------------------------------------------------------------------
step "alice's laptop: a user of its own, a key uploaded to her IAM user, the jump host's key"
# The laptop is a local user (laptop, home /home/laptop): its ~/.ssh/config is read by ssh and
# by the ssh that `keyward proxy --via` starts for the jump, as on a real laptop.
useradd --create-home --no-log-init --shell /bin/bash laptop
laptop=/home/laptop
as_alice=(runuser -u laptop -- env HOME="$laptop" PATH="/run/keyward/bin:$PATH"
    AWS_ENDPOINT_URL="$AWS_ENDPOINT_URL" AWS_REGION="$AWS_REGION" AWS_ACCESS_KEY_ID="$ALICE_KEY"
    AWS_SECRET_ACCESS_KEY="$ALICE_SECRET" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    AWS_EC2_METADATA_DISABLED=true)
# laptop CMD ARGS...: CMD as alice on her laptop, echoed first (keyward by its name); its output
# indented. Returns CMD's exit code.
laptop() {
    local shown=("$@")
    [[ $1 != "$KEYWARD" ]] || shown[0]=keyward
    printf '   laptop$ %s\n' "$(kw_quote "${shown[@]}")" >&2
    "${as_alice[@]}" "$@" 2>&1 | sed 's/^/   | /' >&2
    return "${PIPESTATUS[0]}"
}
"${as_alice[@]}" ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f "$laptop/.ssh/id_ed25519" </dev/null >/dev/null
laptop "$KEYWARD" upload-key || fail "alice's upload-key failed"
# The jump host's key, as an admin publishes it (the instances' keys are the point of what follows).
printf '127.0.0.1 %s\n' "$(cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" |
    "${as_alice[@]}" tee "$laptop/.ssh/known_hosts" >/dev/null
laptop cat "$laptop/.ssh/known_hosts"

step "the jump host is for jumping: alice gets no shell there"
rc=0
printf '   laptop$ %s\n' "$(kw_quote ssh alice@127.0.0.1 'echo "a command ran as $(id -un)"')" >&2
out=$(timeout 20 "${as_alice[@]}" ssh -o BatchMode=yes alice@127.0.0.1 'echo "a command ran as $(id -un)"' </dev/null 2>&1) || rc=$?
indent <<<"$out"
grep -q 'a command ran as' <<<"$out" && fail "alice ran a command on the jump host"
((rc == 1)) || fail "ssh to the jump host: expected exit 1 (refused by the ForceCommand), got $rc"
grep -q 'this is a jump host' <<<"$out" || fail "the jump host did not say why: $out"

# ---------------------------------------------------------------------------
# ssh web-1, through the jump host, with the config keyward ssh-config prints.

# on_terminal ANSWER CMD ARGS...: CMD as alice on a terminal (a pty), typing ANSWER (and Enter)
# when ssh asks whether to trust a host key; what the terminal showed, on stdout. Returns CMD's
# exit code. (ssh asks on its terminal and discards anything typed before it asks.)
on_terminal() {
    "${as_alice[@]}" python3 -c '
import os, pty, sys
answer = sys.argv[1].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
seen, answered = b"", False
while True:
    try:
        data = os.read(fd, 4096)
    except OSError:
        break
    if not data:
        break
    sys.stdout.buffer.write(data.replace(b"\r", b""))
    sys.stdout.flush()
    seen += data
    if not answered and seen.rstrip().endswith(b"(yes/no/[fingerprint])?"):
        os.write(fd, answer)
        answered = True
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))' "$@" </dev/null
}
# What alice runs on web-1: who she is there, which instance (its sshd sets
# KEYWARD_DEMO_INSTANCE) and which address answered.
on_web='set -- $SSH_CONNECTION; echo "$(id -un) on $KEYWARD_DEMO_INSTANCE at $3"'
# fingerprint ID: the SHA256 fingerprint of instance ID's host key, as the instance prints it
# on its console at boot (EC2 GetConsoleOutput; here read from its key file).
fingerprint() { ssh-keygen -lf "$E2E_WORK/$1/ssh_host_ed25519_key.pub" | cut -d' ' -f2; }
# forwarded ADDRESS: how often the jump host's sshd has opened a forwarding to ADDRESS:22.
# (sshd -e ends its log lines with \r\n.)
forwarded() { grep -c "target ${1//./\\.} port 22[[:space:]]*\$" "$E2E_SSHD_LOG" || true; }
# ssh_web ANSWER: `ssh web-1 "$on_web"` as alice, on a terminal, answering ANSWER if asked about
# a host key; shown as she would see it. Sets OUT to what the terminal showed; returns ssh's code.
ssh_web() {
    local rc=0
    printf '   laptop$ %s\n' "$(kw_quote ssh web-1 "$on_web")" >&2
    OUT=$(on_terminal "$1" ssh web-1 "$on_web" 2>&1) || rc=$?
    indent <<<"$OUT"
    return "$rc"
}

step "alice's ssh config, once: the block keyward ssh-config prints, Included from ~/.ssh/config"
install -d -o laptop -g laptop -m 0700 "$laptop/.config" "$laptop/.config/keyward"
printf '%s\n' '[[reach.environments]]' 'name = "demo"' 'hosts = ["web-*"]' 'jump = "alice@127.0.0.1"' '' |
    "${as_alice[@]}" tee -a "$laptop/.config/keyward/laptop.toml" >/dev/null
laptop cat "$laptop/.config/keyward/laptop.toml"
printf '   laptop$ %s\n' "keyward ssh-config > ~/.ssh/keyward.conf" >&2
"${as_alice[@]}" "$KEYWARD" ssh-config >"$E2E_WORK/keyward.conf" || fail "keyward ssh-config failed"
"${as_alice[@]}" tee "$laptop/.ssh/keyward.conf" <"$E2E_WORK/keyward.conf" >/dev/null
printf '%s\n' 'Include keyward.conf' '' 'Host *' '    User alice' | "${as_alice[@]}" tee "$laptop/.ssh/config" >/dev/null
laptop cat "$laptop/.ssh/keyward.conf"
laptop cat "$laptop/.ssh/config"
grep -q 'ProxyCommand .*keyward proxy' "$laptop/.ssh/keyward.conf" || fail "keyward ssh-config printed no ProxyCommand"
grep -qi 'StrictHostKeyChecking no' "$laptop/.ssh/keyward.conf" && fail "keyward ssh-config turns host key checking off"

step "ssh web-1: found by its Name tag, through the jump host; ssh asks about the instance's key"
fp_a=$(fingerprint "$WEB_A")
note "web-1's console at boot showed its host key: $fp_a; alice answers ssh with it"
before=$(forwarded 127.0.0.11)
ssh_web "$fp_a" || fail "ssh web-1 failed"
grep -q 'yes/no/\[fingerprint\]' <<<"$OUT" || fail "ssh did not ask about web-1's key"
grep -qx "alice on $WEB_A at 127.0.0.11" <<<"$OUT" || fail "ssh web-1 did not reach $WEB_A at 127.0.0.11"
(($(forwarded 127.0.0.11) == before + 1)) || fail "the jump host's sshd did not forward to 127.0.0.11:22"
note "the jump host's sshd: $(grep "target 127\\.0\\.0\\.11 port 22[[:space:]]*\$" "$E2E_SSHD_LOG" | tail -n 1 | tr -d '\r' | sed 's/^debug1: //')"

step "ssh web-1 again: the instance's key is known now, no question"
ssh_web no || fail "the second ssh web-1 failed"
grep -q 'yes/no' <<<"$OUT" && fail "ssh asked again about a known instance"
grep -qx "alice on $WEB_A at 127.0.0.11" <<<"$OUT" || fail "the second ssh web-1 did not reach $WEB_A"
known=$laptop/.local/state/keyward/known_hosts
laptop ls -l "$known"
laptop cat "$known/by-instance/$WEB_A"
[[ $(readlink "$known/web-1") == "by-instance/$WEB_A" ]] || fail "web-1's known_hosts is not instance $WEB_A's"

step "web-1 is replaced: the instance is terminated, and a new web-1 starts at 127.0.0.12 with a new key"
aws_py 'ec2.terminate_instances(InstanceIds=args)' "$WEB_A"
instance_sshd_stop "$WEB_A"
WEB_B=$(run_instance web-1 127.0.0.12 "$WEB_SG")
instance_sshd_start "$WEB_B" 127.0.0.12
[[ $(describe_named web-1) == *"$WEB_A terminated"*"$WEB_B running 127.0.0.12"* ]] ||
    fail "EC2 does not show web-1 replaced: $(describe_named web-1)"
note "EC2: $(describe_named web-1 | paste -sd, | sed 's/,/; /')"
laptop "$KEYWARD" hosts || fail "keyward hosts failed"
hosts=$("${as_alice[@]}" "$KEYWARD" hosts 2>/dev/null)
grep -q "^$WEB_B .*web-1.*127\.0\.0\.12" <<<"$hosts" || fail "keyward hosts does not list the new web-1: $hosts"
grep -q "^$WEB_A " <<<"$hosts" && fail "keyward hosts lists the terminated $WEB_A: $hosts"

# Through a jump host keyward proxy asks EC2 on every connection (ssh -W could not notice a
# stale cached address), so the replacement is seen at once.

step "ssh web-1 in a script (BatchMode): the new instance's key is unknown, so ssh refuses; nothing was trusted for it"
rc=0
printf '   laptop$ %s\n' "$(kw_quote ssh -o BatchMode=yes web-1 "$on_web")" >&2
out=$("${as_alice[@]}" ssh -o BatchMode=yes web-1 "$on_web" </dev/null 2>&1) || rc=$?
indent <<<"$out"
((rc == 255)) && grep -q 'Host key verification failed' <<<"$out" ||
    fail "ssh web-1 in BatchMode: expected host key verification to fail (exit $rc): $out"
grep -q 'IDENTIFICATION HAS CHANGED' <<<"$out" && fail "ssh took the new instance for the old one (host key changed)"

step "ssh web-1 at a terminal: the new instance, asked about; alice checks its console's fingerprint"
fp_b=$(fingerprint "$WEB_B")
note "the new web-1's console showed: $fp_b"
ssh_web "$fp_b" || fail "ssh web-1 to the new instance failed"
grep -q 'yes/no/\[fingerprint\]' <<<"$OUT" || fail "ssh did not ask about the new instance's key"
grep -qx "alice on $WEB_B at 127.0.0.12" <<<"$OUT" || fail "ssh web-1 did not reach the new instance $WEB_B at 127.0.0.12"
note "same ssh config, same command: the new instance at its new address, its key asked about"

# ---------------------------------------------------------------------------
# keyward open: a rule for alice's own address on the jump host's security group (the one
# tagged keyward:open), with its owner and expiry in the rule's tags.

# group_rules: the jump host's security group's ingress rules, one line each: rule id, CIDR,
# port, owner, expiry (the tags keyward writes), read with boto3, as any AWS tool sees them.
group_rules() {
    aws_py '
for r in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": args}])["SecurityGroupRules"]:
    if r["IsEgress"]:
        continue
    tags = {t["Key"]: t["Value"] for t in r.get("Tags", [])}
    print(r["SecurityGroupRuleId"], r.get("CidrIpv4") or r.get("CidrIpv6"), r["FromPort"],
          tags.get("keyward:owner", "-"), tags.get("keyward:expires", "-"))' "$BASTION_SG"
}
show_rules() {
    printf '   $ %s\n' "(boto3) ec2.describe_security_group_rules(Filters=[{\"Name\": \"group-id\", \"Values\": [\"$BASTION_SG\"]}])" >&2
    group_rules | indent
}
# rule_of CIDR: the rule line for CIDR (at most one may exist).
rule_of() {
    local rules
    rules=$(group_rules | awk -v c="$1" '$2 == c')
    (($(grep -c . <<<"$rules") <= 1)) || fail "more than one rule for $1: $rules"
    printf '%s\n' "$rules"
}

step "the public-address service: a loopback HTTP server answering 203.0.113.7 (checkip.amazonaws.com in real life)"
"$E2E_PY" -c '
import http.server
class Answer(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"203.0.113.7\n")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8080), Answer).serve_forever()' </dev/null >/dev/null 2>&1 &
deadline=$((SECONDS + 30))
until (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; do
    ((SECONDS < deadline)) || fail "the address service did not answer on 127.0.0.1:8080"
    sleep 0.1
done
install -d -o laptop -g laptop -m 0700 "$laptop/.config" "$laptop/.config/keyward"
printf '[reach.open]\nip_url = "http://127.0.0.1:8080/"\n' |
    "${as_alice[@]}" tee -a "$laptop/.config/keyward/laptop.toml" >/dev/null
laptop cat "$laptop/.config/keyward/laptop.toml"

step "keyward open bastion: alice's address allowed on the jump host's keyward:open group, with owner and expiry"
laptop "$KEYWARD" open bastion --ttl 1h || fail "keyward open failed"
show_rules
read -r rule cidr port owner expires < <(rule_of 203.0.113.7/32) || fail "no rule for 203.0.113.7/32: $(group_rules)"
[[ $port == 22 && $owner == "arn:aws:iam::123456789012:user/alice" ]] || fail "the rule is not alice's for port 22: $rule $port $owner"
left=$(($(date -d "$expires" +%s) - $(date +%s)))
((left > 3500 && left <= 3600)) || fail "the rule does not expire in an hour: $expires"
note "rule $rule: 203.0.113.7/32 to port 22, owner alice, expires $expires"

step "keyward open again, for 2h: the same rule, a later expiry"
laptop "$KEYWARD" open bastion --ttl 2h || fail "the second keyward open failed"
show_rules
read -r rule2 _ _ _ expires2 < <(rule_of 203.0.113.7/32)
[[ $rule2 == "$rule" ]] || fail "the rule was replaced ($rule -> $rule2), not extended"
(($(date -d "$expires2" +%s) > $(date -d "$expires" +%s))) || fail "the expiry did not move: $expires -> $expires2"
note "rule $rule2 now expires $expires2"

step "bob's rule, past its expiry: keyward open --sweep (a scheduled job) revokes it, and only it"
iam user bob
read -r BOB_KEY BOB_SECRET < <(access_key bob)
printf '   bob$ %s\n' "$(kw_quote keyward open bastion --ip 198.51.100.9/32 --ttl 1h)" >&2
AWS_ACCESS_KEY_ID=$BOB_KEY AWS_SECRET_ACCESS_KEY=$BOB_SECRET HOME=$E2E_WORK \
    "$KEYWARD" open bastion --ip 198.51.100.9/32 --ttl 1h 2>&1 | indent || fail "bob's keyward open failed"
read -r bob_rule _ _ bob_owner _ < <(rule_of 198.51.100.9/32) || fail "bob's open made no rule"
[[ $bob_owner == "arn:aws:iam::123456789012:user/bob" ]] || fail "bob's rule is not bob's: $bob_owner"
expired=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
aws_py 'ec2.create_tags(Resources=[args[0]], Tags=[{"Key": "keyward:expires", "Value": args[1]}])' "$bob_rule" "$expired"
note "(the demo cannot wait an hour: bob's rule $bob_rule is tagged keyward:expires $expired, as if he had opened it two hours ago)"
show_rules
show "$KEYWARD" open --sweep || fail "keyward open --sweep failed"
show_rules
[[ -z $(rule_of 198.51.100.9/32) ]] || fail "bob's expired rule was not revoked"
[[ $(rule_of 203.0.113.7/32 | cut -d' ' -f1) == "$rule" ]] || fail "the sweep took alice's live rule"
note "bob's expired rule is gone; alice's, still valid, stays"

# ---------------------------------------------------------------------------
step "keyward uninstall: the jump host's sshd back as it was"
instance_sshd_stop "$WEB_A"
host_cmd uninstall || fail "keyward uninstall failed"
printf '\ndemo finished: hosts reached by name through a jump host, replaced instances asked about, rules that close by themselves, on 127.0.0.x.\n' >&2
