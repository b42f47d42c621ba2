#!/usr/bin/env bash
# Scenario (issue 8, H2 and the fault proxy): after a good first sync, IAM answers ListGroups and
# GetGroup badly in every way tests/faultproxy.py can (throttled, 500, no answer, a required
# element dropped, truncated without a marker, cut in the middle): each `keyward sync` exits
# non-zero and /etc/passwd, /etc/group, /etc/shadow, /etc/gshadow and keyward's records stay
# byte-identical. Then `keyward pam-create-account` creates nothing on a malformed answer and
# creates the account once IAM answers whole.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

step "IAM: ops = alice bob carol (allowed); keyward_dev = alice bob; keyward_web = carol"
for u in alice bob carol erin; do
    iam user "$u"
    keygen "$u" >/dev/null
    iam key "$u" "$E2E_WORK/$u.pub" >/dev/null
done
for g in ops keyward_dev keyward_web; do iam group "$g"; done
for u in alice bob carol; do iam member ops "$u"; done
iam member keyward_dev alice
iam member keyward_dev bob
iam member keyward_web carol

fault_proxy_start
# lookup_timeout bounds each IAM operation of sync too: a hung answer costs 2 s, not 60.
write_config 'allowed_groups = ["ops"]' 'group_cache_ttl = "0s"' 'lookup_timeout = "2s"' 'create_on_login = true'

sync_out=$E2E_WORK/sync.out
step "a good first sync through the proxy: accounts and groups"
"$KEYWARD" sync >"$sync_out" 2>&1 || { cat "$sync_out" >&2; fail "the first sync failed"; }
for u in alice bob carol; do has_account "$u" || fail "no account for $u"; done
[[ $(getent group dev | cut -d: -f4) == alice,bob ]] || fail "dev: $(getent group dev)"
[[ $(getent group web | cut -d: -f4) == carol ]] || fail "web: $(getent group web)"
"$KEYWARD" sync >"$sync_out" 2>&1 || { cat "$sync_out" >&2; fail "the second (no-op) sync failed"; }

account_files() {
    sha256sum /etc/passwd /etc/group /etc/shadow /etc/gshadow
    snapshot /var/lib/keyward/accounts /var/lib/keyward/groups /var/lib/keyward/locked
}
before=$(account_files)

# faulted_sync ACTION FAULT: with FAULT on every ACTION request, sync fails and changes nothing.
faulted_sync() {
    local action=$1 fault=$2 rc=0 started=$SECONDS seen
    fault_set "[{\"action\": \"$action\", \"fault\": \"$fault\"}]"
    seen=$(fault_count "$action" "$fault")
    "$KEYWARD" sync >"$sync_out" 2>&1 || rc=$?
    fault_clear
    ((rc != 0)) || { cat "$sync_out" >&2; fail "sync with $fault on $action exited 0"; }
    (($(fault_count "$action" "$fault") > seen)) || fail "$fault on $action was never applied"
    same_snapshot "sync with $fault on $action changed the account database" "$before" "$(account_files)"
    note "$action $fault: exit $rc in $((SECONDS - started))s, nothing changed ($(grep -o 'IAM answered [^:]*' "$sync_out" | head -1))"
}

step "ListGroups answered badly: sync fails, nothing changes"
for fault in throttle 500 hang drop:Groups drop:GroupName drop:GroupId truncate badxml; do
    faulted_sync ListGroups "$fault"
done

step "GetGroup answered badly: sync fails, nothing changes"
for fault in throttle 500 hang drop:Group drop:Users drop:UserName drop:UserId drop:GroupId truncate badxml; do
    faulted_sync GetGroup "$fault"
done

step "IsTruncated dropped from a complete answer (moto never sends it there): still complete, no change"
for action in ListGroups GetGroup; do
    fault_set "[{\"action\": \"$action\", \"fault\": \"drop:IsTruncated\"}]"
    "$KEYWARD" sync >"$sync_out" 2>&1 || { cat "$sync_out" >&2; fail "sync with IsTruncated dropped on $action failed"; }
    fault_clear
    same_snapshot "a complete answer without IsTruncated changed the account database" "$before" "$(account_files)"
done

step "pam-create-account: a malformed answer creates nothing and is not remembered as a refusal"
iam member ops erin
for rule in GetUser:drop:User GetUser:drop:UserId ListSSHPublicKeys:drop:SSHPublicKeys \
    ListSSHPublicKeys:drop:Status ListGroupsForUser:drop:Groups; do
    action=${rule%%:*} fault=${rule#*:}
    fault_set "[{\"action\": \"$action\", \"name\": \"erin\", \"fault\": \"$fault\"}]"
    rc=0
    "$KEYWARD" pam-create-account erin >"$E2E_WORK/pam.out" 2>&1 || rc=$?
    fault_clear
    ((rc != 0)) || { cat "$E2E_WORK/pam.out" >&2; fail "pam-create-account with $fault on $action exited 0"; }
    grep -q 'IAM could not be reached' "$E2E_WORK/pam.out" || { cat "$E2E_WORK/pam.out" >&2; fail "no outage message for $fault on $action"; }
    ! has_account erin || fail "erin got an account from $fault on $action"
    note "$action $fault: exit $rc, no account"
done
same_snapshot "a malformed answer to pam-create-account changed the account database" "$before" "$(account_files)"
"$KEYWARD" pam-create-account erin >"$E2E_WORK/pam.out" 2>&1 || { cat "$E2E_WORK/pam.out" >&2; fail "pam-create-account failed with IAM answering whole"; }
has_account erin || fail "erin got no account once IAM answered whole"
note "all fault facts hold"
