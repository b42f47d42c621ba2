#!/usr/bin/env bash
# Regression: pam_exec's `stdout` option hands the hook's stderr to the client too, so a log
# line there ("no such IAM user", "no Active SSH key") told an unauthenticated stranger which
# IAM users exist. Under PAM, keyward logs to journald or syslog only.
# C3: "created account gina ... connect again" told a stranger that gina is an allowed IAM user
# with an active key. Every attempt now sees the same one line, whatever the name and outcome
# (no IAM user, no key, not allowed, allowed, reserved, hostile, not UTF-8).
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

GENERIC='keyward: if you may log in here, your account is ready or being prepared: connect again with your SSH key.'

# says_only_the_generic_line WHO SAID: the client saw keyward's one line once, and nothing else
# from keyward or about IAM.
says_only_the_generic_line() {
    local who=$1 said=$2
    note "client of $(printf '%q' "$who") saw: $(tr '\n' '|' <<<"$said")"
    # ssh shows it after the prompt's "(user@host) ".
    [[ $(grep -cF "$GENERIC" <<<"$said") == 1 ]] || fail "the client of $who did not see the one generic line: $said"
    grep -vF "$GENERIC" <<<"$said" | grep -qE 'IAM|keyward|[Nn]o such|Active|allowed_groups|INFO|WARN|uid=|[Cc]reated' \
        && fail "the client of $who was told more: $said"
    return 0
}

for who in ghost erin frank root a_9 Zed $'caf\xe9'; do
    step "$(printf '%q' "$who"): refused, and told the same as everyone"
    said=$(kbdint_says "$who")
    says_only_the_generic_line "$who" "$said"
    [[ $who == root ]] || ! has_account "$who" || fail "$who got an account"
done

step "gina: an account is made, and she is told exactly what everyone is told"
said=$(kbdint_says gina)
says_only_the_generic_line gina "$said"
has_account gina || fail "gina has no account"
