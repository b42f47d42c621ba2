#!/usr/bin/env bash
# Scenario 2: IAM decides, live: a key disabled in IAM stops working at the next login, a deleted
# IAM user gets in nowhere, and an IAM user outside allowed_groups neither gets an account nor
# gets in (even through an account keyward owns).
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

step "IAM: frank and gina in ops, erin outside it; each with an Active key"
frank=$(keygen frank)
gina=$(keygen gina)
erin=$(keygen erin)
iam group ops
iam group dev
for u in frank gina erin; do
    iam user "$u"
done
iam member ops frank
iam member ops gina
iam member dev erin
frank_key_id=$(iam key frank "$frank.pub")
iam key gina "$gina.pub" >/dev/null
iam key erin "$erin.pub" >/dev/null

step "host wired; frank, gina and erin have accounts keyward owns"
write_config 'allowed_groups = ["ops"]'
wire_host
for u in frank gina erin; do
    owned_account "$u" "$(expected_uid "$(iam_user_id "$u")")"
done
expect_login frank "$frank" >/dev/null
expect_login gina "$gina" >/dev/null

step "frank's key disabled in IAM: refused at the next login"
iam key-status frank "$frank_key_id" Inactive
expect_refused frank "$frank"
step "... and enabled again: let in"
iam key-status frank "$frank_key_id" Active
expect_login frank "$frank" >/dev/null

step "gina deleted from IAM: refused"
iam delete-user gina
expect_refused gina "$gina"

step "erin (dev, not ops) is refused"
expect_refused erin "$erin"

step "harry (dev, no account): keyboard-interactive creates no account, publickey gets nothing"
harry=$(keygen harry)
iam user harry
iam member dev harry
iam key harry "$harry.pub" >/dev/null
ssh_kbdint harry && fail "keyboard-interactive let harry in"
! has_account harry || fail "an account was created for harry, who is not in allowed_groups"
expect_refused harry "$harry"
