#!/usr/bin/env bash
# The certificate demo's story, run by scripts/demo-certs inside a throwaway namespace
# (tests/e2e/ns): moto (IAM, STS, KMS, EC2) and the real OpenSSH server on the namespace's own
# loopback, the issuer (`keyward ca serve`) beside them, a laptop in a directory. Never run it
# on a host directly (tests/e2e/lib.sh refuses). It checks what it shows: any step that does
# not hold ends the demo with FAIL (tests/e2e_demo.rs runs it so that it cannot rot).
# shellcheck source=scripts/demo-lib.sh
. "$E2E_REPO/scripts/demo-lib.sh"

# The namespace's moto, kept for the issuer, the laptop and the instance once the fault proxy
# stands in front of it for the host.
MOTO_URL=$AWS_ENDPOINT_URL
# The issuer's address: a fixed port is free in this namespace, and the audience every proof is
# bound to is this URL (as for a real issuer, whose URL is known before clients use it).
ISSUER=http://127.0.0.1:8443
ACCOUNT=123456789012

step "IAM (an admin, once): alice in group ops, with AWS credentials on her laptop"
iam group ops
iam user alice
iam member ops alice
read -r ALICE_KEY ALICE_SECRET < <(access_key alice)
note "IAM user alice (UserId $(iam_user_id alice)), member of ops; access key $ALICE_KEY"

step "EC2: this host is instance web-1, running with instance profile web-host (role web-host)"
INSTANCE=$(aws_py '
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
iam.create_role(RoleName="web-host", AssumeRolePolicyDocument=trust)
iam.create_instance_profile(InstanceProfileName="web-host")
iam.add_role_to_instance_profile(InstanceProfileName="web-host", RoleName="web-host")
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet,
    PrivateIpAddress="127.0.0.1", IamInstanceProfile={"Name": "web-host"},
    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "web-1"}]}])
