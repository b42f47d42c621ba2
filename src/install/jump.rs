//! `keyward install --jump`: a keyward host that is only a way through for one Linux group.
//!
//! The rule lives in its own file, `/etc/ssh/keyward_jump.conf`, which keyward's drop-in (or its
//! block at the top of sshd_config) Includes. sshd scopes a `Match` to the file it appears in
//! (measured on OpenSSH 9.2: settings after the Include stay global), so the Match can never
//! swallow the admin's configuration that follows, and as the first Match sshd reads it wins
//! over any later one for the same connection.
//!
//! sshd's `PermitOpen` compares host strings exactly (only a whole `*` is a wildcard); it knows
//! nothing of CIDR ranges. So destination ranges are written out as one `ADDR:PORT` per IPv4
//! address, bounded by [`MAX_ADDRESSES`]; a larger range is refused with the fix rather than
//! silently widened, and `"*"` (any host on the port) must be asked for explicitly. A client
//! must send the address, not a name: `ssh -J jump web-1` asks the jump host to open `web-1`,
//! which no IP entry matches. This module must never widen what the admin listed.

use std::net::Ipv4Addr;

use crate::config::JumpConfig;

/// The file holding the jump rule (outside sshd_config.d, so only keyward's Include reads it).
pub const JUMP_PATH: &str = "/etc/ssh/keyward_jump.conf";
/// The most addresses `destinations` may expand to (a /20): sshd checks every forwarding
/// request against the list in order, and the line stays below 60 KB.
pub const MAX_ADDRESSES: u64 = 4096;

/// The `PermitOpen` entries for `destinations` on `port`: `*:PORT` for `["*"]`, else one
/// `ADDR:PORT` per IPv4 address of each address or CIDR range, in the order listed, each once.
/// The error says what is wrong with which entry and how to fix it.
pub fn permit_open(destinations: &[String], port: u16) -> Result<Vec<String>, String> {
    if port == 0 {
        return Err("port 0 is not a port".into());
    }
    if destinations.is_empty() {
        return Err(
            "no destinations: list the VPC's IPv4 CIDR ranges (or [\"*\"] for any host)".into(),
        );
    }
    if destinations.iter().any(|d| d == "*") {
        if destinations.len() > 1 {
            return Err("\"*\" (any host) must be the only entry".into());
        }
        return Ok(vec![format!("*:{port}")]);
    }
    let mut total: u64 = 0;
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for entry in destinations {
        let (first, count) = range(entry)?;
        total += count;
        if total > MAX_ADDRESSES {
            return Err(format!(
                "{entry:?}: the destinations add up to more than {MAX_ADDRESSES} addresses. \
                 sshd's PermitOpen matches exact addresses, not ranges, so keyward writes one \
                 entry per address: list the subnets the jump host serves (at most a /20 in all), \
                 or set destinations = [\"*\"] to allow any host on port {port}"
            ));
        }
        for offset in 0..count {
            // Cannot overflow: `range` checked the block fits in 32 bits.
            let addr = Ipv4Addr::from(u32::from(first).wrapping_add(offset as u32));
            if seen.insert(addr) {
                out.push(format!("{addr}:{port}"));
            }
        }
    }
    Ok(out)
}

/// An IPv4 address (one address) or `ADDR/LEN` with no host bits set: (first, count).
fn range(entry: &str) -> Result<(Ipv4Addr, u64), String> {
    if entry.contains(':') && !entry.contains('.') {
        return Err(format!(
            "{entry:?}: IPv6 destinations are not supported; list IPv4 ranges"
        ));
    }
    let (addr, len) = match entry.split_once('/') {
        Some((a, l)) => {
            let len: u8 = Some(l)
                .filter(|l| (1..=2).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|l| l.parse().ok())
                .filter(|l| *l <= 32)
                .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to 32"))?;
            (a, len)
        }
        None => (entry, 32),
    };
    let addr: Ipv4Addr = addr.parse().map_err(|_| {
        format!("{entry:?} is not an IPv4 address or CIDR range (like 10.0.0.0/24); names are not accepted, since sshd would compare them as text")
    })?;
    let count = 1u64 << (32 - u32::from(len));
    let bits = u32::from(addr);
    if u64::from(bits) & (count - 1) != 0 {
        let network = Ipv4Addr::from((u64::from(bits) & !(count - 1)) as u32);
        return Err(format!(
            "{entry:?} has host bits set: did you mean {network}/{len}?"
        ));
    }
    Ok((addr, count))
}

