#!/usr/bin/env bash
# Cache hygiene on a real host: `keyward authorized-keys` run as root before install (admins do
# this to try it) writes nothing to the cache; `keyward install` gives a cache that root-owned
# entries were left in back to the keyward user sshd runs as (directories chowned, files removed
# and fetched again), refusing any symlink in it and never chowning a hard link; and
# `authorized-keys` (as keyward) and `doctor` give the same fix for a cache keyward cannot write.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

CACHE=/var/cache/keyward
# The fix both commands must print (keys::cache::ownership_fix).
FIX="keyward install (gives $CACHE and everything in it to the keyward user, refusing symlinks)"

step "IAM: alice in ops with one key"
key=$(keygen alice)
iam user alice
iam group ops
iam member ops alice
key_id=$(iam key alice "$key.pub")
write_config 'allowed_groups = ["ops"]'
[[ ! -e $CACHE ]] || fail "$CACHE exists before the scenario"

step "before install, root tries authorized-keys: keys are printed, the cache is not created"
out=$("$KEYWARD" authorized-keys alice)
[[ $out == *"$(cut -d' ' -f2 "$key.pub")"* ]] || fail "root's run printed no key: $out"
[[ ! -e $CACHE ]] || fail "a root run created $CACHE: $(find "$CACHE" -printf '%p %u\n')"

step "what an older keyward's root run left: root-owned keys/ and users/ with entries"
install -d -o root -g root -m 0755 "$CACHE" "$CACHE/keys" "$CACHE/users"
install -o root -g root -m 0644 /dev/null "$CACHE/keys/$key_id"
ln -s /etc/shadow "$CACHE/users/alice.json"

step "install refuses the symlink, names it, and changes nothing"
before=$(snapshot /etc/ssh /etc/pam.d /etc/passwd /etc/shadow)
rc=0
host_cmd install --dry-run --scheduler cron || rc=$?
((rc != 0)) || fail "install --dry-run accepted a symlink in the cache"
rc=0
host_cmd install --scheduler cron || rc=$?
((rc != 0)) || fail "install accepted a symlink in the cache"
[[ $HOST_OUT == *"$CACHE/users/alice.json is a symlink: rm $CACHE/users/alice.json && keyward install"* ]] \
    || fail "install did not name the symlink and the fix"
same_snapshot "a refused install changed files" "$before" "$(snapshot /etc/ssh /etc/pam.d /etc/passwd /etc/shadow)"
[[ $(stat -c %U /etc/shadow) == root ]] || fail "/etc/shadow changed owner"

step "without the symlink but with a hard link to a root file: --dry-run shows the repair, changes nothing"
rm "$CACHE/users/alice.json"
# A hard link is a plain file to lstat: chowning it would give the linked file to keyward
# (/etc/shadow is on another overlay here, so a root file on the cache's filesystem stands in).
SECRET=/var/lib/keyward-e2e-secret
install -o root -g root -m 0600 /dev/null "$SECRET"
ln "$SECRET" "$CACHE/keys/zz-hardlink"
host_cmd install --dry-run --scheduler cron || fail "install --dry-run failed (exit $?)"
[[ $HOST_OUT == *"warning: $CACHE/keys/zz-hardlink is a hard link (2 names): another file may be behind it; it is removed, never chowned"* ]] \
    || fail "--dry-run does not name the hard link"
[[ $HOST_OUT == *"would remove 2 cache files keyward does not own (fetched again from IAM; files are never chowned): $CACHE/keys/$key_id, $CACHE/keys/zz-hardlink"* ]] \
    || fail "--dry-run does not show the files it removes"
[[ $HOST_OUT == *"would give 3 cache directories to keyward (chown, never through a symlink): $CACHE, $CACHE/keys, $CACHE/users"* ]] \
    || fail "--dry-run does not show the cache repair"
[[ $(stat -c %U "$CACHE/keys") == root ]] || fail "--dry-run changed $CACHE/keys"
[[ -e $CACHE/keys/zz-hardlink ]] || fail "--dry-run removed the hard link"

