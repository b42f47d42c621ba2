#!/usr/bin/env bash
# Scenario 6: on a host whose sshd configuration does not validate, `keyward install` fails and
# leaves every file in /etc as it was; the running sshd keeps running.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

write_config 'allowed_groups = ["ops"]'
printf 'NoSuchDirective yes\n' >>/etc/ssh/sshd_config
/usr/sbin/sshd -t 2>/dev/null && fail "sshd -t accepts the bogus directive: the scenario proves nothing"
before=$(snapshot /etc)
pid=$(sshd_pid)

step "keyward install on the broken host"
rc=0
host_cmd install --scheduler cron || rc=$?
((rc != 0)) || fail "keyward install succeeded on a host whose sshd config does not validate"

step "every file in /etc is as it was; sshd still runs"
same_snapshot "install changed /etc although it failed" "$before" "$(snapshot /etc)"
kill -0 "$pid" 2>/dev/null || fail "sshd (pid $pid) is gone"
sshd_answers || fail "sshd (pid $pid) no longer answers"
