//! Shared harness for the binary-level tests: a real moto IAM server on a random loopback port,
//! seeding through aws-sdk-iam, real keys from ssh-keygen, and the one compiled `keyward`
//! binary run as a child process.
//!
//! Nothing is skipped: a missing moto_server or ssh-keygen fails the test with the fix.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_iam::types::StatusType;

pub const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// moto from `MOTO_SERVER`, else the repo's venv (made by scripts/test), else PATH.
fn moto_server_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("moto_server"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!("moto_server not found: run scripts/test (it installs moto[server] into .venv) or set MOTO_SERVER")
    })
}

pub struct Moto {
    child: Option<Child>,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with_env(&[])
    }

    /// moto enforcing IAM policies after the first `free_actions` requests (for seeding).
    pub fn start_enforcing_policies(free_actions: u32) -> Moto {
        Moto::start_with_env(&[("INITIAL_NO_AUTH_ACTION_COUNT", &free_actions.to_string())])
    }

    fn start_with_env(env: &[(&str, &str)]) -> Moto {
        // Port 0: moto binds a free port itself and says which. Picking a free port here and
        // handing it over races with every other test doing the same; the loser's readiness
        // check then reaches the winner's moto, which vanishes when that test ends.
        let mut child = Command::new(moto_server_path())
            .args(["-H", "127.0.0.1", "-p", "0"])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start moto_server");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut announced = false;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if !announced {
                    if let Some(port) = line
                        .split("http://127.0.0.1:")
                        .nth(1)
                        .and_then(|rest| rest.trim().parse::<u16>().ok())
                    {
                        announced = true;
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("moto_server did not announce its port within 30s");
        let moto = Moto {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Simulates an IAM outage: the endpoint refuses connections from now on.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn iam(&self) -> Iam {
        Iam::new(&self.endpoint(), "testing", "testing")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// IAM seeding through the same SDK keyward uses.
pub struct Iam {
    client: aws_sdk_iam::Client,
    rt: tokio::runtime::Runtime,
}

impl Iam {
    pub fn new(endpoint: &str, key: &str, secret: &str) -> Iam {
        let conf = aws_sdk_iam::Config::builder()
            .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
            .region(aws_sdk_iam::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_iam::config::Credentials::new(
                key, secret, None, None, "test",
            ))
            .build();
        Iam {
            client: aws_sdk_iam::Client::from_conf(conf),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// Creates a user; returns its immutable UserId.
    pub fn user(&self, name: &str) -> String {
        let out = self
            .rt
            .block_on(self.client.create_user().user_name(name).send())
            .unwrap();
        out.user.unwrap().user_id
    }

    pub fn delete_user(&self, name: &str) {
        let keys = self
            .rt
            .block_on(self.client.list_ssh_public_keys().user_name(name).send())
            .unwrap();
        for k in keys.ssh_public_keys.unwrap_or_default() {
            self.rt
                .block_on(
                    self.client
                        .delete_ssh_public_key()
                        .user_name(name)
                        .ssh_public_key_id(k.ssh_public_key_id)
                        .send(),
                )
                .unwrap();
        }
        self.rt
            .block_on(self.client.delete_user().user_name(name).send())
            .unwrap();
    }

    /// Uploads a key body as-is (no validation: IAM's or the emulator's is not trusted);
    /// returns the SSHPublicKeyId.
    pub fn key(&self, user: &str, body: &str, active: bool) -> String {
        let out = self
            .rt
            .block_on(
                self.client
                    .upload_ssh_public_key()
                    .user_name(user)
                    .ssh_public_key_body(body)
                    .send(),
            )
            .unwrap();
        let id = out.ssh_public_key.unwrap().ssh_public_key_id;
        if !active {
            self.set_status(user, &id, false);
        }
        id
    }

    pub fn set_status(&self, user: &str, id: &str, active: bool) {
        let status = if active {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        self.rt
            .block_on(
                self.client
                    .update_ssh_public_key()
                    .user_name(user)
                    .ssh_public_key_id(id)
                    .status(status)
                    .send(),
            )
            .unwrap();
    }

    /// (id, Active?) of every key of `user`.
    pub fn keys(&self, user: &str) -> Vec<(String, bool)> {
        let out = self
            .rt
            .block_on(self.client.list_ssh_public_keys().user_name(user).send())
            .unwrap();
        out.ssh_public_keys
            .unwrap_or_default()
            .into_iter()
            .map(|k| (k.ssh_public_key_id, k.status == StatusType::Active))
            .collect()
    }

    pub fn group(&self, name: &str, members: &[&str]) {
        self.rt
            .block_on(self.client.create_group().group_name(name).send())
            .unwrap();
        for m in members {
            self.rt
                .block_on(
                    self.client
                        .add_user_to_group()
                        .group_name(name)
                        .user_name(*m)
                        .send(),
                )
                .unwrap();
        }
    }

    pub fn allow(&self, user: &str, actions: &[&str]) {
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        });
        self.rt
            .block_on(
                self.client
                    .put_user_policy()
                    .user_name(user)
                    .policy_name("keyward-test")
                    .policy_document(policy.to_string())
                    .send(),
            )
            .unwrap();
    }

    /// Creates an access key for `user`: credentials that belong to that IAM user.
    pub fn access_key(&self, user: &str) -> (String, String) {
        let out = self
            .rt
            .block_on(self.client.create_access_key().user_name(user).send())
            .unwrap();
        let k = out.access_key.unwrap();
        (k.access_key_id, k.secret_access_key)
    }
}

/// A real key pair made by ssh-keygen.
pub struct KeyPair {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl KeyPair {
    pub fn generate(dir: &Path, name: &str, kind: &str, comment: &str) -> KeyPair {
        let private = dir.join(name);
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", comment, "-f"])
            .arg(&private)
            .status()
            .expect("ssh-keygen not found: install openssh-client (scripts/test does)");
        assert!(status.success());
        KeyPair {
            public: private.with_extension("pub"),
            private,
        }
    }

    /// The .pub file's line: "TYPE BASE64 COMMENT".
    pub fn line(&self) -> String {
        std::fs::read_to_string(&self.public)
            .unwrap()
            .trim()
            .to_owned()
    }

    /// "TYPE BASE64", what sshd compares.
    pub fn type_and_blob(&self) -> String {
        self.line().split(' ').take(2).collect::<Vec<_>>().join(" ")
    }

    pub fn blob(&self) -> String {
        self.line().split(' ').nth(1).unwrap().to_owned()
    }

    /// The SHA256 fingerprint as `ssh-keygen -lf` prints it.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&self.public)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_owned()
    }
}

/// A host: a config file and a cache directory in a private temp dir.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub endpoint: String,
    /// Run keyward as this uid/gid (see `run_by_service_user`); `None`: as the test runs.
    pub run_as: Option<u32>,
}

impl Host {
    pub fn new(moto: &Moto, config: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            dir,
            endpoint: moto.endpoint(),
            run_as: None,
        };
        host.write_config(config);
        host
    }

    /// A host whose keyward talks to `endpoint` (a FaultProxy's) instead of moto's.
    pub fn via(endpoint: &str, config: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let host = Host {
            dir,
            endpoint: endpoint.to_owned(),
            run_as: None,
        };
        host.write_config(config);
        host
    }

    /// Runs keyward as sshd runs `authorized-keys`: as an unprivileged service user (here
    /// `nobody`, 65534), who owns the host's files. A run as root only reads the key cache
    /// (it must never leave root-owned cache files the service user cannot replace), so
    /// tests of the warm path and of stale keys need this when the tests run as root.
    pub fn run_by_service_user(mut self) -> Host {
        const NOBODY: u32 = 65534;
        if nix::unistd::geteuid().is_root() {
            let status = Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(self.dir.path())
                .status()
                .expect("chown not found");
            assert!(
                status.success(),
                "chown -R nobody {}",
                self.dir.path().display()
            );
            self.run_as = Some(NOBODY);
        }
        self
    }

    pub fn write_config(&self, extra: &str) {
        let base = format!(
            "cache_dir = \"{0}/cache\"\nstate_dir = \"{0}/state\"\n",
            self.dir.path().display()
        );
        std::fs::write(self.config_path(), format!("{base}{extra}\n")).unwrap();
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("keyward.toml")
    }

    pub fn keyward(&self, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.arg("--config")
            .arg(self.config_path())
            .arg("--stats")
            .args(args);
        Run::of(cmd)
    }

    /// The `keyward` command this host runs (endpoint, credentials, user), without arguments,
    /// for tests that change its environment first.
    pub fn command(&self) -> Command {
        let mut cmd = keyward_cmd(&self.endpoint);
        if let Some(id) = self.run_as {
            use std::os::unix::process::CommandExt;
            cmd.uid(id).gid(id);
        }
        cmd
    }
}

/// An AWS config file in `dir` that points every client at `moto`, with its test credentials.
pub fn moto_aws_config(moto: &Moto, dir: &Path) -> PathBuf {
    moto_aws_config_as(moto, dir, ("testing", "testing"))
}

/// Like [`moto_aws_config`], with the access key `(id, secret)` (e.g. an IAM user's).
pub fn moto_aws_config_as(moto: &Moto, dir: &Path, (id, secret): (&str, &str)) -> PathBuf {
    let path = dir.join("aws-config");
    std::fs::write(
        &path,
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {}\naws_access_key_id = {id}\n\
             aws_secret_access_key = {secret}\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    path
}

/// Options for keyward's own AWS clients (SDK or Query API) that reach `moto` through
/// [`moto_aws_config`] in `dir`.
pub fn moto_client_options(moto: &Moto, dir: &Path) -> keyward::iam::ClientOptions {
    client_options(moto_aws_config(moto, dir))
}

/// Options for keyward's own AWS clients with this AWS config file and a 20 s timeout.
pub fn client_options(aws_config: PathBuf) -> keyward::iam::ClientOptions {
    keyward::iam::ClientOptions {
        timeout: Some(Duration::from_secs(20)),
        role_arn: None,
        aws_config_file: Some(aws_config),
    }
}

/// A single-threaded runtime for the SDK calls a test makes itself.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `ssh-keygen -L` (times in UTC) of a certificate line, written to `dir`; the test fails when
/// OpenSSH cannot read it (or, reading it, finds its signature bad).
pub fn ssh_keygen_list(dir: &Path, certificate: &str) -> String {
    let path = dir.join("listed-cert.pub");
    std::fs::write(&path, format!("{certificate}\n")).unwrap();
    ssh_keygen_list_file(&path)
}

/// `ssh-keygen -L` of the certificate file at `path` (times in UTC); fails the test when
/// OpenSSH cannot read it.
pub fn ssh_keygen_list_file(path: &Path) -> String {
    let mut list = Command::new("ssh-keygen");
    list.env("TZ", "UTC").arg("-Lf").arg(path);
    Run::of(list).ok().stdout
}

/// A KMS client for moto at `endpoint`, built without touching the process environment.
pub fn kms_client(endpoint: &str) -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kms::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// A `keyward` command pointed at moto with static test credentials, isolated from the
/// caller's AWS config and from the instance metadata service.
pub fn keyward_cmd(endpoint: &str) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("KEYWARD_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .stdin(Stdio::null());
    cmd
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn of(mut cmd: Command) -> Run {
        let started = Instant::now();
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().unwrap();
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8(stdout).unwrap(),
            stderr: String::from_utf8(stderr).unwrap(),
            elapsed: started.elapsed(),
        }
    }

    /// The IAM call count printed by `--stats`.
    pub fn iam_calls(&self) -> usize {
        self.stderr
            .lines()
            .find_map(|l| l.split("iam_calls=").nth(1))
            .unwrap_or_else(|| panic!("no iam_calls in stderr: {}", self.stderr))
            .trim()
            .parse()
            .unwrap()
    }

    /// stdout lines, reduced to "TYPE BASE64".
    pub fn keys(&self) -> Vec<String> {
        self.stdout
            .lines()
            .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .collect()
    }

    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "exit {}; stdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// A fault-injecting HTTP proxy (tests/faultproxy.py) in front of a moto: point keyward at
/// `endpoint()` instead of the moto's and IAM answers come through it, unchanged unless a rule
/// set with `set` matches.
///
/// ```ignore
/// let proxy = FaultProxy::start(&moto);
/// let host = Host::via(&proxy.endpoint(), "...");
/// proxy.set(&[Fault::on("ListGroupsForUser").name("alice").throttle().times(2)]);
/// // ... run keyward ...
/// proxy.clear();
/// assert!(proxy.requests().contains(&("ListGroupsForUser".into(), "alice".into(), "throttle".into())));
/// ```
///
/// `requests()` lists every request seen so far as (Action, UserName or GroupName or "-",
/// fault or "-" when forwarded). Rules are written atomically and re-read by the proxy on each
/// request; `times` counts restart whenever the rules change. The proxy is killed on Drop.
pub struct FaultProxy {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

/// One rule: `Fault::on(ACTION)[.name(USER_OR_GROUP)].KIND()[.times(N)]`.
#[derive(Debug, Clone)]
pub struct Fault {
    pub action: String,
    pub name: Option<String>,
    pub kind: FaultKind,
    pub times: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 400 with IAM's Throttling error.
    Throttle,
    /// HTTP 500 with IAM's ServiceFailure error.
    ServerError,
    /// No answer until the client gives up (or 60 s).
    Hang,
    /// The upstream's 200 answer with every `<ELEMENT>` removed.
    Drop(String),
    /// The upstream's 200 answer saying IsTruncated=true, without a Marker.
    Truncate,
    /// The upstream's 200 answer cut in the middle.
    BadXml,
}

impl FaultKind {
    fn as_rule(&self) -> String {
        match self {
            FaultKind::Throttle => "throttle".into(),
            FaultKind::ServerError => "500".into(),
            FaultKind::Hang => "hang".into(),
            FaultKind::Drop(element) => format!("drop:{element}"),
            FaultKind::Truncate => "truncate".into(),
            FaultKind::BadXml => "badxml".into(),
        }
    }
}

impl Fault {
    /// A rule for IAM `action` (e.g. "ListGroups"); throttles until another kind is chosen.
    pub fn on(action: &str) -> Fault {
        Fault {
            action: action.into(),
            name: None,
            kind: FaultKind::Throttle,
            times: None,
        }
    }
    /// Only requests whose UserName (else GroupName) is `name`.
    pub fn name(mut self, name: &str) -> Fault {
        self.name = Some(name.into());
        self
    }
    /// Only the first `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }
    pub fn kind(mut self, kind: FaultKind) -> Fault {
        self.kind = kind;
        self
    }
    pub fn throttle(self) -> Fault {
        self.kind(FaultKind::Throttle)
    }
    pub fn server_error(self) -> Fault {
        self.kind(FaultKind::ServerError)
    }
    pub fn hang(self) -> Fault {
        self.kind(FaultKind::Hang)
    }
    pub fn drop(self, element: &str) -> Fault {
        self.kind(FaultKind::Drop(element.into()))
    }
    pub fn truncate(self) -> Fault {
        self.kind(FaultKind::Truncate)
    }
    pub fn bad_xml(self) -> Fault {
        self.kind(FaultKind::BadXml)
    }

    fn to_json(&self) -> serde_json::Value {
        let mut rule = serde_json::json!({"action": self.action, "fault": self.kind.as_rule()});
        if let Some(name) = &self.name {
            rule["name"] = name.as_str().into();
        }
        if let Some(n) = self.times {
            rule["times"] = n.into();
        }
        rule
    }
}

/// `NAME` from the repo's venv (made by scripts/test), else from the venv MOTO_SERVER is in.
pub fn venv_tool(name: &str) -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.exists() {
        return Some(venv);
    }
    let moto = std::env::var_os("MOTO_SERVER")?;
    Some(Path::new(&moto).with_file_name(name)).filter(|beside| beside.exists())
}

/// Runs `script` with boto3 (the venv's python) against the moto at `endpoint`, with
/// `import sys, json, boto3` and an `ec2` client in scope and `args` as `sys.argv[1:]`; its
/// stdout. A failing script fails the test with its stderr.
pub fn boto3(endpoint: &str, script: &str, args: &[&str]) -> String {
    let python =
        venv_tool("python").expect("no venv python with boto3: run scripts/test (it makes .venv)");
    let out = Command::new(&python)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .arg("-c")
        .arg(format!(
            "import sys, json, boto3\nec2 = boto3.client('ec2')\n{script}"
        ))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/test)", python.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A Python 3 for tests/faultproxy.py (stdlib only): the repo's venv (made by scripts/test),
/// the one next to MOTO_SERVER, else python3 on PATH.
fn python_path() -> PathBuf {
    if let Some(python) = venv_tool("python") {
        return python;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("python3"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "python3 not found (tests/faultproxy.py needs it): run scripts/test, which makes .venv"
        )
    })
}

impl FaultProxy {
    pub fn start(moto: &Moto) -> FaultProxy {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultproxy.py");
        let mut child = Command::new(python_path())
            .arg(&script)
            .args(["--upstream", &moto.endpoint(), "--port", "0", "--rules"])
            .arg(dir.path().join("rules.json"))
            .arg("--log")
            .arg(dir.path().join("requests.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tests/faultproxy.py: {e} (run scripts/test)"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                match line.strip_prefix("listening on http://127.0.0.1:") {
                    Some(port) => {
                        let _ = tx.send(port.trim().parse::<u16>().unwrap_or(0));
                    }
                    // A bad rules file or a crash: say it in the test's output.
                    None => eprintln!("faultproxy: {line}"),
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("tests/faultproxy.py did not announce its port within 30s");
        assert_ne!(port, 0, "tests/faultproxy.py announced a bad port");
        FaultProxy { child, port, dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Replaces the rules; the next request sees them.
    pub fn set(&self, rules: &[Fault]) {
        let json = serde_json::Value::Array(rules.iter().map(Fault::to_json).collect());
        let tmp = self.dir.path().join(".rules.json.tmp");
        std::fs::write(&tmp, json.to_string()).unwrap();
        std::fs::rename(&tmp, self.dir.path().join("rules.json")).unwrap();
    }

    /// No faults: every request is forwarded unchanged.
    pub fn clear(&self) {
        self.set(&[]);
    }

    /// (action, name, fault) of every request so far, in order; "-" for none.
    pub fn requests(&self) -> Vec<(String, String, String)> {
        let log = std::fs::read_to_string(self.dir.path().join("requests.log")).unwrap_or_default();
        log.lines()
            .map(|l| {
                let mut f = l.splitn(3, ' ').map(str::to_owned);
                let mut next = || f.next().unwrap_or_default();
                (next(), next(), next())
            })
            .collect()
    }

    /// How many requests for `action` came through, faulted or not.
    pub fn count(&self, action: &str) -> usize {
        self.requests().iter().filter(|r| r.0 == action).count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `keyward ca serve` child process on 127.0.0.1:0, killed when dropped.
pub struct Issuer {
    pub child: Child,
    /// The URL it printed once listening.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Issuer {
    /// `ca serve --listen 127.0.0.1:0` with the AWS access key `credentials`, against `moto`,
    /// with `config` plus an `[issuer]` table (`audience`, moto as STS, `issuer_extra` lines)
    /// written into `dir`; waits for the URL it prints.
    pub fn spawn(
        moto: &Moto,
        credentials: (&str, &str),
        audience: &str,
        config: &str,
        issuer_extra: &str,
        dir: tempfile::TempDir,
    ) -> Issuer {
        use std::io::{BufRead as _, BufReader};
        let path = dir.path().join("keyward.toml");
        std::fs::write(
            &path,
            format!(
                "{config}\n[issuer]\naudience = \"{audience}\"\nsts_endpoint = \"{}\"\n{issuer_extra}\n",
                moto.endpoint()
            ),
        )
        .unwrap();
        let mut child = keyward_cmd(&moto.endpoint())
            .env("AWS_ACCESS_KEY_ID", credentials.0)
            .env("AWS_SECRET_ACCESS_KEY", credentials.1)
            .arg("--config")
            .arg(&path)
            .args(["ca", "serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("ca serve printed no URL within 60s");
        let url = line.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:"),
            "{url:?}"
        );
        Issuer {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
