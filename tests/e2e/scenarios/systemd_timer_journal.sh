#!/usr/bin/env bash
# Scenario (tests/e2e/ns-systemd: a real systemd as PID 1, journald, dbus): `keyward install`
# schedules the hourly sync as a systemd timer; the service it starts creates the accounts and
# logs keyward's structured fields to journald; sshd, logging to the journal, lets a user in
# through `authorized-keys`; `keyward audit` joins both from the real journal; `keyward uninstall`
# takes the units away and leaves the unit directory as it was.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

[[ ${E2E_SYSTEMD:-} == 1 && -d /run/systemd/system ]] ||
    fail "systemd is not the running init here: run this scenario through tests/e2e/ns-systemd"
[[ -S /dev/log && -S /run/systemd/journal/socket ]] || fail "no journald sockets (/dev/log, /run/systemd/journal/socket)"

SYNC_ACTION=6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d71 # src/sync/apply.rs
KEY_SERVED=6b1c0b7f2a8e4f1e9d3a5c7e0f2b4d61  # src/logging.rs
TIMER=keyward-sync.timer
SERVICE=keyward-sync.service

# has_entry FILE PYTHON_CONDITION: some JSON line of FILE (journal_json output), bound to `e`,
# satisfies the condition.
has_entry() {
    "$E2E_PY" -c '
import json, sys
entries = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if any(eval(sys.argv[2], {"e": e}) for e in entries) else 1)' "$1" "$2"
}

step "sshd: Debian's ssh.service, no -e: it logs to the journal"
systemd_sshd_start
note "ssh.service main pid $E2E_SSHD_PID"

step "IAM: ops = alice bob; erin is in no allowed group; alice has a key"
for u in alice bob erin; do iam user "$u"; done
alice_key=$(keygen alice)
alice_key_id=$(iam key alice "$alice_key.pub")
alice_fp=$(ssh-keygen -lf "$alice_key.pub" | awk '{ print $2 }')
iam group ops
iam member ops alice
iam member ops bob
write_config 'allowed_groups = ["ops"]' 'create_on_login = false'
units_before=$(snapshot /etc/systemd/system)

step "keyward install, default scheduler: the systemd timer, enabled and scheduled"
host_cmd install || fail "keyward install failed (exit $?)"
grep -q 'systemctl reload ssh.service' <<<"$HOST_OUT" || fail "install did not reload sshd through systemd"
[[ ! -e /etc/cron.d/keyward ]] || fail "install wrote a cron entry on a systemd host"
[[ $(systemctl is-enabled "$TIMER") == enabled ]] || fail "$TIMER is not enabled: $(systemctl is-enabled "$TIMER" 2>&1)"
[[ $(systemctl is-active "$TIMER") == active ]] || fail "$TIMER is not active"
timers=$(systemctl list-timers --all --no-pager --no-legend)
note "list-timers: $(grep "$TIMER" <<<"$timers" || true)"
grep -Eq "[[:space:]]$TIMER[[:space:]]+$SERVICE\$" <<<"$timers" || fail "$TIMER is not in list-timers: $timers"
next=$(systemctl show -P NextElapseUSecMonotonic "$TIMER")
[[ -n $next && $next != infinity && $next != 0 ]] || fail "$TIMER has no next elapse: '$next'"

step "systemctl start $SERVICE: a sync that creates the accounts"
! has_account alice || fail "alice has an account before any sync"
systemctl start "$SERVICE" ||
    fail "$SERVICE failed: $(journalctl -u "$SERVICE" --no-pager -n 30 2>&1)"
[[ $(systemctl show -P Result "$SERVICE") == success ]] || fail "$SERVICE result: $(systemctl show -P Result "$SERVICE")"
for u in alice bob; do
    has_account "$u" || fail "the service's sync created no account for $u"
    [[ $(getent passwd "$u" | cut -d: -f3) == "$(expected_uid "$(iam_user_id "$u")")" ]] ||
        fail "$u's UID is not the hashed one: $(getent passwd "$u")"
done
! has_account erin || fail "erin (in no allowed group) got an account"

