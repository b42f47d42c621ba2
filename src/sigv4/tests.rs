use std::time::{Duration, UNIX_EPOCH};

use aws_types::service_config::LoadServiceConfig;

use super::*;

/// 2026-11-30T12:00:00Z
fn noon() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_796_040_000)
}

fn creds(token: Option<&str>) -> Credentials {
    Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        token.map(str::to_owned),
        None,
        "test",
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn every_given_header_and_the_urls_host_are_signed() {
    let target = Target::parse("https://ec2.eu-west-1.amazonaws.com/").unwrap();
    let out = sign_request(
        &Signer {
            credentials: &creds(None),
            region: "eu-west-1",
            service: "ec2",
            now: noon(),
        },
        "POST",
        &target,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            // Ignored: the host signed is the URL's.
            ("host", "evil.example"),
        ],
        b"Action=DescribeInstances",
    )
    .unwrap();
    let auth = header(&out, "authorization").unwrap();
    assert!(
        auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/eu-west-1/ec2/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, Signature="
        ),
        "{auth}"
    );
    assert_eq!(header(&out, "x-amz-date"), Some("20261130T120000Z"));
    assert_eq!(header(&out, "x-amz-security-token"), None);
    assert_eq!(header(&out, "host"), None);
}

#[test]
fn a_session_token_is_sent_and_signed() {
    let target = Target::parse("https://sts.us-east-1.amazonaws.com").unwrap();
    let out = sign_request(
        &Signer {
            credentials: &creds(Some("TOKEN")),
            region: "us-east-1",
            service: "sts",
            now: noon(),
        },
        "POST",
        &target,
        &[],
        b"",
    )
    .unwrap();
    assert_eq!(header(&out, "x-amz-security-token"), Some("TOKEN"));
    assert!(header(&out, "authorization")
        .unwrap()
        .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"));
}

#[test]
fn signing_is_a_function_of_its_inputs() {
    let target = Target::parse("http://127.0.0.1:5000/").unwrap();
    let sign_at = |now, body: &[u8]| {
        sign_request(
            &Signer {
                credentials: &creds(None),
                region: "us-east-1",
                service: "sts",
                now,
            },
            "POST",
            &target,
            &[],
            body,
        )
        .unwrap()
    };
    assert_eq!(sign_at(noon(), b"a"), sign_at(noon(), b"a"));
    assert_ne!(sign_at(noon(), b"a"), sign_at(noon(), b"b"));
    assert_ne!(
        sign_at(noon(), b"a"),
        sign_at(noon() + Duration::from_secs(1), b"a")
    );
}

#[test]
fn default_endpoints_are_built_only_from_region_names() {
    assert_eq!(
        default_endpoint("sts", "eu-west-1").unwrap(),
        "https://sts.eu-west-1.amazonaws.com"
    );
    assert_eq!(
        default_endpoint("ec2", "cn-north-1").unwrap(),
        "https://ec2.cn-north-1.amazonaws.com.cn"
    );
    for bad in ["", "us-east-1.evil.example/x", "US-EAST-1", "-x", "a b"] {
        assert!(
            matches!(default_endpoint("sts", bad), Err(SignError::BadRegion(_))),
            "{bad}"
        );
    }
}

/// What `AWS_ENDPOINT_URL_<SERVICE>` would say, without touching the process environment.
#[derive(Debug)]
struct ServiceEndpoints(&'static [(&'static str, &'static str)]);

impl LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        assert_eq!(key.env(), "AWS_ENDPOINT_URL");
        assert_eq!(key.profile(), "endpoint_url");
        self.0
            .iter()
            .find(|(service, _)| *service == key.service_id())
            .map(|(_, url)| (*url).to_owned())
    }
}

