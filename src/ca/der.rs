//! The two DER structures KMS hands a CA: the ECDSA signature (`ECDSA-Sig-Value`, RFC 3279) that
//! `Sign` returns, and the `SubjectPublicKeyInfo` (RFC 5480) that `GetPublicKey` returns.
//!
//! Both are read strictly, as DER and nothing looser: one definite short-form length per
//! element (every structure here is under 128 bytes), minimal positive integers, no trailing
//! bytes, and for the signature `1 <= r, s < n` of the curve. Anything else is refused, never
//! repaired: a signature keyward cannot read exactly is not one it puts into a certificate.
//! A `SubjectPublicKeyInfo` for an ECDSA P-256 or P-384 key has exactly one DER encoding, so it
//! is matched against that encoding's fixed header rather than decoded field by field.

use super::Curve;

/// DER tags used here.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;

/// The group order n of P-256 (FIPS 186-4, D.1.2.3), big-endian.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// The group order n of P-384 (FIPS 186-4, D.1.2.4), big-endian.
const P384_ORDER: [u8; 48] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37, 0x2D, 0xDF,
    0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0, 0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC, 0xC5, 0x29, 0x73,
];

/// `SEQUENCE { SEQUENCE { OID id-ecPublicKey, OID prime256v1 }, BIT STRING (0 unused bits) }`
/// up to the 65-byte uncompressed point.
pub(super) const P256_SPKI_HEADER: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x08, 0x2A,
    0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The same for secp384r1, up to the 97-byte uncompressed point.
pub(super) const P384_SPKI_HEADER: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01, 0x06, 0x05, 0x2B,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

/// Why DER from KMS was refused. The bytes are not echoed: they came from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("the signature is not a DER ECDSA-Sig-Value (SEQUENCE of two INTEGERs)")]
    Structure,
    #[error("the signature has bytes after its DER SEQUENCE")]
    Trailing,
    #[error("an ECDSA signature integer is not minimally encoded")]
    NonMinimal,
    #[error("an ECDSA signature integer is zero, negative or not below the curve order")]
    OutOfRange,
    #[error("the public key is not the SubjectPublicKeyInfo of an uncompressed ECDSA P-256 or P-384 key")]
    PublicKey,
}

impl Curve {
    fn order(self) -> &'static [u8] {
        match self {
            Curve::P256 => &P256_ORDER,
            Curve::P384 => &P384_ORDER,
        }
    }
}

/// The big-endian `(r, s)` of a DER `ECDSA-Sig-Value` for `curve`, without leading zero bytes
/// (what [`crate::keys::cert::UnsignedCertificate::assemble`] takes).
pub fn ecdsa_signature(der: &[u8], curve: Curve) -> Result<(Vec<u8>, Vec<u8>), DerError> {
    let (content, rest) = element(der, SEQUENCE)?;
    if !rest.is_empty() {
        return Err(DerError::Trailing);
    }
    let (r, rest) = element(content, INTEGER)?;
    let (s, rest) = element(rest, INTEGER)?;
    if !rest.is_empty() {
        return Err(DerError::Structure);
    }
    Ok((scalar(r, curve)?, scalar(s, curve)?))
}

/// The uncompressed SEC1 point of a P-256 or P-384 `SubjectPublicKeyInfo`, and its curve.
pub fn ec_public_key(spki: &[u8]) -> Result<(Curve, &[u8]), DerError> {
    let (curve, point) = if let Some(point) = spki.strip_prefix(&P256_SPKI_HEADER[..]) {
        (Curve::P256, point)
    } else if let Some(point) = spki.strip_prefix(&P384_SPKI_HEADER[..]) {
        (Curve::P384, point)
    } else {
        return Err(DerError::PublicKey);
    };
    let coordinate = curve.order().len();
    if point.len() != 1 + 2 * coordinate || point.first() != Some(&0x04) {
        return Err(DerError::PublicKey);
    }
    Ok((curve, point))
}

/// One element with tag `tag` at the start of `input`: its content and what follows it. Only
/// short-form lengths: every element here is shorter than 128 bytes, so a long form would be
/// non-minimal (and an indefinite one is not DER).
fn element(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), DerError> {
    match input {
        [found, len, rest @ ..] if *found == tag && *len < 0x80 => {
            let len = usize::from(*len);
            if rest.len() < len {
                return Err(DerError::Structure);
            }
            Ok(rest.split_at(len))
        }
        [found, len, ..] if *found == tag && *len > 0x80 => Err(DerError::NonMinimal),
        _ => Err(DerError::Structure),
    }
}

