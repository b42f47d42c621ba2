use super::*;
use crate::ec2::query::testing::error_answer;

const SG: &str = "sg-4fd37a21425b71c4d";
const RULE: &str = "sgr-6384ea31e99079805";

/// moto 5's DescribeSecurityGroups for a group tagged `keyward:open` with one ingress rule.
const MOTO_GROUPS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeSecurityGroupsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><securityGroupInfo><item><groupId>sg-4fd37a21425b71c4d</groupId><ipPermissionsEgress><item><ipProtocol>-1</ipProtocol><groups/><ipRanges><item><cidrIp>0.0.0.0/0</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item></ipPermissionsEgress><tagSet><item><key>keyward:open</key><value/></item></tagSet><vpcId>vpc-2fc22db79a3fb4936</vpcId><securityGroupArn>arn:aws:ec2:us-east-1:123456789012:security-group/sg-4fd37a21425b71c4d</securityGroupArn><ownerId>123456789012</ownerId><groupName>ssh</groupName><groupDescription>d</groupDescription><ipPermissions><item><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><groups/><ipRanges><item><description>me</description><cidrIp>1.2.3.4/32</cidrIp></item></ipRanges><ipv6Ranges/><prefixListIds/></item></ipPermissions></item></securityGroupInfo><requestId>request-id</requestId></DescribeSecurityGroupsResponse>"#;

/// moto 5's DescribeSecurityGroupRules for that group: the default egress rule and one tagged
/// ingress rule.
const MOTO_RULES: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeSecurityGroupRulesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><securityGroupRuleSet><item><securityGroupRuleId>sgr-6dcb2efc29bf2cce0</securityGroupRuleId><groupId>sg-4fd37a21425b71c4d</groupId><isEgress>true</isEgress><ipProtocol>-1</ipProtocol><fromPort>-1</fromPort><toPort>-1</toPort><cidrIpv4>0.0.0.0/0</cidrIpv4><tagSet/></item><item><securityGroupRuleId>sgr-6384ea31e99079805</securityGroupRuleId><groupId>sg-4fd37a21425b71c4d</groupId><isEgress>false</isEgress><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><cidrIpv4>1.2.3.4/32</cidrIpv4><description>me</description><tagSet><item><key>keyward:owner</key><value>arn:aws:iam::123456789012:user/a</value></item></tagSet></item></securityGroupRuleSet><requestId>request-id</requestId></DescribeSecurityGroupRulesResponse>"#;

/// moto 5's answer to an IPv6 authorize with a tag.
const MOTO_AUTHORIZED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<AuthorizeSecurityGroupIngressResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><return>true</return><securityGroupRuleSet><item><securityGroupRuleId>sgr-10d9e133b023e8472</securityGroupRuleId><groupId>sg-4fd37a21425b71c4d</groupId><isEgress>false</isEgress><ipProtocol>tcp</ipProtocol><fromPort>22</fromPort><toPort>22</toPort><cidrIpv6>2001:db8::1/128</cidrIpv6><description>me6</description><tagSet><item><key>keyward:owner</key><value>x</value></item></tagSet></item></securityGroupRuleSet><requestId>request-id</requestId></AuthorizeSecurityGroupIngressResponse>"#;

fn new_rule(cidr: &str) -> NewIngressRule {
    NewIngressRule {
        group_id: SG.into(),
        port: 22,
        cidr: cidr.parse().unwrap(),
        description: "keyward open by alice".into(),
        tags: vec![
            (
                "keyward:owner".into(),
                "arn:aws:iam::123456789012:user/alice".into(),
            ),
            ("keyward:expires".into(), "2026-11-30T19:00:00Z".into()),
        ],
    }
}

/// A rules answer whose one item has `fields`.
fn rules(fields: &str) -> String {
    format!(
        "<DescribeSecurityGroupRulesResponse><securityGroupRuleSet><item>{fields}</item>\
         </securityGroupRuleSet></DescribeSecurityGroupRulesResponse>"
    )
}

const INGRESS: &str = "<securityGroupRuleId>sgr-6384ea31e99079805</securityGroupRuleId>\
    <groupId>sg-4fd37a21425b71c4d</groupId><isEgress>false</isEgress><ipProtocol>tcp</ipProtocol>\
    <fromPort>22</fromPort><toPort>22</toPort>";

