//! Is an IAM answer whole? The check every successful IAM read passes before keyward acts on it.
//!
//! aws-sdk-iam fills a required member that is missing from a 200 answer with a default (an
//! empty list, `false`, an empty string) and reads a body cut in the middle up to the cut. An
//! answer "ListGroups: no groups" made `sync` delete groups; "GetGroup: no members" planned to
//! lock everyone. So the raw body of each read is checked here first: it must be one complete,
//! well-formed XML document, `<{Op}Response><{Op}Result>` must hold every element keyward reads
//! (list elements may be empty: `<Users/>` is a valid "none"), and each list member and
//! struct must hold the fields keyward reads (a member without `<UserId>` would become the
//! UserId ""). A failed check is an outage (`IamError::Unreachable`), never a smaller truth.
//!
//! `IsTruncated`: IAM sends it in every paginated answer, but moto (the emulator every test runs
//! against) omits it from complete ListGroups, GetGroup and ListSSHPublicKeys answers, and the
//! IAM model gives it a default (false) rather than marking it required. So an answer without it
//! is complete only when it has no `<Marker>` either; a Marker without IsTruncated (the flag of a
//! partial page lost) is malformed. A truncated answer without a Marker is refused later by the
//! pagination loop (`next_page`).
//!
//! Pure: bytes in, verdict out. Never panics on any input.

use std::fmt;

/// What an IAM answer lacks, or why it cannot be read; an outage for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub operation: String,
    pub problem: String,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IAM answered {} with {}: a malformed answer is treated as no answer",
            self.operation, self.problem
        )
    }
}

impl std::error::Error for Malformed {}

/// The shape of one element of an answer that keyward reads.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// A list: each `<member>` must hold these children.
    List(&'static [&'static str]),
    /// A structure that must hold these children.
    Struct(&'static [&'static str]),
    /// IsTruncated: see the module doc.
    Flag,
}

const USER: &[&str] = &["UserName", "UserId"];
const GROUP: &[&str] = &["GroupName", "GroupId"];
const KEY_META: &[&str] = &["SSHPublicKeyId", "Status", "UploadDate"];
const KEY: &[&str] = &["SSHPublicKeyId", "SSHPublicKeyBody", "Status"];
const INSTANCE_PROFILE: &[&str] = &["InstanceProfileName", "Arn", "Roles"];

/// The elements of each checked operation's `<{Op}Result>` that keyward reads. Operations not
/// listed (the writes) are not checked.
fn required(operation: &str) -> Option<&'static [(&'static str, Shape)]> {
    use Shape::*;
    Some(match operation {
        "ListGroups" => &[("Groups", List(GROUP)), ("IsTruncated", Flag)],
        "GetGroup" => &[
            ("Group", Struct(GROUP)),
            ("Users", List(USER)),
            ("IsTruncated", Flag),
        ],
        "ListUsers" => &[("Users", List(USER)), ("IsTruncated", Flag)],
        "ListGroupsForUser" => &[("Groups", List(GROUP)), ("IsTruncated", Flag)],
        "ListSSHPublicKeys" => &[("SSHPublicKeys", List(KEY_META)), ("IsTruncated", Flag)],
        "GetUser" => &[("User", Struct(USER))],
        "GetSSHPublicKey" => &[("SSHPublicKey", Struct(KEY))],
        "GetInstanceProfile" => &[("InstanceProfile", Struct(INSTANCE_PROFILE))],
        _ => return None,
    })
}

/// Whether `operation`'s answers are checked at all.
pub fn is_checked(operation: &str) -> bool {
    required(operation).is_some()
}

