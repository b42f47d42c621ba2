//! Deciding how keyward's directives get into sshd's configuration.
//!
//! sshd keeps the first value it reads for each keyword, reads an Include at the point where it
//! appears, and applies a `Match` block to everything after it. Only the first
//! AuthorizedKeysCommand counts. These pure functions follow the same rules over the text of the
//! config files to decide whether a drop-in sorted first in sshd_config.d is enough or a marked
//! block at the top of sshd_config is needed, and what the effective command was before keyward.
//! They must never guess in the unsafe direction: anything they do not understand leads to the
//! block at the top, and real sshd (`sshd -t`, `sshd -T`) has the last word in real mode.

use super::blocks;

/// sshd's main config file.
pub const MAIN_CONFIG: &str = "/etc/ssh/sshd_config";
/// Where relative Include paths are resolved (sshd's SSHDIR).
pub const SSH_DIR: &str = "/etc/ssh";
/// The drop-in Include that Debian, Ubuntu, Amazon Linux 2023 and RHEL 9 put in sshd_config.
pub const DROPIN_GLOB: &str = "/etc/ssh/sshd_config.d/*.conf";
pub const DROPIN_DIR: &str = "/etc/ssh/sshd_config.d";
/// Sorts before the drop-ins distributions and cloud-init ship (`50-cloud-init.conf`, ...).
pub const DROPIN_PATH: &str = "/etc/ssh/sshd_config.d/00-keyward.conf";
/// The account sshd runs keyward's AuthorizedKeysCommand as.
pub const COMMAND_USER: &str = "keyward";

const TEMPLATE: &str = include_str!("../../pam/sshd_config.keyward");
const BLOCK_BEGIN: &str =
    "# BEGIN keyward (managed by keyward install; remove with keyward uninstall)";
/// sshd gives up on deeper Include nesting too.
const MAX_INCLUDE_DEPTH: usize = 16;

pub const AKC: &str = "authorizedkeyscommand";
pub const AKC_USER: &str = "authorizedkeyscommanduser";
pub const TRUSTED_CA: &str = "trustedusercakeys";
pub const APC: &str = "authorizedprincipalscommand";
pub const APC_USER: &str = "authorizedprincipalscommanduser";
/// The user CA's public key file `install --ca` writes (root, 0644) for `TrustedUserCAKeys`.
pub const CA_KEY_PATH: &str = "/etc/ssh/keyward_user_ca.pub";
/// The host certificates `keyward host-cert` writes, next to the host keys they certify.
pub const HOST_CERT_GLOB: &str = "/etc/ssh/ssh_host_*_key-cert.pub";
pub const KBD: &str = "kbdinteractiveauthentication";
/// The pre-8.7 spelling of KbdInteractiveAuthentication; sshd treats both as one keyword.
const KBD_ALIAS: &str = "challengeresponseauthentication";

/// The AuthorizedKeysCommand line keyward installs for `binary`.
pub fn authorized_keys_command(binary: &str) -> String {
    format!("{binary} authorized-keys %u %f %k")
}

/// The AuthorizedPrincipalsCommand line keyward installs for `binary` (`install --ca`).
pub fn authorized_principals_command(binary: &str) -> String {
    format!("{binary} authorized-principals %u %i")
}

/// What `install --ca` adds to sshd: the user CA, and the host certificates present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaWiring {
    /// `HostCertificate` paths (from [`HOST_CERT_GLOB`]), sorted.
    pub host_certificates: Vec<String>,
}

/// keyward's sshd directives, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives<'a> {
    pub binary: &'a str,
    pub create_on_login: bool,
    pub ca: Option<&'a CaWiring>,
    /// `install --jump`: read the jump rule ([`super::jump::JUMP_PATH`]) last.
    pub jump: bool,
}

