#!/usr/bin/env bash
# Host certificates end to end (issue 11): an instance created in moto EC2 with an instance
# profile (role web-host) in a 127.0.0.0/16 VPC; the role assumed with the instance id as the
# session name, as EC2 does for instance credentials. `keyward ca serve` (host_roles =
# [web-host]) certifies the host key for the names EC2 reports; `keyward host-cert` writes the
# certificate; the real sshd serves it (HostCertificate), and `ssh` with StrictHostKeyChecking
# connects with only the `@cert-authority` line in known_hosts. Without that line, or by the
# instance's Name tag, host key verification fails. A session named after another instance, and
# a role not in host_roles, are refused with the reason.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

ISSUER_PORT=8443
ISSUER=http://127.0.0.1:$ISSUER_PORT
HOST_IP=127.0.0.10

step "moto: roles web-host and db-host, their instance profiles, a VPC 127.0.0.0/16"
# Prints: web instance id, db instance id.
read -r WEB DB < <(iam py '
import json
ec2 = boto3.client("ec2")
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
for name in ("web-host", "db-host"):
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName=name + "-profile")
    iam.add_role_to_instance_profile(InstanceProfileName=name + "-profile", RoleName=name)
vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.0.0/24")["Subnet"]["SubnetId"]
ami = ec2.describe_images()["Images"][0]["ImageId"]
ids = []
for role, ip, name in (("web-host", args[0], "bastion.example.com"), ("db-host", "127.0.0.20", "db")):
    run = ec2.run_instances(ImageId=ami, MinCount=1, MaxCount=1, SubnetId=subnet,
        PrivateIpAddress=ip, IamInstanceProfile={"Name": role + "-profile"},
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}])
    ids.append(run["Instances"][0]["InstanceId"])
