#!/usr/bin/env bash
# Scenario: `keyward install --jump` makes this host (sshd on 127.0.0.1) a jump-only host for
# Linux group bastion, which `keyward sync` makes from IAM group keyward_bastion. A second sshd
# on 127.0.0.2 is the host behind it. `ssh -J` reaches it; a shell or a command on the jump
# host, `-W` and `-L` to another port, and `-R` are refused; a member of admin group ops keeps
# a shell; a plain install keeps the rule (h1), install --no-jump takes it out; uninstall
# restores sshd's files byte for byte.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

wired() { snapshot /etc/ssh/sshd_config /etc/ssh/sshd_config.d /etc/ssh/keyward_jump.conf; }

step "IAM: keyward_bastion = alice carol; keyward_ops = carol"
for u in alice carol; do
    iam user "$u"
    keygen "$u" >/dev/null
    iam key "$u" "$E2E_WORK/$u.pub" >/dev/null
done
for g in keyward_bastion keyward_ops; do iam group "$g"; done
iam member keyward_bastion alice
iam member keyward_bastion carol
iam member keyward_ops carol
write_config 'allowed_groups = ["keyward_bastion"]' 'create_on_login = false' \
    '[jump]' 'group = "bastion"' 'destinations = ["127.0.0.2/31"]' 'admin_groups = ["ops"]'
before=$(wired)

step "h2: install --jump before the Linux group bastion exists is refused, nothing changed"
if host_cmd install --jump --scheduler cron; then fail "install --jump without the group bastion succeeded"; fi
grep -q 'no such Linux group.*keyward sync first' <<<"$HOST_OUT" || fail "the refusal said: $HOST_OUT"
[[ ! -e /etc/ssh/keyward_jump.conf ]] || fail "a refused install --jump wrote keyward_jump.conf"
same_snapshot "a refused install --jump changed sshd's files" "$before" "$(wired)"

step "a local group bastion that keyward does not manage is refused too (sync would never fill it)"
groupadd bastion
if host_cmd install --jump --scheduler cron; then fail "install --jump with a foreign group bastion succeeded"; fi
grep -q 'keyward does not manage.*adopt_groups' <<<"$HOST_OUT" || fail "the refusal said: $HOST_OUT"
[[ ! -e /etc/ssh/keyward_jump.conf ]] || fail "a refused install --jump wrote keyward_jump.conf"
same_snapshot "a refused install --jump changed sshd's files" "$before" "$(wired)"
groupdel bastion

step "sync makes the accounts and the Linux groups bastion and ops, then install --jump"
"$KEYWARD" sync >"$E2E_WORK/sync.out" 2>&1 || { cat "$E2E_WORK/sync.out" >&2; fail "keyward sync failed"; }
host_cmd install --jump --scheduler cron || fail "keyward install --jump failed (exit $?)"
grep -q 'jump host: members of Linux group bastion' <<<"$HOST_OUT" || fail "install did not say what --jump does"
[[ $(stat -c '%a %U' /etc/ssh/keyward_jump.conf) == "644 root" ]] || fail "keyward_jump.conf: $(stat -c '%a %U' /etc/ssh/keyward_jump.conf)"
[[ $(getent group bastion | cut -d: -f4) == alice,carol ]] || fail "bastion: $(getent group bastion)"
[[ $(getent group ops | cut -d: -f4) == carol ]] || fail "ops: $(getent group ops)"
jump_check() {
    "$KEYWARD" doctor --json 2>/dev/null | "$E2E_PY" -c '
import json, sys
c = {c["name"]: c for c in json.load(sys.stdin)}["jump host"]
print(c["status"], c["detail"])' || true
}
[[ $(jump_check) == "ok members of bastion,!ops get no shell"* ]] || fail "doctor's jump host check: $(jump_check)"
effective() { /usr/sbin/sshd -T -C "user=$1,host=localhost,addr=127.0.0.1"; }
grep -qx 'permitopen 127.0.0.2:22 127.0.0.3:22' <<<"$(effective alice)" || fail "alice's permitopen: $(effective alice | grep permitopen)"
grep -qx 'permitopen any' <<<"$(effective carol)" || fail "carol (ops) is restricted: $(effective carol | grep permitopen)"

