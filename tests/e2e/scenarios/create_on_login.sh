#!/usr/bin/env bash
# Scenario 1: an IAM user in an allowed group with an Active key and no local account. A first
# keyboard-interactive attempt runs keyward's PAM hook, which creates the account with the UID
# hashed from the IAM UserId; the next publickey login gets in as that UID.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

step "IAM: dana in ops (allowed) and keyward_devs (a managed group) with an Active key"
key=$(keygen dana)
iam user dana
iam group ops
iam member ops dana
iam group keyward_devs
iam member keyward_devs dana
iam key dana "$key.pub" >/dev/null
uid=$(expected_uid "$(iam_user_id dana)")
note "expected UID $uid"

step "host wired; sync made the managed group devs but no accounts (create_accounts = false)"
write_config 'allowed_groups = ["ops"]' 'create_accounts = false'
wire_host
"$KEYWARD" sync >/dev/null 2>&1 || fail "keyward sync failed"
getent group devs >/dev/null || fail "sync did not create the managed group devs"
! has_account dana || fail "dana exists before her first login"

step "publickey before the account exists: refused"
expect_refused dana "$key"

step "first keyboard-interactive attempt: refused, but the account is created"
ssh_kbdint dana && fail "keyboard-interactive with an empty answer let dana in"
has_account dana || fail "no account for dana after the keyboard-interactive attempt"
entry=$(getent passwd dana)
note "$entry"
[[ $(cut -d: -f3 <<<"$entry") == "$uid" ]] || fail "dana's UID is not $uid: $entry"
[[ -f /var/lib/keyward/accounts/dana ]] || fail "no ownership record for dana"
id -nG dana | tr ' ' '\n' | grep -qx devs || fail "dana did not join her managed group devs: $(id -nG dana)"
note "dana is in: $(id -nG dana)"

step "the next publickey login gets in as UID $uid"
got=$(expect_login dana "$key")
[[ $got == "$uid" ]] || fail "id -u over ssh says $got, expected $uid"
