#!/usr/bin/env bash
# Scenario 3: names an attacker can send to sshd (unknown, root, shell metacharacters, too long)
# create nothing on the host and get in nowhere, even when IAM has a user of that name with an
# Active key in the allowed group.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

long=$(printf 'a%.0s' {1..40})
# shellcheck disable=SC2016 # literal \$(...): names an attacker sends
names=(ghost root 'a;id' '$(id)' '$(touch /tmp/e2e-pwned)' "$long" 'keyward' '../../etc/passwd')

step "IAM: users root and a 40-character name, in ops with an Active key"
key=$(keygen hostile)
iam group ops
for u in root "$long"; do
    iam user "$u"
    iam member ops "$u"
    iam key "$u" "$key.pub" >/dev/null
done

step "host wired"
write_config 'allowed_groups = ["ops"]'
wire_host
accounts_before=$(snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /home /var/lib/keyward/accounts)

for name in "${names[@]}"; do
    step "name ${name@Q}"
    ssh_kbdint "$name" && fail "keyboard-interactive let ${name@Q} in"
    rc=0
    ssh_key "$name" "$key" true >/dev/null 2>&1 || rc=$?
    ((rc == 255)) || fail "${name@Q} with the IAM key: expected refusal (ssh exit 255), got $rc"
done

step "nothing was created, and no name ran a command"
same_snapshot "accounts or homes changed" "$accounts_before" \
    "$(snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /home /var/lib/keyward/accounts)"
[[ ! -e /tmp/e2e-pwned ]] || fail "a user name was run as a shell command"

step "control: the hook was live all along: a legitimate IAM user's attempt creates an account"
kim=$(keygen kim)
iam user kim
iam member ops kim
iam key kim "$kim.pub" >/dev/null
ssh_kbdint kim && fail "keyboard-interactive let kim in"
has_account kim || fail "no account for kim: the PAM hook did not run, so this scenario proved nothing"
expect_login kim "$kim" >/dev/null