print(*ids)
' "$HOST_IP")
[[ $WEB == i-* && $DB == i-* ]] || fail "moto gave no instance ids: $WEB $DB"
WEB_DNS=ip-${HOST_IP//./-}.ec2.internal
note "web: $WEB ($HOST_IP, $WEB_DNS, Name tag bastion.example.com); db: $DB"

# creds ROLE SESSION: the role's credentials for a session so named, as env assignments.
creds() {
    iam py '
sts = boto3.client("sts")
c = sts.assume_role(RoleArn="arn:aws:iam::123456789012:role/" + args[0], RoleSessionName=args[1])["Credentials"]
print("AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_SESSION_TOKEN=%s" % (c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"]))
' "$1" "$2"
}

step "CA in moto's KMS; the issuer on $ISSUER with host_roles = [web-host]"
CA=$("$KEYWARD" ca init 2>/dev/null) || fail "ca init failed"
[[ $CA == ecdsa-sha2-nistp256\ * ]] || fail "ca init printed no CA key: $CA"
printf '%s\n' "$CA" >"$E2E_WORK/ca.pub"
install -d -m 0755 "$E2E_WORK/issuer"
cat >"$E2E_WORK/issuer/keyward.toml" <<EOF
allowed_groups = ["ops"]
aws_config_file = "$E2E_AWS_CONFIG"

[issuer]
audience = "$ISSUER"
sts_endpoint = "$AWS_ENDPOINT_URL"
host_roles = ["web-host"]
EOF
"$KEYWARD" --config "$E2E_WORK/issuer/keyward.toml" ca serve --listen "127.0.0.1:$ISSUER_PORT" \
    </dev/null >"$E2E_WORK/issuer/log" 2>&1 &
issuer_pid=$!
issuer_up() { (exec 3<>"/dev/tcp/127.0.0.1/$ISSUER_PORT") 2>/dev/null; }
for _ in $(seq 100); do issuer_up && break; sleep 0.1; done
issuer_up || fail "the issuer did not listen: $(cat "$E2E_WORK/issuer/log")"

# host_cert ROLE SESSION ARGS...: `keyward host-cert` with that role session's credentials.
host_cert() {
    local role=$1 session=$2
    shift 2
    # shellcheck disable=SC2046 # the credentials are three words on purpose
    env $(creds "$role" "$session") "$KEYWARD" host-cert --issuer "$ISSUER" \
        --ca-public-key "$E2E_WORK/ca.pub" "$@"
}

CERT=/etc/ssh/ssh_host_ed25519_key-cert.pub
step "host-cert as $WEB (role web-host) writes $CERT"
rm -f /etc/ssh/ssh_host_*_key-cert.pub
out=$(host_cert web-host "$WEB" --key /etc/ssh/ssh_host_ed25519_key.pub 2>&1) \
    || fail "host-cert failed: $out$(printf '\n--- issuer:\n'; cat "$E2E_WORK/issuer/log")"
note "$(tail -n 2 <<<"$out" | head -c 400)"
[[ -f $CERT ]] || fail "no $CERT: $out"
[[ $(stat -c '%U:%G %a' "$CERT") == "root:root 644" ]] || fail "$CERT is $(stat -c '%U:%G %a' "$CERT")"
listing=$(ssh-keygen -L -f "$CERT") || fail "ssh-keygen cannot read $CERT"
grep -q 'ssh-ed25519-cert-v01@openssh.com host certificate' <<<"$listing" || fail "not a host certificate: $listing"
grep -q "Key ID: \"keyward-host:$WEB:" <<<"$listing" || fail "key id: $listing"
principals=$(awk '/Principals:/{p=1;next} /Critical Options:/{p=0} p{print $1}' <<<"$listing" | sort | tr '\n' ' ')
[[ $principals == "$(printf '%s\n' "$WEB" "$HOST_IP" "$WEB_DNS" | sort | tr '\n' ' ')" ]] \
    || fail "principals are [$principals], want the instance id, IP and DNS name only"
ssh-keygen -L -f "$CERT" | grep -q bastion && fail "the Name tag was certified"
# The CA in the certificate is the one `ca init` printed.
ca_fp=$(ssh-keygen -lf <(printf '%s\n' "$CA") | awk '{print $2}')
grep -q "Signing CA: ECDSA $ca_fp" <<<"$listing" || fail "signed by another CA than $ca_fp: $listing"

step "a second run keeps the certificate (idempotent)"
before=$(sha256sum "$CERT")
out=$(host_cert web-host "$WEB" --key /etc/ssh/ssh_host_ed25519_key.pub 2>&1) || fail "second run failed: $out"
grep -q "kept" <<<"$out" || fail "second run did not keep the certificate: $out"
note "$out"
[[ $(sha256sum "$CERT") == "$before" ]] || fail "second run changed $CERT"

step "sshd on $HOST_IP serves the certificate (HostCertificate)"
install -d -m 0700 /root/.ssh
client=$(keygen client)
cat "$client.pub" >/root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
/usr/sbin/sshd -D -e -o ListenAddress="$HOST_IP" -o Port=22 -o PidFile=/run/sshd-host.pid \
    -o HostKey=/etc/ssh/ssh_host_ed25519_key -o HostCertificate="$CERT" \
    -o PermitRootLogin=prohibit-password -o AuthorizedKeysFile=.ssh/authorized_keys \
    </dev/null >>"$E2E_WORK/sshd-host.log" 2>&1 &
for _ in $(seq 100); do (exec 3<>"/dev/tcp/$HOST_IP/22") 2>/dev/null && break; sleep 0.1; done
printf '%s %s\n%s bastion.example.com\n' "$HOST_IP" "$WEB_DNS" "$HOST_IP" >>/etc/hosts

# connect KNOWN_HOSTS NAME: a publickey login as root to NAME with only KNOWN_HOSTS trusted.
connect() {
    timeout 20 ssh -F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$1" \
        -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o IdentitiesOnly=yes \
        -o IdentityAgent=none -o ConnectTimeout=10 -i "$client" -- "root@$2" 'echo in' </dev/null 2>&1
}
KNOWN=$E2E_WORK/known_hosts
printf '@cert-authority * %s\n' "$CA" >"$KNOWN"
for name in "$HOST_IP" "$WEB_DNS"; do
    out=$(connect "$KNOWN" "$name") || fail "ssh to $name with the @cert-authority line failed: $out"
    [[ $out == in ]] || fail "ssh to $name: $out"
done
note "ssh trusts $HOST_IP and $WEB_DNS through the one @cert-authority line"

step "without the line, and by the Name tag, host key verification fails"
: >"$E2E_WORK/empty_known_hosts"
out=$(connect "$E2E_WORK/empty_known_hosts" "$HOST_IP") && fail "connected without the CA line: $out"
grep -q "Host key verification failed" <<<"$out" || fail "without the CA line: $out"
out=$(connect "$KNOWN" bastion.example.com) && fail "connected by the Name tag: $out"
grep -q "name is not a listed principal" <<<"$out" || fail "by the Name tag: $out"
grep -q "Host key verification failed" <<<"$out" || fail "by the Name tag: $out"

step "refused: a web-host session named after another instance ($DB)"
rc=0
out=$(host_cert web-host "$DB" --key /etc/ssh/ssh_host_ecdsa_key.pub 2>&1) || rc=$?
((rc == 4)) || fail "a session named $DB: exit $rc, not 4 (refused): $out"
grep -q "instance $DB does not run with role web-host" <<<"$out" || fail "refusal does not say why: $out"
note "$out"
[[ ! -e /etc/ssh/ssh_host_ecdsa_key-cert.pub ]] || fail "a certificate was written after a refusal"

step "refused: role db-host is not in host_roles, even for its own instance"
rc=0
out=$(host_cert db-host "$DB" --key /etc/ssh/ssh_host_ecdsa_key.pub 2>&1) || rc=$?
((rc == 4)) || fail "role db-host: exit $rc, not 4 (refused): $out"
grep -q "role db-host may not ask for host certificates" <<<"$out" || fail "refusal does not say why: $out"
note "$out"
[[ ! -e /etc/ssh/ssh_host_ecdsa_key-cert.pub ]] || fail "a certificate was written after a refusal"

step "refused locally: no CA public key to check the certificate against"
# shellcheck disable=SC2046
out=$(env $(creds web-host "$WEB") "$KEYWARD" host-cert --issuer "$ISSUER" --force 2>&1) \
    && fail "host-cert ran without a CA key: $out"
grep -q "needs the CA's public key" <<<"$out" || fail "no CA key: $out"

kill "$issuer_pid" 2>/dev/null || true
