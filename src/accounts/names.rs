//! IAM user names ⇄ Linux user names.
//!
//! sshd hands keyward a Linux user name and keyward must find the one IAM user it belongs to
//! without asking IAM to search: IAM lookups need the exact case, and IAM allows characters and
//! lengths Linux does not. So the mapping is a bijection between the IAM names it accepts and the
//! Linux names it produces, and `to_iam` accepts only names `to_linux` could have produced. It
//! must never truncate, lowercase or otherwise guess: two IAM users sharing one Linux account
//! would share a shell. A name that cannot be mapped is refused. Pure: no OS, no network.

use std::fmt;

/// Linux tools (useradd, utmp) cap user names at 32 bytes.
pub const LINUX_NAME_MAX_BYTES: usize = 32;
const IAM_NAME_MAX_CHARS: usize = 64;
const SUFFIX_MAX_BYTES: usize = 16;

/// The escape character of the escape mapping; in IAM names it is written `__`.
const ESCAPE: char = '_';
/// IAM symbols Linux names cannot hold, and the digit that follows `_` in their escape.
/// One table for both directions, so encoding and decoding cannot drift apart.
const SYMBOL_ESCAPES: [(char, char); 4] = [('@', '0'), ('+', '1'), ('=', '2'), (',', '3')];

/// How IAM user names become Linux user names.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameMapping {
    /// Every IAM name up to the length limit maps: `Alice.Smith` → `_alice._smith`,
    /// `a@b` → `a_0b`, `a_b` → `a__b`.
    #[default]
    Escape,
    /// keymaker-compatible, for migrations: the IAM name plus `suffix`, for IAM names that are
    /// already valid Linux names; everything else is refused.
    Identity { suffix: String },
}

/// Why a name could not be mapped. Every variant names the offending name, sanitized.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("{} is not a valid IAM user name (1 to 64 of A-Z a-z 0-9 + = , . @ _ -)", Shown(.name))]
    InvalidIamName { name: String },
    #[error("user name {} is too long for Linux: {length} bytes, the limit is {limit}", Shown(.name))]
    TooLong {
        name: String,
        length: usize,
        limit: usize,
    },
    #[error(
        "IAM user name {} starts with {character:?}, but Linux user names must start with a \
         letter or '_'",
        Shown(.name)
    )]
    LeadingCharacter { name: String, character: char },
    #[error("{} is not a Linux user name keyward's name mapping produces", Shown(.name))]
    NotEncoded { name: String },
    #[error("{} does not end with the identity mapping's suffix {}", Shown(.name), Shown(.suffix))]
    SuffixMissing { name: String, suffix: String },
    #[error(
        "IAM user name {} has uppercase letters, which the identity mapping cannot represent \
         (the escape mapping can)",
        Shown(.name)
    )]
    UppercaseInIdentityMapping { name: String },
    #[error(
        "IAM user name {} contains {character:?}, which the identity mapping cannot represent \
         (the escape mapping can)",
        Shown(.name)
    )]
    CharacterNotAllowedInIdentityMapping { name: String, character: char },
    #[error("identity mapping suffix {} is invalid (at most 16 of a-z 0-9 _ . -)", Shown(.suffix))]
    InvalidSuffix { suffix: String },
}

impl NameMapping {
    /// The Linux user name for an IAM user name, or why it has none.
    pub fn to_linux(&self, iam_name: &str) -> Result<String, NameError> {
        match self {
            NameMapping::Escape => escape(iam_name),
            NameMapping::Identity { suffix } => identity_to_linux(iam_name, suffix),
        }
    }

