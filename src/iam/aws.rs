//! The production directory: aws-sdk-iam behind the `Directory` trait.
//!
//! Region, credentials and endpoint come from aws-config's standard chain (instance profile on
//! EC2, `AWS_ENDPOINT_URL` for an emulator). Every error is classified into `IamError` here and
//! nowhere else, and printed with its whole cause chain.
//!
//! Every answer is checked for the elements keyward reads before the SDK's defaults can stand in
//! for them (`answer::missing_required`; an incomplete answer is `Unreachable`). The check is
//! one interceptor on the client (`CompleteAnswers`, `read_after_deserialization`), not code
//! after each call: the SDK's output no longer tells "absent" from "empty" (a missing `<Users>`
//! and `<Users/>` both become `vec![]`), so only the raw body can; the interceptor sees that body
//! and the operation's name (the orchestrator's `Metadata`) for every operation of the client,
//! including ones added later, so no call can forget it. Per-call `customize()` would have to be
//! repeated at each call site, and raw HTTP would give up the SDK's signing, retries and error
//! parsing. The interceptor runs after the SDK buffered the body (it is not in memory before
//! deserialization) and its error replaces the output, which the orchestrator does not retry.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_sdk_iam::config::http::HttpResponse;
use aws_sdk_iam::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_iam::types::{EncodingType, StatusType};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::answer::{self, Malformed};
use super::{Directory, IamError, IamUser, Identity, InstanceProfile, KeyMeta};

#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Bound on each IAM operation, retries included.
    pub timeout: Option<Duration>,
    /// Assume this role (cross-account IAM) before calling IAM.
    pub role_arn: Option<String>,
    /// Read region, credentials and endpoint from this shared config file only.
    pub aws_config_file: Option<std::path::PathBuf>,
}

/// The `aws_config_file` of the config fails the trust check: it holds credentials and
/// decides which endpoint is asked who may log in, so it is not handed to the SDK.
#[derive(Debug, thiserror::Error)]
#[error("aws_config_file is not trusted: {0}")]
pub struct UntrustedAwsConfig(pub crate::files::TrustError);

impl ClientOptions {
    /// The options of host commands (authorized-keys, pam-create-account, sync, doctor), run by
    /// sshd, PAM or the timer with a bare environment: everything comes from the config.
    pub fn for_host(config: &crate::config::Config) -> Result<ClientOptions, UntrustedAwsConfig> {
        if let Some(file) = &config.aws_config_file {
            crate::files::check_trusted(file).map_err(UntrustedAwsConfig)?;
        }
        Ok(ClientOptions {
            timeout: Some(config.lookup_timeout),
            role_arn: config.iam_role_arn.clone(),
            aws_config_file: config.aws_config_file.clone(),
        })
    }
}

/// IAM operations started by this process, for `--stats` and tests.
static CALLS: AtomicUsize = AtomicUsize::new(0);

pub fn total_calls() -> usize {
    CALLS.load(Ordering::Relaxed)
}

#[derive(Clone)]
pub struct AwsIam {
    client: aws_sdk_iam::Client,
}

impl AwsIam {
    pub async fn new(options: &ClientOptions) -> AwsIam {
        AwsIam::from_config(&sdk_config(options).await)
    }

    /// A client from an SDK config already loaded (the issuer loads one for KMS, IAM and EC2).
    pub fn from_config(shared: &aws_config::SdkConfig) -> AwsIam {
        let mut config = aws_sdk_iam::config::Builder::from(shared);
        if shared.region().is_none() {
            // IAM is a global service: any region reaches it, so a laptop without a configured
            // region still works.
            config = config.region(aws_sdk_iam::config::Region::new("us-east-1"));
        }
        config = config.interceptor(CompleteAnswers);
        AwsIam {
            client: aws_sdk_iam::Client::from_conf(config.build()),
        }
    }

