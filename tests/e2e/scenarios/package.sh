#!/usr/bin/env bash
# The Debian package: `dpkg -i` puts the binary, man pages, completions and templates in place
# and changes nothing else (no sshd/PAM edit, no user, no enabled timer); the admin's
# `keyward install` from /usr/bin then wires sshd, an IAM user logs in through the packaged
# binary, and `keyward doctor` sees the difference. `dpkg -r` takes the files away again.
#
# Needs ns with E2E_OVERLAY_USR=1 (dpkg writes /usr) and KEYWARD_DEB: the .deb's path inside
# the repository (tests/e2e_package.rs builds it with scripts/package).
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

[[ -n ${KEYWARD_DEB:-} ]] || fail "KEYWARD_DEB is not set (the .deb, relative to the repository)"
deb=$E2E_REPO/$KEYWARD_DEB
[[ -f $deb ]] || fail "no package at $deb"
# Installing writes /usr: only ever into this namespace's overlay, never this host's /usr.
[[ $(findmnt -n -o FSTYPE --target /usr) == overlay && $(findmnt -n -o TARGET --target /usr) == /usr ]] \
    || fail "/usr is not this namespace's own overlay (run ns with E2E_OVERLAY_USR=1); not installing"

step "the package holds what a host needs, and no maintainer scripts"
[[ $(dpkg-deb --field "$deb" Package) == keyward ]] || fail "package name is not keyward"
listing=$(dpkg-deb --contents "$deb")
awk '$2 != "0/0" && $2 != "root/root"' <<<"$listing" | grep . && fail "files not owned by root (above)"
contents=$(awk '{ print $1, $6 }' <<<"$listing")
for want in \
    "-rwxr-xr-x ./usr/bin/keyward" \
    "-rw-r--r-- ./usr/share/man/man8/keyward.8.gz" \
    "-rw-r--r-- ./usr/share/man/man8/keyward-audit.8.gz" \
    "-rw-r--r-- ./usr/share/man/man8/keyward-install.8.gz" \
    "-rw-r--r-- ./usr/share/bash-completion/completions/keyward" \
    "-rw-r--r-- ./usr/share/zsh/vendor-completions/_keyward" \
    "-rw-r--r-- ./usr/share/fish/vendor_completions.d/keyward.fish" \
    "-rw-r--r-- ./usr/share/keyward/systemd/keyward-sync.service" \
    "-rw-r--r-- ./usr/share/keyward/systemd/keyward-sync.timer" \
    "-rw-r--r-- ./usr/share/keyward/pam/sshd-keyward.pam" \
    "-rw-r--r-- ./usr/share/keyward/cron/keyward"; do
    grep -qxF -- "$want" <<<"$contents" || fail "the package lacks: $want"
done
grep -v ' \./usr/' <<<"$contents" && fail "the package installs outside /usr (above)"
control=$(dpkg-deb --ctrl-tarfile "$deb" | tar -t | sed 's|^\./||' | grep -v '^$' | tr '\n' ' ')
grep -qE '(^| )((pre|post)(inst|rm)|config|triggers)( |$)' <<<"$control" \
    && fail "the package has maintainer scripts or triggers: $control"
note "control archive: $control"

