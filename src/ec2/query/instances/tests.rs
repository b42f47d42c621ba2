use super::*;
use crate::ec2::query::testing::{error_answer, offline};
use crate::ec2::query::Pages;

const ID: &str = "i-071a2348550130307";

/// moto 5's answer for an instance in a 127.0.0.0/16 VPC with an instance profile and a Name
/// tag (captured from the integration test's setup). The network interface repeats
/// privateIpAddress; its `association` would carry the public address.
const MOTO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15"><reservationSet><item><reservationId>r-b0be5483554c83b55</reservationId><ownerId>123456789012</ownerId><groupSet/><instancesSet><item><architecture>x86_64</architecture><blockDeviceMapping><item><deviceName>/dev/sda1</deviceName><ebs><attachTime>2026-11-30T15:00:27.000Z</attachTime><deleteOnTermination>true</deleteOnTermination><status>attached</status><volumeId>vol-8e4ea45ee40f3dedd</volumeId></ebs></item></blockDeviceMapping><clientToken>ABCDE</clientToken><ebsOptimized>false</ebsOptimized><hypervisor>xen</hypervisor><iamInstanceProfile><arn>arn:aws:iam::123456789012:instance-profile/web-profile</arn><id>iip-assoc-d3c6f39781e37c7c0</id></iamInstanceProfile><networkInterfaceSet><item><association/><attachment><attachTime>2026-11-30T15:00:27.000Z</attachTime><attachmentId>eni-attach-e699b040361d95cbd</attachmentId><deleteOnTermination>false</deleteOnTermination><deviceIndex>0</deviceIndex><status>attached</status><networkCardIndex>0</networkCardIndex></attachment><description>Primary network interface</description><groupSet><item><groupId>sg-f9425210a466102c9</groupId><groupName>default</groupName></item></groupSet><ipv6AddressesSet/><macAddress>02:00:00:86:24:26</macAddress><networkInterfaceId>eni-f897ccb968ad05336</networkInterfaceId><ownerId>123456789012</ownerId><privateIpAddress>127.0.0.9</privateIpAddress><privateIpAddressesSet><item><primary>true</primary><privateIpAddress>127.0.0.9</privateIpAddress></item></privateIpAddressesSet><sourceDestCheck>true</sourceDestCheck><status>in-use</status><subnetId>subnet-691d6c74830b67736</subnetId><vpcId>vpc-cd982cb50b9dc643a</vpcId><interfaceType>interface</interfaceType></item></networkInterfaceSet><rootDeviceName>/dev/sda1</rootDeviceName><rootDeviceType>ebs</rootDeviceType><groupSet/><sourceDestCheck>true</sourceDestCheck><sriovNetSupport>simple</sriovNetSupport><stateReason><code/><message/></stateReason><tagSet><item><key>Name</key><value>web-1</value></item></tagSet><virtualizationType>hvm</virtualizationType><hibernationOptions/><metadataOptions><state>applied</state><httpTokens>optional</httpTokens><httpPutResponseHopLimit>1</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint><httpProtocolIpv6>disabled</httpProtocolIpv6><instanceMetadataTags>disabled</instanceMetadataTags></metadataOptions><instanceId>i-071a2348550130307</instanceId><imageId>ami-12c6146b</imageId><instanceState><code>16</code><name>running</name></instanceState><privateDnsName>ip-127-0-0-5.ec2.internal</privateDnsName><reason/><amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>m1.small</instanceType><launchTime>2026-11-30T15:00:27.000Z</launchTime><placement><groupName/><tenancy>default</tenancy><availabilityZone>us-east-1d</availabilityZone></placement><platform>windows</platform><monitoring><state>disabled</state></monitoring><subnetId>subnet-691d6c74830b67736</subnetId><vpcId>vpc-cd982cb50b9dc643a</vpcId><privateIpAddress>127.0.0.5</privateIpAddress></item></instancesSet></item></reservationSet><requestId>request-id</requestId></DescribeInstancesResponse>"#;

