#!/usr/bin/env bash
# Regression for C1 and C2 through the real sshd: an account belongs to the IAM identity it was
# made for (its UserId, in a root-owned ownership record with its UID), not to a name.
# C1: an admin re-makes an account by hand (`userdel carol; useradd -u 4242 carol`): IAM carol
#     must not log into the hand-made account, and sync must agree that it is not keyward's.
# C2: an IAM user deleted and re-created under the same name is someone else: the new person's
#     key must not open the old person's account (and their files).
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

step "IAM: carol and dave in ops, each with an Active key"
carol=$(keygen carol)
dave=$(keygen dave)
iam group ops
for u in carol dave; do
    iam user "$u"
    iam member ops "$u"
done
iam key carol "$carol.pub" >/dev/null
iam key dave "$dave.pub" >/dev/null

step "host wired; identities are re-read at every login (group_cache_ttl = 0s)"
write_config 'allowed_groups = ["ops"]' 'create_accounts = false' 'group_cache_ttl = "0s"'
wire_host
for u in carol dave; do
    ssh_kbdint "$u" || true
    has_account "$u" || fail "the first attempt created no account for $u"
    expect_login "$u" "${!u}" >/dev/null
done
echo "dave's private notes" >/home/dave/notes
chown dave: /home/dave/notes
chmod 0600 /home/dave/notes

step "C1: carol's account re-made by hand with UID 4242: IAM carol is refused"
userdel carol
useradd --uid 4242 --create-home --no-log-init --shell /bin/sh carol
expect_refused carol "$carol"
plan=$("$KEYWARD" sync --dry-run 2>&1) || true
note "sync --dry-run: $(grep carol <<<"$plan" | head -3 | tr '\n' '|')"
grep -q "carol.*not keyward's" <<<"$plan" || fail "sync does not call carol's re-made account foreign: $plan"

step "C2: dave leaves; a different person gets an IAM user named dave"
old_id=$(iam_user_id dave)
iam delete-user dave
iam user dave
iam member ops dave
new_id=$(iam_user_id dave)
[[ $old_id != "$new_id" ]] || fail "moto gave the re-created user the same UserId"
impostor=$(keygen impostor)
iam key dave "$impostor.pub" >/dev/null
expect_refused dave "$impostor"
grep -q "$old_id" "$E2E_SSHD_LOG" /var/log/keyward* 2>/dev/null || true
ssh_kbdint dave || true
[[ $(getent passwd dave | cut -d: -f3) == "$(expected_uid "$old_id")" ]] \
    || fail "dave's account changed: $(getent passwd dave)"
note "the new IAM dave ($new_id) is refused the account of $old_id"
