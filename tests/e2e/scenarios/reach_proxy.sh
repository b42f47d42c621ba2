#!/usr/bin/env bash
# Connect by name (issue 12) with the real OpenSSH client and servers: moto EC2 instances in a
# 127.0.0.0/16 VPC, each with its own sshd (own host key) on its private address, reached with
# the Host blocks `keyward ssh-config` prints (ProxyCommand keyward proxy '%n' %p, known_hosts
# per instance). Checked: web-1 is reached at its address; the second connection comes from the
# cache (no DescribeInstances); an instance replaced under the same name is "unknown" to
# StrictHostKeyChecking=yes (not "changed") and, once accepted, reached with no config change;
# the first instance, named web-1 again, is trusted without a prompt; an ambiguous name fails
# listing both candidates; `keyward hosts` lists them; `--via` goes through a jump host.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

LAPTOP_KEY=$(keygen laptop)
install -d -m 0700 /root/.ssh
cat "$LAPTOP_KEY.pub" >/root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys

# instance_sshd LABEL IP: an sshd with its own host key on IP:22 (pid in /run/sshd-LABEL.pid).
instance_sshd() {
    local label=$1 ip=$2
    ssh-keygen -q -t ed25519 -N '' -f "$E2E_WORK/hostkey-$label" </dev/null >/dev/null
    /usr/sbin/sshd -D -e -o ListenAddress="$ip" -o Port=22 -o PidFile="/run/sshd-$label.pid" \
        -o HostKey="$E2E_WORK/hostkey-$label" -o PermitRootLogin=prohibit-password \
        -o AuthorizedKeysFile=.ssh/authorized_keys \
        </dev/null >>"$E2E_WORK/sshd-$label.log" 2>&1 &
    printf '%s\n' "$!" >"$E2E_WORK/sshd-$label.pid"
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/$ip/22") 2>/dev/null && return 0; sleep 0.1; done
    fail "sshd $label did not listen on $ip:22: $(cat "$E2E_WORK/sshd-$label.log")"
}

