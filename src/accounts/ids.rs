//! Stable Linux UIDs and GIDs derived from immutable IAM ids.
//!
//! A user renamed in IAM keeps its `UserId` (`AIDA…`), so deriving the UID from that id keeps file
//! ownership stable across renames and across every host, without any shared state. This module
//! only computes numbers: it never touches the OS or the network, and it never decides that a
//! collision is acceptable — callers detect colliding ids and refuse them, never reuse them.

use sha2::{Digest, Sha256};

/// How an IAM id becomes a UID or GID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UidScheme {
    /// SHA-256 of the IAM id, spread over a configured [`IdRange`].
    #[default]
    Hash,
    /// keymaker 1.1's formula, for hosts migrating from keymaker without chowning home
    /// directories: 2000–34767, no range, and many more collisions than [`UidScheme::Hash`].
    Keymaker,
}

/// An inclusive range of ids. Build it with [`IdRange::new`], which refuses ranges that overlap
/// ids Linux gives special meaning to; the fields are public only so that
/// [`DEFAULT_UID_RANGE`] can be a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IdRange {
    pub first: u32,
    pub last: u32,
}

/// Ids below this belong to the system (root, daemons): an IAM user must never get one.
const FIRST_NON_SYSTEM_ID: u32 = 1000;
/// `nobody` (65534) and 65535, which is `(uid_t)-1` for the 16-bit id syscalls and means
/// "unchanged" to `setresuid`.
const NOBODY_AND_16_BIT_MINUS_ONE: IdRange = IdRange {
    first: 65_534,
    last: 65_535,
};
/// From 2^31 - 1 upwards, code that stores ids in a signed int misbehaves, and u32::MAX is
/// `(uid_t)-1` itself.
const FIRST_SIGNEDNESS_TROUBLE_ID: u32 = 2_147_483_647;

/// The default range for hashed UIDs and GIDs: 0x70000000–0x7FFDFFFF (1879048192–2147352575).
///
/// systemd documents this band as unused (`UIDS-GIDS.md`), so nothing else on a host allocates
/// from it. It lies above the system ids (0–999), the regular users that `useradd` allocates
/// (1000–60000), systemd-homed (60001–60513), DynamicUser (61184–65519), `nobody` (65534), the
/// 65536–524287 band where `/etc/subuid` ranges (100000+) usually live, and the container range
/// 524288–1879048191 used by systemd-nspawn. It stays below the foreign-UID range (2147352576+)
/// and below 2^31, where bugs with a signed `uid_t` live.
///
/// Its ~268 million slots make a collision among 2,000 users about 0.75 % likely (birthday
/// bound). Callers detect a collision and refuse the second account; an id is never reused.
pub const DEFAULT_UID_RANGE: IdRange = IdRange {
    first: 1_879_048_192,
    last: 2_147_352_575,
};

/// Why a configured id range was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdRangeError {
    #[error("id range {first}–{last} is empty: the first id is greater than the last")]
    FirstAfterLast { first: u32, last: u32 },
    #[error("id range {first}–{last} overlaps the system ids 0–999")]
    OverlapsSystemIds { first: u32, last: u32 },
    #[error("id range {first}–{last} overlaps 65534–65535 (nobody, and -1 for 16-bit id calls)")]
    OverlapsNobody { first: u32, last: u32 },
    #[error(
        "id range {first}–{last} reaches 2147483647 or above, where signed uid_t handling breaks"
    )]
    ReachesSignedLimit { first: u32, last: u32 },
}

impl IdRange {
    /// A range an administrator configured. Anything that avoids the special ids is allowed,
    /// including the 1000–60000 band of local users: choosing it is a deliberate decision.
    pub fn new(first: u32, last: u32) -> Result<IdRange, IdRangeError> {
        let range = IdRange { first, last };
        if first > last {
            return Err(IdRangeError::FirstAfterLast { first, last });
        }
        if first < FIRST_NON_SYSTEM_ID {
            return Err(IdRangeError::OverlapsSystemIds { first, last });
        }
        if range.overlaps(NOBODY_AND_16_BIT_MINUS_ONE) {
            return Err(IdRangeError::OverlapsNobody { first, last });
        }
        if last >= FIRST_SIGNEDNESS_TROUBLE_ID {
            return Err(IdRangeError::ReachesSignedLimit { first, last });
        }
        Ok(range)
    }

    pub fn contains(&self, id: u32) -> bool {
        self.first <= id && id <= self.last
    }

