#!/usr/bin/env bash
# The demo's story, run by scripts/demo inside a throwaway namespace (tests/e2e/ns): a host
# with the real OpenSSH server on 127.0.0.1, a local IAM emulator, and keyward wired in by
# `keyward install`. Never run it on a host directly (tests/e2e/lib.sh refuses).
# shellcheck source=scripts/demo-lib.sh
. "$E2E_REPO/scripts/demo-lib.sh"

step "IAM (an admin, once): user alice in group ops"
iam user alice
iam group ops
iam member ops alice
note "IAM user alice, member of IAM group ops"

step "alice's laptop: make a key and upload it to her IAM user"
key=$(keygen alice)
show "$KEYWARD" upload-key --user alice --identity "$key.pub"
show "$KEYWARD" list-keys --user alice

step "the host: a config, then keyward install"
write_config 'allowed_groups = ["ops"]'
show cat /etc/keyward/keyward.toml
host_cmd install --scheduler cron || fail "keyward install failed"
show_sh "sshd -T | grep -E '^(authorizedkeyscommand|authorizedkeyscommanduser|kbdinteractiveauthentication) '"
show grep -A1 'BEGIN keyward' /etc/pam.d/sshd

step "alice's first connection: no account yet, so it is created and she is asked to connect again"
getent passwd alice >/dev/null && fail "alice already has an account"
askpass=$E2E_WORK/askpass-empty
printf '#!/bin/sh\nprintf "%%s\\n" "$1" >&2\necho\n' >"$askpass"
chmod 0755 "$askpass"
note 'expected below: ssh asks "Password:" (keyward'"'"'s PAM hook runs in that keyboard-interactive round;'
note 'the demo answers with nothing) and ends with "Permission denied": this first attempt only'
note 'creates the account, and alice'"'"'s next connection gets in with her key.'
printf '   $ %s\n' "$(kw_quote ssh -i "$key" alice@127.0.0.1)" >&2
SSH_ASKPASS=$askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' timeout 20 setsid -w \
    ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o IdentityAgent=none -o IdentitiesOnly=yes -o NumberOfPasswordPrompts=1 \
    -o PreferredAuthentications=publickey,keyboard-interactive -i "$key" \
    alice@127.0.0.1 true </dev/null 2>&1 | sed 's/^/   | /' >&2 || true
getent passwd alice >/dev/null || fail "no account was created for alice"
show getent passwd alice

step "alice connects again: in, with her IAM key"
login='echo "logged in as $(id -un) (uid $(id -u)) on $(hostname)"'
printf '   $ %s\n' "$(kw_quote ssh -i "$key" alice@127.0.0.1 "$login")" >&2
ssh_key alice "$key" "$login" 2>&1 | sed 's/^/   | /' >&2

step "her key disabled in IAM: refused at once"
key_id=$(iam py 'print(iam.list_ssh_public_keys(UserName="alice")["SSHPublicKeys"][0]["SSHPublicKeyId"])')
show "$KEYWARD" disable-key --user alice "$key_id"
expect_refused alice "$key"
note "alice is refused"

step "keyward uninstall: sshd and PAM back as they were"
host_cmd uninstall || fail "keyward uninstall failed"
printf '\ndemo finished: IAM decided who got in, end to end, on 127.0.0.1.\n' >&2