    /// The IAM user name a Linux user name was produced from. Refuses every name `to_linux`
    /// cannot produce, so a local account that merely looks similar never resolves to IAM.
    pub fn to_iam(&self, linux_name: &str) -> Result<String, NameError> {
        if let NameMapping::Identity { suffix } = self {
            require_valid_suffix(suffix)?;
        }
        if linux_name.len() > LINUX_NAME_MAX_BYTES {
            return Err(too_long(linux_name, linux_name.len()));
        }
        let iam_name = match self {
            NameMapping::Escape => unescape(linux_name),
            NameMapping::Identity { suffix } => match linux_name.strip_suffix(suffix.as_str()) {
                Some(stem) => Some(stem.to_owned()),
                None => {
                    return Err(NameError::SuffixMissing {
                        name: linux_name.to_owned(),
                        suffix: suffix.clone(),
                    })
                }
            },
        };
        // Accept only the canonical form: mapping back must reproduce the input byte for byte.
        match iam_name {
            Some(iam_name)
                if is_valid_iam_name(&iam_name)
                    && self.to_linux(&iam_name).as_deref() == Ok(linux_name) =>
            {
                Ok(iam_name)
            }
            _ => Err(NameError::NotEncoded {
                name: linux_name.to_owned(),
            }),
        }
    }
}

/// `[A-Za-z0-9+=,.@_-]{1,64}`, IAM's rule for user names.
pub fn is_valid_iam_name(s: &str) -> bool {
    (1..=IAM_NAME_MAX_CHARS).contains(&s.len()) && s.chars().all(is_iam_name_char)
}

/// `^[a-z_][a-z0-9_.-]*$` and 1 to 32 bytes: the portable subset shadow-utils accepts.
pub fn is_valid_linux_name(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= LINUX_NAME_MAX_BYTES && is_linux_leading_char(first) && chars.all(is_linux_name_char)
}

/// `[a-z0-9_.-]{0,16}`: a suffix the identity mapping may append.
pub fn is_valid_suffix(s: &str) -> bool {
    s.len() <= SUFFIX_MAX_BYTES && s.chars().all(is_linux_name_char)
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

fn is_linux_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)
}

fn is_linux_leading_char(c: char) -> bool {
    c.is_ascii_lowercase() || c == '_'
}

fn escape(iam_name: &str) -> Result<String, NameError> {
    require_valid_iam_name(iam_name)?;
    // Uppercase letters, `_` and symbols all encode to `_…`, a valid start; digits, `.` and `-`
    // stay themselves, which Linux refuses as a first character.
    require_linux_leading_char(iam_name, |c| c.is_ascii_digit() || c == '.' || c == '-')?;
    let mut linux_name = String::with_capacity(iam_name.len() * 2);
    for c in iam_name.chars() {
        if c == ESCAPE {
            linux_name.push_str("__");
        } else if c.is_ascii_uppercase() {
            linux_name.push(ESCAPE);
            linux_name.push(c.to_ascii_lowercase());
        } else if let Some(&(_, digit)) = SYMBOL_ESCAPES.iter().find(|(symbol, _)| *symbol == c) {
            linux_name.push(ESCAPE);
            linux_name.push(digit);
        } else {
            linux_name.push(c);
        }
    }
    if linux_name.len() > LINUX_NAME_MAX_BYTES {
        return Err(too_long(iam_name, linux_name.len()));
    }
    Ok(linux_name)
}

/// Decodes left to right; `None` for anything that is not a well-formed escape sequence.
fn unescape(linux_name: &str) -> Option<String> {
    let mut iam_name = String::with_capacity(linux_name.len());
    let mut chars = linux_name.chars();
    while let Some(c) = chars.next() {
        if c == ESCAPE {
            let escaped = chars.next()?;
            if escaped == ESCAPE {
                iam_name.push(ESCAPE);
            } else if escaped.is_ascii_lowercase() {
                iam_name.push(escaped.to_ascii_uppercase());
            } else {
                let &(symbol, _) = SYMBOL_ESCAPES.iter().find(|(_, digit)| *digit == escaped)?;
                iam_name.push(symbol);
            }
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
            iam_name.push(c);
        } else {
            return None;
        }
    }
    Some(iam_name)
}

fn identity_to_linux(iam_name: &str, suffix: &str) -> Result<String, NameError> {
    require_valid_suffix(suffix)?;
    require_valid_iam_name(iam_name)?;
    if iam_name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(NameError::UppercaseInIdentityMapping {
            name: iam_name.to_owned(),
        });
    }
    if let Some(character) = iam_name.chars().find(|&c| !is_linux_name_char(c)) {
        return Err(NameError::CharacterNotAllowedInIdentityMapping {
            name: iam_name.to_owned(),
            character,
        });
    }
    require_linux_leading_char(iam_name, |c| !is_linux_leading_char(c))?;
    let linux_name = format!("{iam_name}{suffix}");
    if linux_name.len() > LINUX_NAME_MAX_BYTES {
        return Err(too_long(iam_name, linux_name.len()));
    }
    Ok(linux_name)
}

