#!/usr/bin/env bash
# Scenario: a keymaker 1.1 host moved to keyward by following docs/keymaker-migration.md, step
# by step. keymaker 1.1.0 from PyPI ($E2E_KEYMAKER_VENV, built by scripts/lib.sh keymaker_venv)
# runs its own `install`, account-creation script and `sync_groups` here first, and a person
# logs in through it. Then the guide's commands, in the guide's order, and logins over the real
# sshd for the five cases of issue 10:
#   1. accounts keymaker named `Erin` and `dave@example.com`: renamed to keyward's names
#      (`_erin`, `dave_0example.com`) by `keyward rename-keymaker`, UID/home/files kept;
#   2. the local group `web` (gid 3000) keymaker reused for IAM `keymaker_web`: doctor flags it,
#      the message gives the exact adopt_groups line;
#   3. carol (not in allowed_groups) and bob (IAM user re-created: new UserId) are reported
#      with reasons and not let in;
#   4. keymaker's remnants are named by doctor and removed as the guide says;
#   5. off EC2, aws-config exists (root:root 0600) before the first `sync --dry-run`, and
#      becomes root:keyward 0640 after install;
# and security issue M1: an account `Frank` from 2020 whose UID the IAM user Frank's UserId
# hashes to (as if ground to it), created today: neither adopted nor renamed.
# Needs E2E_OVERLAY_USR=1 (keymaker writes /usr/sbin/keymaker-get-public-keys).
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

[[ ${E2E_OVERLAY_USR:-} == 1 ]] || fail "run with E2E_OVERLAY_USR=1: keymaker install writes /usr/sbin"
KMV=${E2E_KEYMAKER_VENV:?set E2E_KEYMAKER_VENV (scripts/lib.sh keymaker_venv)}
# The venv's scripts name its python by the host path, which may not exist in here (a checkout
# under /tmp or /home: empty tmpfs in this namespace). The repository is at $E2E_REPO; put the
# venv back at its host path, in this namespace only.
if [[ ! -e $KMV/bin/python ]]; then
    [[ $KMV == */target/e2e-keymaker-venv ]] || fail "E2E_KEYMAKER_VENV=$KMV is not the repository's target/e2e-keymaker-venv"
    mkdir -p -- "$KMV"
    mount -n --bind -o ro "$E2E_REPO/target/e2e-keymaker-venv" "$KMV" || fail "cannot bind the keymaker venv at $KMV"
fi
KM=$KMV/bin
[[ -x $KM/keymaker ]] || fail "no keymaker in $KM: run scripts/lib.sh's keymaker_venv"

uid_of() { getent passwd "$1" | cut -d: -f3; }
home_of() { getent passwd "$1" | cut -d: -f6; }
gid_of() { getent group "$1" | cut -d: -f3; }
# members_of GROUP: its members, sorted, comma-separated.
members_of() { getent group "$1" | cut -d: -f4 | tr , '\n' | LC_ALL=C sort | paste -sd, -; }
# kw ARGS...: keyward as root on a host off EC2, its output in $E2E_WORK/out (shown indented);
# returns its status. Without the namespace's AWS_* variables, as an admin's root shell would
# be: credentials come from keyward.toml's aws_config_file only.
kw() {
    local rc=0
    env -u AWS_ENDPOINT_URL -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_REGION \
        -u AWS_DEFAULT_REGION "$KEYWARD" "$@" >"$E2E_WORK/out" 2>&1 || rc=$?
    sed 's/^/   | /' "$E2E_WORK/out" >&2
    return "$rc"
}
said() { grep -qF -- "$1" "$E2E_WORK/out" || fail "expected in the output of the last command: $1"; }

# ---------------------------------------------------------------------------
step "IAM: ops = alice Erin dave@example.com bob; keymaker_dev = alice Erin; keymaker_web = alice dave@example.com; carol in no allowed group"
for u in alice Erin dave@example.com bob carol; do
    iam user "$u"
    key=$(keygen "${u%@*}")
    iam key "$u" "$key.pub" >/dev/null
done
for g in ops keymaker_dev keymaker_web; do iam group "$g"; done
for u in alice Erin dave@example.com bob; do iam member ops "$u"; done
iam member keymaker_dev alice
iam member keymaker_dev Erin
iam member keymaker_web alice
iam member keymaker_web dave@example.com
iam member keymaker_web carol