step "the host behind it: a second sshd on 127.0.0.2:22, and an SMTP-like listener on 127.0.0.2:25"
target=$E2E_WORK/target
install -d -o root -g root -m 0755 "$target" "$target/keys"
for u in alice carol; do install -o root -g root -m 0644 "$E2E_WORK/$u.pub" "$target/keys/$u"; done
cat >"$target/sshd_config" <<EOF
HostKey /etc/ssh/ssh_host_ed25519_key
AuthorizedKeysFile $target/keys/%u
UsePAM yes
KbdInteractiveAuthentication no
PasswordAuthentication no
EOF
/usr/sbin/sshd -D -e -f "$target/sshd_config" -o ListenAddress=127.0.0.2 -o Port=22 \
    -o PidFile=/run/sshd-target.pid </dev/null >>/run/keyward/logs/sshd-target.log 2>&1 &
"$E2E_PY" -c '
import socketserver
class Greet(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.sendall(b"220 smtp-e2e\r\n")
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.2", 25), Greet).serve_forever()' </dev/null >/dev/null 2>&1 &
banner() { (exec 3<>"/dev/tcp/$1/$2" && IFS= read -r -t 5 line <&3 && printf '%s\n' "${line%$'\r'}") 2>/dev/null; }
deadline=$((SECONDS + 30))
until [[ $(banner 127.0.0.2 22) == SSH-2.0-* && $(banner 127.0.0.2 25) == "220 smtp-e2e" ]]; do
    ((SECONDS < deadline)) || fail "the target sshd or the listener on 127.0.0.2 did not answer"
    sleep 0.1
done

# One client config for both hops: ssh -J passes -F to the ssh it starts for the jump.
client() {
    local cfg=$E2E_WORK/ssh_config-$1
    cat >"$cfg" <<EOF
Host *
    IdentityFile $E2E_WORK/$1
    IdentitiesOnly yes
    IdentityAgent none
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    BatchMode yes
    PreferredAuthentications publickey
    ConnectTimeout 10
    LogLevel ERROR
EOF
    printf '%s\n' "$cfg"
}
alice_cfg=$(client alice)
carol_cfg=$(client carol)

step "ssh -J alice@127.0.0.1 alice@127.0.0.2 reaches the target"
out=$(timeout 30 ssh -F "$alice_cfg" -J alice@127.0.0.1 alice@127.0.0.2 'id -un; echo "$SSH_CONNECTION"' </dev/null) ||
    fail "ssh -J through the jump host failed (exit $?)"
[[ $(sed -n 1p <<<"$out") == alice ]] || fail "not alice on the target: $out"
[[ $(sed -n 2p <<<"$out") == *" 127.0.0.2 22" ]] || fail "not the sshd on 127.0.0.2: $out"

step "a command or a shell on the jump host is refused with the explanation"
for args in "id -un" ""; do
    rc=0
    # shellcheck disable=SC2086 # no argument at all asks for a shell
    out=$(timeout 20 ssh -F "$alice_cfg" alice@127.0.0.1 $args 2>"$E2E_WORK/refused.err" </dev/null) || rc=$?
    ((rc == 1)) || fail "alice on the jump host (${args:-shell}): expected exit 1, got $rc: $out $(cat "$E2E_WORK/refused.err")"
    [[ -z $out ]] || fail "alice's command ran on the jump host: $out"
    grep -q 'keyward: this is a jump host for group bastion.*ssh -J' "$E2E_WORK/refused.err" ||
        fail "no explanation for ${args:-a shell}: $(cat "$E2E_WORK/refused.err")"
done

# denied PORT: how often sshd has logged refusing alice a forwarding to 127.0.0.2:PORT.
denied() { grep -c "to connect to host 127.0.0.2 port $1, but the request was denied" "$E2E_SSHD_LOG" || true; }

step "-W to port 25 of the target is refused; carol (ops) gets through to it, so it answers"
denied_before=$(denied 25)
rc=0
out=$(timeout 20 ssh -F "$alice_cfg" -W 127.0.0.2:25 alice@127.0.0.1 2>"$E2E_WORK/w.err" </dev/null) || rc=$?
((rc != 0)) && [[ $out != *220* ]] || fail "alice reached 127.0.0.2:25 through the jump host: $out"
(($(denied 25) == denied_before + 1)) || fail "-W 127.0.0.2:25 was not refused by sshd's policy: $(cat "$E2E_WORK/w.err")"
out=$(timeout 5 ssh -F "$carol_cfg" -W 127.0.0.2:25 carol@127.0.0.1 </dev/null 2>/dev/null || true)
[[ $out == "220 smtp-e2e"* ]] || fail "carol (ops) could not reach 127.0.0.2:25: $out"

step "-L: to port 22 of the target works, to port 25 is refused; -R is refused"
timeout 60 ssh -F "$alice_cfg" -N -o ExitOnForwardFailure=yes \
    -L 127.0.0.1:10022:127.0.0.2:22 -L 127.0.0.1:10025:127.0.0.2:25 alice@127.0.0.1 \
    </dev/null 2>"$E2E_WORK/l.err" &
forward=$!
deadline=$((SECONDS + 20))
until [[ $(banner 127.0.0.1 10022) == SSH-2.0-* ]]; do
    kill -0 "$forward" 2>/dev/null || fail "ssh -L exited: $(cat "$E2E_WORK/l.err")"
    ((SECONDS < deadline)) || fail "-L to 127.0.0.2:22 does not reach the target sshd"
    sleep 0.2
done
denied_before=$(denied 25)
[[ $(banner 127.0.0.1 10025) != *220* ]] || fail "-L to 127.0.0.2:25 reached the listener"
deadline=$((SECONDS + 10))
until (($(denied 25) == denied_before + 1)); do
    ((SECONDS < deadline)) || fail "-L to port 25 was not refused by sshd's policy: $(cat "$E2E_WORK/l.err")"
    sleep 0.1
done
kill "$forward"
wait "$forward" 2>/dev/null || true
rc=0
timeout 20 ssh -F "$alice_cfg" -N -o ExitOnForwardFailure=yes -R 127.0.0.1:10026:127.0.0.2:22 alice@127.0.0.1 \
    </dev/null 2>"$E2E_WORK/r.err" || rc=$?
((rc == 255)) || fail "-R was not refused (exit $rc): $(cat "$E2E_WORK/r.err")"
grep -q 'remote port forwarding failed' "$E2E_WORK/r.err" || fail "-R: $(cat "$E2E_WORK/r.err")"

step "carol, in admin group ops, keeps a shell on the jump host"
out=$(timeout 20 ssh -F "$carol_cfg" carol@127.0.0.1 'id -un' </dev/null) || fail "carol got no shell (exit $?)"
[[ $out == carol ]] || fail "carol's command said: $out"

step "h1: a plain install (no --jump) keeps the rule: alice still gets no shell"
rule_before=$(cat /etc/ssh/keyward_jump.conf)
host_cmd install --scheduler cron || fail "keyward install without --jump failed (exit $?)"
[[ $(cat /etc/ssh/keyward_jump.conf 2>/dev/null) == "$rule_before" ]] || fail "a plain install changed or removed keyward_jump.conf"
if out=$(timeout 20 ssh -F "$alice_cfg" alice@127.0.0.1 'id -un' </dev/null 2>&1); then
    fail "alice got a shell after a plain re-install: $out"
fi
grep -q 'this is a jump host' <<<"$out" || fail "alice's refusal after a plain re-install said: $out"

step "install --no-jump takes the rule out: alice gets a shell"
host_cmd install --no-jump --scheduler cron || fail "keyward install --no-jump failed (exit $?)"
[[ ! -e /etc/ssh/keyward_jump.conf ]] || fail "keyward_jump.conf is still there"
[[ $(jump_check) == "problem the config has a [jump] table, but this host is not a jump host" ]] ||
    fail "doctor's jump host check without the rule: $(jump_check)"
out=$(timeout 20 ssh -F "$alice_cfg" alice@127.0.0.1 'id -un' </dev/null) || fail "alice got no shell after the rule came out (exit $?)"
[[ $out == alice ]] || fail "alice's command said: $out"

step "install --jump again, then uninstall restores sshd's files byte for byte"
host_cmd install --jump --scheduler cron || fail "the second install --jump failed (exit $?)"
[[ -f /etc/ssh/keyward_jump.conf ]] || fail "keyward_jump.conf was not written again"
host_cmd uninstall || fail "keyward uninstall failed (exit $?)"
same_snapshot "uninstall did not restore sshd's files" "$before" "$(wired)"
/usr/sbin/sshd -t || fail "sshd rejects its configuration after uninstall"