/// A DER INTEGER's content as an ECDSA scalar in `[1, n)`, big-endian without leading zeros.
fn scalar(content: &[u8], curve: Curve) -> Result<Vec<u8>, DerError> {
    let magnitude = match content {
        [] => return Err(DerError::Structure),
        // A leading zero only where the next byte's high bit would otherwise make it negative.
        [0x00, next, ..] if *next < 0x80 => return Err(DerError::NonMinimal),
        [0x00, rest @ ..] if !rest.is_empty() => rest,
        [first, ..] if *first >= 0x80 => return Err(DerError::OutOfRange),
        all => all,
    };
    let order = curve.order();
    let below_order =
        magnitude.len() < order.len() || (magnitude.len() == order.len() && magnitude < order);
    if magnitude.iter().all(|b| *b == 0) || !below_order {
        return Err(DerError::OutOfRange);
    }
    Ok(magnitude.to_vec())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A DER element with a short-form length.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag, u8::try_from(content.len()).unwrap()];
        out.extend_from_slice(content);
        out
    }

    fn sig(r: &[u8], s: &[u8]) -> Vec<u8> {
        tlv(SEQUENCE, &[tlv(INTEGER, r), tlv(INTEGER, s)].concat())
    }

    #[test]
    fn a_well_formed_signature_gives_r_and_s_without_sign_bytes() {
        // r has its high bit set, so DER prefixes a zero; s does not.
        let r = [[0x00, 0x80].as_slice(), &[0x11; 31]].concat();
        let s = [0x7F; 32];
        let (got_r, got_s) = ecdsa_signature(&sig(&r, &s), Curve::P256).unwrap();
        assert_eq!(got_r, r[1..]);
        assert_eq!(got_s, s);
        // Short scalars are legal (about 1 in 256 signatures).
        let (got_r, _) = ecdsa_signature(&sig(&[0x01], &s), Curve::P256).unwrap();
        assert_eq!(got_r, [0x01]);
    }

    #[test]
    fn p384_takes_48_byte_scalars_that_p256_refuses() {
        let s48 = [[0x00].as_slice(), &[0xAA; 48]].concat();
        let der = sig(&[0x05], &s48);
        assert_eq!(ecdsa_signature(&der, Curve::P384).unwrap().1, [0xAA; 48]);
        assert_eq!(
            ecdsa_signature(&der, Curve::P256),
            Err(DerError::OutOfRange)
        );
    }

    #[test]
    fn hostile_signatures_are_refused() {
        let good = sig(&[0x01], &[0x02]);
        let mut trailing = good.clone();
        trailing.push(0x00);
        let mut three = tlv(INTEGER, &[1]);
        three.extend(tlv(INTEGER, &[2]));
        three.extend(tlv(INTEGER, &[3]));
        let mut long_form = vec![SEQUENCE, 0x81, 6];
        long_form.extend(&good[2..]);
        let order_minus_one = {
            let mut n = P256_ORDER;
            n[31] -= 1;
            [[0x00].as_slice(), &n].concat()
        };
        let order = [[0x00].as_slice(), &P256_ORDER].concat();
        let cases: Vec<(&str, Vec<u8>, DerError)> = vec![
            ("empty", vec![], DerError::Structure),
            ("trailing byte", trailing, DerError::Trailing),
            (
                "wrong outer tag",
                tlv(0x31, &good[2..]),
                DerError::Structure,
            ),
            (
                "wrong integer tag",
                tlv(SEQUENCE, &[tlv(0x03, &[1]), tlv(INTEGER, &[2])].concat()),
                DerError::Structure,
            ),
            (
                "one integer",
                tlv(SEQUENCE, &tlv(INTEGER, &[1])),
                DerError::Structure,
            ),
            ("three integers", tlv(SEQUENCE, &three), DerError::Structure),
            (
                "length past the end",
                vec![SEQUENCE, 0x10, INTEGER, 1, 1],
                DerError::Structure,
            ),
            (
                "integer longer than its sequence",
                vec![SEQUENCE, 3, INTEGER, 5, 1],
                DerError::Structure,
            ),
            ("long-form length", long_form, DerError::NonMinimal),
            (
                "indefinite length",
                vec![SEQUENCE, 0x80, INTEGER, 1, 1, INTEGER, 1, 2, 0, 0],
                DerError::Structure,
            ),
            ("empty integer", sig(&[], &[2]), DerError::Structure),
            (
                "padded integer",
                sig(&[0x00, 0x01], &[2]),
                DerError::NonMinimal,
            ),
            ("negative integer", sig(&[0x80], &[2]), DerError::OutOfRange),
            ("zero r", sig(&[0x00], &[2]), DerError::OutOfRange),
            ("zero s", sig(&[1], &[0x00]), DerError::OutOfRange),
            ("s equal to n", sig(&[1], &order), DerError::OutOfRange),
            (
                "r longer than n",
                sig(&[[0x01].as_slice(), &[0; 32]].concat(), &[2]),
                DerError::OutOfRange,
            ),
        ];
        for (name, der, want) in cases {
            assert_eq!(ecdsa_signature(&der, Curve::P256), Err(want), "{name}");
        }
        assert!(ecdsa_signature(&sig(&[1], &order_minus_one), Curve::P256).is_ok());
    }

    #[test]
    fn spki_of_either_curve_gives_its_point() {
        let point = [[0x04].as_slice(), &[0x33; 64]].concat();
        let spki = [P256_SPKI_HEADER.as_slice(), &point].concat();
        assert_eq!(ec_public_key(&spki), Ok((Curve::P256, point.as_slice())));
        let point = [[0x04].as_slice(), &[0x44; 96]].concat();
        let spki = [P384_SPKI_HEADER.as_slice(), &point].concat();
        assert_eq!(ec_public_key(&spki), Ok((Curve::P384, point.as_slice())));
    }

    #[test]
    fn other_public_keys_are_refused() {
        let point = [[0x04].as_slice(), &[0x33; 64]].concat();
        let good = [P256_SPKI_HEADER.as_slice(), &point].concat();
        let mut trailing = good.clone();
        trailing.push(0);
        let mut compressed = good.clone();
        compressed[P256_SPKI_HEADER.len()] = 0x02;
        // A P-384 header with a P-256-sized point.
        let mismatched = [P384_SPKI_HEADER.as_slice(), &point].concat();
        // An RSA SubjectPublicKeyInfo starts with another algorithm identifier.
        let rsa = [
            0x30, 0x82, 0x01, 0x22, 0x30, 0x0D, 0x06, 0x09, 0x2A, 0x86, 0x48,
        ];
        for (name, spki) in [
            ("empty", vec![]),
            ("trailing byte", trailing),
            ("short", good[..good.len() - 1].to_vec()),
            ("compressed point", compressed),
            ("curve and length disagree", mismatched),
            ("rsa", rsa.to_vec()),
        ] {
            assert_eq!(ec_public_key(&spki), Err(DerError::PublicKey), "{name}");
        }
    }
}