#[test]
fn a_service_specific_endpoint_wins_over_the_general_one_and_the_default() {
    let config = SdkConfig::builder()
        .region(aws_config::Region::new("eu-west-1"))
        .service_config(ServiceEndpoints(&[("STS", "http://127.0.0.1:1111")]))
        .build();
    let aws = AwsContext::from_config(config);
    assert_eq!(aws.endpoint("STS", "sts").unwrap(), "http://127.0.0.1:1111");
    assert_eq!(
        aws.endpoint("EC2", "ec2").unwrap(),
        "https://ec2.eu-west-1.amazonaws.com"
    );
    let no_region = AwsContext::from_config(SdkConfig::builder().build());
    assert_eq!(no_region.endpoint("EC2", "ec2"), Err(SignError::NoRegion));
}

#[test]
fn the_walk_shows_each_element_with_its_path_and_refuses_a_bad_document() {
    let mut steps = Vec::new();
    walk_answer("<R><a>x<b/></a></R>", "R", |step| {
        steps.push(match step {
            Xml::Start { path } => format!("start {}", path.join("/")),
            Xml::Text { path, text } => format!("text {} {text}", path.join("/")),
            Xml::End { path } => format!("end {}", path.join("/")),
        });
        Ok(())
    })
    .unwrap();
    assert_eq!(
        steps,
        [
            "start R",
            "start R/a",
            "text R/a x",
            "start R/a/b",
            "end R/a/b",
            "end R/a",
            "end R"
        ]
    );
    for (doc, says) in [
        ("<Q/>", "a root <Q>, not <R>"),
        ("<R><a></R>", "unexpected </R>"),
        ("<R a></R>", "not well-formed"),
        ("<R><a>", "cut short"),
        ("<!DOCTYPE R><R/>", "DTD"),
        ("", "no <R>"),
    ] {
        let err = walk_answer(doc, "R", |_| Ok(())).unwrap_err();
        assert!(err.contains(says), "{doc}: {err}");
    }
    let stopped = walk_answer("<R><a/></R>", "R", |step| match step {
        Xml::Start { path: [_, "a"] } => Err("no a".into()),
        _ => Ok(()),
    });
    assert_eq!(stopped, Err("no a".into()));
}

#[test]
fn the_error_code_is_read_from_sts_ec2_and_moto_error_answers() {
    for body in [
        "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code></Error></ErrorResponse>",
        "<ErrorResponse><Errors><Error><Code>ExpiredToken</Code></Error></Errors></ErrorResponse>",
        "<Response><Errors><Error><Code>ExpiredToken</Code><Message>m</Message></Error></Errors></Response>",
    ] {
        assert_eq!(error_code(body.as_bytes()).as_deref(), Some("ExpiredToken"), "{body}");
    }
    for body in [
        "",
        "<html/>",
        "<R><Code>X</Code></R>",
        "<Error><Code>a b</Code></Error>",
    ] {
        assert_eq!(error_code(body.as_bytes()), None, "{body}");
    }
}

#[test]
fn credentials_are_fresh_until_five_minutes_before_they_expire() {
    assert!(still_fresh(None, noon()));
    assert!(still_fresh(Some(noon() + Duration::from_secs(301)), noon()));
    assert!(!still_fresh(
        Some(noon() + Duration::from_secs(300)),
        noon()
    ));
    assert!(!still_fresh(Some(noon()), noon()));
}

/// A provider that counts its calls and hands out credentials expiring at `expiry`.
#[derive(Debug)]
struct Counting {
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    expiry: Option<SystemTime>,
}

impl ProvideCredentials for Counting {
    fn provide_credentials<'a>(
        &'a self,
    ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            self.expiry,
            "counting",
        )))
    }
}

fn counting(
    expiry: Option<SystemTime>,
) -> (AwsContext, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let provider = Counting {
        calls: calls.clone(),
        expiry,
    };
    let config = SdkConfig::builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(provider),
        )
        .build();
    (AwsContext::from_config(config), calls)
}

#[tokio::test]
async fn credentials_are_asked_for_once_while_fresh_and_again_near_expiry() {
    let (aws, calls) = counting(Some(SystemTime::now() + Duration::from_secs(3600)));
    aws.credentials().await.unwrap();
    aws.clone().credentials().await.unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

    let (aws, calls) = counting(Some(SystemTime::now() + Duration::from_secs(60)));
    aws.credentials().await.unwrap();
    aws.credentials().await.unwrap();
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