/// An answer with the instance element's children replaced by `fields`.
fn answer(fields: &str) -> String {
    format!(
        "<DescribeInstancesResponse><requestId>x</requestId><reservationSet><item>\
         <instancesSet><item>{fields}</item></instancesSet></item></reservationSet>\
         </DescribeInstancesResponse>"
    )
}

const MINIMAL: &str =
    "<instanceId>i-071a2348550130307</instanceId><instanceState><code>16</code><name>running</name></instanceState>";

#[test]
fn instance_ids_have_the_documented_shape() {
    for ok in ["i-0123abcd", "i-071a2348550130307"] {
        assert!(is_instance_id(ok), "{ok}");
    }
    for bad in [
        "",
        "i-",
        "i-0123abc",
        "i-0123ABCD",
        "i-071a2348550130307&Action=x",
        "0123abcd",
        "i-0123abcdg",
    ] {
        assert!(!is_instance_id(bad), "{bad}");
    }
}

#[test]
fn motos_answer_reads_as_the_instance_and_its_own_fields_only() {
    let instance = parse_instance(ID, MOTO.as_bytes()).unwrap().unwrap();
    assert_eq!(
        instance,
        Instance {
            id: ID.into(),
            state: "running".into(),
            instance_profile_arn: Some(
                "arn:aws:iam::123456789012:instance-profile/web-profile".into()
            ),
            // The instance's own, not the network interface's 127.0.0.9.
            private_ip: Some("127.0.0.5".parse().unwrap()),
            private_dns: Some("ip-127-0-0-5.ec2.internal".into()),
            public_ip: None,
            public_dns: None,
            name_tag: Some("web-1".into()),
            vpc_id: Some("vpc-cd982cb50b9dc643a".into()),
            // The instance's own (empty) groupSet, not the network interface's default group.
            security_groups: vec![],
        }
    );
}

#[test]
fn public_addresses_are_read_and_empty_ones_are_none() {
    let with_public = answer(&format!(
        "{MINIMAL}<ipAddress>54.1.2.3</ipAddress><dnsName>ec2-54-1-2-3.compute-1.amazonaws.com</dnsName>"
    ));
    let instance = parse_instance(ID, with_public.as_bytes()).unwrap().unwrap();
    assert_eq!(instance.public_ip, Some("54.1.2.3".parse().unwrap()));
    assert_eq!(
        instance.public_dns.as_deref(),
        Some("ec2-54-1-2-3.compute-1.amazonaws.com")
    );
    let empty = answer(&format!(
        "{MINIMAL}<dnsName/><privateDnsName></privateDnsName>"
    ));
    let instance = parse_instance(ID, empty.as_bytes()).unwrap().unwrap();
    assert_eq!((instance.public_dns, instance.private_dns), (None, None));
    assert_eq!(instance.instance_profile_arn, None);
    assert_eq!(instance.name_tag, None);
}

#[test]
fn an_empty_reservation_set_is_no_instance() {
    let none = "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>";
    assert_eq!(parse_instance(ID, none.as_bytes()), Ok(None));
}