step "a local group web (gid 3000) that predates keymaker"
groupadd --gid 3000 web

step "keymaker 1.1.0: its own install (sshd lines, PAM hook, cron job, key script, user keymaker)"
# The namespace has no init system: keymaker's `service sshd reload` is answered here, and the
# scenario reloads sshd itself right after.
install -d "$E2E_WORK/shim"
printf '#!/bin/sh\nexit 0\n' >"$E2E_WORK/shim/service"
chmod 0755 "$E2E_WORK/shim/service"
export PATH=$E2E_WORK/shim:$KM:$PATH
keymaker install || fail "keymaker install failed"
sshd_reload
[[ -x /usr/sbin/keymaker-get-public-keys ]] || fail "keymaker install wrote no /usr/sbin/keymaker-get-public-keys"
grep -qx 'AuthenticationMethods publickey keyboard-interactive:pam,publickey' /etc/ssh/sshd_config \
    || fail "keymaker's AuthenticationMethods line is missing"
grep -q keymaker-create-account-for-iam-user /etc/pam.d/sshd || fail "keymaker's PAM hook is missing"
# sshd runs keymaker's lookup as user keymaker with a bare environment: its boto3 reads the
# emulator from keymaker's own ~/.aws/config (boto3 honours endpoint_url there).
install -d -o keymaker -m 0700 /home/keymaker /home/keymaker/.aws
install -o keymaker -m 0600 "$E2E_AWS_CONFIG" /home/keymaker/.aws/config
[[ $(home_of keymaker) == /home/keymaker ]] || fail "user keymaker's home: $(getent passwd keymaker)"

step "keymaker's account-creation script (what its PAM hook runs on a first login) and sync_groups"
for u in alice Erin dave@example.com bob carol; do
    PAM_USER=$u keymaker-create-account-for-iam-user >/dev/null || fail "keymaker could not create $u"
done
keymaker sync_groups 2>"$E2E_WORK/sync_groups.log" || fail "keymaker sync_groups failed: $(cat "$E2E_WORK/sync_groups.log")"
for u in alice Erin dave@example.com bob carol; do
    [[ $(uid_of "$u") == "$(keymaker get_uid "$u")" ]] || fail "$u has no account with keymaker's UID"
done
[[ $(gid_of web) == 3000 ]] || fail "keymaker replaced web: $(getent group web)"
[[ $(members_of web) == alice,carol,dave@example.com ]] || fail "web members: $(members_of web)"
[[ $(members_of dev) == Erin,alice ]] || fail "dev members: $(members_of dev)"
echo "Erin's notes" >/home/Erin/notes
chown Erin: /home/Erin/notes
declare -A km_uid
for u in alice Erin dave@example.com bob carol; do km_uid[$u]=$(uid_of "$u"); done

step "under keymaker, dave@example.com logs in with his key"
[[ $(expect_login dave@example.com "$E2E_WORK/dave") == "${km_uid[dave@example.com]}" ]] || fail "dave's keymaker login"

step "bob's IAM user is deleted and re-created (a new UserId: another person to keyward)"
iam py 'u = args[0]
for k in iam.list_ssh_public_keys(UserName=u)["SSHPublicKeys"]:
    iam.delete_ssh_public_key(UserName=u, SSHPublicKeyId=k["SSHPublicKeyId"])
for g in iam.list_groups_for_user(UserName=u)["Groups"]:
    iam.remove_user_from_group(GroupName=g["GroupName"], UserName=u)
iam.delete_user(UserName=u)
iam.create_user(UserName=u)
iam.add_user_to_group(GroupName="ops", UserName=u)' bob
iam key bob "$E2E_WORK/bob.pub" >/dev/null

step "M1: Frank's account is from 2020; IAM user Frank, created today, has a UserId that hashes to its UID"
# keymaker makes the account with the UID of today's IAM user Frank; its /etc/shadow day then
# says 2020, as for a departed Frank's account whose UID a new IAM user Frank was ground to.
iam user Frank
iam member ops Frank
PAM_USER=Frank keymaker-create-account-for-iam-user >/dev/null || fail "keymaker could not create Frank"
chage -d 2020-01-01 Frank
km_uid[Frank]=$(uid_of Frank)
[[ ${km_uid[Frank]} == "$(keymaker get_uid Frank)" ]] || fail "Frank has no account with keymaker's UID"

