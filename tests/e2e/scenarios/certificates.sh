#!/usr/bin/env bash
# Scenario: keyward user certificates on a host wired with `keyward install --ca`, against the
# real sshd. Run by tests/e2e_certs.rs, which holds the CA (a KMS key in moto, made by
# `keyward ca init`) and signs each certificate this scenario asks for through
# keyward::ca (KMS Sign): a request file in $E2E_CERT_DIR, answered with NAME-cert.pub.
#
# carol's account is made by sync; she has no SSH key in IAM, so only a certificate lets her
# in. Checked: a valid certificate logs in (also one scoped to this instance) with zero IAM
# calls; refused are a wrong principal, another instance's principal, an expired certificate,
# a source-address that excludes loopback, a certificate signed by another CA, one whose key id
# names another UserId (a re-created IAM user), and a valid one once sync locked the account.
# install --ca is idempotent, presents the host certificate, doctor reports the wiring, and
# uninstall takes it all back.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

[[ -n ${E2E_CA_PUBLIC_KEY:-} && -n ${E2E_CERT_DIR:-} ]] ||
    fail "run this scenario through tests/e2e_certs.rs (it signs the certificates)"
install -d -m 0755 "$E2E_CERT_DIR"
INSTANCE=i-0123456789abcdef0
DROPIN=/etc/ssh/sshd_config.d/00-keyward.conf
CA_FILE=/etc/ssh/keyward_user_ca.pub

# cert NAME CA PRINCIPALS IAM_USER USER_ID AFTER BEFORE [SOURCE]: a new key pair NAME and its
# certificate at $E2E_WORK/NAME-cert.pub, signed by the test's CA (main or other) for
# PRINCIPALS (comma-separated), key id keyward:IAM_USER:USER_ID:<serial>, valid from now+AFTER
# to now+BEFORE seconds, with a source-address when given. Prints the private key's path.
cert() {
    local name=$1 key req
    key=$(keygen "$name")
    req=$E2E_CERT_DIR/$name.req
    {
        printf 'ca %s\nkey %s\nprincipals %s\niam_user %s\nuser_id %s\nafter %s\nbefore %s\n' \
            "$2" "$(cat "$key.pub")" "$3" "$4" "$5" "$6" "$7"
        [[ -z ${8:-} ]] || printf 'source %s\n' "$8"
    } >"$req.tmp"
    mv -f -- "$req.tmp" "$req"
    local deadline=$((SECONDS + 60))
    until [[ -s $E2E_CERT_DIR/$name-cert.pub ]]; do
        [[ ! -e $E2E_CERT_DIR/$name.error ]] || fail "signing $name failed: $(cat "$E2E_CERT_DIR/$name.error")"
        ((SECONDS < deadline)) || fail "no certificate for $name within 60s (is tests/e2e_certs.rs signing?)"
        sleep 0.1
    done
    install -m 0644 "$E2E_CERT_DIR/$name-cert.pub" "$key-cert.pub"
    printf '%s\n' "$key"
}

# listing KEY: `ssh-keygen -L` of KEY's certificate (it verifies the CA's signature).
listing() { ssh-keygen -L -f "$1-cert.pub" || fail "ssh-keygen -L refuses $(basename "$1")-cert.pub"; }

# principals USER KEY_ID: what sshd's AuthorizedPrincipalsCommand prints, run as sshd runs it.
principals() { runuser -u keyward -- "$KEYWARD" authorized-principals "$1" "$2" 2>>"$E2E_WORK/principals.log"; }

# iam_requests: requests keyward sent to IAM through the fault proxy so far.
iam_requests() { wc -l <"$E2E_FAULT_LOG"; }

# sshd_mark, then sshd_says TEXT: sshd's log (with keyward's stderr, at LogLevel DEBUG1) has
# said TEXT since the mark.
sshd_mark() { SSHD_MARK=$(wc -l <"$E2E_SSHD_LOG"); }
sshd_says() {
    # Not `tail | grep -q`: grep leaving early would fail the pipeline (SIGPIPE, pipefail).
    grep -qF -- "$1" < <(tail -n +"$((SSHD_MARK + 1))" "$E2E_SSHD_LOG") ||
        fail "sshd's log does not say \"$1\" since the last mark"
}