#[test]
fn motos_groups_read_with_their_tags_and_vpc() {
    let page = parse_groups(MOTO_GROUPS.as_bytes()).unwrap();
    assert_eq!(
        page.items,
        [SecurityGroup {
            id: SG.into(),
            name: "ssh".into(),
            vpc_id: Some("vpc-2fc22db79a3fb4936".into()),
            tags: vec![("keyward:open".into(), String::new())],
        }]
    );
    assert_eq!(page.next_token, None);
}

#[test]
fn motos_rules_read_as_the_ingress_rules_only() {
    let page = parse_rules(MOTO_RULES.as_bytes(), SG).unwrap();
    assert_eq!(
        page.items,
        [IngressRule {
            id: RULE.into(),
            group_id: SG.into(),
            protocol: "tcp".into(),
            from_port: 22,
            to_port: 22,
            cidr: Some("1.2.3.4/32".parse().unwrap()),
            description: Some("me".into()),
            tags: vec![(
                "keyward:owner".into(),
                "arn:aws:iam::123456789012:user/a".into()
            )],
        }]
    );
}

#[test]
fn rules_without_a_cidr_or_ports_are_read_to_be_left_alone() {
    let other = rules(
        "<securityGroupRuleId>sgr-0123abcd</securityGroupRuleId><groupId>sg-4fd37a21425b71c4d</groupId>\
         <isEgress>false</isEgress><ipProtocol>-1</ipProtocol>\
         <referencedGroupInfo><groupId>sg-0123abcd</groupId></referencedGroupInfo>",
    );
    let page = parse_rules(other.as_bytes(), SG).unwrap();
    let rule = &page.items[0];
    assert_eq!((rule.from_port, rule.to_port, rule.cidr), (-1, -1, None));
    assert_eq!(rule.protocol, "-1");
    let v6 = rules(&format!("{INGRESS}<cidrIpv6>2001:db8::/64</cidrIpv6>"));
    assert_eq!(
        parse_rules(v6.as_bytes(), SG).unwrap().items[0].cidr,
        Some("2001:db8::/64".parse().unwrap())
    );
}