    /// The region `new` would use and the credentials it would sign with: the name of the
    /// chain's provider that gave them ("Environment", "ProfileFile", "IMDSv2"...), then, with
    /// `role_arn`, the role assumed with them (`keyward doctor`). Not an IAM call, though the
    /// chain may ask IMDS and the role STS.
    pub async fn resolve_credentials(
        options: &ClientOptions,
    ) -> (Option<String>, Result<String, IamError>) {
        use aws_sdk_iam::config::ProvideCredentials;
        let shared = shared_config(options).await;
        let region = shared.region().map(|r| r.to_string());
        let Some(chain) = shared.credentials_provider() else {
            return (
                region,
                Err(IamError::NoCredentials(
                    "no credentials provider is configured".into(),
                )),
            );
        };
        let base = match chain.provide_credentials().await {
            Ok(c) => provider_name(&c),
            Err(e) => return (region, Err(IamError::NoCredentials(cause_chain(&e)))),
        };
        let Some(arn) = &options.role_arn else {
            return (region, Ok(base));
        };
        let assumed = role_provider(arn, &shared)
            .await
            .provide_credentials()
            .await
            .map(|_| base)
            .map_err(|e| IamError::NoCredentials(format!("assuming {arn}: {}", cause_chain(&e))));
        (region, assumed)
    }
    fn count(&self) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }

    /// The IAM user the credentials belong to.
    pub async fn caller_user_name(&self) -> Result<String, IamError> {
        self.count();
        let out = self.client.get_user().send().await.map_err(|e| {
            let err = classify("iam:GetUser", e);
            match err {
                // Role and SSO credentials have no IAM user of their own.
                IamError::Other(m) if m.contains("userName") || m.contains("UserName") => {
                    IamError::Other(format!(
                        "these credentials do not belong to an IAM user (a role or SSO session?): pass --user NAME ({m})"
                    ))
                }
                other => other,
            }
        })?;
        out.user
            .map(|u| u.user_name)
            .ok_or_else(|| IamError::Other("GetUser returned no user".into()))
    }

    pub async fn upload_key(&self, user: &str, body: &str) -> Result<KeyMeta, IamError> {
        self.count();
        let out = self
            .client
            .upload_ssh_public_key()
            .user_name(user)
            .ssh_public_key_body(body)
            .send()
            .await
            .map_err(|e| classify("iam:UploadSSHPublicKey", e))?;
        let key = out
            .ssh_public_key
            .ok_or_else(|| IamError::Other("UploadSSHPublicKey returned no key".into()))?;
        Ok(KeyMeta {
            id: key.ssh_public_key_id,
            active: key.status == StatusType::Active,
            uploaded: key
                .upload_date
                .map(|d| whole_seconds(&d))
                .unwrap_or_default(),
        })
    }

    pub async fn set_key_active(&self, user: &str, id: &str, active: bool) -> Result<(), IamError> {
        self.count();
        let status = if active {
            StatusType::Active
        } else {
            StatusType::Inactive
        };
        self.client
            .update_ssh_public_key()
            .user_name(user)
            .ssh_public_key_id(id)
            .status(status)
            .send()
            .await
            .map_err(|e| classify("iam:UpdateSSHPublicKey", e))?;
        Ok(())
    }

    pub async fn delete_key(&self, user: &str, id: &str) -> Result<(), IamError> {
        self.count();
        self.client
            .delete_ssh_public_key()
            .user_name(user)
            .ssh_public_key_id(id)
            .send()
            .await
            .map_err(|e| classify("iam:DeleteSSHPublicKey", e))?;
        Ok(())
    }

    /// Every IAM group as (GroupName, GroupId), all pages (ListGroups).
    pub async fn list_groups(&self) -> Result<Vec<(String, String)>, IamError> {
        self.all_pages("ListGroups", |marker| async move {
            let out = self
                .client
                .list_groups()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iam:ListGroups", e))?;
            let groups = out.groups.into_iter().map(|g| (g.group_name, g.group_id));
            Ok((groups.collect(), out.is_truncated, out.marker))
        })
        .await
    }

    /// One group's GroupId and its members, all pages (GetGroup).
    pub async fn get_group(&self, group: &str) -> Result<(String, Vec<IamUser>), IamError> {
        let mut group_id = String::new();
        let mut members = Vec::new();
        let mut marker = None;
        loop {
            self.count();
            let out = self
                .client
                .get_group()
                .group_name(group)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iam:GetGroup", e))?;
            if let Some(g) = out.group {
                group_id = g.group_id;
            }
            members.extend(out.users.into_iter().map(listed_user));
            marker = next_page("GetGroup", out.is_truncated, out.marker)?;
            if marker.is_none() {
                if group_id.is_empty() {
                    return Err(IamError::Unreachable(format!(
                        "GetGroup {group} returned no GroupId"
                    )));
                }
                return Ok((group_id, members));
            }
        }
    }

    /// Every IAM user, all pages (ListUsers).
    pub async fn list_users(&self) -> Result<Vec<IamUser>, IamError> {
        self.all_pages("ListUsers", |marker| async move {
            let out = self
                .client
                .list_users()
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iam:ListUsers", e))?;
            let users = out.users.into_iter().map(listed_user);
            Ok((users.collect(), out.is_truncated, out.marker))
        })
        .await
    }

    /// Runs one paginated IAM list to the end, counting each page as a call. A page that says
    /// "truncated" without a marker is a failed read, never a short list: callers act on
    /// absence (sync locks people), so a partial list must not look complete.
    async fn all_pages<T, F, Fut>(&self, operation: &str, mut page: F) -> Result<Vec<T>, IamError>
    where
        F: FnMut(Option<String>) -> Fut,
        Fut: std::future::Future<Output = Result<(Vec<T>, bool, Option<String>), IamError>>,
    {
        let mut items = Vec::new();
        let mut marker = None;
        loop {
            self.count();
            let (page_items, truncated, next) = page(marker).await?;
            items.extend(page_items);
            marker = next_page(operation, truncated, next)?;
            if marker.is_none() {
                return Ok(items);
            }
        }
    }

    /// The first IAM user's name (ListUsers, one item): a cheap probe of the permission.
    pub async fn first_user(&self) -> Result<Option<String>, IamError> {
        self.count();
        let out = self
            .client
            .list_users()
            .max_items(1)
            .send()
            .await
            .map_err(|e| classify("iam:ListUsers", e))?;
        Ok(out.users.into_iter().next().map(|u| u.user_name))
    }

    /// The first IAM group's name (ListGroups, one item), and IAM's HTTP `Date` with the local
    /// time its answer arrived, whatever the answer was (`keyward doctor`'s clock check).
    pub async fn first_group(&self) -> (Result<Option<String>, IamError>, Option<ServerDate>) {
        self.count();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(None));
        let result = self
            .client
            .list_groups()
            .max_items(1)
            .customize()
            .interceptor(DateRecorder(seen.clone()))
            .send()
            .await
            .map(|out| out.groups.into_iter().next().map(|g| g.group_name))
            .map_err(|e| classify("iam:ListGroups", e));
        let date = seen.lock().ok().and_then(|mut d| d.take());
        (result, date)
    }

    async fn get_key(&self, user: &str, id: &str) -> Result<String, IamError> {
        self.count();
        let out = self
            .client
            .get_ssh_public_key()
            .user_name(user)
            .ssh_public_key_id(id)
            .encoding(EncodingType::Ssh)
            .send()
            .await
            .map_err(|e| classify("iam:GetSSHPublicKey", e))?;
        out.ssh_public_key
            .map(|k| k.ssh_public_key_body)
            .ok_or_else(|| IamError::Other("GetSSHPublicKey returned no key".into()))
    }
}

