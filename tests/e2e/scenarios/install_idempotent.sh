#!/usr/bin/env bash
# Scenario 5: a second `keyward install` changes nothing and says so; `keyward uninstall` puts
# sshd's and PAM's files back as they were before the first install.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

wired() { snapshot /etc/ssh/sshd_config /etc/ssh/sshd_config.d /etc/pam.d/sshd; }

write_config 'allowed_groups = ["ops"]'
before=$(wired)

step "first install"
wire_host
first=$(wired)
[[ $first != "$before" ]] || fail "install changed neither sshd's nor PAM's configuration"
grep -q 'pam_exec.so.*/run/keyward/bin/keyward pam-create-account' /etc/pam.d/sshd \
    || fail "no pam_exec line for keyward in /etc/pam.d/sshd"
effective=$(/usr/sbin/sshd -T -C user=nobody,host=localhost,addr=127.0.0.1)
grep -qx 'authorizedkeyscommand /run/keyward/bin/keyward authorized-keys %u %f %k' <<<"$effective" \
    || fail "sshd's effective AuthorizedKeysCommand is not keyward's: $(grep -i authorizedkeys <<<"$effective")"

step "second install: nothing changes, and it says so"
host_cmd install --scheduler cron || fail "the second install failed (exit $?)"
same_snapshot "the second install changed files" "$first" "$(wired)"
grep -qiE 'nothing (to )?chang|no change|unchanged' <<<"$HOST_OUT" \
    || fail "the second install did not say that nothing changed"

step "uninstall restores sshd_config, the drop-in dir and pam.d/sshd"
host_cmd uninstall || fail "keyward uninstall failed (exit $?)"
same_snapshot "uninstall did not restore the pre-install files" "$before" "$(wired)"
/usr/sbin/sshd -t || fail "sshd rejects its configuration after uninstall"
