use super::*;

const CA_P256: &str =
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBHFPsm+AeCv8yiLmO4KZcZtjKqe1yFuLj1GQxKB7aa2Srp/GH90k3p8gxsCqBRA5M2XQwF43gsvdMW9gfILBGkE= ca";
const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJcokTlMWL3BSZ9qyDmfTZtPbn2mtC4BsSV1WdRHcR2U x";

fn ca() -> PublicKey {
    PublicKey::parse(CA_P256).unwrap()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[test]
fn issuer_url_must_be_https_except_on_loopback() {
    for good in [
        "https://issuer.example.com",
        "https://abc.lambda-url.eu-west-1.on.aws/",
        "http://127.0.0.1:4000",
        "http://[::1]:4000",
    ] {
        resolve(some(good), None, some(CA_P256), "F").unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for bad in [
        "http://issuer.example.com",
        "http://10.0.0.1:4000",
        "ftp://issuer.example.com",
        "https://user:pw@issuer.example.com",
        "https://issuer.example.com/?a=b",
    ] {
        let err = resolve(some(bad), None, some(CA_P256), "F").unwrap_err();
        assert!(err.to_string().contains("is not usable"), "{bad}: {err}");
    }
}

#[test]
fn settings_need_an_issuer_and_an_ecdsa_ca_key() {
    let err = resolve(None, None, some(CA_P256), "F").unwrap_err();
    assert!(err.to_string().contains("no issuer configured"), "{err}");
    let err = resolve(some("https://i.example"), None, None, "F").unwrap_err();
    assert!(
        err.to_string().contains("no CA public key configured"),
        "{err}"
    );
    let err = resolve(some("https://i.example"), None, some(ED25519), "F").unwrap_err();
    assert!(err.to_string().contains("ECDSA P-256 or P-384"), "{err}");
    let err = resolve(some("https://i.example"), None, some("nonsense"), "F").unwrap_err();
    assert!(err.to_string().contains("not a usable SSH key"), "{err}");
    let err = resolve(some("http://i.example"), None, some(CA_P256), "F").unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
}

#[test]
fn audience_defaults_to_the_issuer_url() {
    let settings = resolve(some("https://I.example:443/"), None, some(CA_P256), "F").unwrap();
    assert_eq!(settings.audience, "https://i.example");
    assert_eq!(settings.ca.blob(), ca().blob());
    let settings = resolve(
        some("https://i.example"),
        some("keyward-prod"),
        some(CA_P256),
        "F",
    )
    .unwrap();
    assert_eq!(settings.audience, "keyward-prod");
}

#[test]
fn settings_file_is_parsed_strictly() {
    let parsed = parse_settings(&format!(
        "issuer = \"https://i.example\"\nca_public_key = \"{CA_P256}\"\n"
    ))
    .unwrap();
    assert_eq!(parsed.issuer.as_deref(), Some("https://i.example"));
    assert_eq!(parsed.audience, None);
    assert!(parse_settings("isuer = \"https://i.example\"\n").is_err());
    assert!(parse_settings("issuer = 3\n").is_err());
    assert_eq!(parse_settings("").unwrap(), SettingsFile::default());
}

#[test]
fn flags_and_environment_win_over_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("laptop.toml");
    std::fs::write(
        &file,
        format!("issuer = \"https://file.example\"\nca_public_key = \"{CA_P256}\"\n"),
    )
    .unwrap();
    let from_file = read_settings_file(&file).unwrap();
    let settings = resolve(
        Some("https://flag.example".to_owned()).or(from_file.issuer),
        None,
        None.or(from_file.ca_public_key),
        "F",
    )
    .unwrap();
    assert_eq!(settings.issuer, "https://flag.example");
    // A settings file others may write decides nothing.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = read_settings_file(&file).unwrap_err();
    assert!(err.to_string().contains("chmod go-w"), "{err}");
}

#[test]
fn identity_names_either_half_of_the_key() {
    for given in ["/h/.ssh/id_ed25519", "/h/.ssh/id_ed25519.pub"] {
        let identity = Identity::find(Some(PathBuf::from(given))).unwrap();
        assert_eq!(identity.private, Path::new("/h/.ssh/id_ed25519"));
        assert_eq!(identity.public, Path::new("/h/.ssh/id_ed25519.pub"));
        assert_eq!(
            identity.cert_path(),
            Path::new("/h/.ssh/id_ed25519-cert.pub")
        );
    }
    let dotted = Identity::find(Some(PathBuf::from("/h/.ssh/work.key"))).unwrap();
    assert_eq!(dotted.private, Path::new("/h/.ssh/work.key"));
    assert_eq!(dotted.public, Path::new("/h/.ssh/work.key.pub"));
    assert_eq!(dotted.cert_path(), Path::new("/h/.ssh/work.key-cert.pub"));
}

#[test]
fn cert_authority_line_is_added_once() {
    let line = cert_authority_line(&ca()).unwrap();
    assert_eq!(
        line,
        format!(
            "@cert-authority * {}",
            CA_P256.trim_end_matches(" ca").to_owned()
        )
    );
    let first = with_cert_authority("host1 ssh-ed25519 AAAA", &ca())
        .unwrap()
        .unwrap();
    assert_eq!(first, format!("host1 ssh-ed25519 AAAA\n{line}\n"));
    assert_eq!(with_cert_authority(&first, &ca()).unwrap(), None);
    assert_eq!(
        with_cert_authority("", &ca()).unwrap().unwrap(),
        format!("{line}\n")
    );
    // A narrower pattern the user chose for the same CA counts as present.
    let narrow = format!("@cert-authority *.internal {CA_P256}\n");
    assert_eq!(with_cert_authority(&narrow, &ca()).unwrap(), None);
    // Another CA's line does not.
    let other = format!("@cert-authority * {ED25519}\n");
    assert!(with_cert_authority(&other, &ca()).unwrap().is_some());
}

#[test]
fn known_hosts_file_gets_the_line_once_and_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ssh").join("known_hosts");
    add_known_hosts_line(&path, &ca()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", cert_authority_line(&ca()).unwrap()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    add_known_hosts_line(&path, &ca()).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    std::fs::write(&path, "h ssh-ed25519 AAAA\n").unwrap();
    add_known_hosts_line(&path, &ca()).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let err = add_known_hosts_line(&link, &ca()).unwrap_err();
    assert!(err.to_string().contains("is a symlink"), "{err}");
}