/// Region, credentials and endpoint from the standard chain, which reads aws_config_file
/// instead of the HOME files when it is set.
async fn shared_config(options: &ClientOptions) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(file) = &options.aws_config_file {
        // The file serves as both config and credentials file, and nothing from HOME.
        let files = EnvConfigFiles::builder()
            .include_default_config_file(false)
            .include_default_credentials_file(false)
            .with_file(EnvConfigFileKind::Config, file)
            .with_file(EnvConfigFileKind::Credentials, file)
            .build();
        loader = loader.profile_files(files);
    }
    if let Some(timeout) = options.timeout {
        loader = loader.timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(timeout)
                .connect_timeout(timeout.min(Duration::from_secs(2)))
                .build(),
        );
    }
    loader.load().await
}

/// The SDK config every keyward AWS client is built from (IAM here, KMS in `ca`): region,
/// endpoint, retries and timeouts from [`shared_config`], and with `role_arn` the credentials
/// of that role, assumed with the chain's.
pub(crate) async fn sdk_config(options: &ClientOptions) -> aws_config::SdkConfig {
    let shared = shared_config(options).await;
    match &options.role_arn {
        Some(arn) => {
            let role = role_provider(arn, &shared).await;
            shared
                .into_builder()
                .credentials_provider(aws_sdk_iam::config::SharedCredentialsProvider::new(role))
                .build()
        }
        None => shared,
    }
}

