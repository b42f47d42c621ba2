//! The production EC2 adapter: EC2's Query API spoken directly (a SigV4-signed form POST,
//! service `ec2`, answers in XML). This module holds what every action shares: building the
//! form, signing and sending it, classifying refusals, following `NextToken`, and one strict
//! reader of list answers. [`instances`] (DescribeInstances) and [`groups`] (security groups and
//! their ingress rules) build on it.
//!
//! Invariants (with those of [`crate::ec2`]):
//! - Every parameter name and value is form-encoded by [`Form`] (only RFC 3986 unreserved
//!   characters stay as they are), so no value can add a parameter or change the action.
//! - An answer is read whole before anything is used: the document must be complete and well
//!   formed with the expected root; a field read as one value must appear at most once; every
//!   text is decoded (the five XML entities and character references, nothing else) and may
//!   hold no control character. A failed check fails the whole call, never yields a partial
//!   list.
//! - Only the elements at the exact paths asked for are read: deeper copies (a network
//!   interface's `privateIpAddress`, its `groupSet`) are ignored.
//! - Pagination is bounded ([`MAX_PAGES`]); a token that repeats or is not plain printable
//!   ASCII is an error, never a loop.
//! - Denied access names the IAM action of the call; rejected credentials are `NoCredentials`;
//!   throttling, 5xx and unknown refusals are `Unreachable` (EC2 said nothing about the thing).

pub mod groups;
pub mod instances;

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::Ec2Error;
use crate::http::{self, HttpError, Target};
use crate::sigv4::{self, walk_answer, AwsContext, SignError, Signer, Xml};

pub use instances::{judge, parse_instance};

/// An answer page is at most [`MAX_ANSWER_BYTES`]; a DescribeInstances page of
/// [`DEFAULT_PAGE_SIZE`] instances of a few KB each fits.
pub const MAX_ANSWER_BYTES: usize = 2 * 1024 * 1024;
/// The bound on each call when the options set none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// `MaxResults` of a paginated describe call.
pub const DEFAULT_PAGE_SIZE: u16 = 200;
/// More pages than this is refused: 10,000 instances or rules at the default page size.
pub const MAX_PAGES: usize = 50;
/// The longest `NextToken` followed.
pub const MAX_TOKEN_LEN: usize = 4096;
const API_VERSION: &str = "2016-11-15";
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// One Query API action and the IAM action that allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    pub name: &'static str,
    pub iam: &'static str,
}

macro_rules! action {
    ($name:literal) => {
        $crate::ec2::query::Action {
            name: $name,
            iam: concat!("ec2:", $name),
        }
    };
}
pub(crate) use action;

/// A Query API request body: `Action`, `Version`, then parameters in the order added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    body: String,
}

impl Form {
    pub fn new(action: Action) -> Form {
        let mut form = Form {
            body: String::new(),
        };
        form.add("Action", action.name).add("Version", API_VERSION);
        form
    }

    /// Adds `name=value`, both form-encoded.
    pub fn add(&mut self, name: &str, value: &str) -> &mut Form {
        if !self.body.is_empty() {
            self.body.push('&');
        }
        form_encode(name, &mut self.body);
        self.body.push('=');
        form_encode(value, &mut self.body);
        self
    }

    pub fn as_str(&self) -> &str {
        &self.body
    }
}

/// Appends `text` form-encoded as botocore and the AWS CLI write it (Python's `quote_plus`):
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) as they are, a space as `+`, every other byte
/// of the UTF-8 as `%XX`. (moto checks a signature over the form it re-encodes this way.)
pub fn form_encode(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// `value` as an exact EC2 filter value: the wildcards `*` and `?` and the escape `\` itself
/// escaped with `\`.
pub fn exact_filter_value(value: &str) -> String {
    let mut exact = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '*' | '?' | '\\') {
            exact.push('\\');
        }
        exact.push(c);
    }
    exact
}

/// EC2's longest tag key and value, in characters.
pub const MAX_TAG_KEY: usize = 128;
pub const MAX_TAG_VALUE: usize = 256;

/// Why EC2 could hold no tag key `key`: 1 to 128 characters, no control character.
pub fn check_tag_key(key: &str) -> Result<(), String> {
    if !(1..=MAX_TAG_KEY).contains(&key.chars().count()) {
        return Err(format!("a tag key must be 1 to {MAX_TAG_KEY} characters"));
    }
    if key.chars().any(char::is_control) {
        return Err("a tag key with a control character".into());
    }
    Ok(())
}