fn require_valid_iam_name(iam_name: &str) -> Result<(), NameError> {
    if is_valid_iam_name(iam_name) {
        Ok(())
    } else {
        Err(NameError::InvalidIamName {
            name: iam_name.to_owned(),
        })
    }
}

fn require_valid_suffix(suffix: &str) -> Result<(), NameError> {
    if is_valid_suffix(suffix) {
        Ok(())
    } else {
        Err(NameError::InvalidSuffix {
            suffix: suffix.to_owned(),
        })
    }
}

fn require_linux_leading_char(
    iam_name: &str,
    is_refused: impl Fn(char) -> bool,
) -> Result<(), NameError> {
    match iam_name.chars().next() {
        Some(character) if is_refused(character) => Err(NameError::LeadingCharacter {
            name: iam_name.to_owned(),
            character,
        }),
        _ => Ok(()),
    }
}

fn too_long(name: &str, length: usize) -> NameError {
    NameError::TooLong {
        name: name.to_owned(),
        length,
        limit: LINUX_NAME_MAX_BYTES,
    }
}

/// An untrusted name as it appears in messages: quoted, escaped and cut by
/// `logging::untrusted`, so it cannot forge log lines or terminal output, nor flood them.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", crate::logging::untrusted(self.0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const IAM_ALPHABET: &str =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-";

    fn identity(suffix: &str) -> NameMapping {
        NameMapping::Identity {
            suffix: suffix.to_owned(),
        }
    }

    #[test]
    fn m1_a_huge_hostile_name_in_an_error_is_escaped_and_capped() {
        let hostile = format!("x\" message_id=\"{}\n", "a".repeat(131_072));
        let err = NameMapping::Escape
            .to_linux(&hostile)
            .unwrap_err()
            .to_string();
        assert!(err.len() < 200, "{} bytes: {err:.200}", err.len());
        assert!(err.contains(r#""x\" message_id=\"aaa"#), "{err}");
        assert!(err.contains("(131088 bytes)"), "{err}");
        assert!(!err.contains('\n'));
    }

    fn not_encoded(name: &str) -> Result<String, NameError> {
        Err(NameError::NotEncoded {
            name: name.to_owned(),
        })
    }

    #[test]
    fn escape_mapping_matches_vectors_both_ways() {
        let vectors = [
            ("alice", "alice"),
            ("Alice.Smith", "_alice._smith"),
            ("alice@example.com", "alice_0example.com"),
            ("a_b", "a__b"),
            ("x+y=z,w", "x_1y_2z_3w"),
            ("_", "__"),
            ("@home", "_0home"),
            ("ALICE", "_a_l_i_c_e"),
            ("bob-2.0", "bob-2.0"),
            ("root", "root"),
        ];
        for (iam_name, linux_name) in vectors {
            assert_eq!(
                NameMapping::Escape.to_linux(iam_name).as_deref(),
                Ok(linux_name),
                "{iam_name}"
            );
            assert_eq!(
                NameMapping::Escape.to_iam(linux_name).as_deref(),
                Ok(iam_name),
                "{linux_name}"
            );
        }
    }

    #[test]
    fn escape_mapping_round_trips_every_iam_character() {
        for c in IAM_ALPHABET.chars() {
            let iam_name = format!("a{c}{c}z");
            let linux_name = NameMapping::Escape.to_linux(&iam_name).unwrap();
            assert!(
                is_valid_linux_name(&linux_name),
                "{iam_name} -> {linux_name}"
            );
            assert_eq!(NameMapping::Escape.to_iam(&linux_name).unwrap(), iam_name);
        }
    }

    #[test]
    fn escape_mapping_accepts_uppercase_underscore_and_symbols_first() {
        for c in "AZ_@+=,".chars() {
            let iam_name = c.to_string();
            let linux_name = NameMapping::Escape.to_linux(&iam_name).unwrap();
            assert!(linux_name.starts_with('_'), "{iam_name} -> {linux_name}");
            assert_eq!(NameMapping::Escape.to_iam(&linux_name).unwrap(), iam_name);
        }
    }

    #[test]
    fn escape_mapping_refuses_digit_dot_or_dash_first() {
        for (iam_name, character) in [("1password", '1'), ("-x", '-'), (".x", '.'), ("0", '0')] {
            assert_eq!(
                NameMapping::Escape.to_linux(iam_name),
                Err(NameError::LeadingCharacter {
                    name: iam_name.to_owned(),
                    character
                })
            );
        }
    }

    #[test]
    fn escape_mapping_refuses_names_over_32_bytes_without_truncating() {
        let longest_iam_name = "a".repeat(64);
        assert_eq!(
            NameMapping::Escape.to_linux(&longest_iam_name),
            Err(NameError::TooLong {
                name: longest_iam_name.clone(),
                length: 64,
                limit: 32
            })
        );
        assert_eq!(
            NameMapping::Escape.to_linux(&"A".repeat(64)),
            Err(NameError::TooLong {
                name: "A".repeat(64),
                length: 128,
                limit: 32
            })
        );
        assert!(NameMapping::Escape.to_linux(&"a".repeat(33)).is_err());
        assert_eq!(
            NameMapping::Escape.to_linux(&"a".repeat(32)),
            Ok("a".repeat(32))
        );
        // 16 uppercase letters escape to exactly 32 bytes; 17 do not fit.
        assert_eq!(
            NameMapping::Escape.to_linux(&"B".repeat(16)),
            Ok("_b".repeat(16))
        );
        assert!(matches!(
            NameMapping::Escape.to_linux(&"B".repeat(17)),
            Err(NameError::TooLong { length: 34, .. })
        ));
    }

    #[test]
    fn escape_mapping_refuses_invalid_iam_names() {
        for iam_name in ["", "a b", "a/b", "ä", "a\n", "a:b", &"a".repeat(65)] {
            assert_eq!(
                NameMapping::Escape.to_linux(iam_name),
                Err(NameError::InvalidIamName {
                    name: iam_name.to_owned()
                }),
                "{iam_name:?}"
            );
        }
    }

    #[test]
    fn escape_reverse_refuses_names_it_cannot_have_produced() {
        for linux_name in [
            "_9", "a_", "_", "Alice", "a b", "../x", "", "_A", "a_4", "a\0", "ä", ".x", "-x", "1x",
            "a/b",
        ] {
            assert_eq!(
                NameMapping::Escape.to_iam(linux_name),
                not_encoded(linux_name),
                "{linux_name:?}"
            );
        }
    }

    #[test]
    fn escape_reverse_refuses_names_over_32_bytes() {
        let name = "a".repeat(33);
        assert_eq!(
            NameMapping::Escape.to_iam(&name),
            Err(NameError::TooLong {
                name: name.clone(),
                length: 33,
                limit: 32
            })
        );
    }

    #[test]
    fn identity_mapping_with_suffix_works_both_ways() {
        let mapping = identity(".iam");
        assert_eq!(mapping.to_linux("alice").as_deref(), Ok("alice.iam"));
        assert_eq!(mapping.to_iam("alice.iam").as_deref(), Ok("alice"));
        assert_eq!(mapping.to_linux("a_b-c.d").as_deref(), Ok("a_b-c.d.iam"));
        assert_eq!(mapping.to_iam("a_b-c.d.iam").as_deref(), Ok("a_b-c.d"));
        assert_eq!(
            mapping.to_linux("alice.iam").as_deref(),
            Ok("alice.iam.iam")
        );
        assert_eq!(mapping.to_iam("alice.iam.iam").as_deref(), Ok("alice.iam"));
    }

    #[test]
    fn identity_mapping_without_suffix_is_the_identity() {
        let mapping = identity("");
        assert_eq!(mapping.to_linux("alice").as_deref(), Ok("alice"));
        assert_eq!(mapping.to_iam("alice").as_deref(), Ok("alice"));
        assert_eq!(mapping.to_iam("Alice"), not_encoded("Alice"));
        assert_eq!(mapping.to_iam(""), not_encoded(""));
    }

    #[test]
    fn identity_mapping_refuses_what_linux_cannot_hold() {
        let mapping = identity(".iam");
        assert_eq!(
            mapping.to_linux("Alice"),
            Err(NameError::UppercaseInIdentityMapping {
                name: "Alice".to_owned()
            })
        );
        assert_eq!(
            mapping.to_linux("alice@example.com"),
            Err(NameError::CharacterNotAllowedInIdentityMapping {
                name: "alice@example.com".to_owned(),
                character: '@'
            })
        );
        assert_eq!(
            mapping.to_linux("1password"),
            Err(NameError::LeadingCharacter {
                name: "1password".to_owned(),
                character: '1'
            })
        );
        assert_eq!(
            mapping.to_linux(&"a".repeat(29)),
            Err(NameError::TooLong {
                name: "a".repeat(29),
                length: 33,
                limit: 32
            })
        );
        assert_eq!(
            mapping.to_linux(&"a".repeat(28)),
            Ok(format!("{}.iam", "a".repeat(28)))
        );
    }

    #[test]
    fn identity_reverse_requires_the_suffix_and_a_nonempty_stem() {
        let mapping = identity(".iam");
        assert_eq!(
            mapping.to_iam("alice"),
            Err(NameError::SuffixMissing {
                name: "alice".to_owned(),
                suffix: ".iam".to_owned()
            })
        );
        assert_eq!(mapping.to_iam(".iam"), not_encoded(".iam"));
        assert_eq!(mapping.to_iam("1x.iam"), not_encoded("1x.iam"));
        assert_eq!(mapping.to_iam("Alice.iam"), not_encoded("Alice.iam"));
        assert!(matches!(
            mapping.to_iam(&format!("{}.iam", "a".repeat(29))),
            Err(NameError::TooLong { length: 33, .. })
        ));
    }

    #[test]
    fn identity_mapping_refuses_invalid_suffixes() {
        for suffix in ["A", "x/y", "x y", &"s".repeat(17)] {
            let expected = Err(NameError::InvalidSuffix {
                suffix: suffix.to_owned(),
            });
            assert_eq!(identity(suffix).to_linux("alice"), expected, "{suffix:?}");
            assert_eq!(identity(suffix).to_iam("alice"), expected, "{suffix:?}");
        }
        assert!(is_valid_suffix(&"s".repeat(16)));
        assert!(is_valid_suffix(""));
    }

    #[test]
    fn linux_name_validity_follows_the_portable_rule() {
        for valid in ["a", "_", "root", "a.b-c_d9", &"a".repeat(32)] {
            assert!(is_valid_linux_name(valid), "{valid:?}");
        }
        for invalid in ["", "A", "1a", ".a", "-a", "a b", "a$", "ä", &"a".repeat(33)] {
            assert!(!is_valid_linux_name(invalid), "{invalid:?}");
        }
    }

    #[test]
    fn iam_name_validity_follows_iams_rule() {
        assert!(is_valid_iam_name(IAM_ALPHABET.get(..64).unwrap()));
        assert!(is_valid_iam_name("-"));
        assert!(!is_valid_iam_name(""));
        assert!(!is_valid_iam_name(IAM_ALPHABET));
        assert!(!is_valid_iam_name("a b"));
        assert!(!is_valid_iam_name("ａ"));
    }

    #[test]
    fn error_messages_name_the_input_with_control_characters_escaped_and_length_capped() {
        let hostile = format!("\u{1b}[31mroot\nlogin ok{}", "x".repeat(200));
        let message = NameMapping::Escape
            .to_iam(&hostile)
            .unwrap_err()
            .to_string();
        assert!(
            !message.contains('\u{1b}') && !message.contains('\n'),
            "{message}"
        );
        assert!(
            message.contains(r#""\u{1b}[31mroot\nlogin ok"#),
            "{message}"
        );
        assert!(message.len() < 200, "{message}");

        let message = NameMapping::Escape.to_linux("a b").unwrap_err().to_string();
        assert_eq!(
            message,
            r#""a b" is not a valid IAM user name (1 to 64 of A-Z a-z 0-9 + = , . @ _ -)"#
        );
        let message = NameMapping::Escape
            .to_linux(&"a".repeat(40))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("40 bytes") && message.contains("limit is 32"),
            "{message}"
        );
    }

    #[test]
    fn name_mapping_serializes_with_lowercase_names() {
        assert_eq!(
            serde_json::to_string(&NameMapping::default()).unwrap(),
            r#""escape""#
        );
        assert_eq!(
            serde_json::to_string(&identity(".iam")).unwrap(),
            r#"{"identity":{"suffix":".iam"}}"#
        );
    }

    /// xorshift64: deterministic, dependency-free randomness for the property tests.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, bound: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % bound as u64) as usize
        }

        fn string_from(&mut self, alphabet: &[char], max_len: usize) -> String {
            let len = 1 + self.below(max_len);
            (0..len)
                .map(|_| alphabet[self.below(alphabet.len())])
                .collect()
        }
    }

    fn flip_case(s: &str) -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect()
    }

    #[test]
    fn escape_mapping_is_injective_and_reversible_on_random_iam_names() {
        let alphabet: Vec<char> = IAM_ALPHABET.chars().collect();
        let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut iam_name_by_linux_name: HashMap<String, String> = HashMap::new();
        let mut mapped = 0;
        for _ in 0..5000 {
            let name = random.string_from(&alphabet, 24);
            for iam_name in [name.clone(), flip_case(&name), name.to_ascii_lowercase()] {
                match NameMapping::Escape.to_linux(&iam_name) {
                    Ok(linux_name) => {
                        mapped += 1;
                        assert!(
                            is_valid_linux_name(&linux_name),
                            "{iam_name} -> {linux_name}"
                        );
                        assert_eq!(
                            NameMapping::Escape.to_iam(&linux_name),
                            Ok(iam_name.clone())
                        );
                        let earlier = iam_name_by_linux_name
                            .entry(linux_name.clone())
                            .or_insert_with(|| iam_name.clone());
                        assert_eq!(earlier, &iam_name, "both map to {linux_name}");
                    }
                    Err(NameError::LeadingCharacter { character, .. }) => {
                        assert!(character.is_ascii_digit() || ".-".contains(character));
                    }
                    Err(NameError::TooLong { length, .. }) => assert!(length > 32),
                    Err(other) => unreachable!("{iam_name}: unexpected {other:?}"),
                }
            }
        }
        assert!(
            mapped > 5000,
            "only {mapped} names were mappable; test too weak"
        );
    }

    #[test]
    fn escape_reverse_accepts_only_what_it_would_produce() {
        // Biased towards `_` and the escape digits so many strings are well-formed escapes.
        let alphabet: Vec<char> = "abcAZ019.-_____0123".chars().collect();
        let mut random = XorShift(0x2545_F491_4F6C_DD1D);
        let mut decoded = 0;
        for _ in 0..5000 {
            let linux_name = random.string_from(&alphabet, 34);
            if let Ok(iam_name) = NameMapping::Escape.to_iam(&linux_name) {
                decoded += 1;
                assert!(is_valid_iam_name(&iam_name));
                assert_eq!(NameMapping::Escape.to_linux(&iam_name), Ok(linux_name));
            }
        }
        assert!(decoded > 100, "only {decoded} names decoded; test too weak");
    }

    #[test]
    fn identity_mapping_is_reversible_on_random_names() {
        let alphabet: Vec<char> = "abz09_.-A@".chars().collect();
        let mut random = XorShift(0xD1B5_4A32_D192_ED03);
        let mapping = identity("-x");
        let (mut mapped, mut decoded) = (0, 0);
        for _ in 0..3000 {
            let iam_name = random.string_from(&alphabet, 32);
            if let Ok(linux_name) = mapping.to_linux(&iam_name) {
                mapped += 1;
                assert!(is_valid_linux_name(&linux_name));
                assert_eq!(mapping.to_iam(&linux_name), Ok(iam_name.clone()));
            }
            // Random strings rarely end in the suffix; append it so the reverse is exercised.
            for linux_name in [format!("{iam_name}-x"), iam_name] {
                if let Ok(back) = mapping.to_iam(&linux_name) {
                    decoded += 1;
                    assert_eq!(mapping.to_linux(&back), Ok(linux_name));
                }
            }
        }
        assert!(
            mapped > 100 && decoded > 100,
            "{mapped} mapped, {decoded} decoded; test too weak"
        );
    }
}