/// Credentials of `arn`, assumed with the chain's.
async fn role_provider(
    arn: &str,
    shared: &aws_config::SdkConfig,
) -> aws_config::sts::AssumeRoleProvider {
    aws_config::sts::AssumeRoleProvider::builder(arn)
        .session_name("keyward")
        .configure(shared)
        .build()
        .await
}

impl Directory for AwsIam {
    async fn list_keys(&self, user: &str) -> Result<Vec<KeyMeta>, IamError> {
        self.all_pages("ListSSHPublicKeys", |marker| async move {
            let out = self
                .client
                .list_ssh_public_keys()
                .user_name(user)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iam:ListSSHPublicKeys", e))?;
            let keys = out
                .ssh_public_keys
                .unwrap_or_default()
                .into_iter()
                .map(|k| KeyMeta {
                    id: k.ssh_public_key_id,
                    active: k.status == StatusType::Active,
                    uploaded: whole_seconds(&k.upload_date),
                });
            Ok((keys.collect(), out.is_truncated, out.marker))
        })
        .await
    }

    async fn get_keys(&self, user: &str, ids: &[String]) -> Vec<Result<String, IamError>> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, id) in ids.iter().enumerate() {
            let (me, user, id) = (self.clone(), user.to_owned(), id.clone());
            tasks.spawn(async move { (i, me.get_key(&user, &id).await) });
        }
        let mut results: Vec<Result<String, IamError>> = ids
            .iter()
            .map(|_| Err(IamError::Other("key fetch did not finish".into())))
            .collect();
        while let Some(joined) = tasks.join_next().await {
            if let Ok((i, result)) = joined {
                if let Some(slot) = results.get_mut(i) {
                    *slot = result;
                }
            }
        }
        results
    }

    async fn groups_for_user(&self, user: &str) -> Result<Vec<String>, IamError> {
        self.all_pages("ListGroupsForUser", |marker| async move {
            let out = self
                .client
                .list_groups_for_user()
                .user_name(user)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| classify("iam:ListGroupsForUser", e))?;
            let groups = out.groups.into_iter().map(|g| g.group_name);
            Ok((groups.collect(), out.is_truncated, out.marker))
        })
        .await
    }

    async fn identity(&self, user: &str) -> Result<Identity, IamError> {
        self.count();
        let out = self
            .client
            .get_user()
            .user_name(user)
            .send()
            .await
            .map_err(|e| classify("iam:GetUser", e))?;
        out.user
            .map(|u| Identity {
                user_name: u.user_name,
                user_id: u.user_id,
            })
            .ok_or_else(|| IamError::Unreachable("GetUser returned no user".into()))
    }

    fn calls(&self) -> usize {
        total_calls()
    }

    async fn instance_profile(&self, name: &str) -> Result<InstanceProfile, IamError> {
        self.count();
        let out = self
            .client
            .get_instance_profile()
            .instance_profile_name(name)
            .send()
            .await
            .map_err(|e| classify("iam:GetInstanceProfile", e))?;
        let profile = out.instance_profile.ok_or_else(|| {
            IamError::Unreachable("GetInstanceProfile returned no instance profile".into())
        })?;
        // The answer check covers the profile's own fields, not each role's: a role the SDK
        // read without a name would be the role "", so it makes the answer malformed here.
        if profile.roles.iter().any(|r| r.role_name.is_empty()) {
            return Err(IamError::Unreachable(
                "GetInstanceProfile returned a role without a RoleName".into(),
            ));
        }
        Ok(InstanceProfile {
            arn: profile.arn,
            roles: profile.roles.into_iter().map(|r| r.role_name).collect(),
        })
    }
}

/// IAM's HTTP `Date` header and the local clock when the answer arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDate {
    pub header: String,
    pub received: std::time::SystemTime,
}

/// Records the `Date` header of the last response an operation received.
#[derive(Debug)]
struct DateRecorder(std::sync::Arc<std::sync::Mutex<Option<ServerDate>>>);

impl aws_sdk_iam::config::Intercept for DateRecorder {
    fn name(&self) -> &'static str {
        "keyward::DateRecorder"
    }

    fn read_after_transmit(
        &self,
        context: &aws_sdk_iam::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_iam::config::RuntimeComponents,
        _cfg: &mut aws_sdk_iam::config::ConfigBag,
    ) -> Result<(), aws_sdk_iam::error::BoxError> {
        let received = std::time::SystemTime::now();
        if let Some(header) = context.response().headers().get("date") {
            if let Ok(mut slot) = self.0.lock() {
                *slot = Some(ServerDate {
                    header: header.to_owned(),
                    received,
                });
            }
        }
        Ok(())
    }
}