# ---------------------------------------------------------------------------
# docs/keymaker-migration.md, "Step by step". The binary is already at $KEYWARD.

step "guide 1: credentials before anything reads IAM (off EC2: aws-config root:root 0600 for now), config"
cp "$E2E_AWS_CONFIG" "$E2E_WORK/aws-config"
install -o root -g root -m 0600 /dev/null /etc/keyward/aws-config
cat "$E2E_WORK/aws-config" >/etc/keyward/aws-config

write_config 'allowed_groups = ["ops"]' 'uid_scheme = "keymaker"' 'group_prefix = "keymaker_"' \
    'name_mapping = "escape"' 'adopt_keymaker_accounts = true'
kw config || fail "keyward config refused the migration config"

step "guide 2: the host policy"
kw policy --host || fail "keyward policy --host failed"
said '"iam:ListUsers"'

step "guide 3: look before changing anything (sync --dry-run, doctor)"
rc=0
kw sync --dry-run || rc=$?
((rc == 1)) || fail "sync --dry-run exited $rc, expected 1 (web is refused)"
said "adopt user    alice (uid ${km_uid[alice]}, made by keymaker) for IAM user alice"
said "adopt group   dev ("
said "error: Erin: keymaker account Erin (uid ${km_uid[Erin]}) of IAM user Erin: keyward names it _erin"
said "error: dave@example.com: keymaker account dave@example.com (uid ${km_uid[dave@example.com]}) of IAM user dave@example.com: keyward names it dave_0example.com"
said 'error: web: IAM group keymaker_web maps to local group web (GID 3000, not keymaker'"'"'s GID'
said 'add to keyward.toml: adopt_groups = ["web"]'
said "skipped: carol: keymaker account of IAM user carol (uid ${km_uid[carol]}), who is not in allowed_groups (ops)"
said "skipped: bob: local account exists and keyward did not create it: not touched; its UID ${km_uid[bob]} is not keymaker's UID for IAM user bob's UserId"
said "deleted and re-created?"
said "error: Frank: account Frank (uid ${km_uid[Frank]}) has the name and keymaker's UID of IAM user Frank ("
said "IAM user Frank was created on $(date -u +%Y)-"
said "after the account (2020-01-01, /etc/shadow's last change)"
grep -q "already held" "$E2E_WORK/out" && fail "the dry run still says 'already held'"
grep -q "create user" "$E2E_WORK/out" && fail "the dry run would create accounts"
rc=0
kw doctor || rc=$?
((rc == 1)) || fail "doctor exited $rc before the migration, expected 1"
grep -E '^ok +credentials +.*credentials from aws_config_file /etc/keyward/aws-config' "$E2E_WORK/out" >/dev/null \
    || fail "keyward did not read IAM through aws-config before install"
grep -E '^problem +keymaker remnants +keymaker left: /usr/sbin/keymaker-get-public-keys' "$E2E_WORK/out" >/dev/null \
    || fail "doctor did not name keymaker's key script"
said 'AuthenticationMethods publickey keyboard-interactive:pam,publickey'
said 'keymaker-create-account-for-iam-user'
said '/etc/cron.d/keymaker-group-sync'
grep -E '^problem +sync plan +every sync exits 1' "$E2E_WORK/out" >/dev/null || fail "doctor did not flag the sync errors"
said 'fix: add to keyward.toml: adopt_groups = ["web"]'

step "guide 4: adopt the group keymaker reused (the line the message gives)"
echo 'adopt_groups = ["web"]' >>/etc/keyward/keyward.toml
kw config || fail "keyward config refused adopt_groups"