# ec2 SCRIPT ARGS...: Python with boto3's ec2 client against moto.
ec2() { iam py "ec2 = boto3.client('ec2')
$1" "${@:2}"; }

step "moto: a VPC 127.0.0.0/16; web-1 at 127.0.0.11, web-2 twice (127.0.0.21, .22), spare at .12"
# Prints the ids: web-1, web-2a, web-2b, spare.
read -r WEB1 WEB2A WEB2B SPARE < <(ec2 '
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
ids = []
for ip, name in (("127.0.0.11", "web-1"), ("127.0.0.21", "web-2"), ("127.0.0.22", "web-2"), ("127.0.0.12", "spare")):
    run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress=ip,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
    ids.append(run["Instances"][0]["InstanceId"])
print(*ids)
')
[[ $WEB1 == i-* && $WEB2A == i-* && $WEB2B == i-* && $SPARE == i-* ]] || fail "moto gave no instance ids"
note "web-1 $WEB1, web-2 $WEB2A and $WEB2B, spare $SPARE"
instance_sshd web1 127.0.0.11
instance_sshd spare 127.0.0.12

# rename ID NAME: set the instance's Name tag.
rename() { ec2 'ec2.create_tags(Resources=[args[0]], Tags=[{"Key": "Name", "Value": args[1]}])' "$1" "$2"; }

step "laptop settings and the ssh-config snippet"
install -d -m 0700 /root/.config/keyward
cat >/root/.config/keyward/laptop.toml <<'EOF'
[reach]
cache_ttl = "60s"

[[reach.environments]]
name = "lab"
hosts = ["web-*", "spare"]
EOF
chmod 0600 /root/.config/keyward/laptop.toml
CFG=$E2E_WORK/ssh_config
"$KEYWARD" ssh-config >"$CFG" || fail "ssh-config failed"
note "$(cat "$CFG")"
grep -qx "Host web-\* spare" "$CFG" || fail "no block for the lab environment: $(cat "$CFG")"
grep -qx "    ProxyCommand $KEYWARD proxy --known-hosts [^ ]*/keyward/known_hosts --env lab '%n' %p" "$CFG" || fail "ProxyCommand: $(cat "$CFG")"
grep -qi "StrictHostKeyChecking no" "$CFG" && fail "ssh-config turned host key checking off"
KNOWN=/root/.local/state/keyward/known_hosts

# connect MODE NAME: ssh with the snippet as its whole config; prints where the session ran.
connect() {
    timeout 30 ssh -F "$CFG" -o StrictHostKeyChecking="$1" -o BatchMode=yes -o IdentitiesOnly=yes \
        -o IdentityAgent=none -o ConnectTimeout=10 -i "$LAPTOP_KEY" -- "root@$2" \
        'echo "at ${SSH_CONNECTION#* * }"' </dev/null 2>&1
}

fault_proxy_start

step "ssh web-1 (key accepted once) reaches the sshd at 127.0.0.11"
out=$(connect accept-new web-1) || fail "ssh web-1 failed: $out"
grep -qx "at 127.0.0.11 22" <<<"$out" || fail "web-1 was not reached at 127.0.0.11: $out"
[[ $(readlink "$KNOWN/web-1") == "by-instance/$WEB1" ]] || fail "known_hosts/web-1 -> $(readlink "$KNOWN/web-1")"
grep -q "ssh-ed25519" "$KNOWN/by-instance/$WEB1" || fail "web-1's key was not recorded for $WEB1"
note "$(ls -l "$KNOWN")"

step "again, strictly: no prompt, and the name comes from the cache"
before=$(fault_count DescribeInstances)
((before >= 1)) || fail "the first connection asked EC2 nothing?"
out=$(connect yes web-1) || fail "second ssh web-1 failed: $out"
grep -qx "at 127.0.0.11 22" <<<"$out" || fail "second ssh web-1: $out"
[[ $(fault_count DescribeInstances) == "$before" ]] || fail "the cached name was looked up again"
ls /root/.cache/keyward/hosts/* >/dev/null || fail "no cache entry"
[[ $(stat -c %a /root/.cache/keyward/hosts) == 700 ]] || fail "cache dir mode $(stat -c %a /root/.cache/keyward/hosts)"

step "replaced under the same name: web-1 is now $SPARE at 127.0.0.12 (cache expired)"
rename "$WEB1" old-web-1
rename "$SPARE" web-1
rm -rf /root/.cache/keyward/hosts
rc=0
out=$(connect yes web-1) || rc=$?
((rc != 0)) || fail "ssh connected to a replaced instance without asking: $out"
grep -q "REMOTE HOST IDENTIFICATION HAS CHANGED" <<<"$out" && fail "the new instance's key was reported as changed: $out"
grep -q "host key is known for web-1 and you have requested strict checking" <<<"$out" \
    || fail "the new instance's key is not 'unknown': $out"
note "$(grep -m1 'host key is known' <<<"$out")"
out=$(connect accept-new web-1) || fail "ssh web-1 after accepting the new key failed: $out"
grep -qx "at 127.0.0.12 22" <<<"$out" || fail "the replaced web-1 was not reached at 127.0.0.12: $out"

step "the first instance named web-1 again: its key is still trusted, no prompt"
rename "$SPARE" spare
rename "$WEB1" web-1
rm -rf /root/.cache/keyward/hosts
# ssh started with another XDG_STATE_HOME (an IDE, cron): the proxy still re-points the links
# ssh reads (--known-hosts from the snippet), not links of its own elsewhere.
mkdir -p "$E2E_WORK/elsewhere"
out=$(XDG_STATE_HOME=$E2E_WORK/elsewhere connect yes web-1) || fail "ssh to $WEB1 under its old name again failed: $out"
[[ $(readlink "$KNOWN/web-1") == "by-instance/$WEB1" ]] || fail "known_hosts/web-1 -> $(readlink "$KNOWN/web-1")"
[[ -e $E2E_WORK/elsewhere/keyward ]] && fail "the proxy made links under XDG_STATE_HOME, not where ssh reads"
grep -qx "at 127.0.0.11 22" <<<"$out" || fail "web-1 again: $out"
# ...and under its instance id (the default block), with the key accepted under web-1.
out=$(connect yes "$WEB1") || fail "ssh $WEB1 by id failed: $out"
grep -qx "at 127.0.0.11 22" <<<"$out" || fail "ssh $WEB1: $out"

step "terminated and launched anew at 127.0.0.13: reached with no config change"
kill "$(cat "$E2E_WORK/sshd-web1.pid")"
read -r WEB1B < <(ec2 '
ec2.terminate_instances(InstanceIds=[args[0]])
subnet = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["127.0.0.0/24"]}])["Subnets"][0]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet, PrivateIpAddress="127.0.0.13",
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}])
print(run["Instances"][0]["InstanceId"])
' "$WEB1")
instance_sshd web1b 127.0.0.13
# The cache still says 127.0.0.11 (fresh): that address refuses, so keyward asks EC2 again.
out=$(connect accept-new web-1) || fail "ssh web-1 after the replacement failed: $out"
grep -qx "at 127.0.0.13 22" <<<"$out" || fail "the new web-1 ($WEB1B) was not reached at 127.0.0.13: $out"
[[ $(readlink "$KNOWN/web-1") == "by-instance/$WEB1B" ]] || fail "known_hosts/web-1 -> $(readlink "$KNOWN/web-1")"

step "an ambiguous name fails, listing both candidates"
rc=0
out=$(connect yes web-2) || rc=$?
((rc != 0)) || fail "ssh web-2 connected: $out"
grep -q "Name tag \"web-2\" matches 2 running instances" <<<"$out" || fail "ambiguity not said: $out"
for id in "$WEB2A" "$WEB2B"; do
    grep -q "$id  name web-2  running  private 127.0.0.2" <<<"$out" || fail "candidate $id not listed: $out"
done
note "$(grep -A2 'matches 2' <<<"$out")"

step "keyward hosts lists what proxy resolves"
out=$("$KEYWARD" hosts) || fail "keyward hosts failed: $out"
note "$out"
for id in "$WEB1B" "$WEB2A" "$WEB2B" "$SPARE"; do grep -q "^$id " <<<"$out" || fail "hosts: no $id: $out"; done
grep -q "^$WEB1 " <<<"$out" && fail "hosts lists the terminated $WEB1: $out"
json=$("$KEYWARD" hosts --json) || fail "hosts --json failed"
[[ $(wc -l <<<"$json") == 4 ]] || fail "hosts --json: $json"

step "--via: through the namespace's sshd on 127.0.0.1 as the jump host (ssh -W)"
cp "$LAPTOP_KEY" /root/.ssh/id_ed25519
ssh-keyscan -t ed25519 127.0.0.1 2>/dev/null >/root/.ssh/known_hosts
out=$(timeout 30 ssh -F /dev/null -o StrictHostKeyChecking=accept-new -o BatchMode=yes \
    -o UserKnownHostsFile="$E2E_WORK/via_known_hosts" -o IdentitiesOnly=yes -i "$LAPTOP_KEY" \
    -o ProxyCommand="$KEYWARD proxy --via root@127.0.0.1 %n %p" -- root@spare \
    'echo "at ${SSH_CONNECTION#* * }"' </dev/null 2>&1) || fail "ssh spare --via 127.0.0.1 failed: $out"
grep -qx "at 127.0.0.12 22" <<<"$out" || fail "--via: $out"
# The jump host's sshd is the one that opened the connection to the instance.
grep -q "target 127.0.0.12 port 22" "$E2E_SSHD_LOG" || fail "the jump host did not forward to 127.0.0.12:22"