step "IAM: carol and dave in ops; neither has an SSH key in IAM"
iam group ops
for u in carol dave; do
    iam user "$u"
    iam member ops "$u"
done
carol_id=$(iam_user_id carol)
note "carol's UserId: $carol_id"

step "sync makes the accounts; cloud-init's instance id; a host certificate from a host CA"
write_config 'allowed_groups = ["ops"]' "ssh_ca_public_key = \"$E2E_CA_PUBLIC_KEY\""
"$KEYWARD" sync >"$E2E_WORK/sync.out" 2>&1 || fail "sync failed: $(cat "$E2E_WORK/sync.out")"
has_account carol || fail "sync made no account for carol"
install -d -m 0755 /var/lib/cloud /var/lib/cloud/data
printf '%s\n' "$INSTANCE" >/var/lib/cloud/data/instance-id
host_ca=$E2E_WORK/host_ca
ssh-keygen -q -t ed25519 -N '' -C e2e-host-ca -f "$host_ca" </dev/null >/dev/null
ssh-keygen -q -s "$host_ca" -h -I e2e-host -n 127.0.0.1 /etc/ssh/ssh_host_ed25519_key.pub ||
    fail "could not sign the host certificate"
[[ -s /etc/ssh/ssh_host_ed25519_key-cert.pub ]] || fail "no host certificate was written"

step "keyward install --ca"
host_cmd install --scheduler cron --ca || fail "keyward install --ca failed"
[[ $(stat -c '%U:%G %a' "$CA_FILE") == "root:root 644" ]] || fail "$CA_FILE is $(stat -c '%U:%G %a' "$CA_FILE")"
grep -qxF -- "$E2E_CA_PUBLIC_KEY" "$CA_FILE" || fail "$CA_FILE does not hold the CA key: $(cat "$CA_FILE")"
for line in "TrustedUserCAKeys $CA_FILE" \
    "AuthorizedPrincipalsCommand $KEYWARD authorized-principals %u %i" \
    "AuthorizedPrincipalsCommandUser keyward" \
    "HostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub"; do
    grep -qxF -- "$line" "$DROPIN" || fail "$DROPIN lacks \"$line\": $(cat "$DROPIN")"
done
host_cmd install --scheduler cron --ca || fail "the second keyward install --ca failed"
grep -qx 'already installed; nothing changed' <<<"$HOST_OUT" || fail "the second install --ca changed something"

step "sshd presents the host certificate: ssh trusts the host through @cert-authority alone"
printf '@cert-authority 127.0.0.1 %s\n' "$(cat "$host_ca.pub")" >"$E2E_WORK/known_hosts"
rc=0
timeout 20 ssh -F /dev/null -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$E2E_WORK/known_hosts" \
    -o BatchMode=yes -o PreferredAuthentications=none -o HostKeyAlgorithms=ssh-ed25519-cert-v01@openssh.com \
    -o LogLevel=ERROR -p 22 nobody@127.0.0.1 true </dev/null >"$E2E_WORK/hostcert.out" 2>&1 || rc=$?
grep -q 'Host key verification failed' "$E2E_WORK/hostcert.out" &&
    fail "the host certificate was not accepted: $(cat "$E2E_WORK/hostcert.out")"
grep -q 'Permission denied' "$E2E_WORK/hostcert.out" ||
    fail "ssh did not get as far as authentication (exit $rc): $(cat "$E2E_WORK/hostcert.out")"

step "authorized-principals, run as sshd runs it"
got=$(principals carol "keyward:carol:$carol_id:1")
[[ $got == "carol"$'\n'"carol@$INSTANCE" ]] || fail "principals for carol: $got"
for args in "dave keyward:carol:$carol_id:1" "carol keyward:carol:AIDAOTHERPERSON00001:1" \
    "carol not-a-keyward-key-id" "root keyward:carol:$carol_id:1" "nobody-here keyward:x:AIDA1:1"; do
    # shellcheck disable=SC2086 # two words on purpose
    got=$(principals $args)
    [[ -z $got ]] || fail "authorized-principals $args printed: $got"
done