/// Why EC2 could hold no tag value `value`: at most 256 characters, no control character.
pub fn check_tag_value(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_TAG_VALUE {
        return Err(format!("a tag value over {MAX_TAG_VALUE} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("a tag value with a control character".into());
    }
    Ok(())
}

/// EC2 in one region, through the standard credential chain. Keep it within one tokio runtime:
/// it pools connections.
#[derive(Clone)]
pub struct AwsEc2 {
    aws: AwsContext,
    region: String,
    endpoint: Target,
    timeout: Duration,
    page_size: u16,
    client: http::Client,
}

impl AwsEc2 {
    /// Region, credentials and endpoint (`AWS_ENDPOINT_URL_EC2`, `AWS_ENDPOINT_URL`, else
    /// `https://ec2.{region}.amazonaws.com`) as keyward's SDK clients find them.
    pub async fn new(options: &crate::iam::ClientOptions) -> Result<AwsEc2, Ec2Error> {
        AwsEc2::from_config(crate::iam::sdk_config(options).await, options)
    }

    /// A client from an SDK config already loaded with `options` (the issuer loads one for
    /// KMS, IAM and EC2).
    pub fn from_config(
        shared: aws_config::SdkConfig,
        options: &crate::iam::ClientOptions,
    ) -> Result<AwsEc2, Ec2Error> {
        AwsEc2::from_context(
            AwsContext::from_config(shared),
            options.timeout.unwrap_or(DEFAULT_TIMEOUT),
        )
    }

    pub fn from_context(aws: AwsContext, timeout: Duration) -> Result<AwsEc2, Ec2Error> {
        let setup = |e: String| Ec2Error::NoCredentials(e);
        let region = aws
            .region()
            .ok_or_else(|| setup(SignError::NoRegion.to_string()))?
            .to_owned();
        let url = aws
            .endpoint("EC2", "ec2")
            .map_err(|e| setup(e.to_string()))?;
        let endpoint = Target::parse(&url).map_err(|e| setup(format!("EC2 endpoint: {e}")))?;
        let client = http::Client::new().map_err(|e| Ec2Error::Unreachable(e.to_string()))?;
        Ok(AwsEc2 {
            aws,
            region,
            endpoint,
            timeout,
            page_size: DEFAULT_PAGE_SIZE,
            client,
        })
    }

    /// Asks for pages of `size` (5 to 1000) items: smaller pages for tests of pagination.
    pub fn with_page_size(mut self, size: u16) -> AwsEc2 {
        self.page_size = size.clamp(5, 1000);
        self
    }

    pub fn endpoint(&self) -> &Target {
        &self.endpoint
    }

    /// Signs and sends `form`; any HTTP answer is returned, whatever its status.
    async fn send(&self, form: &Form) -> Result<http::Response, Ec2Error> {
        let credentials = self
            .aws
            .credentials()
            .await
            .map_err(|e| Ec2Error::NoCredentials(e.to_string()))?;
        let body = form.as_str().as_bytes();
        let signer = Signer {
            credentials: &credentials,
            region: &self.region,
            service: "ec2",
            now: SystemTime::now(),
        };
        let content_type = ("content-type", CONTENT_TYPE);
        let signed = sigv4::sign_request(&signer, "POST", &self.endpoint, &[content_type], body)
            .map_err(|e| Ec2Error::NoCredentials(e.to_string()))?;
        let mut headers = vec![content_type];
        headers.extend(signed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        self.client
            .send(
                ::http::Method::POST,
                &self.endpoint,
                &headers,
                body,
                self.timeout,
                MAX_ANSWER_BYTES,
            )
            .await
            .map_err(|e: HttpError| Ec2Error::Unreachable(e.to_string()))
    }

    /// Sends `form` and gives the body of a 200 answer, or the refusal.
    async fn call(&self, action: Action, form: &Form) -> Result<Vec<u8>, Refusal> {
        let answer = self.send(form).await.map_err(Refusal::from)?;
        if answer.status == 200 {
            Ok(answer.body)
        } else {
            Err(refusal(action, answer.status, &answer.body))
        }
    }

    /// Every page of a describe call: `form` with `MaxResults` (when `paged`) and each
    /// `NextToken` EC2 gives; `read` turns one page's body into its items and next token.
    async fn all_pages<T>(
        &self,
        action: Action,
        form: &Form,
        paged: bool,
        read: impl Fn(&[u8]) -> Result<Page<T>, String>,
    ) -> Result<Vec<T>, Refusal> {
        let mut pages = Pages::default();
        let mut token: Option<String> = None;
        let mut all = Vec::new();
        loop {
            let mut page_form = form.clone();
            if paged {
                page_form.add("MaxResults", &self.page_size.to_string());
            }
            if let Some(t) = &token {
                page_form.add("NextToken", t);
            }
            let body = self.call(action, &page_form).await?;
            let page = read(&body).map_err(|e| Refusal::from(Ec2Error::Malformed(e)))?;
            all.extend(page.items);
            token = pages
                .next(page.next_token)
                .map_err(|e| Refusal::from(Ec2Error::Malformed(e)))?;
            if token.is_none() {
                return Ok(all);
            }
        }
    }
}

/// An error naming the first id that `items` hold twice (across the pages of one answer).
pub fn each_once<'a, T>(items: &'a [T], id: impl Fn(&'a T) -> &'a str) -> Result<(), Ec2Error> {
    let mut seen = HashSet::new();
    match items.iter().map(id).find(|i| !seen.insert(*i)) {
        Some(again) => Err(Ec2Error::Malformed(format!("{again} listed twice"))),
        None => Ok(()),
    }
}

/// One page of a describe answer.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// The pagination guard: counts pages and remembers tokens.
#[derive(Debug, Default)]
pub struct Pages {
    count: usize,
    seen: HashSet<String>,
}

impl Pages {
    /// After a page that named `token` as the next: the token to ask with, `None` when done.
    pub fn next(&mut self, token: Option<String>) -> Result<Option<String>, String> {
        self.count += 1;
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(None);
        };
        if token.len() > MAX_TOKEN_LEN || !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("a <nextToken> that is not plain printable ASCII".into());
        }
        if self.count >= MAX_PAGES {
            return Err(format!("more than {MAX_PAGES} pages"));
        }
        if !self.seen.insert(token.clone()) {
            return Err("a <nextToken> given before (pagination would loop)".into());
        }
        Ok(Some(token))
    }
}

/// Why a call failed: the EC2 error code (for the action's own mapping) and the general error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Option<String>,
    pub error: Ec2Error,
}