#[test]
fn an_answer_failing_any_check_is_malformed_never_a_partial_instance() {
    let other = MINIMAL.replace(ID, "i-0123456789abcdef0");
    let cases: Vec<(String, &str)> = vec![
        (answer("<instanceState><name>running</name></instanceState>"), "without <instanceId>"),
        (answer(&format!("<instanceId>{ID}</instanceId>")), "without <instanceState/name>"),
        (answer(&other), "other than the one asked for"),
        (answer(&MINIMAL.replace("running", "exploded")), "unknown <instanceState>"),
        (answer(&format!("{MINIMAL}<privateIpAddress>127.0.0.1; rm</privateIpAddress>")), "not an IP"),
        (answer(&format!("{MINIMAL}<privateIpAddress>127.0.0.1</privateIpAddress><privateIpAddress>127.0.0.2</privateIpAddress>")), "more than once"),
        (answer(&format!("{MINIMAL}<dnsName>evil host</dnsName>")), "not a host name"),
        (answer(&format!("{MINIMAL}<privateDnsName>-x.internal</privateDnsName>")), "not a host name"),
        (answer(&format!("{MINIMAL}<iamInstanceProfile><arn>arn:aws:iam::123456789012:role/web</arn></iamInstanceProfile>")), "instance profile"),
        (answer(&format!("{MINIMAL}<tagSet><item><key>Name</key><value>a&bogus;b</value></item></tagSet>")), "entity"),
        (answer(&format!("{MINIMAL}<tagSet><item><key>Name</key><value>a&#7;b</value></item></tagSet>")), "control"),
        (answer(&format!("{MINIMAL}<tagSet><item><key>Name</key><value>a</value></item><item><key>Name</key><value>b</value></item></tagSet>")), "repeated tag key"),
        (answer(&format!("{MINIMAL}<tagSet><item><value>a</value></item></tagSet>")), "exactly one key"),
        (answer(&format!("{MINIMAL}<vpcId>vpc-1; rm</vpcId>")), "not a VPC id"),
        (answer(&format!("{MINIMAL}<vpcId>vpc-0123abcd</vpcId><vpcId>vpc-0123abce</vpcId>")), "more than once"),
        (answer(&format!("{MINIMAL}<groupSet><item><groupId>sg-x</groupId></item></groupSet>")), "not a security group id"),
        (answer(&format!("{MINIMAL}<groupSet><item><groupId>sg-0123abcd</groupId></item><item><groupId>sg-0123abcd</groupId></item></groupSet>")), "listed twice"),
        (answer(&format!("{MINIMAL}<instanceId>i-0123abcd</instanceId>")), "more than once"),
        (answer(&format!("{MINIMAL}<tagSet><item><key>Name</key><value>a\u{7f}b</value></item></tagSet>")), "control"),
        (answer(&format!("{MINIMAL}<tagSet><item><key>Name</key><value>{}</value></item></tagSet>", "x".repeat(257))), "256"),
        (
            format!(
                "<DescribeInstancesResponse><reservationSet><item><instancesSet><item>{MINIMAL}</item><item>{MINIMAL}</item></instancesSet></item></reservationSet></DescribeInstancesResponse>"
            ),
            "2 instances",
        ),
        ("<DescribeInstancesResponse/>".into(), "0 <reservationSet>"),
        (
            "<DescribeInstancesResponse><reservationSet/><reservationSet/></DescribeInstancesResponse>".into(),
            "more than once",
        ),
        (format!("<Other>{MINIMAL}</Other>"), "root"),
        (MOTO[..MOTO.len() - 5].into(), "XML"),
        (MOTO[..MOTO.rfind("</DescribeInstancesResponse>").unwrap()].into(), "cut short"),
        (format!("<!DOCTYPE x>{}", answer(MINIMAL)), "DTD"),
    ];
    for (body, says) in cases {
        let err = parse_instance(ID, body.as_bytes()).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
        assert!(matches!(
            judge(ID, 200, body.as_bytes()),
            Err(Ec2Error::Malformed(_))
        ));
    }
}

#[test]
fn ec2_errors_are_classified() {
    for code in ["InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"] {
        assert_eq!(
            judge(ID, 400, error_answer(code).as_bytes()),
            Ok(None),
            "{code}"
        );
    }
    assert!(matches!(
        judge(ID, 403, error_answer("UnauthorizedOperation").as_bytes()),
        Err(Ec2Error::AccessDenied {
            action: "ec2:DescribeInstances",
            ..
        })
    ));
    assert!(matches!(
        judge(ID, 401, error_answer("AuthFailure").as_bytes()),
        Err(Ec2Error::NoCredentials(_))
    ));
    for (status, body) in [
        (503, error_answer("RequestLimitExceeded")),
        (500, error_answer("InternalError")),
        (502, "<html/>".into()),
        (400, error_answer("InvalidParameterValue")),
    ] {
        assert!(
            matches!(
                judge(ID, status, body.as_bytes()),
                Err(Ec2Error::Unreachable(_))
            ),
            "{status} {body}"
        );
    }
}