/// The whole drop-in file, from the template, with the certificate directives when `ca` is
/// set. Those come before AuthorizedKeysCommand: OpenSSH (9.2 at least) keeps an
/// AuthorizedPrincipalsCommand only while no AuthorizedKeysCommand has been read yet (both go
/// through one parser that tests the AuthorizedKeysCommand's slot), so after it, sshd -T shows
/// `authorizedprincipalscommand none` and certificates would get no principals.
pub fn render_dropin(d: &Directives<'_>) -> String {
    let mut text = super::render_template(TEMPLATE, &[("@KEYWARD@", d.binary)], d.create_on_login);
    if let Some(ca) = d.ca {
        let mut lines = String::new();
        lines.push_str(&format!(
            "# keyward user certificates (install --ca): the CA, and the principals rule\n\
             TrustedUserCAKeys {CA_KEY_PATH}\n\
             AuthorizedPrincipalsCommand {}\n\
             AuthorizedPrincipalsCommandUser {COMMAND_USER}\n",
            authorized_principals_command(d.binary)
        ));
        for cert in &ca.host_certificates {
            lines.push_str(&format!("HostCertificate {cert}\n"));
        }
        let at = text
            .find("\nAuthorizedKeysCommand ")
            .map_or(text.len(), |i| i + 1);
        text.insert_str(at, &lines);
    }
    if d.jump {
        // Last: its Match is scoped to the included file, and nothing of ours follows it.
        text.push_str(&format!(
            "# keyward jump host (install --jump): the Match for the jump group\n{}\n",
            super::jump::include_line()
        ));
    }
    text
}

/// The marked block for the top of sshd_config: the drop-in's directive lines only.
pub fn render_block(d: &Directives<'_>) -> String {
    let mut block = format!("{BLOCK_BEGIN}\n");
    for line in render_dropin(d).lines() {
        if !line.trim_start().starts_with('#') && !line.trim().is_empty() {
            block.push_str(line);
            block.push('\n');
        }
    }
    block.push_str(blocks::END);
    block.push('\n');
    block
}

/// One config line as sshd splits it: the keyword (lower case) and the rest of the line after
/// the separator (whitespace and/or one `=`), with a trailing comment argument cut off.
/// Comments and blank lines give `None`.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_matches(|c: char| c.is_ascii_whitespace());
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_ascii_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_whitespace());
    }
    // sshd (8.7+) ends the line at an argument that starts with '#'.
    let mut value_end = rest.len();
    let mut prev_space = true;
    for (i, c) in rest.char_indices() {
        if c == '#' && prev_space {
            value_end = i;
            break;
        }
        prev_space = c.is_ascii_whitespace();
    }
    Some((keyword, rest[..value_end].trim_end().to_owned()))
}

/// Include arguments, split like sshd does (whitespace, double quotes), made absolute.
pub fn include_patterns(value: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut has_arg = false;
    for c in value.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                has_arg = true;
            }
            c if c.is_ascii_whitespace() && !quoted => {
                if has_arg {
                    args.push(std::mem::take(&mut current));
                    has_arg = false;
                }
            }
            c => {
                current.push(c);
                has_arg = true;
            }
        }
    }
    if has_arg {
        args.push(current);
    }
    args.into_iter()
        .map(|a| {
            if a.starts_with('/') {
                a
            } else {
                format!("{SSH_DIR}/{a}")
            }
        })
        .collect()
}

/// What sshd meets, in the order it reads the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A keyword and its value; `origin` is `file:line`.
    Set {
        keyword: String,
        value: String,
        origin: String,
    },
    /// A Match line: everything after it is conditional.
    Match { origin: String },
    /// The point where keyward's drop-in would be read.
    DropInSlot,
    /// Something the walk could not follow (nesting too deep).
    Unknown { origin: String, reason: String },
}

/// Reads included files: given an absolute glob pattern, the matching files (path, text),
/// sorted by path as glob(3) does. Missing files are simply not returned (sshd ignores them).
pub type Resolver<'a> = dyn Fn(&str) -> Vec<(String, String)> + 'a;

/// Walks the config the way sshd reads it, from the main file's text, following Includes
/// through `resolve`. keyward's own drop-in is skipped (its slot is marked with `DropInSlot`),
/// and the main text should have keyward's block removed: the walk describes the host without
/// keyward.
pub fn walk(main: &str, resolve: &Resolver<'_>) -> Vec<Event> {
    let mut events = Vec::new();
    walk_file(MAIN_CONFIG, main, resolve, 0, &mut events);
    events
}