/// Refuses a successful answer that lacks an element keyward reads (see the module doc): the
/// operation then fails with `Malformed`, which `classify` makes an outage.
#[derive(Debug)]
struct CompleteAnswers;

impl aws_sdk_iam::config::Intercept for CompleteAnswers {
    fn name(&self) -> &'static str {
        "keyward::CompleteAnswers"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_iam::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &aws_sdk_iam::config::RuntimeComponents,
        cfg: &mut aws_sdk_iam::config::ConfigBag,
    ) -> Result<(), aws_sdk_iam::error::BoxError> {
        if context.output_or_error().is_err() {
            return Ok(());
        }
        let Some(operation) = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map(|m| m.name().to_owned())
        else {
            return Err(Box::new(Malformed {
                operation: "an IAM operation".into(),
                problem: "no operation name to check the answer against".into(),
            }));
        };
        match context.response().body().bytes() {
            Some(body) => match answer::missing_required(&operation, body) {
                Some(malformed) => Err(Box::new(malformed)),
                None => Ok(()),
            },
            None if answer::is_checked(&operation) => Err(Box::new(Malformed {
                operation,
                problem: "a body that could not be read back to check it".into(),
            })),
            None => Ok(()),
        }
    }
}

/// The `Malformed` verdict somewhere in an error's source chain.
fn malformed_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Malformed> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(m) = e.downcast_ref::<Malformed>() {
            return Some(m);
        }
        next = e.source();
    }
    None
}

/// Which provider of the chain gave credentials ("Environment", "ProfileFile", "IMDSv2",
/// "AssumeRoleProvider"...). `Credentials` has no getter for it; its Debug output names it and
/// redacts the secret.
fn provider_name(credentials: &aws_sdk_iam::config::Credentials) -> String {
    let debug = format!("{credentials:?}");
    debug
        .split("provider_name: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("unknown")
        .to_owned()
}

/// The marker of the next page; a truncated answer without one is a partial read, which
/// callers that decide who keeps an account must never mistake for the whole list.
fn next_page(
    operation: &str,
    truncated: bool,
    marker: Option<String>,
) -> Result<Option<String>, IamError> {
    match (truncated, marker) {
        (false, _) => Ok(None),
        (true, Some(m)) if !m.is_empty() => Ok(Some(m)),
        (true, _) => Err(IamError::Unreachable(format!(
            "{operation} said the list is truncated but gave no marker for the rest"
        ))),
    }
}

/// Upload times to the second, as people read them ("2026-11-23T12:56:25Z").
/// An SDK user as keyward reads it. The SDK fills a missing CreateDate with the epoch: any
/// date not after it counts as none.
fn listed_user(u: aws_sdk_iam::types::User) -> IamUser {
    IamUser {
        created_at: u64::try_from(u.create_date.secs()).ok().filter(|s| *s > 0),
        name: u.user_name,
        id: u.user_id,
    }
}

fn whole_seconds(t: &aws_smithy_types::DateTime) -> String {
    aws_smithy_types::DateTime::from_secs(t.secs())
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| t.to_string())
}

/// The error kinds every AWS service's error type has, for [`classify_sdk`].
pub(crate) trait SdkErrorKinds {
    fn unreachable(text: String) -> Self;
    fn no_credentials(text: String) -> Self;
    fn other(text: String) -> Self;
}

impl SdkErrorKinds for IamError {
    fn unreachable(text: String) -> Self {
        IamError::Unreachable(text)
    }
    fn no_credentials(text: String) -> Self {
        IamError::NoCredentials(text)
    }
    fn other(text: String) -> Self {
        IamError::Other(text)
    }
}

/// A service's error answer, for its own mapping in [`classify_sdk`].
pub(crate) struct ServiceError {
    pub code: String,
    pub message: String,
    /// The whole cause chain, printable: what an outage or an unknown error reports.
    pub text: String,
    pub status: u16,
}