#[tokio::test]
async fn a_text_that_is_no_instance_id_is_never_sent() {
    // An endpoint that cannot be reached: a call would be Unreachable, not None.
    let ec2 = offline();
    assert_eq!(
        ec2.instance("i-0123&Action=TerminateInstances").await,
        Ok(None)
    );
    assert!(ec2.instance("i-0123abcd").await.is_err());
}

/// Two reservations, the first with two instances, the second with one whose groups are in
/// its own groupSet and again (another group) in its network interface's.
fn page(token: Option<&str>) -> String {
    let token = token.map_or(String::new(), |t| format!("<nextToken>{t}</nextToken>"));
    format!(
        "<DescribeInstancesResponse><requestId>x</requestId><reservationSet>\
         <item><reservationId>r-1</reservationId><groupSet/><instancesSet>\
         <item><instanceId>i-0123abcd</instanceId><instanceState><name>running</name></instanceState>\
         <tagSet><item><key>Name</key><value>web-1</value></item><item><key>env</key><value>R&amp;D</value></item></tagSet></item>\
         <item><instanceId>i-0123abce</instanceId><instanceState><name>stopped</name></instanceState>\
         <tagSet><item><key>Name</key><value>web-1</value></item></tagSet></item>\
         </instancesSet></item>\
         <item><instancesSet><item><instanceId>i-071a2348550130307</instanceId>\
         <instanceState><name>pending</name></instanceState>\
         <networkInterfaceSet><item><groupSet><item><groupId>sg-00000000</groupId></item></groupSet>\
         <privateIpAddress>10.9.9.9</privateIpAddress><vpcId>vpc-99999999</vpcId></item></networkInterfaceSet>\
         <groupSet><item><groupId>sg-0123abcd</groupId><groupName>ssh</groupName></item>\
         <item><groupId>sg-4fd37a21425b71c4d</groupId></item></groupSet>\
         <vpcId>vpc-2fc22db79a3fb4936</vpcId><privateIpAddress>127.0.0.11</privateIpAddress></item></instancesSet></item>\
         </reservationSet>{token}</DescribeInstancesResponse>"
    )
}

#[test]
fn a_page_reads_every_instance_of_every_reservation_with_its_own_groups_and_vpc() {
    let page = parse_page(page(Some("eyJ2IjoiMiJ9+/=")).as_bytes()).unwrap();
    assert_eq!(page.next_token.as_deref(), Some("eyJ2IjoiMiJ9+/="));
    let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i-0123abcd", "i-0123abce", "i-071a2348550130307"]);
    let names: Vec<Option<&str>> = page.items.iter().map(|i| i.name_tag.as_deref()).collect();
    assert_eq!(names, [Some("web-1"), Some("web-1"), None]);
    let last = &page.items[2];
    assert_eq!(
        last.security_groups,
        ["sg-0123abcd", "sg-4fd37a21425b71c4d"]
    );
    assert_eq!(last.vpc_id.as_deref(), Some("vpc-2fc22db79a3fb4936"));
    assert_eq!(last.private_ip, Some("127.0.0.11".parse().unwrap()));
    assert_eq!(page.items[0].vpc_id, None);
    assert_eq!(
        parse_page(self::page(None).as_bytes()).unwrap().next_token,
        None
    );
}

#[test]
fn one_bad_instance_fails_the_whole_page() {
    let bad = page(None).replace("<name>stopped</name>", "<name>gone</name>");
    assert!(parse_page(bad.as_bytes())
        .unwrap_err()
        .contains("unknown <instanceState>"));
    let two_tokens = page(Some("a")).replace(
        "</reservationSet>",
        "</reservationSet><nextToken>b</nextToken>",
    );
    assert!(parse_page(two_tokens.as_bytes())
        .unwrap_err()
        .contains("nextToken"));
}

#[test]
fn several_instances_for_one_id_or_another_id_are_malformed() {
    assert!(parse_instance("i-0123abcd", page(None).as_bytes())
        .unwrap_err()
        .contains("3 instances"));
}