fn walk_file(path: &str, text: &str, resolve: &Resolver<'_>, depth: usize, out: &mut Vec<Event>) {
    for (number, line) in text.lines().enumerate() {
        let Some((keyword, value)) = parse_line(line) else {
            continue;
        };
        let origin = format!("{path}:{}", number + 1);
        match keyword.as_str() {
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    out.push(Event::Unknown {
                        origin,
                        reason: "Include nested too deeply".into(),
                    });
                    continue;
                }
                for pattern in include_patterns(&value) {
                    let mut files: Vec<(String, String)> = resolve(&pattern)
                        .into_iter()
                        .filter(|(p, _)| p != DROPIN_PATH)
                        .collect();
                    let slot = (pattern == DROPIN_GLOB).then(|| {
                        files
                            .iter()
                            .position(|(p, _)| p.as_str() > DROPIN_PATH)
                            .unwrap_or(files.len())
                    });
                    for (i, (p, t)) in files.iter_mut().enumerate() {
                        if slot == Some(i) {
                            out.push(Event::DropInSlot);
                        }
                        walk_file(p, t, resolve, depth + 1, out);
                    }
                    if slot == Some(files.len()) {
                        out.push(Event::DropInSlot);
                    }
                }
            }
            "match" => out.push(Event::Match { origin }),
            _ => out.push(Event::Set {
                keyword: if keyword == KBD_ALIAS {
                    KBD.to_owned()
                } else {
                    keyword
                },
                value,
                origin,
            }),
        }
    }
}

/// A value sshd would use, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub origin: String,
}

/// The global (outside any Match) values of the keywords keyward cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    pub command: Option<Setting>,
    pub command_user: Option<Setting>,
    pub kbd_interactive: Option<Setting>,
    pub use_pam: Option<Setting>,
    pub trusted_ca: Option<Setting>,
    pub principals_command: Option<Setting>,
    /// `file:line` of Match blocks that set AuthorizedKeysCommand(User): they override keyward
    /// for the connections they match.
    pub match_overrides: Vec<String>,
}

/// First value wins, Match ends the global part, `none` means unset.
pub fn effective(events: &[Event]) -> Effective {
    let mut eff = Effective::default();
    let mut in_match = false;
    for event in events {
        match event {
            Event::Match { .. } => in_match = true,
            Event::Set {
                keyword,
                value,
                origin,
            } => {
                if in_match {
                    if keyword == AKC || keyword == AKC_USER {
                        eff.match_overrides.push(origin.clone());
                    }
                    continue;
                }
                let slot = match keyword.as_str() {
                    AKC => &mut eff.command,
                    AKC_USER => &mut eff.command_user,
                    KBD => &mut eff.kbd_interactive,
                    "usepam" => &mut eff.use_pam,
                    TRUSTED_CA => &mut eff.trusted_ca,
                    APC => &mut eff.principals_command,
                    _ => continue,
                };
                if slot.is_none() {
                    *slot = Some(Setting {
                        value: value.clone(),
                        origin: origin.clone(),
                    });
                }
            }
            Event::DropInSlot | Event::Unknown { .. } => {}
        }
    }
    for slot in [
        &mut eff.command,
        &mut eff.command_user,
        &mut eff.trusted_ca,
        &mut eff.principals_command,
    ] {
        if slot.as_ref().is_some_and(|s| s.value == "none") {
            *slot = None;
        }
    }
    eff
}

/// Where keyward's directives go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// `/etc/ssh/sshd_config.d/00-keyward.conf`; sshd_config is not touched.
    DropIn,
    /// A marked block at the top of sshd_config, for the reason given.
    Block { reason: String },
}

