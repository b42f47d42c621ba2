#!/usr/bin/env bash
# Scenario 4: the host already has an AuthorizedKeysCommand (EC2 Instance Connect ships one).
# After `keyward install`, the user it served still logs in with its key (keyward chains it),
# and IAM users log in too.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

step "host before keyward: local user legacy, keys from /run/keyward/bin/legacy-keys"
legacy=$(keygen legacy)
useradd --create-home --no-log-init --shell /bin/sh legacy
{
    printf '#!/bin/sh\n# Prints the fixed key of local user legacy.\n'
    # shellcheck disable=SC2016 # $1 belongs to the generated script
    printf '[ "$1" = legacy ] && echo %q\n' "$(cat "$legacy.pub")"
    printf 'exit 0\n'
} >/run/keyward/bin/legacy-keys
chmod 0755 /run/keyward/bin/legacy-keys
printf 'AuthorizedKeysCommand /run/keyward/bin/legacy-keys %%u\nAuthorizedKeysCommandUser nobody\n' \
    >>/etc/ssh/sshd_config
sshd_reload
expect_login legacy "$legacy" >/dev/null

step "IAM: ivan in ops with an Active key"
ivan=$(keygen ivan)
iam user ivan
iam group ops
iam member ops ivan
iam key ivan "$ivan.pub" >/dev/null

step "keyward install"
write_config 'allowed_groups = ["ops"]'
wire_host

step "legacy still logs in with the key the old command gives"
expect_login legacy "$legacy" >/dev/null

step "ivan gets an account at his first attempt and logs in through keyward"
ssh_kbdint ivan && fail "keyboard-interactive let ivan in"
has_account ivan || fail "no account for ivan after the keyboard-interactive attempt"
expect_login ivan "$ivan" >/dev/null

step "the legacy command does not serve its key to anyone else"
expect_refused ivan "$legacy"