/// What the successful answer `body` to `operation` lacks, if anything; `None` for a whole
/// answer and for operations that are not checked.
pub fn missing_required(operation: &str, body: &[u8]) -> Option<Malformed> {
    let spec = required(operation)?;
    let bad = |problem: String| {
        Some(Malformed {
            operation: operation.to_owned(),
            problem,
        })
    };
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => return bad("a body that is not UTF-8".into()),
    };
    let outline = match Outline::read(text, &format!("{operation}Result"), spec) {
        Ok(o) => o,
        Err(why) => return bad(why),
    };
    if outline.root.as_deref() != Some(&format!("{operation}Response")) {
        return bad(format!(
            "a body whose root is not <{operation}Response> but {}",
            outline
                .root
                .as_deref()
                .map_or("nothing".into(), |r| format!("<{r}>"))
        ));
    }
    if !outline.result_seen {
        return bad(format!("no <{operation}Result> element"));
    }
    let marker = outline.children.iter().any(|c| c.name == "Marker");
    for (element, shape) in spec {
        let found: Vec<&Child> = outline
            .children
            .iter()
            .filter(|c| c.name == *element)
            .collect();
        if found.len() > 1 {
            return bad(format!("<{element}> more than once"));
        }
        let Some(child) = found.first() else {
            if matches!(shape, Shape::Flag) && !marker {
                continue;
            }
            return bad(format!("no <{element}> element"));
        };
        match shape {
            Shape::List(fields) => {
                for (i, member) in child.members.iter().enumerate() {
                    if let Some(f) = fields.iter().find(|f| !member.contains(&f.to_string())) {
                        return bad(format!("<{element}> member {} without <{f}>", i + 1));
                    }
                }
            }
            Shape::Struct(fields) => {
                if let Some(f) = fields
                    .iter()
                    .find(|f| !child.fields.contains(&f.to_string()))
                {
                    return bad(format!("<{element}> without <{f}>"));
                }
            }
            Shape::Flag => {
                if !matches!(child.text.trim(), "true" | "false") {
                    return bad(format!("<{element}> that is neither true nor false"));
                }
            }
        }
    }
    None
}

/// One direct child of the Result element, with what the checks need of it.
#[derive(Debug, Default)]
struct Child {
    name: String,
    /// Its direct children (for a structure).
    fields: Vec<String>,
    /// The direct children of each of its `<member>`s (for a list).
    members: Vec<Vec<String>>,
    /// Its text (for a flag).
    text: String,
}

#[derive(Debug, Default)]
struct Outline {
    root: Option<String>,
    result_seen: bool,
    children: Vec<Child>,
}