step "guide 5: rename the accounts keymaker named unlike keyward (Frank's is refused)"
before=$(snapshot /home/Erin /etc/passwd /etc/group)
rc=0
kw rename-keymaker --dry-run || rc=$?
((rc == 1)) || fail "rename-keymaker --dry-run exited $rc, expected 1 (Frank is refused)"
said "rename user   Erin to _erin (uid ${km_uid[Erin]}, made by keymaker for IAM user Erin; home and files kept), and its group"
said "rename user   dave@example.com to dave_0example.com"
said "refused: Frank: account Frank (uid ${km_uid[Frank]}) has the name and keymaker's UID of IAM user Frank ("
grep -q "rename user   Frank" "$E2E_WORK/out" && fail "rename-keymaker would rename Frank"
same_snapshot "rename-keymaker --dry-run changed something" "$before" "$(snapshot /home/Erin /etc/passwd /etc/group)"
# The admin finds that account Frank was not made for today's IAM user Frank, and removes it.
userdel -r Frank 2>/dev/null || fail "userdel Frank failed"
kw rename-keymaker || fail "rename-keymaker failed"
[[ $(uid_of _erin) == "${km_uid[Erin]}" && $(home_of _erin) == /home/Erin ]] || fail "_erin: $(getent passwd _erin)"
[[ $(uid_of dave_0example.com) == "${km_uid[dave@example.com]}" ]] || fail "dave_0example.com: $(getent passwd dave_0example.com)"
! getent passwd Erin >/dev/null || fail "Erin is still there"
[[ $(gid_of _erin) == "${km_uid[Erin]}" ]] || fail "Erin's group was not renamed with it: $(getent group _erin)"
[[ $(members_of dev) == _erin,alice ]] || fail "dev members after the rename: $(members_of dev)"
kw rename-keymaker --dry-run || fail "rename-keymaker --dry-run failed after the rename"
said "0 rename(s)"

step "guide 6: adopt (sync --dry-run without errors, then sync)"
kw sync --dry-run || fail "sync --dry-run still has errors"
kw sync || fail "keyward sync failed"
said "adopt user    _erin (uid ${km_uid[Erin]}, made by keymaker) for IAM user Erin"
said "adopt user    dave_0example.com"
for u in alice _erin dave_0example.com; do
    [[ -f /var/lib/keyward/accounts/$u ]] || fail "no ownership record for $u"
done
for u in bob carol; do
    [[ ! -e /var/lib/keyward/accounts/$u ]] || fail "$u was adopted"
    [[ $(uid_of "$u") == "${km_uid[$u]}" ]] || fail "$u was changed: $(getent passwd "$u")"
done
[[ $(members_of web) == alice,carol,dave_0example.com ]] || fail "web members after sync: $(members_of web)"

step "guide 7: remove keymaker's wiring, as doctor said"
sed -i '/keymaker-create-account-for-iam-user/d' /etc/pam.d/sshd
rm -f /etc/cron.d/keymaker-group-sync /usr/sbin/keymaker-get-public-keys
sed -i -e '/^AuthorizedKeysCommand \/usr\/sbin\/keymaker-get-public-keys$/d' \
    -e '/^AuthorizedKeysCommandUser keymaker$/d' \
    -e '/^ChallengeResponseAuthentication yes$/d' \
    -e '/^AuthenticationMethods publickey keyboard-interactive:pam,publickey$/d' /etc/ssh/sshd_config
userdel keymaker

step "guide 8: switch sshd to keyward; aws-config readable by its AuthorizedKeysCommandUser"
host_cmd install --replace --scheduler cron --dry-run || fail "install --replace --dry-run failed"
host_cmd install --replace --scheduler cron || fail "install --replace failed"
chgrp keyward /etc/keyward/aws-config && chmod 0640 /etc/keyward/aws-config

step "guide 9: check"
kw doctor || fail "doctor finds problems after the migration"
grep -E '^ok +keymaker remnants +none found' "$E2E_WORK/out" >/dev/null || fail "doctor still finds keymaker remnants"
kw sync --dry-run || fail "sync --dry-run after the migration"
said "0 change(s)"
/usr/sbin/sshd -T -C user=alice,host=localhost,addr=127.0.0.1 | grep -qi '^authenticationmethods any$' \
    || fail "keymaker's AuthenticationMethods is still in effect"

step "logins over the real sshd"
[[ $(expect_login alice "$E2E_WORK/alice") == "${km_uid[alice]}" ]] || fail "alice's UID changed"
[[ $(expect_login _erin "$E2E_WORK/Erin") == "${km_uid[Erin]}" ]] || fail "_erin's UID changed"
[[ $(ssh_key _erin "$E2E_WORK/Erin" cat notes) == "Erin's notes" ]] || fail "Erin's files did not follow her"
[[ $(expect_login dave_0example.com "$E2E_WORK/dave") == "${km_uid[dave@example.com]}" ]] || fail "dave's UID changed"
expect_refused carol "$E2E_WORK/carol"
expect_refused bob "$E2E_WORK/bob"
note "alice, _erin and dave_0example.com log in with their UIDs and files; carol and bob do not"