impl From<Ec2Error> for Refusal {
    fn from(error: Ec2Error) -> Refusal {
        Refusal { code: None, error }
    }
}

/// What a non-200 answer to `action` means in general; the action maps its own codes
/// (not-found, duplicate) from [`Refusal::code`].
pub fn refusal(action: Action, status: u16, body: &[u8]) -> Refusal {
    let code = sigv4::error_code(body);
    let code_text = code.as_deref().unwrap_or("no error code");
    let message = format!("HTTP {status}, {code_text}");
    let error = match code.as_deref() {
        Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => {
            Ec2Error::AccessDenied {
                action: action.iam,
                message,
            }
        }
        Some(
            "AuthFailure"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "RequestExpired"
            | "MissingAuthenticationToken"
            | "OptInRequired",
        ) => Ec2Error::NoCredentials(format!("EC2 rejected the credentials ({message})")),
        None if status == 403 => Ec2Error::AccessDenied {
            action: action.iam,
            message,
        },
        // Throttling, 5xx, and any other refusal: EC2 said nothing about the thing asked for.
        _ => Ec2Error::Unreachable(message),
    };
    Refusal { code, error }
}

/// What [`read_list`] looks for in an answer.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The root element, e.g. `DescribeInstancesResponse`.
    pub root: &'a str,
    /// The path below the root to each item, e.g. `reservationSet/item/instancesSet/item`
    /// (empty: no list). Its first element (the list) may appear at most once.
    pub item: &'a [&'a str],
    /// Paths below an item whose texts are read (each occurrence is one value).
    pub fields: &'a [&'a [&'a str]],
    /// Children of the root whose texts are read (`nextToken`, `return`).
    pub top: &'a [&'a str],
}

/// One item of a list: the texts of each of [`Shape::fields`] (in order) and its
/// `tagSet/item` key-value pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    pub fields: Vec<Vec<String>>,
    pub tags: Vec<(String, String)>,
}

impl Item {
    /// The field's only value: `None` when absent or empty, an error when repeated.
    pub fn one(&self, field: usize, name: &str) -> Result<Option<&str>, String> {
        one(&self.fields[field], name)
    }

    /// The field's value, which must be there.
    pub fn required(&self, field: usize, name: &str) -> Result<&str, String> {
        self.one(field, name)?
            .ok_or_else(|| format!("an item without <{name}>"))
    }

    /// The value of tag `key`, if the item has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A list answer read by [`read_list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    /// How many times the list element appeared (0 or 1).
    pub lists: usize,
    pub items: Vec<Item>,
    /// The texts of each of [`Shape::top`].
    pub top: Vec<Vec<String>>,
}