/// The drop-in is enough only when sshd reads it before anything that sets one of keyward's
/// keywords (the certificate ones too, with `ca`) and before any Match; otherwise the block at
/// the top of sshd_config.
pub fn placement(events: &[Event], ca: bool) -> Placement {
    let ours = |keyword: &str| {
        keyword == AKC
            || keyword == AKC_USER
            || keyword == KBD
            || (ca && [TRUSTED_CA, APC, APC_USER].contains(&keyword))
    };
    for event in events {
        match event {
            Event::DropInSlot => return Placement::DropIn,
            Event::Match { origin } => {
                return Placement::Block {
                    reason: format!("a Match block ({origin}) comes before {DROPIN_DIR}"),
                }
            }
            Event::Set {
                keyword, origin, ..
            } if ours(keyword) => {
                return Placement::Block {
                    reason: format!("{origin} sets {keyword} before {DROPIN_PATH} is read"),
                }
            }
            Event::Unknown { origin, reason } => {
                return Placement::Block {
                    reason: format!("{origin}: {reason}"),
                }
            }
            Event::Set { .. } => {}
        }
    }
    Placement::Block {
        reason: format!("sshd_config has no Include of {DROPIN_GLOB} before any Match"),
    }
}

/// The sshd files as keyward wants them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshdPlan {
    pub placement: Placement,
    /// sshd_config's desired text.
    pub main: String,
    /// The drop-in's desired text, or `None` when it must not exist.
    pub dropin: Option<String>,
}

/// `main_clean` is sshd_config without keyward's block; `events` come from `walk` over it.
pub fn plan(main_clean: &str, events: &[Event], d: &Directives<'_>) -> SshdPlan {
    let placement = placement(events, d.ca.is_some());
    match placement {
        Placement::DropIn => SshdPlan {
            placement,
            main: main_clean.to_owned(),
            dropin: Some(render_dropin(d)),
        },
        Placement::Block { .. } => SshdPlan {
            // At the very top: before any Include, any other setting and any Match.
            main: blocks::insert_block_at(main_clean, 0, &render_block(d)),
            placement,
            dropin: None,
        },
    }
}

/// Whether an AuthorizedKeysCommand is keyward's own (this binary or any `keyward
/// authorized-keys`): chaining to it would loop.
pub fn is_keywards(command: &str, binary: &str) -> bool {
    let mut words = command.split_ascii_whitespace();
    let program = words.next().unwrap_or("");
    program == binary
        || (program.rsplit('/').next() == Some("keyward")
            && words.next() == Some("authorized-keys"))
}

/// `sshd -T` output: lower-case keyword, space, value. First occurrence of each keyword.
pub fn parse_dump(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        if !k.is_empty() && !out.iter().any(|(seen, _)| seen == k) {
            out.push((k.to_owned(), v.trim().to_owned()));
        }
    }
    out
}

fn dump_value<'a>(dump: &'a [(String, String)], keyword: &str) -> Option<&'a str> {
    dump.iter()
        .find(|(k, _)| k == keyword)
        .map(|(_, v)| v.as_str())
        .filter(|v| *v != "none")
}

/// The AuthorizedKeysCommand and its user in effect per `sshd -T`, before keyward.
pub fn effective_from_dump(dump: &[(String, String)]) -> Effective {
    let setting = |k: &str| {
        dump_value(dump, k).map(|v| Setting {
            value: v.to_owned(),
            origin: "sshd -T".into(),
        })
    };
    Effective {
        command: setting(AKC),
        command_user: setting(AKC_USER),
        kbd_interactive: setting(KBD),
        use_pam: setting("usepam"),
        trusted_ca: setting(TRUSTED_CA),
        principals_command: setting(APC),
        match_overrides: Vec::new(),
    }
}

/// What `sshd -T` shows instead of keyward's directives, in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct NotEffective {
    pub problems: Vec<String>,
}