#[test]
fn a_rules_answer_failing_any_check_is_malformed() {
    let cases: Vec<(String, &str)> = vec![
        (rules(&INGRESS.replace(RULE, "sgr-x")), "not a rule id"),
        (rules(&INGRESS.replace(SG, "sg-0123abcd")), "another security group"),
        (rules(&INGRESS.replace("false", "maybe")), "neither true nor false"),
        (rules(&INGRESS.replace("<isEgress>false</isEgress>", "")), "without <isEgress>"),
        (rules(&INGRESS.replace(">tcp<", ">t c p<")), "not a protocol"),
        (rules(&INGRESS.replace("<fromPort>22", "<fromPort>65536")), "not a port"),
        (rules(&INGRESS.replace("<toPort>22", "<toPort>2x")), "not a port"),
        (rules(&format!("{INGRESS}<cidrIpv4>1.2.3.4</cidrIpv4>")), "not an IPv4 CIDR"),
        (rules(&format!("{INGRESS}<cidrIpv4>::/0</cidrIpv4>")), "not an IPv4 CIDR"),
        (rules(&format!("{INGRESS}<cidrIpv6>1.2.3.4/32</cidrIpv6>")), "not an IPv6 CIDR"),
        (rules(&format!("{INGRESS}<cidrIpv4>1.2.3.4/32</cidrIpv4><cidrIpv6>::/0</cidrIpv6>")), "both"),
        (rules(&format!("{INGRESS}<cidrIpv4>1.2.3.4/32</cidrIpv4><cidrIpv4>5.6.7.8/32</cidrIpv4>")), "more than once"),
        (rules(&format!("{INGRESS}<description>{}</description>", "d".repeat(256))), "over 255"),
        (rules(&format!("{INGRESS}<tagSet><item><key>{}</key><value/></item></tagSet>", "k".repeat(129))), "1 to 128"),
        (rules(&format!("{INGRESS}<tagSet><item><key>k</key><value>a</value></item><item><key>k</key><value>b</value></item></tagSet>")), "repeated"),
        ("<DescribeSecurityGroupRulesResponse/>".into(), "no <securityGroupRuleSet>"),
    ];
    for (body, says) in cases {
        let err = parse_rules(body.as_bytes(), SG).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
    // One bad egress rule fails the answer too: nothing is a partial list.
    let bad_egress = MOTO_RULES.replace("<cidrIpv4>0.0.0.0/0", "<cidrIpv4>0.0.0.0");
    assert!(parse_rules(bad_egress.as_bytes(), SG).is_err());
}

#[test]
fn a_groups_answer_failing_any_check_is_malformed() {
    for (body, says) in [
        (
            MOTO_GROUPS.replace("<groupId>sg-4fd", "<groupId>sg-4FD"),
            "not a security group id",
        ),
        (
            MOTO_GROUPS.replace("<groupName>ssh</groupName>", ""),
            "without <groupName>",
        ),
        (
            MOTO_GROUPS.replace("<vpcId>vpc-", "<vpcId>vpx-"),
            "not a VPC id",
        ),
        (
            MOTO_GROUPS.replace("<value/>", "<value>a&#27;b</value>"),
            "control",
        ),
        (
            "<DescribeSecurityGroupsResponse/>".into(),
            "no <securityGroupInfo>",
        ),
    ] {
        let err = parse_groups(body.as_bytes()).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[test]
fn groups_asked_by_id_are_all_there_once_and_no_other() {
    let group = |id: &str| SecurityGroup {
        id: id.into(),
        name: "n".into(),
        vpc_id: None,
        tags: vec![],
    };
    let ids = vec![SG.to_owned(), "sg-0123abcd".to_owned()];
    assert!(exactly_these(vec![group(SG), group("sg-0123abcd")], &ids).is_ok());
    assert!(matches!(
        exactly_these(vec![group(SG)], &ids),
        Err(Ec2Error::NotFound(_))
    ));
    assert!(matches!(
        exactly_these(vec![group(SG), group(SG), group("sg-0123abcd")], &ids),
        Err(Ec2Error::Malformed(_))
    ));
    assert!(matches!(
        exactly_these(vec![group(SG), group("sg-0000abcd")], &ids),
        Err(Ec2Error::Malformed(_))
    ));
}

#[test]
fn an_authorize_answer_gives_the_new_rules_id_only_when_it_is_the_rule_asked_for() {
    assert_eq!(
        parse_authorized(MOTO_AUTHORIZED.as_bytes(), &new_rule("2001:db8::1/128")),
        Ok("sgr-10d9e133b023e8472".into())
    );
    for (body, asked, says) in [
        (
            MOTO_AUTHORIZED.to_owned(),
            new_rule("2001:db8::2/128"),
            "other than the one asked for",
        ),
        (
            MOTO_AUTHORIZED.to_owned(),
            new_rule("1.2.3.4/32"),
            "other than the one asked for",
        ),
        (
            MOTO_AUTHORIZED.replace(">22<", ">2222<"),
            new_rule("2001:db8::1/128"),
            "other than",
        ),
        (
            MOTO_AUTHORIZED.replace("<return>true</return>", "<return>false</return>"),
            new_rule("2001:db8::1/128"),
            "<return>",
        ),
        (
            MOTO_AUTHORIZED.replace("<isEgress>false", "<isEgress>true"),
            new_rule("2001:db8::1/128"),
            "1 rules",
        ),
        (
            MOTO_AUTHORIZED.replace("</securityGroupRuleSet>", "<item/></securityGroupRuleSet>"),
            new_rule("2001:db8::1/128"),
            "without <securityGroupRuleId>",
        ),
        (
            MOTO_AUTHORIZED
                .replace(
                    "<securityGroupRuleSet>",
                    "<securityGroupRuleSet></securityGroupRuleSet><x>",
                )
                .replace("</securityGroupRuleSet><request", "</x><request"),
            new_rule("2001:db8::1/128"),
            "0 rules",
        ),
    ] {
        let err = parse_authorized(body.as_bytes(), &asked).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[test]
fn revoke_and_create_tags_answers_must_confirm() {
    let ok = "<RevokeSecurityGroupIngressResponse><return>true</return></RevokeSecurityGroupIngressResponse>";
    assert_eq!(parse_revoked(ok.as_bytes()), Ok(()));
    let unknown = "<RevokeSecurityGroupIngressResponse><return>true</return><unknownIpPermissionSet>\
                   <item><ipProtocol>tcp</ipProtocol></item></unknownIpPermissionSet></RevokeSecurityGroupIngressResponse>";
    assert_eq!(parse_revoked(unknown.as_bytes()), Err(RuleError::NotFound));
    let unconfirmed = "<RevokeSecurityGroupIngressResponse/>";
    assert!(matches!(
        parse_revoked(unconfirmed.as_bytes()),
        Err(RuleError::Ec2(Ec2Error::Malformed(_)))
    ));
    assert_eq!(
        parse_tagged(b"<CreateTagsResponse><requestId>r</requestId></CreateTagsResponse>"),
        Ok(())
    );
    assert_eq!(
        parse_tagged(b"<CreateTagsResponse><return>true</return></CreateTagsResponse>"),
        Ok(())
    );
    assert!(
        parse_tagged(b"<CreateTagsResponse><return>false</return></CreateTagsResponse>").is_err()
    );
    assert!(parse_tagged(b"<Other/>").is_err());
}

#[test]
fn an_authorize_request_carries_the_rule_its_description_and_tags() {
    let form = authorize_form(&new_rule("1.2.3.4/24")).unwrap();
    assert_eq!(
        form.as_str(),
        "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId=sg-4fd37a21425b71c4d\
         &IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22\
         &IpPermissions.1.IpRanges.1.CidrIp=1.2.3.0%2F24\
         &IpPermissions.1.IpRanges.1.Description=keyward+open+by+alice\
         &TagSpecification.1.ResourceType=security-group-rule\
         &TagSpecification.1.Tag.1.Key=keyward%3Aowner\
         &TagSpecification.1.Tag.1.Value=arn%3Aaws%3Aiam%3A%3A123456789012%3Auser%2Falice\
         &TagSpecification.1.Tag.2.Key=keyward%3Aexpires\
         &TagSpecification.1.Tag.2.Value=2026-11-30T19%3A00%3A00Z"
    );
    let v6 = authorize_form(&NewIngressRule {
        description: String::new(),
        tags: vec![],
        ..new_rule("2001:db8::1/128")
    })
    .unwrap();
    assert_eq!(
        v6.as_str(),
        "Action=AuthorizeSecurityGroupIngress&Version=2016-11-15&GroupId=sg-4fd37a21425b71c4d\
         &IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22\
         &IpPermissions.1.Ipv6Ranges.1.CidrIpv6=2001%3Adb8%3A%3A1%2F128"
    );
}

#[test]
fn ids_tags_and_descriptions_ec2_would_refuse_are_never_sent() {
    let with = |f: &dyn Fn(&mut NewIngressRule)| {
        let mut rule = new_rule("1.2.3.4/32");
        f(&mut rule);
        authorize_form(&rule)
    };
    let tag = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    let cases: Vec<(Result<Form, Ec2Error>, &str)> = vec![
        (
            with(&|r| r.group_id = "sg-1&Action=DeleteVpc".into()),
            "sg-",
        ),
        (
            with(&|r| r.description = "line\nbreak".into()),
            "description",
        ),
        (with(&|r| r.description = "ünïcode".into()), "description"),
        (with(&|r| r.description = "d".repeat(256)), "description"),
        (with(&|r| r.tags = tag("", "v")), "1 to 128"),
        (with(&|r| r.tags = tag(&"k".repeat(129), "v")), "1 to 128"),
        (with(&|r| r.tags = tag("k\t", "v")), "control"),
        (with(&|r| r.tags = tag("k", &"v".repeat(257))), "over 256"),
        (with(&|r| r.tags = tag("k", "v\u{0}")), "control"),
        (with(&|r| r.tags = tag("AWS:x", "v")), "aws:"),
        (
            with(&|r| r.tags = [tag("k", "a"), tag("k", "b")].concat()),
            "twice",
        ),
        (
            with(&|r| r.tags = (0..51).map(|n| (format!("k{n}"), String::new())).collect()),
            "more than 50",
        ),
        (tag_rule_form("sg-0123abcd", &tag("k", "v")), "sgr-"),
        (tag_rule_form(RULE, &tag("k", "v\r")), "control"),
        (
            revoke_forms(SG, &["sgr-0123abcd".into(), "sgr-x".into()]).map(|_| Form::new(REVOKE)),
            "sgr-",
        ),
        (revoke_forms("sg-x", &[]).map(|_| Form::new(REVOKE)), "sg-"),
        (rules_form("sg-0123abcd%26"), "sg-"),
        (
            groups_form(&["sg-0123abcd".into(), "i-0123abcd".into()]),
            "sg-",
        ),
        (
            groups_form(&vec!["sg-0123abcd".to_owned(); 201]),
            "more than 200",
        ),
        (tagged_groups_form(""), "1 to 128"),
        (tagged_groups_form("k\n"), "control"),
    ];
    for (result, says) in cases {
        match result {
            Err(Ec2Error::Invalid(why)) => assert!(why.contains(says), "{why} / {says}"),
            other => panic!("{says}: {other:?}"),
        }
    }
}

#[test]
fn revoke_tag_and_lookup_requests_name_what_they_change() {
    let ids: Vec<String> = (0..101).map(|n| format!("sgr-{n:08x}")).collect();
    let forms = revoke_forms(SG, &ids).unwrap();
    assert_eq!(forms.len(), 2);
    assert!(forms[0].as_str().starts_with(
        "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId=sg-4fd37a21425b71c4d\
         &SecurityGroupRuleId.1=sgr-00000000&SecurityGroupRuleId.2=sgr-00000001"
    ));
    assert!(forms[0]
        .as_str()
        .ends_with("&SecurityGroupRuleId.100=sgr-00000063"));
    assert!(forms[1]
        .as_str()
        .ends_with("&GroupId=sg-4fd37a21425b71c4d&SecurityGroupRuleId.1=sgr-00000064"));
    assert_eq!(revoke_forms(SG, &[]).unwrap(), []);
    assert_eq!(
        tag_rule_form(
            RULE,
            &[("keyward:expires".into(), "2026-11-30T20:00:00Z".into())]
        )
        .unwrap()
        .as_str(),
        "Action=CreateTags&Version=2016-11-15&ResourceId.1=sgr-6384ea31e99079805\
         &Tag.1.Key=keyward%3Aexpires&Tag.1.Value=2026-11-30T20%3A00%3A00Z"
    );
    assert_eq!(
        rules_form(SG).unwrap().as_str(),
        "Action=DescribeSecurityGroupRules&Version=2016-11-15\
         &Filter.1.Name=group-id&Filter.1.Value.1=sg-4fd37a21425b71c4d"
    );
    assert_eq!(
        tagged_groups_form("keyward:open*").unwrap().as_str(),
        "Action=DescribeSecurityGroups&Version=2016-11-15\
         &Filter.1.Name=tag-key&Filter.1.Value.1=keyward%3Aopen%5C%2A"
    );
    assert_eq!(
        groups_form(&[SG.into(), "sg-0123abcd".into()])
            .unwrap()
            .as_str(),
        "Action=DescribeSecurityGroups&Version=2016-11-15\
         &GroupId.1=sg-4fd37a21425b71c4d&GroupId.2=sg-0123abcd"
    );
}

#[test]
fn rule_refusals_map_to_what_open_and_close_act_on() {
    let on = |action: Action, status: u16, code: &str| {
        rule_refusal(
            super::super::refusal(action, status, error_answer(code).as_bytes()),
            SG,
        )
    };
    assert_eq!(
        on(AUTHORIZE, 400, "InvalidPermission.Duplicate"),
        RuleError::Duplicate
    );
    assert!(matches!(
        on(AUTHORIZE, 400, "RulesPerSecurityGroupLimitExceeded"),
        RuleError::LimitExceeded(_)
    ));
    for code in [
        "InvalidPermission.NotFound",
        "InvalidSecurityGroupRuleId.NotFound",
    ] {
        assert_eq!(on(REVOKE, 400, code), RuleError::NotFound, "{code}");
    }
    assert!(matches!(
        on(AUTHORIZE, 400, "InvalidGroup.NotFound"),
        RuleError::Ec2(Ec2Error::NotFound(_))
    ));
    for (action, iam) in [
        (AUTHORIZE, "ec2:AuthorizeSecurityGroupIngress"),
        (REVOKE, "ec2:RevokeSecurityGroupIngress"),
        (CREATE_TAGS, "ec2:CreateTags"),
    ] {
        match on(action, 403, "UnauthorizedOperation") {
            RuleError::Ec2(Ec2Error::AccessDenied { action, .. }) => assert_eq!(action, iam),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        on(REVOKE, 503, "RequestLimitExceeded"),
        RuleError::Ec2(Ec2Error::Unreachable(_))
    ));
    let denied = group_refusal(
        super::super::refusal(
            DESCRIBE_RULES,
            403,
            error_answer("UnauthorizedOperation").as_bytes(),
        ),
        &[],
    );
    assert!(matches!(
        denied,
        Ec2Error::AccessDenied {
            action: "ec2:DescribeSecurityGroupRules",
            ..
        }
    ));
    let gone = group_refusal(
        super::super::refusal(
            DESCRIBE_GROUPS,
            400,
            error_answer("InvalidGroup.NotFound").as_bytes(),
        ),
        &[SG.to_owned()],
    );
    assert_eq!(
        gone,
        Ec2Error::NotFound(format!("security group among {SG}"))
    );
}