#[test]
fn pagination_is_bounded_and_never_loops() {
    let mut pages = Pages::default();
    assert_eq!(pages.next(Some("t1".into())), Ok(Some("t1".into())));
    assert_eq!(pages.next(Some("t2".into())), Ok(Some("t2".into())));
    assert!(pages
        .next(Some("t1".into()))
        .unwrap_err()
        .contains("before"));
    assert_eq!(Pages::default().next(None), Ok(None));
    assert_eq!(Pages::default().next(Some(String::new())), Ok(None));
    assert!(Pages::default().next(Some("a b".into())).is_err());
    assert!(Pages::default().next(Some("x".repeat(5000))).is_err());
    let mut many = Pages::default();
    for n in 1..crate::ec2::query::MAX_PAGES {
        assert!(many.next(Some(format!("t{n}"))).unwrap().is_some());
    }
    assert!(many
        .next(Some("last".into()))
        .unwrap_err()
        .contains("more than 50 pages"));
}

#[test]
fn filters_become_exact_form_encoded_ec2_filters() {
    let form = filter_form(&[
        InstanceFilter::Name("web 1&Action=TerminateInstances".into()),
        InstanceFilter::State("running".into()),
        InstanceFilter::PrivateIp("127.0.0.5".parse().unwrap()),
        InstanceFilter::PublicIp("2001:db8::1".parse().unwrap()),
        InstanceFilter::Id("i-0123abcd".into()),
        InstanceFilter::Tag {
            key: "team/ops".into(),
            value: "a*b?c\\d".into(),
        },
    ])
    .unwrap();
    assert_eq!(
        form.as_str(),
        "Action=DescribeInstances&Version=2016-11-15\
         &Filter.1.Name=tag%3AName&Filter.1.Value.1=web+1%26Action%3DTerminateInstances\
         &Filter.2.Name=instance-state-name&Filter.2.Value.1=running\
         &Filter.3.Name=private-ip-address&Filter.3.Value.1=127.0.0.5\
         &Filter.4.Name=ip-address&Filter.4.Value.1=2001%3Adb8%3A%3A1\
         &Filter.5.Name=instance-id&Filter.5.Value.1=i-0123abcd\
         &Filter.6.Name=tag%3Ateam%2Fops&Filter.6.Value.1=a%5C%2Ab%5C%3Fc%5C%5Cd"
    );
    assert_eq!(
        filter_form(&[]).unwrap().as_str(),
        "Action=DescribeInstances&Version=2016-11-15"
    );
}

#[test]
fn filters_no_instance_can_match_are_never_sent() {
    let tag = |key: &str, value: &str| InstanceFilter::Tag {
        key: key.into(),
        value: value.into(),
    };
    for filter in [
        InstanceFilter::Id("i-0123&Action=x".into()),
        InstanceFilter::Name("web\n1".into()),
        InstanceFilter::Name("x".repeat(257)),
        InstanceFilter::State("exploded".into()),
        tag("", "v"),
        tag(&"k".repeat(129), "v"),
        tag("a*", "v"),
        tag("k\u{1b}", "v"),
        tag("k", "\u{0}"),
    ] {
        assert_eq!(
            filter_form(std::slice::from_ref(&filter)),
            None,
            "{filter:?}"
        );
    }
    assert!(filter_form(&[InstanceFilter::Name("é".repeat(256))]).is_some());
}

#[tokio::test]
async fn unmatchable_filters_are_answered_empty_without_a_call() {
    let ec2 = offline();
    assert_eq!(
        ec2.instances(&[InstanceFilter::Id("i-x".into())]).await,
        Ok(vec![])
    );
    // A call would fail: no credentials and nothing listening.
    assert!(ec2
        .instances(&[InstanceFilter::Id("i-0123abcd".into())])
        .await
        .is_err());
}

#[test]
fn a_pretty_printed_answer_reads_the_same() {
    let compact = page(Some("t"));
    let pretty = compact.replace("><", ">\n    <");
    let read = |body: &str| {
        let page = parse_page(body.as_bytes()).unwrap();
        (page.items, page.next_token)
    };
    assert_eq!(read(&pretty), read(&compact));
}