/// Checks `sshd -T` output after install: keyward's command and user are the effective ones.
pub fn verify_dump(
    dump: &[(String, String)],
    binary: &str,
    create_on_login: bool,
    ca: bool,
) -> Result<(), NotEffective> {
    let want = authorized_keys_command(binary);
    let mut problems = Vec::new();
    let got = dump_value(dump, AKC).unwrap_or("none");
    if got != want {
        problems.push(format!("authorizedkeyscommand is {got:?}, not {want:?}"));
    }
    let got = dump_value(dump, AKC_USER).unwrap_or("none");
    if got != COMMAND_USER {
        problems.push(format!(
            "authorizedkeyscommanduser is {got:?}, not {COMMAND_USER:?}"
        ));
    }
    if create_on_login {
        let got = dump_value(dump, KBD).unwrap_or("none");
        if got != "yes" {
            problems.push(format!(
                "kbdinteractiveauthentication is {got:?}, not \"yes\""
            ));
        }
    }
    if ca {
        for (keyword, want) in [
            (TRUSTED_CA, CA_KEY_PATH.to_owned()),
            (APC, authorized_principals_command(binary)),
            (APC_USER, COMMAND_USER.to_owned()),
        ] {
            let got = dump_value(dump, keyword).unwrap_or("none");
            if got != want {
                problems.push(format!("{keyword} is {got:?}, not {want:?}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(NotEffective { problems })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
pub(crate) mod tests {
    use super::*;

    /// Debian 12's /etc/ssh/sshd_config, abridged but in its real order.
    pub const DEBIAN_SSHD: &str = "\
\n# This is the sshd server system-wide configuration file.  See
# sshd_config(5) for more information.

# This sshd was compiled with PATH=/usr/local/bin:/usr/bin:/bin:/usr/games

Include /etc/ssh/sshd_config.d/*.conf

#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0

#PermitRootLogin prohibit-password
#PubkeyAuthentication yes

#AuthorizedKeysFile	.ssh/authorized_keys .ssh/authorized_keys2

#AuthorizedPrincipalsFile none

#AuthorizedKeysCommand none
#AuthorizedKeysCommandUser nobody

# To disable tunneled clear text passwords, change to no here!
#PasswordAuthentication yes
#PermitEmptyPasswords no

# Change to yes to enable challenge-response passwords (beware issues with
# some PAM modules and threads)
KbdInteractiveAuthentication no

UsePAM yes

X11Forwarding yes
PrintMotd no

# Allow client to pass locale environment variables
AcceptEnv LANG LC_*

# override default of no subsystems
Subsystem	sftp	/usr/lib/openssh/sftp-server

# Example of overriding settings on a per-user basis
#Match User anoncvs
#	X11Forwarding no
#	AllowTcpForwarding no
#	PermitTTY no
#	ForceCommand cvs server
";

    /// Amazon Linux 2's sshd_config: no drop-in Include, EC2 Instance Connect's command.
    pub const AMAZON_LINUX_SSHD: &str = "\
#	$OpenBSD: sshd_config,v 1.100 2016/08/15 12:32:04 naddy Exp $

HostKey /etc/ssh/ssh_host_rsa_key
HostKey /etc/ssh/ssh_host_ecdsa_key
HostKey /etc/ssh/ssh_host_ed25519_key

SyslogFacility AUTHPRIV

AuthorizedKeysFile .ssh/authorized_keys

PasswordAuthentication no

ChallengeResponseAuthentication no

GSSAPIAuthentication yes
GSSAPICleanupCredentials no

UsePAM yes

X11Forwarding yes
UsePrivilegeSeparation sandbox

AcceptEnv LANG LC_CTYPE LC_NUMERIC LC_TIME LC_COLLATE LC_MONETARY LC_MESSAGES

Subsystem sftp	/usr/libexec/openssh/sftp-server

AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f
AuthorizedKeysCommandUser ec2-instance-connect
";

    /// Amazon Linux 2023: the drop-in Include first, EC2 Instance Connect later in the file.
    pub const AL2023_SSHD: &str = "\
# Amazon Linux 2023
Include /etc/ssh/sshd_config.d/*.conf

AuthorizedKeysFile .ssh/authorized_keys
KbdInteractiveAuthentication no
UsePAM yes
Subsystem sftp	/usr/libexec/openssh/sftp-server

AuthorizedKeysCommand /usr/share/ec2-instance-connect/eic_run_authorized_keys %u %f
AuthorizedKeysCommandUser ec2-instance-connect
";

    const BIN: &str = "/usr/local/bin/keyward";

    fn files(list: &[(&str, &str)]) -> impl Fn(&str) -> Vec<(String, String)> {
        let list: Vec<(String, String)> = list
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        move |pattern: &str| {
            let (dir, glob) = pattern.rsplit_once('/').unwrap();
            let mut out: Vec<(String, String)> = list
                .iter()
                .filter(|(p, _)| {
                    p.rsplit_once('/')
                        .is_some_and(|(d, n)| d == dir && super::super::glob_match(glob, n))
                })
                .cloned()
                .collect();
            out.sort();
            out
        }
    }

    fn directives(create_on_login: bool, ca: Option<&CaWiring>) -> Directives<'_> {
        Directives {
            binary: BIN,
            create_on_login,
            ca,
            jump: false,
        }
    }

    fn plan_for(main: &str, dropins: &[(&str, &str)]) -> SshdPlan {
        let events = walk(main, &files(dropins));
        plan(main, &events, &directives(true, None))
    }

    #[test]
    fn debian_gets_a_dropin_and_an_untouched_sshd_config() {
        let p = plan_for(DEBIAN_SSHD, &[]);
        assert_eq!(p.placement, Placement::DropIn);
        assert_eq!(p.main, DEBIAN_SSHD);
        let dropin = p.dropin.unwrap();
        assert!(dropin
            .contains("\nAuthorizedKeysCommand /usr/local/bin/keyward authorized-keys %u %f %k\n"));
        assert!(dropin.contains("\nAuthorizedKeysCommandUser keyward\n"));
        assert!(dropin.contains("\nKbdInteractiveAuthentication yes\n"));
        assert!(!dropin.contains('@') && !dropin.contains("##"), "{dropin}");
    }

    #[test]
    fn without_create_on_login_keyboard_interactive_is_left_alone() {
        let events = walk(DEBIAN_SSHD, &files(&[]));
        let p = plan(DEBIAN_SSHD, &events, &directives(false, None));
        assert!(!p.dropin.unwrap().contains("KbdInteractive"));
        let block = render_block(&directives(false, None));
        assert!(!block.contains("KbdInteractive"));
    }

    #[test]
    fn amazon_linux_2_without_include_gets_the_block_and_keeps_its_command_for_chaining() {
        let p = plan_for(AMAZON_LINUX_SSHD, &[]);
        assert!(matches!(p.placement, Placement::Block { .. }));
        assert!(p.dropin.is_none());
        assert!(p.main.starts_with(&render_block(&directives(true, None))));
        assert_eq!(blocks::remove_block(&p.main).unwrap(), AMAZON_LINUX_SSHD);
        let before = effective(&walk(AMAZON_LINUX_SSHD, &files(&[])));
        assert_eq!(
            before.command.unwrap().value,
            "/opt/aws/bin/eic_run_authorized_keys %u %f"
        );
        assert_eq!(before.command_user.unwrap().value, "ec2-instance-connect");
        // After install, keyward's block is read first and wins.
        let after = effective(&walk(&p.main, &files(&[])));
        assert_eq!(after.command.unwrap().value, authorized_keys_command(BIN));
        assert_eq!(after.command_user.unwrap().value, "keyward");
        assert_eq!(after.kbd_interactive.unwrap().value, "yes");
    }

    #[test]
    fn amazon_linux_2023_gets_the_dropin_which_is_read_before_the_instance_connect_command() {
        let p = plan_for(
            AL2023_SSHD,
            &[(
                "/etc/ssh/sshd_config.d/50-redhat.conf",
                "X11Forwarding yes\n",
            )],
        );
        assert_eq!(p.placement, Placement::DropIn);
        let before = effective(&walk(AL2023_SSHD, &files(&[])));
        assert!(before
            .command
            .unwrap()
            .value
            .contains("eic_run_authorized_keys"));
        let dropin = p.dropin.unwrap();
        let after = effective(&walk(AL2023_SSHD, &files(&[(DROPIN_PATH, &dropin)])));
        // Our own drop-in is skipped by the walk (it describes the host without keyward) ...
        assert!(after.command.unwrap().value.contains("eic"));
    }

    #[test]
    fn a_command_before_the_include_means_block_mode() {
        let main = "AuthorizedKeysCommand /opt/x %u\nAuthorizedKeysCommandUser nobody\nInclude /etc/ssh/sshd_config.d/*.conf\n";
        let p = plan_for(main, &[]);
        match &p.placement {
            Placement::Block { reason } => {
                assert!(reason.contains(":1 sets authorizedkeyscommand"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(p
            .main
            .starts_with("# BEGIN keyward (managed by keyward install"));
        let after = effective(&walk(&p.main, &files(&[])));
        assert_eq!(after.command.unwrap().value, authorized_keys_command(BIN));
    }

    #[test]
    fn match_before_the_include_means_block_mode() {
        let main =
            "Match User backup\n  ForceCommand /bin/false\nInclude /etc/ssh/sshd_config.d/*.conf\n";
        let p = plan_for(main, &[]);
        assert!(matches!(&p.placement, Placement::Block { reason } if reason.contains("Match")));
    }

    #[test]
    fn old_spelling_of_keyboard_interactive_before_the_include_means_block_mode() {
        let main = "ChallengeResponseAuthentication no\nInclude sshd_config.d/*.conf\n";
        assert!(matches!(
            plan_for(main, &[]).placement,
            Placement::Block { .. }
        ));
    }

    #[test]
    fn relative_include_counts_as_the_dropin_directory() {
        let main = "Include sshd_config.d/*.conf\nKbdInteractiveAuthentication no\n";
        assert_eq!(plan_for(main, &[]).placement, Placement::DropIn);
    }

    #[test]
    fn a_dropin_sorting_before_ours_that_sets_our_keywords_means_block_mode() {
        let p = plan_for(
            DEBIAN_SSHD,
            &[
                (
                    "/etc/ssh/sshd_config.d/00-aaa.conf",
                    "AuthorizedKeysCommandUser nobody\n",
                ),
                (
                    "/etc/ssh/sshd_config.d/50-cloud-init.conf",
                    "PasswordAuthentication no\n",
                ),
            ],
        );
        assert!(
            matches!(&p.placement, Placement::Block { reason } if reason.contains("00-aaa.conf:1")),
            "{:?}",
            p.placement
        );
    }

    #[test]
    fn a_dropin_sorting_after_ours_does_not_matter() {
        let p = plan_for(
            DEBIAN_SSHD,
            &[(
                "/etc/ssh/sshd_config.d/50-x.conf",
                "AuthorizedKeysCommand /x\nMatch all\n",
            )],
        );
        assert_eq!(p.placement, Placement::DropIn);
    }

    #[test]
    fn replanning_the_result_gives_the_same_files() {
        for main in [DEBIAN_SSHD, AMAZON_LINUX_SSHD, AL2023_SSHD, ""] {
            let first = plan_for(main, &[]);
            let clean = blocks::remove_block(&first.main).unwrap();
            assert_eq!(clean, main);
            assert_eq!(plan_for(&clean, &[]), first);
        }
    }

    #[test]
    fn lines_are_split_like_sshd_does() {
        assert_eq!(parse_line("  # comment"), None);
        assert_eq!(parse_line("   "), None);
        assert_eq!(
            parse_line("AuthorizedKeysCommand=/bin/x %u  # why"),
            Some(("authorizedkeyscommand".into(), "/bin/x %u".into()))
        );
        assert_eq!(
            parse_line("\tUSEPAM \t yes"),
            Some(("usepam".into(), "yes".into()))
        );
        assert_eq!(
            parse_line("Banner = /etc/issue.net"),
            Some(("banner".into(), "/etc/issue.net".into()))
        );
        assert_eq!(
            include_patterns("a.conf \"/etc/x y/*.conf\" /abs"),
            vec!["/etc/ssh/a.conf", "/etc/x y/*.conf", "/abs"]
        );
    }

    #[test]
    fn none_means_no_command_and_match_settings_are_reported() {
        let eff = effective(&walk(
            "AuthorizedKeysCommand none\nMatch User x\nAuthorizedKeysCommand /y\n",
            &files(&[]),
        ));
        assert_eq!(eff.command, None);
        assert_eq!(eff.match_overrides, vec!["/etc/ssh/sshd_config:3"]);
    }

    #[test]
    fn keywards_own_command_is_recognised() {
        assert!(is_keywards(&authorized_keys_command(BIN), BIN));
        assert!(is_keywards("/opt/keyward authorized-keys %u", BIN));
        assert!(!is_keywards(
            "/opt/aws/bin/eic_run_authorized_keys %u %f",
            BIN
        ));
    }

    #[test]
    fn sshd_dump_is_verified() {
        let good = format!(
            "port 22\nauthorizedkeyscommand {}\nauthorizedkeyscommanduser keyward\nkbdinteractiveauthentication yes\n",
            authorized_keys_command(BIN)
        );
        assert_eq!(verify_dump(&parse_dump(&good), BIN, true, false), Ok(()));
        let bad = "authorizedkeyscommand none\nauthorizedkeyscommanduser none\nkbdinteractiveauthentication no\n";
        let err = verify_dump(&parse_dump(bad), BIN, true, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("authorizedkeyscommand is \"none\""), "{err}");
        assert!(err.contains("kbdinteractiveauthentication"), "{err}");
        assert!(verify_dump(&parse_dump(bad), BIN, false, false).is_err());
        // With --ca, the certificate directives must be in effect too.
        let err = verify_dump(&parse_dump(&good), BIN, true, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("trustedusercakeys is \"none\""), "{err}");
        assert!(err.contains("authorizedprincipalscommanduser"), "{err}");
        let with_ca = format!(
            "{good}trustedusercakeys {CA_KEY_PATH}\nauthorizedprincipalscommand {}\nauthorizedprincipalscommanduser keyward\n",
            authorized_principals_command(BIN)
        );
        assert_eq!(verify_dump(&parse_dump(&with_ca), BIN, true, true), Ok(()));
        let eff = effective_from_dump(&parse_dump(
            "authorizedkeyscommand /opt/aws/bin/eic_run_authorized_keys %u %f\nauthorizedkeyscommanduser ec2-instance-connect\n",
        ));
        assert_eq!(eff.command_user.unwrap().value, "ec2-instance-connect");
    }

    #[test]
    fn ca_adds_the_user_ca_the_principals_command_and_each_host_certificate() {
        let ca = CaWiring {
            host_certificates: vec!["/etc/ssh/ssh_host_ed25519_key-cert.pub".into()],
        };
        let events = walk(DEBIAN_SSHD, &files(&[]));
        let p = plan(DEBIAN_SSHD, &events, &directives(true, Some(&ca)));
        assert_eq!(p.placement, Placement::DropIn);
        let dropin = p.dropin.unwrap();
        for line in [
            "\nAuthorizedKeysCommand /usr/local/bin/keyward authorized-keys %u %f %k\n",
            "\nTrustedUserCAKeys /etc/ssh/keyward_user_ca.pub\n",
            "\nAuthorizedPrincipalsCommand /usr/local/bin/keyward authorized-principals %u %i\n",
            "\nAuthorizedPrincipalsCommandUser keyward\n",
            "\nHostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n",
        ] {
            assert!(dropin.contains(line), "{line:?} missing in:\n{dropin}");
        }
        // The block carries the same directives.
        let block = render_block(&directives(true, Some(&ca)));
        assert!(
            block.contains("\nAuthorizedPrincipalsCommandUser keyward\n"),
            "{block}"
        );
        assert!(block.contains("\nHostCertificate /etc/ssh/ssh_host_ed25519_key-cert.pub\n"));
        // OpenSSH drops an AuthorizedPrincipalsCommand read after an AuthorizedKeysCommand.
        for text in [&dropin, &block] {
            let line = |start: &str| text.lines().position(|l| l.starts_with(start)).unwrap();
            assert!(
                line("AuthorizedPrincipalsCommand ") < line("AuthorizedKeysCommand "),
                "{text}"
            );
        }
        // An earlier TrustedUserCAKeys would win over the drop-in: the block, but only with --ca.
        let main = format!("TrustedUserCAKeys /etc/ssh/other_ca.pub\n{DEBIAN_SSHD}");
        let events = walk(&main, &files(&[]));
        assert!(matches!(
            plan(&main, &events, &directives(true, Some(&ca))).placement,
            Placement::Block { reason } if reason.contains("trustedusercakeys")
        ));
        assert_eq!(
            plan(&main, &events, &directives(true, None)).placement,
            Placement::DropIn
        );
        let eff = effective(&events);
        assert_eq!(eff.trusted_ca.unwrap().value, "/etc/ssh/other_ca.pub");
    }
}
