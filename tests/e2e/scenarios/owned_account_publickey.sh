#!/usr/bin/env bash
# A keyward-owned local account (hand-made wiring, no `keyward install`): sshd asks keyward for
# the IAM user's keys; an Active key lets them in, an Inactive key does not, and a local account
# keyward did not create gets no IAM keys even when an IAM user of that name exists.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

step "IAM: alice in ops with one Active and one Inactive key; bob (same name as a local account)"
active=$(keygen alice-active)
inactive=$(keygen alice-inactive)
bobkey=$(keygen bob)
iam user alice
iam group ops
iam member ops alice
iam key alice "$active.pub" >/dev/null
iam key alice "$inactive.pub" --inactive >/dev/null
iam user bob
iam member ops bob
iam key bob "$bobkey.pub" >/dev/null

step "host: keyward asked by sshd; alice's account made as keyward makes it; bob's by hand"
write_config 'allowed_groups = ["ops"]'
hand_wire
uid=$(expected_uid "$(iam_user_id alice)")
owned_account alice "$uid"
useradd --create-home --no-log-init --shell /bin/sh bob

step "alice logs in with her Active key, as her hashed UID $uid"
got=$(expect_login alice "$active")
[[ $got == "$uid" ]] || fail "alice's uid over ssh is $got, expected $uid"

step "alice's Inactive key is refused"
expect_refused alice "$inactive"

step "bob's local account is not keyward's: his IAM key is refused"
expect_refused bob "$bobkey"
