//! What the EC2 Query unit tests share: error answers and a client that cannot reach EC2.

use std::time::Duration;

use super::AwsEc2;
use crate::sigv4::AwsContext;

/// An EC2 error answer with this code, as EC2 writes it.
pub fn error_answer(code: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>m</Message></Error></Errors><RequestID>r</RequestID></Response>"
    )
}

/// A client whose every call fails (no credentials, nothing listening): a call that is made
/// is an error, one that is not made cannot be.
pub fn offline() -> AwsEc2 {
    let config = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .build();
    AwsEc2::from_context(AwsContext::from_config(config), Duration::from_secs(2)).unwrap()
}