step "dpkg -i changes nothing but its files"
host_state() {
    snapshot /etc/ssh /etc/pam.d /etc/cron.d /etc/systemd /etc/keyward /etc/passwd /etc/group /etc/sudoers.d
}
before=$(host_state)
# Slim container images tell dpkg to skip man pages and docs (path-exclude); a host does not.
for f in /etc/dpkg/dpkg.cfg.d/*; do
    [[ -f $f ]] && sed -i '/^path-exclude/d' "$f"
done
dpkg -i "$deb" >"$E2E_WORK/dpkg.log" 2>&1 || {
    cat "$E2E_WORK/dpkg.log" >&2
    fail "dpkg -i failed"
}
same_snapshot "installing the package changed sshd, PAM, users or schedules" "$before" "$(host_state)"
has_account keyward && fail "the package created the keyward user; only keyward install may"

step "the binary, man pages and completions are where they belong"
[[ $(stat -c '%U:%G %a' /usr/bin/keyward) == "root:root 755" ]] || fail "/usr/bin/keyward: $(stat -c '%U:%G %a' /usr/bin/keyward)"
version=$(/usr/bin/keyward --version) || fail "/usr/bin/keyward --version failed"
[[ $version == "keyward $(dpkg-query -W -f '${Version}' keyward | sed 's/-[^-]*$//')" ]] \
    || fail "keyward --version says '$version', the package $(dpkg-query -W -f '${Version}' keyward)"
note "$version"
if command -v man >/dev/null; then
    page=$(man -w keyward) || fail "man -w keyward finds no page"
    [[ $page == /usr/share/man/man8/keyward.8.gz ]] || fail "man -w keyward: $page"
    man -w 8 keyward-audit >/dev/null || fail "man -w finds no keyward-audit(8)"
else
    note "no man-db here: checked the page files only"
fi
zcat /usr/share/man/man8/keyward-audit.8.gz | grep -qF -- '\-\-since' || fail "keyward-audit(8) does not document --since"
# shellcheck disable=SC2016 # expanded by the inner bash
bash -c 'complete() { printf "%s\n" "$*"; }; . /usr/share/bash-completion/completions/keyward' \
    | grep -q ' keyward$' || fail "the bash completion does not complete keyward"

step "keyward doctor, before install: the package alone wires nothing"
rc=0
/usr/bin/keyward doctor >"$E2E_WORK/doctor-before" 2>&1 || rc=$?
sed 's/^/   | /' "$E2E_WORK/doctor-before" >&2
((rc == 1)) || fail "keyward doctor on an unwired host exited $rc, expected 1 (a problem)"

step "keyward install from /usr/bin; an IAM user logs in through the packaged binary"
alice=$(keygen alice)
iam user alice
iam group ops
iam member ops alice
iam key alice "$alice.pub" >/dev/null
write_config 'allowed_groups = ["ops"]'
(
    KEYWARD=/usr/bin/keyward
    host_cmd install --scheduler cron
) || fail "/usr/bin/keyward install failed"
effective=$(/usr/sbin/sshd -T -C user=nobody,host=localhost,addr=127.0.0.1)
grep -qx 'authorizedkeyscommand /usr/bin/keyward authorized-keys %u %f %k' <<<"$effective" \
    || fail "sshd's AuthorizedKeysCommand is not the packaged binary: $(grep -i authorizedkeyscommand <<<"$effective")"
owned_account alice "$(expected_uid "$(iam_user_id alice)")"
expect_login alice "$alice" >/dev/null

step "keyward doctor, after install"
/usr/bin/keyward doctor --json >"$E2E_WORK/doctor-after.json" 2>"$E2E_WORK/doctor-after.err" || true
"$E2E_PY" - "$E2E_WORK/doctor-after.json" <<'EOF' || fail "keyward doctor does not see keyward wired into sshd and PAM"
import json, sys
checks = json.load(open(sys.argv[1]))
for c in checks:
    print(f"   | {c['status']:8} {c['name']}: {c.get('detail', '')}", file=sys.stderr)
status = {c["name"]: c["status"] for c in checks}
for name in ("sshd", "command path", "pam"):
    assert status.get(name) == "ok", f"doctor's {name!r} check is {status.get(name)!r}, expected ok"
EOF

step "uninstall, then dpkg -r removes every file"
(
    KEYWARD=/usr/bin/keyward
    host_cmd uninstall
) || fail "keyward uninstall failed"
dpkg -r keyward >"$E2E_WORK/dpkg-r.log" 2>&1 || {
    cat "$E2E_WORK/dpkg-r.log" >&2
    fail "dpkg -r failed"
}
[[ ! -e /usr/bin/keyward && ! -e /usr/share/man/man8/keyward.8.gz && ! -e /usr/share/keyward ]] \
    || fail "dpkg -r left files behind"
