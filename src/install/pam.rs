//! keyward's line in /etc/pam.d/sshd: the on-demand account creation hook.
//!
//! The auth stack runs for keyboard-interactive and password logins, before the account exists;
//! keyward's `pam_exec` line goes right before the first auth line so that it runs even when a
//! later module fails or prompts. It is `optional`, so it can never make authentication succeed
//! by itself. These functions are pure text transformations over the file; they must never
//! change a line of the admin's stack.

use super::{blocks, InstallError};

pub const PAM_PATH: &str = "/etc/pam.d/sshd";
const TEMPLATE: &str = include_str!("../../pam/sshd-keyward.pam");

/// The marked block, from the template.
pub fn render_block(binary: &str) -> String {
    super::render_template(TEMPLATE, &[("@KEYWARD@", binary)], true)
}

/// An auth line: `auth ...`, `-auth ...`, or an `@include` of an auth file (Debian's
/// `@include common-auth`). Comments and other types are not.
pub fn is_auth_line(line: &str) -> bool {
    let mut words = line.split_ascii_whitespace();
    match words.next() {
        Some(w) if w.eq_ignore_ascii_case("auth") || w.eq_ignore_ascii_case("-auth") => true,
        Some("@include") => words.next().is_some_and(|f| f.contains("auth")),
        _ => false,
    }
}

/// Inserts `block` before the first auth line of `text` (which must hold no keyward block).
pub fn insert_pam_block(text: &str, block: &str) -> Result<String, InstallError> {
    let line = text
        .lines()
        .position(is_auth_line)
        .ok_or_else(|| InstallError::NoAuthLine(PAM_PATH.into()))?;
    Ok(blocks::insert_block_at(text, line, block))
}

/// /etc/pam.d/sshd as keyward wants it: the admin's stack, plus keyward's block when accounts
/// are created on login.
pub fn desired(current: &str, binary: &str, create_on_login: bool) -> Result<String, InstallError> {
    let clean = blocks::remove_block(current)?;
    if create_on_login {
        insert_pam_block(&clean, &render_block(binary))
    } else {
        Ok(clean)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// Debian 12's /etc/pam.d/sshd, abridged.
    pub const DEBIAN_PAM: &str = "\
# PAM configuration for the Secure Shell service

# Standard Un*x authentication.
@include common-auth

# Disallow non-root logins when /etc/nologin exists.
account    required     pam_nologin.so

# Standard Un*x authorization.
@include common-account

session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close
session    required     pam_loginuid.so
@include common-session
@include common-password
";

    /// Amazon Linux 2 / RHEL's /etc/pam.d/sshd.
    pub const AMAZON_LINUX_PAM: &str = "\
#%PAM-1.0
auth       required     pam_sepermit.so
auth       substack     password-auth
auth       include      postlogin
# Used with polkit to reauthorize users in remote sessions
-auth      optional     pam_reauthorize.so prepare
account    required     pam_nologin.so
account    include      password-auth
password   include      password-auth
session    required     pam_loginuid.so
session    include      password-auth";

    const BIN: &str = "/usr/local/bin/keyward";
    const LINE: &str =
        "auth optional pam_exec.so quiet stdout /usr/local/bin/keyward pam-create-account\n";

    #[test]
    fn debian_gets_the_hook_right_before_include_common_auth() {
        let out = desired(DEBIAN_PAM, BIN, true).unwrap();
        let expected = format!("# BEGIN keyward\n{LINE}# END keyward\n@include common-auth\n");
        assert!(
            out.contains(&format!("# Standard Un*x authentication.\n{expected}")),
            "{out}"
        );
        assert_eq!(blocks::remove_block(&out).unwrap(), DEBIAN_PAM);
    }

    #[test]
    fn amazon_linux_gets_the_hook_before_pam_sepermit_and_keeps_the_missing_final_newline() {
        let out = desired(AMAZON_LINUX_PAM, BIN, true).unwrap();
        assert!(out.starts_with(&format!("#%PAM-1.0\n# BEGIN keyward\n{LINE}# END keyward\nauth       required     pam_sepermit.so\n")), "{out}");
        assert!(out.ends_with("session    include      password-auth"));
        assert_eq!(blocks::remove_block(&out).unwrap(), AMAZON_LINUX_PAM);
    }

    #[test]
    fn desired_is_idempotent_and_turning_creation_off_removes_the_hook() {
        let once = desired(DEBIAN_PAM, BIN, true).unwrap();
        assert_eq!(desired(&once, BIN, true).unwrap(), once);
        assert_eq!(desired(&once, BIN, false).unwrap(), DEBIAN_PAM);
        assert_eq!(desired(DEBIAN_PAM, BIN, false).unwrap(), DEBIAN_PAM);
    }

    #[test]
    fn a_new_binary_path_replaces_the_old_line() {
        let old = desired(DEBIAN_PAM, "/opt/keyward", true).unwrap();
        let new = desired(&old, BIN, true).unwrap();
        assert_eq!(new, desired(DEBIAN_PAM, BIN, true).unwrap());
    }

    #[test]
    fn a_stack_without_auth_lines_is_refused() {
        let err = desired("account required pam_unix.so\n", BIN, true).unwrap_err();
        assert!(err.to_string().contains("/etc/pam.d/sshd"), "{err}");
    }

    #[test]
    fn auth_lines_are_recognised() {
        assert!(is_auth_line("auth       substack     password-auth"));
        assert!(is_auth_line("-auth optional pam_x.so"));
        assert!(is_auth_line("@include common-auth"));
        assert!(!is_auth_line("@include common-account"));
        assert!(!is_auth_line("# auth required pam_x.so"));
        assert!(!is_auth_line("account required pam_nologin.so"));
    }
}