/// What an SDK error means, the part every AWS service keyward calls shares (IAM here, KMS in
/// `ca::kms`): a transport failure is an outage unless it is about credentials; a service
/// error goes to the service's own `codes` mapping, and one it does not know is an outage when
/// the status is 5xx, else "other". Error text comes from the endpoint: it reaches log lines
/// and the terminal only with its control characters (a newline could forge a log line)
/// escaped, and bounded.
pub(crate) fn classify_sdk<T, E>(
    service: &str,
    action: &str,
    err: &SdkError<E, HttpResponse>,
    codes: impl FnOnce(&ServiceError) -> Option<T>,
) -> T
where
    T: SdkErrorKinds,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    tracing::debug!(
        action,
        "{service} error: {}",
        printable(&DisplayErrorContext(err).to_string())
    );
    let text = printable(&cause_chain(err));
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            if is_credentials_failure(&text) {
                T::no_credentials(text)
            } else {
                T::unreachable(text)
            }
        }
        SdkError::ServiceError(raw) => {
            let answer = ServiceError {
                code: err.code().unwrap_or_default().to_owned(),
                message: printable(err.message().unwrap_or_default()),
                status: raw.raw().status().as_u16(),
                text,
            };
            match codes(&answer) {
                Some(t) => t,
                None if answer.status >= 500 => T::unreachable(answer.text),
                None => T::other(answer.text),
            }
        }
        _ if is_credentials_failure(&text) => T::no_credentials(text),
        _ => T::other(text),
    }
}

/// Turns an SDK error into the variant that decides what the caller does.
fn classify<E>(action: &'static str, err: SdkError<E, HttpResponse>) -> IamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let Some(malformed) = malformed_in(&err) {
        tracing::debug!(action, "IAM answer malformed: {malformed}");
        return IamError::Unreachable(malformed.to_string());
    }
    classify_sdk("IAM", action, &err, |e| {
        let message = e.message.clone();
        Some(match e.code.as_str() {
            "NoSuchEntity" => IamError::NotFound(message),
            "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => {
                IamError::AccessDenied { action, message }
            }
            "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "ServiceFailure"
            | "ServiceUnavailable"
            | "InternalFailure" => IamError::Unreachable(e.text.clone()),
            "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "MissingAuthenticationToken"
            | "UnrecognizedClientException" => {
                IamError::NoCredentials(format!("IAM rejected the credentials: {message}"))
            }
            "LimitExceeded" => IamError::LimitExceeded(message),
            "DuplicateSSHPublicKey" => IamError::Duplicate(message),
            "InvalidPublicKey" | "UnrecognizedPublicKeyEncoding" => IamError::InvalidKey(message),
            // An error body the SDK could not read (moto's auth errors nest <Errors>): HTTP 403
            // from IAM is a refusal all the same.
            "" if e.status == 403 => IamError::AccessDenied {
                action,
                message: "HTTP 403".into(),
            },
            _ => return None,
        })
    })
}

/// `text` with control characters escaped and cut after 2,000 characters: error text from the
/// endpoint is untrusted, but admins need more of it than a name (`logging::untrusted`).
pub(crate) fn printable(text: &str) -> String {
    crate::logging::capped(text, 2000, |c, out| {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    })
}

/// Every message in the error's source chain, without the Debug dump DisplayErrorContext adds.
pub(crate) fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let next = e.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = e.source();
    }
    text
}

fn is_credentials_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("credential") || lower.contains("identity")
}

#[cfg(test)]
mod tests {
    use super::printable;

    /// IAM and KMS clients are built from `sdk_config`: with `role_arn`, both sign with the
    /// assumed role's credentials, not the chain's.
    #[test]
    fn sdk_config_signs_with_the_role_when_one_is_set() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| unreachable!("{e}"));
        let provider = |role_arn: Option<&str>| {
            let options = super::ClientOptions {
                timeout: None,
                role_arn: role_arn.map(str::to_owned),
                aws_config_file: Some("/dev/null".into()),
            };
            format!(
                "{:?}",
                rt.block_on(super::sdk_config(&options))
                    .credentials_provider()
            )
        };
        assert!(provider(Some("arn:aws:iam::111122223333:role/r")).contains("AssumeRoleProvider"));
        assert!(!provider(None).contains("AssumeRoleProvider"));
    }

    #[test]
    fn m1_endpoint_error_text_cannot_start_a_log_line() {
        let forged = "Rate exceeded\n INFO key served message_id=\"x\" iam_user=\"alice\"";
        let shown = printable(forged);
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("Rate exceeded\\n INFO"), "{shown}");
        let long = "x".repeat(5000);
        assert!(printable(&long).ends_with("…(5000 bytes)"));
    }
}
