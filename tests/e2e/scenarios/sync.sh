#!/usr/bin/env bash
# Scenario: `keyward sync` makes the accounts, groups and sudo rules of this host follow IAM,
# through the real shadow-utils and visudo: create → no-op → IAM changes (add, remove, delete
# user, delete group, disabled key) → lock, unlock, delete after delete_after, the mass-change
# guard, one sync at a time, and an IAM outage that changes nothing.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

[[ -x /usr/sbin/visudo ]] || fail "/usr/sbin/visudo is missing: install sudo (scripts/test does)"

sync_ok() { "$KEYWARD" sync "$@" >"$E2E_WORK/sync.out" 2>&1 || { cat "$E2E_WORK/sync.out" >&2; fail "keyward sync $* failed"; }; sed 's/^/   | /' "$E2E_WORK/sync.out" >&2; }
# The account database, sudo rules and keyward's records: what a sync may change.
accounts_snapshot() { snapshot /etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/sudoers.d /var/lib/keyward; }
uid_of() { getent passwd "$1" | cut -d: -f3; }
members_of() { getent group "$1" | cut -d: -f4; }
expire_of() { getent shadow "$1" | cut -d: -f8; }
group_id() { iam py 'print(iam.get_group(GroupName=args[0])["Group"]["GroupId"])' "$1"; }
delete_group() {
    iam py 'g = args[0]
for u in iam.get_group(GroupName=g)["Users"]:
    iam.remove_user_from_group(GroupName=g, UserName=u["UserName"])
iam.delete_group(GroupName=g)' "$1"
}

step "IAM: ops = alice bob carol dan; keyward_dev = alice bob; keyward_web = carol; admins = alice"
for u in alice bob carol dan erin; do
    iam user "$u"
    keygen "$u" >/dev/null
done
alice_key=$E2E_WORK/alice
bob_key=$E2E_WORK/bob
iam key alice "$alice_key.pub" >/dev/null
iam key bob "$bob_key.pub" >/dev/null
dan_key_id=$(iam key dan "$E2E_WORK/dan.pub")
for g in ops keyward_dev keyward_web admins; do iam group "$g"; done
for u in alice bob carol dan; do iam member ops "$u"; done
iam member keyward_dev alice
iam member keyward_dev bob
iam member keyward_web carol
iam member admins alice
write_config 'allowed_groups = ["ops"]' 'sudo_groups = ["admins"]' 'delete_after = "1d"' 'create_on_login = false' 'group_cache_ttl = "0s"'
hand_wire

step "first sync: accounts with hashed UIDs, groups with hashed GIDs, members, sudoers"
sync_ok
for u in alice bob carol dan; do
    has_account "$u" || fail "no account for $u"
    [[ $(uid_of "$u") == "$(expected_uid "$(iam_user_id "$u")")" ]] || fail "$u's UID is not the hashed one: $(getent passwd "$u")"
    [[ -f /var/lib/keyward/accounts/$u ]] || fail "no ownership record for $u"
done
! has_account erin || fail "erin (not in ops) got an account"
[[ $(getent group dev | cut -d: -f3) == "$(expected_uid "$(group_id keyward_dev)")" ]] || fail "dev's GID is not the hashed one: $(getent group dev)"
[[ $(members_of dev) == alice,bob ]] || fail "dev members: $(members_of dev)"
[[ $(members_of web) == carol ]] || fail "web members: $(members_of web)"
sudoers=/etc/sudoers.d/keyward
[[ $(stat -c '%a %U %G' "$sudoers") == "440 root root" ]] || fail "sudoers mode/owner: $(stat -c '%a %U %G' "$sudoers")"
grep -qx 'alice ALL=(ALL) NOPASSWD:ALL' "$sudoers" || fail "alice has no sudo line: $(cat "$sudoers")"
[[ $(grep -vc '^#' "$sudoers") == 1 ]] || fail "sudoers has other lines: $(cat "$sudoers")"
/usr/sbin/visudo -c -q || fail "visudo -c rejects the host's sudoers with keyward's file"
sudo -l -U alice | grep -q NOPASSWD || fail "sudo does not grant alice anything"
expect_login alice "$alice_key" >/dev/null

step "second sync with no IAM change: nothing planned, nothing changed"
before=$(accounts_snapshot)
"$KEYWARD" sync --json >"$E2E_WORK/noop.json" || fail "no-op sync failed: $(cat "$E2E_WORK/noop.json")"
"$E2E_PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["applied"] and r["actions"] == [] and not r["failed"], r' "$E2E_WORK/noop.json" ||
    fail "the no-op sync planned something: $(cat "$E2E_WORK/noop.json")"
same_snapshot "the no-op sync changed the account database" "$before" "$(accounts_snapshot)"

