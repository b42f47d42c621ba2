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
