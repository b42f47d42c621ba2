use super::*;
use crate::ec2::query::testing::error_answer;

#[test]
fn values_are_form_encoded_so_they_cannot_add_parameters() {
    let mut form = Form::new(action!("DescribeInstances"));
    form.add("Filter.1.Value.1", "a b&Action=x=y+z/é~_.-");
    assert_eq!(
        form.as_str(),
        "Action=DescribeInstances&Version=2016-11-15\
         &Filter.1.Value.1=a+b%26Action%3Dx%3Dy%2Bz%2F%C3%A9~_.-"
    );
}

#[test]
fn resource_ids_have_ec2s_shape() {
    use crate::ec2::is_resource_id;
    assert!(is_resource_id("sg", "sg-0123abcd"));
    assert!(is_resource_id("sgr", "sgr-0123456789abcdef0"));
    assert!(is_resource_id("vpc", "vpc-2fc22db79a3fb4936"));
    for bad in [
        "sg-",
        "sgr-0123abcd",
        "sg-0123ABCD",
        "sg-0123abc",
        "sg0123abcd",
        "sg-0123abcd&x",
    ] {
        assert!(!is_resource_id("sg", bad), "{bad}");
    }
}

#[test]
fn references_are_decoded_and_unknown_ones_refused() {
    assert_eq!(unescape("plain").unwrap(), "plain");
    assert_eq!(
        unescape("R&amp;D &lt;x&gt; &quot;&apos; &#65;&#x42;").unwrap(),
        "R&D <x> \"' AB"
    );
    for bad in ["&nbsp;", "a & b", "&#xD800;", "&#;", "&amp"] {
        assert!(unescape(bad).is_err(), "{bad}");
    }
}

const SHAPE: Shape<'static> = Shape {
    root: "R",
    item: &["set", "item"],
    fields: &[&["id"], &["deep", "item", "v"]],
    top: &["nextToken"],
};

#[test]
fn a_list_is_read_at_the_exact_paths_only() {
    let body = "<R><set><item><id>a</id><deep><item><v>1</v></item><item><v>2</v></item></deep>\
                <other><id>ignored</id></other><tagSet><item><key>k</key><value>v</value></item>\
                <item><key>e</key><value/></item></tagSet><x><tagSet><item><key>k</key></item></tagSet></x></item>\
                <item><id/></item></set><nextToken>t</nextToken><item><id>outside</id></item></R>";
    let list = read_list(body.as_bytes(), &SHAPE).unwrap();
    assert_eq!(list.lists, 1);
    assert_eq!(list.items.len(), 2);
    assert_eq!(
        list.items[0].fields,
        [vec!["a".to_owned()], vec!["1".into(), "2".into()]]
    );
    assert_eq!(
        list.items[0].tags,
        [
            ("k".to_owned(), "v".to_owned()),
            ("e".into(), String::new())
        ]
    );
    assert_eq!(list.items[1].one(0, "id"), Ok(None));
    assert!(list.items[1].required(0, "id").is_err());
    assert_eq!(list.top_one(0, "nextToken"), Ok(Some("t")));
    let empty = read_list(b"<R/>", &SHAPE).unwrap();
    assert_eq!((empty.lists, empty.items.len()), (0, 0));
}

#[test]
fn a_bad_list_is_an_error() {
    for (body, says) in [
        ("<R><set/><set/></R>", "more than once"),
        ("<R><set><item><id>a&#1;</id></item></set></R>", "control"),
        ("<R><set><item><id>a\u{7f}</id></item></set></R>", "control"),
        (
            "<R><set><item><tagSet><item><key>k</key><key>k</key></item></tagSet></item></set></R>",
            "exactly one key",
        ),
        (
            "<R><set><item><tagSet><item><key/><value/></item></tagSet></item></set></R>",
            "empty or repeated",
        ),
        ("<Q/>", "root"),
        ("<R><set>", "cut short"),
    ] {
        let err = read_list(body.as_bytes(), &SHAPE).unwrap_err();
        assert!(err.contains(says), "{body}: {err}");
    }
}

#[test]
fn refusals_name_the_action_and_keep_the_code() {
    let authorize = action!("AuthorizeSecurityGroupIngress");
    let denied = refusal(
        authorize,
        403,
        error_answer("UnauthorizedOperation").as_bytes(),
    );
    assert_eq!(denied.code.as_deref(), Some("UnauthorizedOperation"));
    assert!(matches!(
        denied.error,
        Ec2Error::AccessDenied {
            action: "ec2:AuthorizeSecurityGroupIngress",
            ..
        }
    ));
    assert!(matches!(
        refusal(authorize, 403, b"<html/>").error,
        Ec2Error::AccessDenied { .. }
    ));
    let duplicate = refusal(
        authorize,
        400,
        error_answer("InvalidPermission.Duplicate").as_bytes(),
    );
    assert_eq!(
        duplicate.code.as_deref(),
        Some("InvalidPermission.Duplicate")
    );
    assert!(matches!(
        refusal(authorize, 401, error_answer("AuthFailure").as_bytes()).error,
        Ec2Error::NoCredentials(_)
    ));
    assert!(matches!(
        refusal(
            authorize,
            503,
            error_answer("RequestLimitExceeded").as_bytes()
        )
        .error,
        Ec2Error::Unreachable(_)
    ));
}
