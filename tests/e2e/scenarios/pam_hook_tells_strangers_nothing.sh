#!/usr/bin/env bash
# Regression: pam_exec's `stdout` option hands the hook's stderr to the client too, so a log
# line there ("no such IAM user", "no Active SSH key") told an unauthenticated stranger which
# IAM users exist. Under PAM, keyward logs to journald or syslog only; the client sees nothing
# but the one "account created, connect again" message meant for it.
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

# kbdint_says USER: what a keyboard-interactive attempt shows the client (askpass prompts too).
kbdint_says() {
    local askpass=$E2E_WORK/askpass-echo
    printf '#!/bin/sh\nprintf "%%s\\n" "$1" >&2\necho\n' >"$askpass"
    chmod 0755 "$askpass"
    SSH_ASKPASS=$askpass SSH_ASKPASS_REQUIRE=force DISPLAY='' timeout 20 setsid -w \
        ssh -F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o IdentityAgent=none -o NumberOfPasswordPrompts=1 \
        -o PreferredAuthentications=keyboard-interactive -p 22 -- "$1@127.0.0.1" true \
        </dev/null 2>&1 || true
}

step "IAM: erin has no key, frank is in no allowed group, gina is fine"
iam user erin
iam user frank
iam user gina
iam group ops
iam member ops gina
iam member ops erin
key=$(keygen frank)
iam key frank "$key.pub" >/dev/null
key=$(keygen gina)
iam key gina "$key.pub" >/dev/null
write_config 'allowed_groups = ["ops"]'
wire_host

for who in ghost erin frank; do
    step "$who: refused without a word about IAM"
    said=$(kbdint_says "$who")
    note "client saw: $(tr '\n' '|' <<<"$said")"
    grep -qE 'IAM|keyward|[Nn]o such|Active|allowed_groups' <<<"$said" && fail "the client of $who was told: $said"
    has_account "$who" && fail "$who got an account"
done

step "gina: the one message meant for her, and nothing else from keyward"
said=$(kbdint_says gina)
note "client saw: $(tr '\n' '|' <<<"$said")"
grep -q 'Connect again' <<<"$said" || fail "gina was not told to connect again: $said"
grep -qE 'INFO|WARN|uid=' <<<"$said" && fail "a log line reached gina's client: $said"
has_account gina || fail "gina has no account"