step "doctor reports the certificate wiring"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$KEYWARD" doctor --json >"$E2E_WORK/doctor.json" 2>/dev/null || true
"$E2E_PY" -c '
import json, sys
c = {c["name"]: c for c in json.load(open(sys.argv[1]))}["certificates"]
assert c["status"] == "ok", c
assert "1 host certificate(s) presented" in c["detail"], c
print("   " + c["detail"], file=sys.stderr)' "$E2E_WORK/doctor.json" || fail "doctor's certificates check is not ok"

step "a certificate signed through KMS: ssh-keygen -L reads it, and carol logs in with zero IAM calls"
fault_proxy_start
# ssh offers the certificate only, as a certificate-only client does (else it offers the plain
# key too, which sshd hands to the AuthorizedKeysCommand).
E2E_SSH_ALGS=ssh-ed25519-cert-v01@openssh.com
good=$(cert good main carol carol "$carol_id" -60 3600)
list=$(listing "$good")
for want in "Type: ssh-ed25519-cert-v01@openssh.com user certificate" \
    "Signing CA: ECDSA SHA256:" "Key ID: \"keyward:carol:$carol_id:" "permit-pty"; do
    grep -qF -- "$want" <<<"$list" || fail "ssh-keygen -L lacks \"$want\": $list"
done
grep -qx '[[:space:]]*carol' < <(grep -A1 'Principals:' <<<"$list") || fail "principal is not carol: $list"
before=$(iam_requests)
uid=$(expect_login carol "$good")
[[ $uid == "$(id -u carol)" ]] || fail "carol logged in as uid $uid"
after=$(iam_requests)
((after == before)) || fail "the certificate login made $((after - before)) IAM request(s): $(tail -n +"$((before + 1))" "$E2E_FAULT_LOG")"
note "certificate login: $((after - before)) IAM requests"
scoped=$(cert scoped main "carol@$INSTANCE" carol "$carol_id" -60 3600)
expect_login carol "$scoped" >/dev/null
((after == $(iam_requests))) || fail "the per-instance certificate login made IAM requests"

step "the counter is real: a login with a key uploaded to IAM asks IAM"
iam_key=$(keygen carol_iam)
iam key carol "$iam_key.pub" >/dev/null
E2E_SSH_ALGS='' expect_login carol "$iam_key" >/dev/null
(($(iam_requests) > after)) || fail "an AuthorizedKeysCommand login made no IAM request through the proxy"
note "AuthorizedKeysCommand login: $(($(iam_requests) - after)) IAM requests"

step "refused: wrong principal, another instance, expired, source-address, another CA"
expect_refused carol "$(cert wrong_principal main dave carol "$carol_id" -60 3600)"
expect_refused carol "$(cert other_instance main carol@i-0fedcba9876543210 carol "$carol_id" -60 3600)"
sshd_mark
expired=$(cert expired main carol carol "$carol_id" -7200 -3600)
grep -q 'Valid: from .* to ' <<<"$(listing "$expired")" || fail "ssh-keygen -L shows no validity"
expect_refused carol "$expired"
sshd_says "expired"
sshd_mark
expect_refused carol "$(cert source main carol carol "$carol_id" -60 3600 10.1.2.3/32)"
sshd_says "not from a permitted source address"
expect_refused carol "$(cert other_ca other carol carol "$carol_id" -60 3600)"

step "refused: a certificate naming another UserId (carol deleted and re-created in IAM)"
sshd_mark
expect_refused carol "$(cert remade main carol carol AIDAOTHERPERSON00001 -60 3600)"
sshd_says "not the same person"

step "carol leaves ops; sync locks her account; her still-valid certificate is refused"
iam remove-member ops carol
"$KEYWARD" sync >"$E2E_WORK/sync2.out" 2>&1 || fail "sync failed: $(cat "$E2E_WORK/sync2.out")"
[[ -f /var/lib/keyward/locked/carol ]] || fail "sync did not lock carol: $(cat "$E2E_WORK/sync2.out")"
got=$(principals carol "keyward:carol:$carol_id:1")
[[ -z $got ]] || fail "authorized-principals printed for a locked account: $got"
sshd_mark
expect_refused carol "$good"
sshd_says "sync locked the account"

step "keyward uninstall takes the certificate wiring back"
host_cmd uninstall || fail "keyward uninstall failed"
[[ ! -e $CA_FILE && ! -e $DROPIN ]] || fail "uninstall left $CA_FILE or $DROPIN"