step "IAM changes: erin joins ops, bob leaves ops, carol is deleted, keyward_web is deleted, dan's key is disabled"
iam member ops erin
iam remove-member ops bob
iam delete-user carol
delete_group keyward_web
iam key-status dan "$dan_key_id" Inactive
sync_ok
has_account erin || fail "erin got no account"
for u in bob carol; do
    [[ $(expire_of "$u") == 1 ]] || fail "$u is not expired: $(getent shadow "$u")"
    [[ $(getent shadow "$u" | cut -d: -f2) == '!'* ]] || fail "$u's password is not locked"
    [[ -f /var/lib/keyward/locked/$u ]] || fail "no lock record for $u"
done
[[ $(expire_of dan) == "" ]] || fail "dan (still allowed, key disabled) was locked"
[[ $(members_of dev) == alice ]] || fail "bob is still in dev: $(members_of dev)"
! getent group web >/dev/null || fail "group web (its IAM group is deleted) still exists"
[[ ! -e /var/lib/keyward/groups/web ]] || fail "web's record is still there"
expect_refused bob "$bob_key"
expect_login alice "$alice_key" >/dev/null

step "bob back in ops: unlocked, same UID, not re-created"
bob_uid=$(uid_of bob)
iam member ops bob
sync_ok
[[ $(uid_of bob) == "$bob_uid" && $(expire_of bob) == "" ]] || fail "bob not unlocked as he was: $(getent shadow bob)"
[[ ! -e /var/lib/keyward/locked/bob ]] || fail "bob's lock record is still there"
[[ $(members_of dev) == alice,bob ]] || fail "bob is not back in dev: $(members_of dev)"
expect_login bob "$bob_key" >/dev/null

step "delete_after: carol, locked two days ago, is deleted with her private group"
"$E2E_PY" -c 'import json,sys,time; json.dump({"locked_at": int(time.time()) - 2*86400}, open(sys.argv[1], "w"))' /var/lib/keyward/locked/carol
sync_ok
! has_account carol || fail "carol still exists after delete_after"
! getent group carol >/dev/null || fail "carol's private group is still there"
[[ ! -e /var/lib/keyward/accounts/carol && ! -e /var/lib/keyward/locked/carol ]] || fail "carol's records are still there"

step "mass-change guard: two removals over max_removals = 1 change nothing without --force"
write_config 'allowed_groups = ["ops"]' 'sudo_groups = ["admins"]' 'delete_after = "1d"' 'create_on_login = false' 'group_cache_ttl = "0s"' 'max_removals = 1'
iam remove-member ops dan
iam remove-member ops erin
before=$(accounts_snapshot)
rc=0
"$KEYWARD" sync >"$E2E_WORK/guard.out" 2>&1 || rc=$?
((rc == 1)) || fail "guarded sync exited $rc: $(cat "$E2E_WORK/guard.out")"
grep -q 'max_removals = 1' "$E2E_WORK/guard.out" || fail "no guard message: $(cat "$E2E_WORK/guard.out")"
same_snapshot "a refused sync changed the account database" "$before" "$(accounts_snapshot)"
sync_ok --force
[[ $(expire_of dan) == 1 && $(expire_of erin) == 1 ]] || fail "--force did not lock dan and erin"

step "one sync at a time: a held lock makes a second run exit with a message and change nothing"
iam member ops dan
flock /run/keyward/sync.lock sleep 30 &
holder=$!
sleep 0.5
rc=0
"$KEYWARD" sync >"$E2E_WORK/busy.out" 2>&1 || rc=$?
kill "$holder"
wait "$holder" 2>/dev/null || true
((rc == 1)) || fail "concurrent sync exited $rc: $(cat "$E2E_WORK/busy.out")"
grep -q 'another `keyward sync` is running' "$E2E_WORK/busy.out" || fail "no clear message: $(cat "$E2E_WORK/busy.out")"
[[ $(expire_of dan) == 1 ]] || fail "the refused concurrent sync changed dan"

step "IAM outage: moto stopped; sync exits 3 and changes nothing"
iam remove-member ops alice
before=$(accounts_snapshot)
kill "$E2E_MOTO_PID"
wait "$E2E_MOTO_PID" 2>/dev/null || true
rc=0
"$KEYWARD" sync >"$E2E_WORK/outage.out" 2>&1 || rc=$?
((rc == 3)) || fail "sync during an outage exited $rc: $(cat "$E2E_WORK/outage.out")"
same_snapshot "sync during an IAM outage changed the account database" "$before" "$(accounts_snapshot)"
[[ $(expire_of alice) == "" ]] || fail "alice was locked during an outage"
note "all sync facts hold"