impl List {
    /// The top field's only value, as [`Item::one`].
    pub fn top_one(&self, field: usize, name: &str) -> Result<Option<&str>, String> {
        one(&self.top[field], name)
    }
}

fn one<'v>(values: &'v [String], name: &str) -> Result<Option<&'v str>, String> {
    match values {
        [] => Ok(None),
        [v] if v.is_empty() => Ok(None),
        [v] => Ok(Some(v)),
        _ => Err(format!("<{name}> more than once")),
    }
}

/// Reads a whole answer of `shape` from `body`. Errors describe the document, never quote it.
pub fn read_list(body: &[u8], shape: &Shape<'_>) -> Result<List, String> {
    let text = std::str::from_utf8(body).map_err(|_| "a body that is not UTF-8".to_owned())?;
    let mut list = List {
        top: vec![Vec::new(); shape.top.len()],
        ..List::default()
    };
    // The tag item being read: its keys and values (each must appear once).
    let mut tag: Option<(Vec<String>, Vec<String>)> = None;
    let depth = shape.item.len();
    walk_answer(text, shape.root, |step| {
        let (path, text) = match step {
            Xml::Start { path } | Xml::End { path } => (path, None),
            Xml::Text { path, text } => (path, Some(text)),
        };
        let rel = path.get(1..).unwrap_or_default();
        let start = matches!(step, Xml::Start { .. });
        let end = matches!(step, Xml::End { .. });
        if start && rel.len() == 1 && shape.item.first() == rel.first() {
            list.lists += 1;
            if list.lists > 1 {
                return Err(format!("<{}> more than once", rel[0]));
            }
        }
        if let [name] = rel {
            if let Some(i) = shape.top.iter().position(|t| t == name) {
                record(&mut list.top[i], start, text)?;
            }
        }
        if depth == 0 || rel.len() < depth || rel[..depth] != *shape.item {
            return Ok(());
        }
        let below = &rel[depth..];
        if below.is_empty() {
            if start {
                list.items.push(Item {
                    fields: vec![Vec::new(); shape.fields.len()],
                    tags: Vec::new(),
                });
            }
            return Ok(());
        }
        let Some(item) = list.items.last_mut() else {
            return Ok(());
        };
        match below {
            ["tagSet", "item"] if start => tag = Some((Vec::new(), Vec::new())),
            ["tagSet", "item"] if end => {
                if let Some((keys, values)) = tag.take() {
                    let (key, value) = match (&keys[..], &values[..]) {
                        ([key], [value]) => (key.clone(), value.clone()),
                        ([key], []) => (key.clone(), String::new()),
                        _ => return Err("a tag without exactly one key and value".into()),
                    };
                    if key.is_empty() || item.tags.iter().any(|(k, _)| *k == key) {
                        return Err("an empty or repeated tag key".into());
                    }
                    item.tags.push((key, value));
                }
            }
            ["tagSet", "item", "key"] => {
                if let Some((keys, _)) = tag.as_mut() {
                    record(keys, start, text)?;
                }
            }
            ["tagSet", "item", "value"] => {
                if let Some((_, values)) = tag.as_mut() {
                    record(values, start, text)?;
                }
            }
            _ => {
                if let Some(i) = shape.fields.iter().position(|f| *f == below) {
                    record(&mut item.fields[i], start, text)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(list)
}

/// A field element starting adds an empty value; its text fills it (decoded and checked).
fn record(values: &mut Vec<String>, start: bool, text: Option<&str>) -> Result<(), String> {
    if start {
        values.push(String::new());
    } else if let (Some(raw), Some(last)) = (text, values.last_mut()) {
        let decoded = unescape(raw)?;
        if decoded.chars().any(char::is_control) {
            return Err("a text with a control character".into());
        }
        last.push_str(&decoded);
    }
    Ok(())
}

/// XML text with its references decoded: `&amp; &lt; &gt; &quot; &apos;` and `&#N;` /
/// `&#xH;`. Any other reference is an error (there is no DTD to define one).
pub fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    if !raw.contains('&') {
        return Ok(Cow::Borrowed(raw));
    }
    let bad = || "a text with an unknown entity reference".to_owned();
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';').ok_or_else(bad)?;
        let name = &after[..end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = if let Some(hex) = name.strip_prefix("#x") {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                number.and_then(char::from_u32).ok_or_else(bad)?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
pub(crate) mod testing;
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests;
