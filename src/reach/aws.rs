//! The EC2 client `proxy` and `hosts` use, for `[reach]` or one environment (its AWS profile
//! and region over the standard chain), made only when it is first needed: a cached name
//! costs no credential lookup.

use std::cell::OnceCell;

use super::connect::Target;
use crate::ec2::query::AwsEc2;
use crate::ec2::{Ec2Error, Instance, InstanceFilter, Instances};
use crate::iam::ClientOptions;

/// An [`AwsEc2`] for a target, built on first use.
pub struct LazyEc2 {
    options: ClientOptions,
    region: Option<String>,
    profile: Option<String>,
    client: OnceCell<AwsEc2>,
}

impl LazyEc2 {
    pub fn new(options: ClientOptions, target: &Target) -> LazyEc2 {
        LazyEc2 {
            options,
            region: target.region.clone(),
            profile: target.profile.clone(),
            client: OnceCell::new(),
        }
    }

    async fn build(&self) -> Result<AwsEc2, Ec2Error> {
        let shared = sdk_config(&self.options, self.region.clone(), self.profile.as_deref()).await;
        AwsEc2::from_config(shared, &self.options)
    }
}

/// The SDK config for a target: the standard chain, then the environment's AWS profile (its
/// credentials, and its region unless the environment names one) and region. `proxy --open`
/// opens with the same identity and region `proxy` looked the name up with.
pub async fn target_config(options: &ClientOptions, target: &Target) -> aws_config::SdkConfig {
    sdk_config(options, target.region.clone(), target.profile.as_deref()).await
}

async fn sdk_config(
    options: &ClientOptions,
    mut region: Option<String>,
    profile: Option<&str>,
) -> aws_config::SdkConfig {
    use aws_config::meta::region::ProvideRegion as _;
    use aws_config::profile::{ProfileFileCredentialsProvider, ProfileFileRegionProvider};
    let shared = crate::iam::sdk_config(options).await;
    let mut builder = shared.into_builder();
    if let Some(profile) = profile {
        let credentials = ProfileFileCredentialsProvider::builder()
            .profile_name(profile)
            .build();
        builder = builder.credentials_provider(
            aws_sdk_iam::config::SharedCredentialsProvider::new(credentials),
        );
        if region.is_none() {
            region = ProfileFileRegionProvider::builder()
                .profile_name(profile)
                .build()
                .region()
                .await
                .map(|r| r.to_string());
        }
    }
    if let Some(region) = region {
        builder = builder.region(aws_config::Region::new(region));
    }
    builder.build()
}

impl Instances for LazyEc2 {
    async fn instances(&self, filters: &[InstanceFilter]) -> Result<Vec<Instance>, Ec2Error> {
        if self.client.get().is_none() {
            let client = self.build().await?;
            let _ = self.client.set(client);
        }
        match self.client.get() {
            Some(client) => client.instances(filters).await,
            None => Err(Ec2Error::Unreachable("no EC2 client".into())),
        }
    }
}