print(run["Instances"][0]["InstanceId"])')
is_instance=$(aws_py '
i = ec2.describe_instances(InstanceIds=args)["Reservations"][0]["Instances"][0]
print(i["InstanceId"], i["State"]["Name"], i["PrivateIpAddress"], i["PrivateDnsName"], i["IamInstanceProfile"]["Arn"])' "$INSTANCE")
note "DescribeInstances: $is_instance"
# What cloud-init leaves on an instance; authorized-principals reads it.
install -d -m 0755 /var/lib/cloud /var/lib/cloud/data
printf '%s\n' "$INSTANCE" >/var/lib/cloud/data/instance-id

step "the CA (an admin, once): keyward ca init makes an ECDSA P-256 key in KMS, whose private half never leaves it"
ca_pub=$E2E_WORK/ca.pub
show "$KEYWARD" ca init || fail "keyward ca init failed"
"$KEYWARD" ca public-key >"$ca_pub" 2>"$E2E_WORK/ca-public-key.err" ||
    fail "keyward ca public-key failed: $(cat "$E2E_WORK/ca-public-key.err")"
aws_py 'print("   KMS:", {k: v for k, v in boto3.client("kms").describe_key(KeyId="alias/keyward-ca")["KeyMetadata"].items() if k in ("KeyId", "KeySpec", "KeyUsage")})' >&2

step "the issuer: keyward ca serve (self-hosted; the same handler runs as a Lambda function)"
issuer_dir=$E2E_WORK/issuer
install -d -m 0755 "$issuer_dir"
cat >"$issuer_dir/keyward.toml" <<TOML
allowed_groups = ["ops"]

[issuer]
audience = "$ISSUER"
sts_endpoint = "$MOTO_URL"
host_roles = ["web-host"]
TOML
show cat "$issuer_dir/keyward.toml"
issuer_log=$E2E_WORK/issuer.log
printf '   $ %s\n' "$(kw_quote "$KEYWARD" --config "$issuer_dir/keyward.toml" ca serve --listen "${ISSUER#http://}") &" >&2
AWS_ENDPOINT_URL=$MOTO_URL "$KEYWARD" --config "$issuer_dir/keyward.toml" ca serve --listen "${ISSUER#http://}" \
    </dev/null >"$E2E_WORK/issuer.url" 2>"$issuer_log" &
ISSUER_PID=$!
deadline=$((SECONDS + 30))
until [[ -s $E2E_WORK/issuer.url ]]; do
    kill -0 "$ISSUER_PID" 2>/dev/null || fail "keyward ca serve exited: $(cat "$issuer_log")"
    ((SECONDS < deadline)) || fail "keyward ca serve printed no URL within 30s: $(cat "$issuer_log")"
    sleep 0.1
done
[[ $(cat "$E2E_WORK/issuer.url") == "$ISSUER" ]] || fail "the issuer listens on $(cat "$E2E_WORK/issuer.url"), not $ISSUER"
note "the issuer answers on $ISSUER"
# issuer_said TEXT: the issuer's latest log line holding TEXT, shown (it must have one).
issuer_said() {
    local line
    line=$(grep -F -- "$1" "$issuer_log" | tail -n 1)
    [[ -n $line ]] || fail "the issuer's log has no line with \"$1\": $(cat "$issuer_log")"
    note "the issuer's log: ${line# }"
}

step "the host: a config with the CA key; sync makes alice's account (alice has no SSH key in IAM)"
# From here on the host's AWS requests go through a counting proxy (tests/faultproxy.py): every
# request keyward on the host sends to IAM (sync, or sshd's commands) is one line of its log.
fault_proxy_start
write_config 'allowed_groups = ["ops"]' "ssh_ca_public_key = \"$(cat "$ca_pub")\""
show cat /etc/keyward/keyward.toml
show "$KEYWARD" sync || fail "keyward sync failed"
show getent passwd alice || fail "sync made no account for alice"

step "the host's certificate: keyward host-cert, with the instance role's credentials"
# On EC2 the credentials come from IMDS: the role's session is named after the instance id.
read -r ROLE_KEY ROLE_SECRET ROLE_TOKEN ROLE_ARN < <(aws_py '
c = sts.assume_role(RoleArn="arn:aws:iam::'"$ACCOUNT"':role/web-host", RoleSessionName=args[0])
k = c["Credentials"]
print(k["AccessKeyId"], k["SecretAccessKey"], k["SessionToken"], c["AssumedRoleUser"]["Arn"])' "$INSTANCE")
note "the instance's credentials: $ROLE_ARN"
as_instance=(env AWS_ENDPOINT_URL="$MOTO_URL" AWS_ACCESS_KEY_ID="$ROLE_KEY"
    AWS_SECRET_ACCESS_KEY="$ROLE_SECRET" AWS_SESSION_TOKEN="$ROLE_TOKEN")
printf '   $ %s\n' "$(kw_quote "$KEYWARD" host-cert --issuer "$ISSUER" --ca-public-key "$ca_pub")" >&2
"${as_instance[@]}" "$KEYWARD" host-cert --issuer "$ISSUER" --ca-public-key "$ca_pub" 2>&1 |
    sed 's/^/   | /' >&2 || fail "keyward host-cert failed"
host_cert=/etc/ssh/ssh_host_ed25519_key-cert.pub
[[ -s $host_cert ]] || fail "keyward host-cert wrote no $host_cert"
show ssh-keygen -L -f "$host_cert" || fail "ssh-keygen -L refuses $host_cert"
issuer_said "host certificate"
principals=$(ssh-keygen -L -f "$host_cert" | sed -n '/Principals:/,/Critical Options:/p')
grep -qx '[[:space:]]*127\.0\.0\.1' <<<"$principals" || fail "the host certificate does not name 127.0.0.1: $principals"
grep -qx "[[:space:]]*$INSTANCE" <<<"$principals" || fail "the host certificate does not name $INSTANCE: $principals"
grep -q 'web-1' <<<"$principals" && fail "the host certificate names the Name tag: $principals"

step "keyward install --ca: sshd trusts the CA for users and presents the host certificate"
host_cmd install --scheduler cron --ca || fail "keyward install --ca failed"
show_sh "sshd -T | grep -E '^(trustedusercakeys|authorizedprincipalscommand|authorizedprincipalscommanduser|hostcertificate) '"

step "alice's laptop: a key, then keyward ssh-cert (her own AWS credentials prove who she is)"
laptop=$E2E_WORK/laptop
install -d -m 0700 "$laptop" "$laptop/.ssh"
ssh-keygen -q -t ed25519 -N '' -C alice@laptop -f "$laptop/.ssh/id_ed25519" </dev/null >/dev/null
as_alice=(env HOME="$laptop" AWS_ENDPOINT_URL="$MOTO_URL" AWS_ACCESS_KEY_ID="$ALICE_KEY"
    AWS_SECRET_ACCESS_KEY="$ALICE_SECRET" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
    KEYWARD_ISSUER="$ISSUER" KEYWARD_CA_PUBLIC_KEY_FILE="$ca_pub")
# on_laptop ARGS...: `keyward ARGS` as alice on her laptop, echoed first; its output indented.
on_laptop() {
    printf '   $ %s\n' "$(kw_quote keyward "$@")" >&2
    "${as_alice[@]}" "$KEYWARD" "$@" 2>&1 | sed 's/^/   | /' >&2
}
started=$(date +%s%N)
on_laptop ssh-cert --no-agent --known-hosts || fail "keyward ssh-cert failed"
note "issued in $((($(date +%s%N) - started) / 1000000)) ms (STS, IAM and KMS Sign behind the issuer)"
user_cert=$laptop/.ssh/id_ed25519-cert.pub
show ssh-keygen -L -f "$user_cert" || fail "ssh-keygen -L refuses alice's certificate"
issuer_said "issued a user certificate"
key_id=$(ssh-keygen -L -f "$user_cert" | sed -n 's/^[[:space:]]*Key ID: "\(.*\)"$/\1/p')
[[ $key_id == "keyward:alice:$(iam_user_id alice):"* ]] || fail "the key id does not carry alice's UserId: $key_id"
show cat "$laptop/.ssh/known_hosts"
[[ $(cat "$laptop/.ssh/known_hosts") == "@cert-authority * $(cut -d' ' -f1,2 "$ca_pub")"* ]] ||
    fail "known_hosts is not the one @cert-authority line: $(cat "$laptop/.ssh/known_hosts")"

# laptop_ssh ARGS...: `keyward ssh 127.0.0.1 -- -F CONFIG ARGS` as alice. The laptop's ssh config
# trusts nothing but its known_hosts (the @cert-authority line): no global known_hosts, strict
# checking, no prompts, no agent. (ssh finds ~ through the password database, not $HOME, hence -F.)
cat >"$laptop/.ssh/config" <<CONFIG
UserKnownHostsFile $laptop/.ssh/known_hosts
GlobalKnownHostsFile /dev/null
StrictHostKeyChecking yes
BatchMode yes
IdentitiesOnly yes
IdentityAgent none
ConnectTimeout 10
LogLevel ERROR
CONFIG
show cat "$laptop/.ssh/config"
laptop_ssh() {
    timeout 30 "${as_alice[@]}" "$KEYWARD" ssh 127.0.0.1 -- -F "$laptop/.ssh/config" "$@" </dev/null
}

step "alice logs in with keyward ssh: the host is trusted through the CA line, and the host asks IAM nothing"
login='echo "logged in as $(id -un) on $(hostname)"'
before=$(wc -l <"$E2E_FAULT_LOG")
printf '   $ %s\n' "$(kw_quote keyward ssh 127.0.0.1 -- -F "$laptop/.ssh/config" "$login")" >&2
out=$(laptop_ssh "$login" 2>&1) || fail "alice's certificate login failed: $out"
sed 's/^/   | /' <<<"$out" >&2
grep -q '^logged in as alice on' <<<"$out" || fail "alice did not get in as alice: $out"
after=$(wc -l <"$E2E_FAULT_LOG")
((after == before)) || fail "the certificate login made $((after - before)) IAM request(s): $(tail -n +"$((before + 1))" "$E2E_FAULT_LOG")"
note "AWS requests the host made for this login (counted by a proxy in front of moto): $((after - before))"
note "what sshd asked, run as sshd runs it (--stats counts keyward's IAM calls):"
show runuser -u keyward -- "$KEYWARD" --stats authorized-principals alice "$key_id"

step "without the @cert-authority line, ssh does not trust this host"
rc=0
out=$(timeout 20 ssh -F /dev/null -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR \
    -i "$laptop/.ssh/id_ed25519" alice@127.0.0.1 true </dev/null 2>&1) || rc=$?
sed 's/^/   | /' <<<"$out" >&2
((rc == 255)) && grep -q 'Host key verification failed' <<<"$out" ||
    fail "ssh without the CA line: expected host key verification to fail (exit $rc): $out"

step "alice leaves ops: the issuer refuses her at once, and sync locks her account"
iam remove-member ops alice
note "IAM: alice removed from ops"
kept=$(cat "$user_cert")
rc=0
on_laptop ssh-cert --no-agent || rc=$?
((rc != 0)) || fail "the issuer gave alice a certificate after she left ops"
issuer_said "refused a certificate request"
[[ $(cat "$user_cert") == "$kept" ]] || fail "the refused request replaced alice's certificate"
show "$KEYWARD" sync || fail "keyward sync failed"
[[ -f /var/lib/keyward/locked/alice ]] || fail "sync did not lock alice's account"

step "her certificate is still valid, and refused"
show_sh "ssh-keygen -L -f $user_cert | grep Valid"
sshd_mark=$(wc -l <"$E2E_SSHD_LOG")
rc=0
printf '   $ %s\n' "$(kw_quote keyward ssh 127.0.0.1 -- -F "$laptop/.ssh/config" "$login")" >&2
out=$(laptop_ssh "$login" 2>&1) || rc=$?
sed 's/^/   | /' <<<"$out" >&2
((rc == 255)) || fail "alice's certificate after the lock: expected refusal (exit 255), got exit $rc: $out"
said=$(tail -n +"$((sshd_mark + 1))" "$E2E_SSHD_LOG" | grep -F 'certificate refused' || true)
grep -q 'sync locked the account' <<<"$said" || fail "sshd's log does not say why alice was refused"
note "sshd's log: $(sed -n 's/.*\(certificate refused: .*\)/\1/p' <<<"$said" | head -n 1)"

step "keyward uninstall: sshd back as it was"
host_cmd uninstall || fail "keyward uninstall failed"
kill "$ISSUER_PID" 2>/dev/null || true
printf '\ndemo finished: certificates from IAM identities, signed in KMS, logins that ask IAM nothing, on 127.0.0.1.\n' >&2
