#!/usr/bin/env bash
# Not a test: shows the environment sshd gives an AuthorizedKeysCommand and PAM's pam_exec
# (auth phase), the two ways sshd runs keyward. Run: KEYWARD_BIN=... tests/e2e/ns tests/e2e/probes/sshd_child_env.sh
# shellcheck source=tests/e2e/lib.sh
. "$E2E_LIB"

cat >/run/keyward/bin/probe-akc <<'P'
#!/bin/sh
{ echo "== AuthorizedKeysCommand as $(id -un), args: $*"; env | sort; } >>/tmp/probe.out
P
cat >/run/keyward/bin/probe-pam <<'P'
#!/bin/sh
{ echo "== pam_exec as $(id -un)"; env | sort; } >>/tmp/probe.out
P
chmod 0755 /run/keyward/bin/probe-akc /run/keyward/bin/probe-pam
install -m 0666 /dev/null /tmp/probe.out
has_account keyward || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin keyward
printf 'AuthorizedKeysCommand /run/keyward/bin/probe-akc %%u %%f %%k\nAuthorizedKeysCommandUser keyward\nKbdInteractiveAuthentication yes\nSetEnv PROBE_SETENV=1\n' \
    >/etc/ssh/sshd_config.d/50-probe.conf
sed -i '1i auth optional pam_exec.so quiet stdout /run/keyward/bin/probe-pam' /etc/pam.d/sshd
sshd_reload
useradd --create-home --no-log-init --shell /bin/sh carol
k=$(keygen carol)
ssh_key carol "$k" true || true
ssh_kbdint carol || true
ssh_kbdint nosuchuser || true
cat /tmp/probe.out
