#!/usr/bin/env bash
# Scenario: `keyward doctor` on a real host. Before `keyward install` it finds the problems
# (sshd, PAM, sync schedule, cache dir) and exits 1; after `keyward install --scheduler cron`
# every check is ok (cron's last run is "unknown", an ok with a note) and it exits 0. Run with
# the bare environment sshd gives keyward, so credentials come from aws_config_file.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

DOCTOR_JSON=$E2E_WORK/doctor.json

# run_doctor: `keyward doctor` with no AWS_* variables; shows what it said; returns its exit
# code. The JSON verdicts are in $DOCTOR_JSON.
run_doctor() {
    local rc=0
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$KEYWARD" doctor >"$E2E_WORK/doctor.txt" 2>&1 || rc=$?
    sed 's/^/   | /' "$E2E_WORK/doctor.txt" >&2
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$KEYWARD" doctor --json >"$DOCTOR_JSON" 2>/dev/null || true
    return "$rc"
}

# status NAME: ok, problem, skip (or missing) for the check NAME.
status() {
    "$E2E_PY" -c '
import json, sys
checks = {c["name"]: c for c in json.load(open(sys.argv[1]))}
print(checks.get(sys.argv[2], {}).get("status", "missing"))' "$DOCTOR_JSON" "$1"
}

# detail NAME: the check's detail text.
detail() {
    "$E2E_PY" -c '
import json, sys
checks = {c["name"]: c for c in json.load(open(sys.argv[1]))}
print(checks.get(sys.argv[2], {}).get("detail", ""))' "$DOCTOR_JSON" "$1"
}

expect_status() {
    local got
    got=$(status "$1")
    [[ $got == "$2" ]] || fail "doctor check '$1' is $got, expected $2: $(detail "$1")"
}

iam user alice >/dev/null
iam group ops >/dev/null
iam member ops alice >/dev/null
write_config 'allowed_groups = ["ops"]'

step "before install: doctor finds sshd, PAM, schedule and cache problems and exits 1"
rc=0
run_doctor || rc=$?
((rc == 1)) || fail "doctor exited $rc before install, expected 1"
for check in config credentials iam:ListSSHPublicKeys iam:GetSSHPublicKey iam:ListGroupsForUser \
    iam:GetUser iam:ListGroups iam:GetGroup clock "command path"; do
    expect_status "$check" ok
done
[[ $(detail credentials) == *"aws_config_file $E2E_AWS_CONFIG"* ]] \
    || fail "credentials do not come from aws_config_file: $(detail credentials)"
for check in sshd pam "sync schedule" "cache dir"; do
    expect_status "$check" problem
done

step "after keyward install --scheduler cron: every check is ok and doctor exits 0"
wire_host
rc=0
run_doctor || rc=$?
for check in sshd "command path" pam "sync schedule" "cache dir"; do
    expect_status "$check" ok
done
[[ $(detail sshd) == *"$KEYWARD authorized-keys %u %f %k as user keyward"* ]] \
    || fail "doctor does not name keyward's command: $(detail sshd)"
[[ $(detail "sync schedule") == *"cron entry present"*"last run unknown"* ]] \
    || fail "doctor does not report the cron entry: $(detail "sync schedule")"
((rc == 0)) || fail "doctor exited $rc after install, expected 0"
grep -q '^no problems found$' "$E2E_WORK/doctor.txt" || fail "doctor did not say 'no problems found'"

step "a broken cache dir is a problem again"
chmod 0777 /var/cache/keyward
rc=0
run_doctor || rc=$?
((rc == 1)) || fail "doctor exited $rc with a world-writable cache dir, expected 1"
expect_status "cache dir" problem
[[ $(detail "cache dir") == *"writable by group or others"* ]] \
    || fail "cache dir problem not explained: $(detail "cache dir")"