step "the service's journal entries carry keyward's fields"
journal_json -u "$SERVICE" >"$E2E_WORK/sync-journal.json"
note "$(wc -l <"$E2E_WORK/sync-journal.json") entries for $SERVICE"
for u in alice bob; do
    has_entry "$E2E_WORK/sync-journal.json" "e.get('SYSLOG_IDENTIFIER') == 'keyward' and e.get('_SYSTEMD_UNIT') == '$SERVICE' \
and e.get('MESSAGE_ID') == '$SYNC_ACTION' and e.get('ACTION') == 'create_user' \
and e.get('LINUX_USER') == '$u' and e.get('IAM_USER') == '$u'" ||
        fail "no create_user entry for $u with MESSAGE_ID, ACTION, LINUX_USER, IAM_USER: $(cat "$E2E_WORK/sync-journal.json")"
done
has_entry "$E2E_WORK/sync-journal.json" "e.get('MESSAGE') == 'sync finished' and e.get('FAILED') == '0' \
and int(e.get('DONE', 0)) >= 2 and int(e.get('IAM_CALLS', 0)) >= 2" ||
    fail "no 'sync finished' entry with DONE, FAILED = 0 and IAM_CALLS"

step "alice logs in with her IAM key; sshd and keyward both log to the journal"
since=$(date +%s)
expect_login alice "$alice_key" >/dev/null
journal_json --since="@$since" SYSLOG_IDENTIFIER=sshd SYSLOG_IDENTIFIER=keyward >"$E2E_WORK/login-journal.json"
has_entry "$E2E_WORK/login-journal.json" "e.get('SYSLOG_IDENTIFIER') == 'sshd' \
and e.get('MESSAGE', '').startswith('Accepted publickey for alice from 127.0.0.1 ') and '$alice_fp' in e.get('MESSAGE', '')" ||
    fail "no 'Accepted publickey for alice' line from sshd in the journal: $(journalctl --no-pager -n 40)"
keyward_uid=$(id -u keyward)
has_entry "$E2E_WORK/login-journal.json" "e.get('SYSLOG_IDENTIFIER') == 'keyward' and e.get('MESSAGE_ID') == '$KEY_SERVED' \
and e.get('IAM_USER') == 'alice' and e.get('LINUX_USER') == 'alice' and e.get('KEY_ID') == '$alice_key_id' \
and e.get('FINGERPRINT') == '$alice_fp' and e.get('SOURCE') in ('live', 'cache') and e.get('_UID') == '$keyward_uid'" ||
    fail "no key-served entry (MESSAGE_ID, IAM_USER, KEY_ID, FINGERPRINT, SOURCE; as user keyward) in the journal"

step "keyward audit (no --log): reads the journal and joins sshd's line with keyward's"
"$KEYWARD" audit >"$E2E_WORK/audit.out" 2>"$E2E_WORK/audit.err" ||
    fail "keyward audit failed: $(cat "$E2E_WORK/audit.err")"
sed 's/^/   | /' "$E2E_WORK/audit.out" >&2
# TIME  IAM USER  FROM  LINUX USER  RESULT  KEY ID  FINGERPRINT
awk -v id="$alice_key_id" -v fp="$alice_fp" \
    '$2 == "alice" && $3 == "127.0.0.1" && $4 == "alice" && $5 == "accepted" && $6 == id && $7 == fp { found = 1 }
     END { exit !found }' "$E2E_WORK/audit.out" ||
    fail "keyward audit shows no accepted login of alice with key $alice_key_id ($alice_fp)"

step "keyward uninstall: timer disabled, units gone, unit directory as before"
host_cmd uninstall || fail "keyward uninstall failed (exit $?)"
[[ ! -e /etc/systemd/system/$TIMER && ! -e /etc/systemd/system/$SERVICE ]] || fail "a unit file is still there"
[[ -z $(systemctl list-unit-files --no-legend 'keyward-sync.*') ]] ||
    fail "systemd still knows keyward's units: $(systemctl list-unit-files --no-legend 'keyward-sync.*')"
! systemctl is-active --quiet "$TIMER" || fail "$TIMER is still active"
! grep -q "$TIMER" <<<"$(systemctl list-timers --all --no-pager --no-legend)" || fail "$TIMER is still in list-timers"
same_snapshot "the unit directory /etc/systemd/system is not as before install" "$units_before" "$(snapshot /etc/systemd/system)"
note "all systemd, journald and audit facts hold"