    /// The number of ids in the range; 0 for a range built by hand with `first > last`.
    pub fn len(&self) -> u64 {
        (u64::from(self.last) + 1).saturating_sub(u64::from(self.first))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn overlaps(&self, other: IdRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// The id for an immutable IAM UserId/GroupId (e.g. "AIDA...", "AGPA...").
///
/// Deterministic: every host computes the same id for the same IAM id. With
/// [`UidScheme::Hash`] the result lies in `range`; an empty range (only possible when built
/// without [`IdRange::new`]) yields `range.first`, which `range.contains` then rejects.
pub fn id_for(scheme: UidScheme, iam_id: &str, range: IdRange) -> u32 {
    let digest = Sha256::digest(iam_id.as_bytes());
    match scheme {
        UidScheme::Hash => {
            let mut leading = [0u8; 8];
            leading.copy_from_slice(&digest[..8]);
            let hash = u64::from_be_bytes(leading);
            let offset = hash.checked_rem(range.len()).unwrap_or(0);
            // offset < len, so first + offset <= last always fits; the fallback is unreachable.
            u32::try_from(u64::from(range.first) + offset).unwrap_or(range.first)
        }
        UidScheme::Keymaker => {
            // keymaker used Python's `sys.byteorder`, little-endian on every EC2 instance type.
            let trailing = [digest[30], digest[31]];
            2000 + u32::from(u16::from_le_bytes(trailing) / 2)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // Expected values computed once with Python's hashlib and cross-checked with sha256sum + bc.

    #[test]
    fn keymaker_scheme_reproduces_keymaker_test_vector() {
        assert_eq!(
            id_for(
                UidScheme::Keymaker,
                "AKIAIJLRCB5E7CGTDF5A",
                DEFAULT_UID_RANGE
            ),
            26594
        );
    }

    #[test]
    fn keymaker_scheme_ignores_the_range() {
        let narrow = IdRange::new(70_000, 70_010).unwrap();
        assert_eq!(
            id_for(UidScheme::Keymaker, "AIDAJQABLZS4A3QDU576Q", narrow),
            22667
        );
        assert_eq!(
            id_for(UidScheme::Keymaker, "AGPAJQABLZS4A3QDU576Q", narrow),
            17485
        );
    }

    #[test]
    fn hash_scheme_matches_vectors_in_default_range() {
        let vectors = [
            ("AKIAIJLRCB5E7CGTDF5A", 2_021_158_106),
            ("AIDAJQABLZS4A3QDU576Q", 2_136_337_771),
            ("AGPAJQABLZS4A3QDU576Q", 2_113_847_856),
            ("AIDACKCEVSQ6C2EXAMPLE", 1_903_645_303),
        ];
        for (iam_id, expected) in vectors {
            assert_eq!(
                id_for(UidScheme::Hash, iam_id, DEFAULT_UID_RANGE),
                expected,
                "{iam_id}"
            );
        }
    }

    #[test]
    fn hash_scheme_matches_vectors_in_configured_ranges() {
        let small = IdRange::new(1000, 1999).unwrap();
        let regular_users = IdRange::new(1000, 60_000).unwrap();
        assert_eq!(id_for(UidScheme::Hash, "AKIAIJLRCB5E7CGTDF5A", small), 1378);
        assert_eq!(
            id_for(UidScheme::Hash, "AIDACKCEVSQ6C2EXAMPLE", small),
            1983
        );
        assert_eq!(
            id_for(UidScheme::Hash, "AKIAIJLRCB5E7CGTDF5A", regular_users),
            47381
        );
        assert_eq!(
            id_for(UidScheme::Hash, "AIDAJQABLZS4A3QDU576Q", regular_users),
            22155
        );
    }

    #[test]
    fn user_and_group_ids_with_same_suffix_get_different_ids() {
        assert_ne!(
            id_for(UidScheme::Hash, "AIDAJQABLZS4A3QDU576Q", DEFAULT_UID_RANGE),
            id_for(UidScheme::Hash, "AGPAJQABLZS4A3QDU576Q", DEFAULT_UID_RANGE)
        );
    }

    #[test]
    fn single_id_range_always_yields_that_id() {
        let one = IdRange::new(70_000, 70_000).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(
            id_for(UidScheme::Hash, "AIDAJQABLZS4A3QDU576Q", one),
            70_000
        );
        assert_eq!(id_for(UidScheme::Hash, "", one), 70_000);
    }

    #[test]
    fn hash_scheme_is_deterministic_and_stays_in_range() {
        let range = IdRange::new(100_000, 100_099).unwrap();
        for n in 0..2000 {
            let iam_id = format!("AIDA{n:017}");
            let id = id_for(UidScheme::Hash, &iam_id, range);
            assert!(range.contains(id), "{iam_id} -> {id}");
            assert_eq!(id, id_for(UidScheme::Hash, &iam_id, range));
        }
    }

    #[test]
    fn hash_scheme_reaches_both_ends_of_a_small_range() {
        let range = IdRange::new(5000, 5003).unwrap();
        let ids: std::collections::BTreeSet<u32> = (0..200)
            .map(|n| id_for(UidScheme::Hash, &format!("AIDA{n}"), range))
            .collect();
        assert_eq!(
            ids.into_iter().collect::<Vec<_>>(),
            vec![5000, 5001, 5002, 5003]
        );
    }

    #[test]
    fn empty_hand_built_range_yields_an_id_it_does_not_contain() {
        let inverted = IdRange {
            first: 5000,
            last: 4000,
        };
        assert_eq!(inverted.len(), 0);
        assert!(inverted.is_empty());
        let id = id_for(UidScheme::Hash, "AIDAJQABLZS4A3QDU576Q", inverted);
        assert!(!inverted.contains(id));
    }

    #[test]
    fn default_range_is_systemds_unused_band_and_passes_validation() {
        assert_eq!(DEFAULT_UID_RANGE.first, 0x7000_0000);
        assert_eq!(DEFAULT_UID_RANGE.last, 0x7FFD_FFFF);
        assert_eq!(DEFAULT_UID_RANGE.len(), 268_304_384);
        assert_eq!(
            IdRange::new(DEFAULT_UID_RANGE.first, DEFAULT_UID_RANGE.last),
            Ok(DEFAULT_UID_RANGE)
        );
    }

    #[test]
    fn contains_is_inclusive_at_both_ends() {
        let range = IdRange::new(2000, 3000).unwrap();
        assert!(!range.contains(1999));
        assert!(range.contains(2000));
        assert!(range.contains(3000));
        assert!(!range.contains(3001));
        assert_eq!(range.len(), 1001);
    }

    #[test]
    fn range_with_first_after_last_is_refused() {
        assert_eq!(
            IdRange::new(3000, 2999),
            Err(IdRangeError::FirstAfterLast {
                first: 3000,
                last: 2999
            })
        );
    }

    #[test]
    fn range_touching_system_ids_is_refused() {
        assert!(matches!(
            IdRange::new(0, 5000),
            Err(IdRangeError::OverlapsSystemIds { .. })
        ));
        assert!(matches!(
            IdRange::new(999, 5000),
            Err(IdRangeError::OverlapsSystemIds { .. })
        ));
        assert!(IdRange::new(1000, 5000).is_ok());
    }

    #[test]
    fn range_touching_nobody_is_refused() {
        for (first, last) in [
            (60_000, 65_534),
            (65_535, 70_000),
            (65_534, 65_535),
            (1000, 100_000),
        ] {
            assert_eq!(
                IdRange::new(first, last),
                Err(IdRangeError::OverlapsNobody { first, last }),
                "{first}-{last}"
            );
        }
        assert!(IdRange::new(1000, 65_533).is_ok());
        assert!(IdRange::new(65_536, 100_000).is_ok());
    }

    #[test]
    fn range_reaching_signed_limit_is_refused() {
        for last in [2_147_483_647, 2_147_483_648, u32::MAX] {
            assert!(matches!(
                IdRange::new(2_000_000_000, last),
                Err(IdRangeError::ReachesSignedLimit { .. })
            ));
        }
        assert!(IdRange::new(2_000_000_000, 2_147_483_646).is_ok());
    }

    #[test]
    fn range_errors_say_why() {
        let message = IdRange::new(500, 2000).unwrap_err().to_string();
        assert!(message.contains("system ids"), "{message}");
        let message = IdRange::new(60_000, 70_000).unwrap_err().to_string();
        assert!(message.contains("nobody"), "{message}");
    }

    #[test]
    fn uid_scheme_config_names_are_lowercase() {
        assert_eq!(serde_json::to_string(&UidScheme::Hash).unwrap(), "\"hash\"");
        assert_eq!(
            serde_json::from_str::<UidScheme>("\"keymaker\"").unwrap(),
            UidScheme::Keymaker
        );
        assert_eq!(UidScheme::default(), UidScheme::Hash);
    }
}
