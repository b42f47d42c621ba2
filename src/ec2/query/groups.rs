//! Security groups and their ingress rules over the Query API (issue 12: not yet spoken).

use super::AwsEc2;
use crate::ec2::{Ec2Error, IngressRule, NewIngressRule, RuleError, SecurityGroup, SecurityGroups};

impl SecurityGroups for AwsEc2 {
    async fn security_groups(&self, _ids: &[String]) -> Result<Vec<SecurityGroup>, Ec2Error> {
        Err(Ec2Error::Unreachable("not implemented yet".into()))
    }
    async fn tagged_security_groups(&self, _key: &str) -> Result<Vec<SecurityGroup>, Ec2Error> {
        Err(Ec2Error::Unreachable("not implemented yet".into()))
    }
    async fn ingress_rules(&self, _group_id: &str) -> Result<Vec<IngressRule>, Ec2Error> {
        Err(Ec2Error::Unreachable("not implemented yet".into()))
    }
    async fn authorize_ingress(&self, _rule: &NewIngressRule) -> Result<String, RuleError> {
        Err(Ec2Error::Unreachable("not implemented yet".into()).into())
    }
    async fn revoke_ingress(&self, _group_id: &str, _rule_ids: &[String]) -> Result<(), RuleError> {
        Err(Ec2Error::Unreachable("not implemented yet".into()).into())
    }
    async fn tag_rule(&self, _rule_id: &str, _tags: &[(String, String)]) -> Result<(), RuleError> {
        Err(Ec2Error::Unreachable("not implemented yet".into()).into())
    }
}