step "install gives every directory to keyward and removes the files it did not own"
wire_host
left=$(find "$CACHE" ! -user keyward -printf '%p %u\n')
[[ -z $left ]] || fail "not keyward's after install: $left"
[[ ! -e $CACHE/keys/zz-hardlink && ! -e $CACHE/keys/$key_id ]] || fail "install left root's files in the cache"
[[ $(stat -c '%U %G %h' "$SECRET") == "root root 1" ]] \
    || fail "the hard-linked file changed: $(stat -c '%U %G %h' "$SECRET")"

step "alice logs in; sshd's keyward run writes the cache as keyward"
owned_account alice "$(expected_uid "$(iam_user_id alice)")"
expect_login alice "$key" >/dev/null
[[ $(stat -c %U "$CACHE/keys/$key_id" 2>/dev/null) == keyward ]] \
    || fail "the key was not cached by keyward: $(find "$CACHE" -printf '%p %u\n')"

step "keys/ root's again: authorized-keys (as keyward) and doctor give the same fix"
chown root:root "$CACHE/keys"
err=$(setpriv --reuid=keyward --regid=keyward --clear-groups "$KEYWARD" authorized-keys alice 2>&1 >/dev/null)
[[ $err == *"$FIX"* ]] || fail "authorized-keys does not say: $FIX; it said: $err"
doctor_out=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$KEYWARD" doctor 2>&1) || true
grep -qF "fix: $FIX" <<<"$doctor_out" || fail "doctor does not say: fix: $FIX; it said: $doctor_out"
host_cmd install --scheduler cron || fail "the repairing install failed (exit $?)"
[[ $(stat -c %U "$CACHE/keys") == keyward ]] || fail "install did not give keys/ back"

step "the cache group-writable (and keys/ root's group): --dry-run shows both repairs, install makes them"
chmod 0775 "$CACHE/users"
chgrp root "$CACHE/keys"
host_cmd install --dry-run --scheduler cron || fail "install --dry-run failed (exit $?)"
[[ $HOST_OUT == *"would give 1 cache directory to keyward (chown, never through a symlink): $CACHE/keys"* ]] \
    || fail "--dry-run does not show the group-only owner repair"
[[ $HOST_OUT == *"would remove group and world write from 1 cache directory (chmod go-w, never through a symlink): $CACHE/users"* ]] \
    || fail "--dry-run does not show the mode repair"
[[ $HOST_OUT != *"already installed"* ]] || fail "--dry-run called a drifted cache installed"
host_cmd install --scheduler cron || fail "the repairing install failed (exit $?)"
[[ $(stat -c '%a %U %G' "$CACHE/users") == "755 keyward keyward" ]] \
    || fail "install did not fix $CACHE/users: $(stat -c '%a %U %G' "$CACHE/users")"
[[ $(stat -c '%U %G' "$CACHE/keys") == "keyward keyward" ]] \
    || fail "install did not give keys/ back to keyward's group: $(stat -c '%U %G' "$CACHE/keys")"
host_cmd install --scheduler cron || fail "the third install failed (exit $?)"
[[ $HOST_OUT == *"already installed; nothing changed"* ]] || fail "a repaired cache is planned again: $HOST_OUT"

step "a hard link planted in keyward's cache: doctor names it; install removes it, never chowns it"
ln "$SECRET" "$CACHE/users/zz-hardlink"
doctor_out=$(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$KEYWARD" doctor 2>&1) || true
grep -qF "$CACHE/users/zz-hardlink is a hard link (2 names)" <<<"$doctor_out" \
    || fail "doctor does not name the hard link; it said: $doctor_out"
grep -qF "fix: rm $CACHE/users/zz-hardlink (keyward fetches it again from IAM)" <<<"$doctor_out" \
    || fail "doctor does not give the fix for the hard link; it said: $doctor_out"
host_cmd install --scheduler cron || fail "the install after the hard link failed (exit $?)"
[[ ! -e $CACHE/users/zz-hardlink ]] || fail "install left the hard link"
[[ $(stat -c '%U %G %h' "$SECRET") == "root root 1" ]] \
    || fail "the hard-linked file changed: $(stat -c '%U %G %h' "$SECRET")"