const REFUSAL_START: &str = "keyward: this is a jump host";

/// What a member of the jump group sees when asking for a shell or a command.
pub fn refusal(group: &str) -> String {
    format!(
        "{REFUSAL_START} for group {group}; it runs no shell or command. \
         Reach a host behind it with: ssh -J you@this-host you@TARGET-IP \
         (ProxyJump in ~/.ssh/config; give the address of the target, not its name)"
    )
}

/// The `ForceCommand` line's value: prints [`refusal`] on stderr and fails. Run by the
/// member's login shell with `-c`; `refusal` holds no quote, `#`, `%`, `$` or backslash.
pub fn forced_command(group: &str) -> String {
    format!("echo '{}' >&2; exit 1", refusal(group))
}

/// The `Match` line: members of `group` who are in none of `admin_groups`.
pub fn match_line(jump: &JumpConfig) -> String {
    let mut groups = jump.group.clone();
    for admin in &jump.admin_groups {
        groups.push_str(",!");
        groups.push_str(admin);
    }
    format!("Match Group {groups}")
}

/// The whole of [`JUMP_PATH`]. The config was validated, so the only error is a
/// `destinations` problem (`permit_open`'s words).
pub fn render(jump: &JumpConfig) -> Result<String, String> {
    let permit = permit_open(&jump.destinations, jump.port)?;
    let mut text = format!(
        "{mark}: the jump-only rule (keyward install --jump).\n\
         # keyward uninstall, or keyward install --no-jump, removes this file.\n\
         # Members of Linux group {group} (unless in {admins}) get no shell or command and may\n\
         # only forward to port {port} of the [jump] destinations in keyward.toml.\n",
        mark = super::MANAGED_MARK,
        group = jump.group,
        admins = if jump.admin_groups.is_empty() {
            "an admin group: none configured".to_owned()
        } else {
            jump.admin_groups.join(", ")
        },
        port = jump.port,
    );
    text.push_str(&match_line(jump));
    text.push('\n');
    for line in [
        "PermitTTY no".to_owned(),
        format!("ForceCommand {}", forced_command(&jump.group)),
        "AllowTcpForwarding local".to_owned(),
        format!("PermitOpen {}", permit.join(" ")),
        "PermitListen none".to_owned(),
        "GatewayPorts no".to_owned(),
        "AllowAgentForwarding no".to_owned(),
        "AllowStreamLocalForwarding no".to_owned(),
        "X11Forwarding no".to_owned(),
        "PermitTunnel no".to_owned(),
        "PermitUserRC no".to_owned(),
    ] {
        text.push('\t');
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// Checks the global `sshd -T` (no connection given) after install: the jump rule must only
/// apply inside its Match, so sshd must not force the refusal on everyone.
pub fn verify_scoped(dump: &[(String, String)]) -> Result<(), super::sshd::NotEffective> {
    let forced = dump
        .iter()
        .find(|(k, _)| k == "forcecommand")
        .map(|(_, v)| v.as_str());
    match forced {
        Some(command) if command.contains(REFUSAL_START) => Err(super::sshd::NotEffective {
            problems: vec![format!(
                "the jump rule applies to every connection (forcecommand is {command:?}): its Match is not scoped to {JUMP_PATH}"
            )],
        }),
        _ => Ok(()),
    }
}

/// The line keyward's drop-in (or block) carries to read [`JUMP_PATH`].
pub fn include_line() -> String {
    format!("Include {JUMP_PATH}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn jump(admins: &[&str]) -> JumpConfig {
        JumpConfig {
            group: "bastion".into(),
            destinations: strings(&["10.0.1.0/30", "10.0.9.7"]),
            port: 22,
            admin_groups: strings(admins),
        }
    }

    #[test]
    fn ranges_become_one_entry_per_address() {
        assert_eq!(
            permit_open(&strings(&["10.0.1.0/30", "10.0.9.7", "10.0.1.2/31"]), 22).unwrap(),
            [
                "10.0.1.0:22",
                "10.0.1.1:22",
                "10.0.1.2:22",
                "10.0.1.3:22",
                "10.0.9.7:22"
            ]
        );
        assert_eq!(permit_open(&strings(&["*"]), 2222).unwrap(), ["*:2222"]);
        assert_eq!(
            permit_open(&strings(&["10.0.0.0/20"]), 22).unwrap().len(),
            4096
        );
    }

    #[test]
    fn too_many_addresses_are_refused_with_the_fix() {
        let err = permit_open(&strings(&["10.0.0.0/16"]), 22).unwrap_err();
        assert!(err.contains("exact addresses, not ranges"), "{err}");
        assert!(err.contains("destinations = [\"*\"]"), "{err}");
        assert!(permit_open(&strings(&["10.0.0.0/20", "10.1.0.0/32"]), 22).is_err());
        assert!(permit_open(&strings(&["0.0.0.0/0"]), 22).is_err());
    }

    #[test]
    fn anything_but_ipv4_addresses_and_ranges_is_refused() {
        for (bad, says) in [
            ("web-1", "names are not accepted"),
            ("10.0.0.1/24", "did you mean 10.0.0.0/24"),
            ("10.0.0.0/33", "prefix length"),
            ("10.0.0.0/", "prefix length"),
            ("10.0.0.0/+8", "prefix length"),
            ("fd00::/64", "IPv6"),
            ("10.0.0.1:22", "not an IPv4 address"),
            ("10.0.0.1 10.0.0.2", "not an IPv4 address"),
        ] {
            let err = permit_open(&strings(&[bad]), 22).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        assert!(permit_open(&strings(&["*", "10.0.0.1"]), 22).is_err());
        assert!(permit_open(&[], 22).is_err());
        assert!(permit_open(&strings(&["10.0.0.1"]), 0).is_err());
    }

    #[test]
    fn the_rule_exempts_admin_groups_and_forbids_everything_but_local_forwarding() {
        let text = render(&jump(&["ops", "sre"])).unwrap();
        assert!(text.starts_with(super::super::MANAGED_MARK), "{text}");
        assert!(text.contains("\nMatch Group bastion,!ops,!sre\n"), "{text}");
        for line in [
            "\tPermitTTY no\n",
            "\tAllowTcpForwarding local\n",
            "\tPermitOpen 10.0.1.0:22 10.0.1.1:22 10.0.1.2:22 10.0.1.3:22 10.0.9.7:22\n",
            "\tPermitListen none\n",
            "\tAllowAgentForwarding no\n",
            "\tX11Forwarding no\n",
            "\tPermitTunnel no\n",
            "\tAllowStreamLocalForwarding no\n",
            "\tGatewayPorts no\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in:\n{text}");
        }
        assert!(render(&jump(&[]))
            .unwrap()
            .contains("\nMatch Group bastion\n"));
    }

    #[test]
    fn a_rule_sshd_applies_globally_is_caught() {
        let dump = |force: &str| vec![("forcecommand".to_owned(), force.to_owned())];
        assert!(verify_scoped(&dump("none")).is_ok());
        assert!(verify_scoped(&dump("/usr/bin/backup")).is_ok());
        let err = verify_scoped(&dump(&forced_command("bastion"))).unwrap_err();
        assert!(err.to_string().contains("not scoped"), "{err}");
    }

    #[test]
    fn the_forced_command_explains_itself_and_survives_the_shell() {
        let command = forced_command("bastion");
        assert!(command.contains("ssh -J"), "{command}");
        assert!(command.ends_with(">&2; exit 1"));
        let message = refusal("bastion");
        assert!(!message.contains(['\'', '#', '%', '$', '\\', '"', '`']));
        // sshd ends a line at an argument starting with '#': none in the whole rule either.
        assert!(!render(&jump(&["ops"]))
            .unwrap()
            .lines()
            .skip(4)
            .any(|l| l.contains('#')));
    }
}