impl Outline {
    /// Tokenizes the whole document (a tag inside a text value or a CDATA section is text, not
    /// a tag) and records the root, the Result element's children and their children. Errors:
    /// not well-formed, cut short, more than one root, or a DTD (IAM never sends one).
    fn read(text: &str, result: &str, spec: &[(&str, Shape)]) -> Result<Outline, String> {
        use xmlparser::{ElementEnd, Token};
        let mut out = Outline::default();
        // Local names of the open elements, root first.
        let mut open: Vec<&str> = Vec::new();
        let mut root_closed = false;
        // Whether the open elements at depth 1..=3 are the Result, a checked child, a member.
        let in_result = |open: &[&str]| open.len() >= 2 && open[1] == result;
        for token in xmlparser::Tokenizer::from(text) {
            let token = token.map_err(|e| format!("a body that is not well-formed XML ({e})"))?;
            match token {
                Token::ElementStart { local, .. } => {
                    let local = local.as_str();
                    if root_closed {
                        return Err("a body with more than one root element".into());
                    }
                    match open.len() {
                        0 => out.root = Some(local.to_owned()),
                        1 if local == result => out.result_seen = true,
                        2 if in_result(&open) => out.children.push(Child {
                            name: local.to_owned(),
                            ..Child::default()
                        }),
                        3 if in_result(&open) => {
                            if let Some(child) = out.children.last_mut() {
                                if local == "member" {
                                    child.members.push(Vec::new());
                                }
                                child.fields.push(local.to_owned());
                            }
                        }
                        4 if in_result(&open) && open[3] == "member" => {
                            if let Some(member) =
                                out.children.last_mut().and_then(|c| c.members.last_mut())
                            {
                                member.push(local.to_owned());
                            }
                        }
                        _ => {}
                    }
                    open.push(local);
                }
                Token::ElementEnd { end, .. } => match end {
                    ElementEnd::Open => {}
                    ElementEnd::Empty => {
                        open.pop();
                    }
                    ElementEnd::Close(_, local) => match open.pop() {
                        Some(name) if name == local.as_str() => {}
                        _ => {
                            return Err(format!(
                                "a body that is not well-formed XML (unexpected </{}>)",
                                local.as_str()
                            ))
                        }
                    },
                },
                Token::Text { text } | Token::Cdata { text, .. }
                    if open.len() == 3 && in_result(&open) =>
                {
                    let flag = spec
                        .iter()
                        .any(|(name, shape)| *name == open[2] && matches!(shape, Shape::Flag));
                    if let (true, Some(child)) = (flag, out.children.last_mut()) {
                        child.text.push_str(text.as_str());
                    }
                }
                Token::DtdStart { .. }
                | Token::EmptyDtd { .. }
                | Token::EntityDeclaration { .. } => return Err("a body with a DTD".into()),
                _ => {}
            }
            if out.root.is_some() && open.is_empty() {
                root_closed = true;
            }
        }
        if let Some(unclosed) = open.last() {
            return Err(format!("a body cut short (<{unclosed}> is never closed)"));
        }
        if out.root.is_none() {
            return Err("an empty body".into());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = r#" xmlns="https://iam.amazonaws.com/doc/2010-05-08/""#;

    fn answer(op: &str, result: &str) -> String {
        format!(
            "<{op}Response{NS}><{op}Result>{result}</{op}Result>\
             <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{op}Response>"
        )
    }

    fn problem(op: &str, result: &str) -> Option<String> {
        missing_required(op, answer(op, result).as_bytes()).map(|m| m.problem)
    }

    const ALICE: &str = "<member><Path>/</Path><UserName>alice</UserName><UserId>AIDA1</UserId>\
                         <Arn>arn:aws:iam::1:user/alice</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate></member>";
    const OPS: &str = "<Path>/</Path><GroupName>ops</GroupName><GroupId>AGPA1</GroupId>\
                       <Arn>arn:aws:iam::1:group/ops</Arn><CreateDate>2026-01-01T00:00:00Z</CreateDate>";

    #[test]
    fn whole_answers_pass_including_empty_lists() {
        let group = format!("<Group>{OPS}</Group>");
        for (op, result) in [
            ("GetGroup", format!("{group}<Users>{ALICE}</Users><IsTruncated>false</IsTruncated>")),
            ("GetGroup", format!("{group}<Users/>")),
            ("GetGroup", format!("{group}<Users></Users>")),
            ("ListGroups", "<Groups/>".to_owned()),
            ("ListGroups", format!("<Groups><member>{OPS}</member></Groups>")),
            ("ListUsers", format!("<Users>{ALICE}</Users><IsTruncated>false</IsTruncated>")),
            (
                "ListUsers",
                format!("<Users>{ALICE}</Users><IsTruncated>true</IsTruncated><Marker>m</Marker>"),
            ),
            ("ListGroupsForUser", "<Groups/><IsTruncated>false</IsTruncated>".to_owned()),
            ("ListSSHPublicKeys", "<SSHPublicKeys/>".to_owned()),
            (
                "ListSSHPublicKeys",
                "<SSHPublicKeys><member><UserName>alice</UserName><SSHPublicKeyId>APKA1</SSHPublicKeyId>\
                 <Status>Active</Status><UploadDate>2026-01-01T00:00:00Z</UploadDate></member></SSHPublicKeys>"
                    .to_owned(),
            ),
            (
                "GetUser",
                "<User><UserName>alice</UserName><UserId>AIDA1</UserId></User>".to_owned(),
            ),
            (
                "GetSSHPublicKey",
                "<SSHPublicKey><SSHPublicKeyId>APKA1</SSHPublicKeyId><Status>Active</Status>\
                 <SSHPublicKeyBody>ssh-ed25519 AAAA</SSHPublicKeyBody></SSHPublicKey>"
                    .to_owned(),
            ),
        ] {
            assert_eq!(problem(op, &result), None, "{op}: {result}");
        }
    }

    #[test]
    fn h2_absent_required_elements_are_named() {
        let group = format!("<Group>{OPS}</Group>");
        for (op, result, missing) in [
            ("ListGroups", String::new(), "no <Groups> element"),
            ("GetGroup", "<Users/>".into(), "no <Group> element"),
            ("GetGroup", group.clone(), "no <Users> element"),
            (
                "ListUsers",
                "<IsTruncated>false</IsTruncated>".into(),
                "no <Users> element",
            ),
            ("ListGroupsForUser", String::new(), "no <Groups> element"),
            (
                "ListSSHPublicKeys",
                String::new(),
                "no <SSHPublicKeys> element",
            ),
            ("GetUser", String::new(), "no <User> element"),
            (
                "GetSSHPublicKey",
                String::new(),
                "no <SSHPublicKey> element",
            ),
        ] {
            assert_eq!(
                problem(op, &result).as_deref(),
                Some(missing),
                "{op}: {result}"
            );
        }
    }

    #[test]
    fn h2_members_and_structs_without_the_fields_keyward_reads_are_malformed() {
        assert_eq!(
            problem(
                "GetGroup",
                &format!(
                    "<Group>{OPS}</Group><Users><member><UserName>a</UserName></member></Users>"
                )
            )
            .as_deref(),
            Some("<Users> member 1 without <UserId>")
        );
        assert_eq!(
            problem(
                "GetGroup",
                "<Group><GroupName>ops</GroupName></Group><Users/>"
            )
            .as_deref(),
            Some("<Group> without <GroupId>")
        );
        assert_eq!(
            problem(
                "ListSSHPublicKeys",
                "<SSHPublicKeys><member><SSHPublicKeyId>APKA1</SSHPublicKeyId>\
                 <UploadDate>2026-01-01T00:00:00Z</UploadDate></member></SSHPublicKeys>"
            )
            .as_deref(),
            Some("<SSHPublicKeys> member 1 without <Status>")
        );
        assert_eq!(
            problem("GetUser", "<User><UserName>alice</UserName></User>").as_deref(),
            Some("<User> without <UserId>")
        );
    }

    #[test]
    fn h2_is_truncated_may_be_absent_only_without_a_marker() {
        assert_eq!(problem("ListGroups", "<Groups/>"), None);
        assert_eq!(
            problem("ListGroups", "<Groups/><Marker>m</Marker>").as_deref(),
            Some("no <IsTruncated> element")
        );
        assert_eq!(
            problem("ListUsers", "<Users/><IsTruncated>maybe</IsTruncated>").as_deref(),
            Some("<IsTruncated> that is neither true nor false")
        );
    }

    #[test]
    fn h2_a_tag_inside_a_text_value_or_elsewhere_does_not_count() {
        // Escaped markup in a value, CDATA, a comment, a deeper element: none is the list.
        for result in [
            "<Marker>&lt;Groups/&gt;</Marker>",
            "<Marker><![CDATA[<Groups/>]]></Marker>",
            "<!-- <Groups/> -->",
            "<Other><Groups/></Other>",
        ] {
            assert_eq!(
                problem(
                    "ListGroups",
                    &format!("{result}<IsTruncated>false</IsTruncated>")
                )
                .as_deref(),
                Some("no <Groups> element"),
                "{result}"
            );
        }
        // Outside the Result element (in ResponseMetadata) it does not count either.
        let body = "<ListGroupsResponse><ListGroupsResult/><ResponseMetadata><Groups/></ResponseMetadata></ListGroupsResponse>";
        assert_eq!(
            missing_required("ListGroups", body.as_bytes())
                .map(|m| m.problem)
                .as_deref(),
            Some("no <Groups> element")
        );
    }

    #[test]
    fn h2_bodies_cut_short_or_not_xml_are_malformed() {
        let whole = answer(
            "GetGroup",
            &format!("<Group>{OPS}</Group><Users>{ALICE}{ALICE}</Users>"),
        );
        for cut in 1..whole.len() {
            let Some(prefix) = whole.get(..cut) else {
                continue;
            };
            assert!(
                missing_required("GetGroup", prefix.as_bytes()).is_some(),
                "accepted a body cut at {cut}: {prefix}"
            );
        }
        assert!(missing_required("GetGroup", whole.as_bytes()).is_none());
        for bad in [
            &b""[..],
            b"not xml",
            b"\xff\xfe",
            b"<GetGroupResponse></GetGroupResult>",
            b"<!DOCTYPE x [<!ENTITY a 'b'>]><GetGroupResponse/>",
        ] {
            assert!(missing_required("GetGroup", bad).is_some(), "{bad:?}");
        }
        let two_roots = format!("{whole}{whole}");
        assert!(missing_required("GetGroup", two_roots.as_bytes()).is_some());
        // Some other operation's answer is not this one's.
        assert!(missing_required("ListGroups", whole.as_bytes()).is_some());
    }

    #[test]
    fn an_instance_profile_without_its_roles_is_malformed() {
        let profile = "<InstanceProfileName>web</InstanceProfileName>\
                       <Arn>arn:aws:iam::1:instance-profile/web</Arn>";
        let whole = format!(
            "<InstanceProfile>{profile}<Roles><member><RoleName>web-host</RoleName></member>\
             </Roles></InstanceProfile>"
        );
        assert_eq!(problem("GetInstanceProfile", &whole), None);
        assert_eq!(
            problem(
                "GetInstanceProfile",
                &format!("<InstanceProfile>{profile}</InstanceProfile>")
            )
            .as_deref(),
            Some("<InstanceProfile> without <Roles>")
        );
        assert_eq!(
            problem("GetInstanceProfile", "").as_deref(),
            Some("no <InstanceProfile> element")
        );
    }

    #[test]
    fn writes_and_unknown_operations_are_not_checked() {
        assert!(missing_required("UploadSSHPublicKey", b"").is_none());
        assert!(!is_checked("DeleteSSHPublicKey"));
        assert!(is_checked("GetGroup"));
    }
}
