//! An in-memory KMS for unit tests: keys, aliases and P-256 signatures (p256, test builds only).
//! P-384 keys have a fixed public point and cannot sign here; moto signs with them in
//! tests/ca.rs.

use std::cell::RefCell;
use std::collections::BTreeMap;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};

use super::der::{P256_SPKI_HEADER, P384_SPKI_HEADER};
use super::{Curve, KeyInfo, Kms, KmsError};

/// The account every fake key's ARN names (moto's, and the unit tests' STS answers').
pub const FAKE_ACCOUNT: &str = "123456789012";

#[derive(Default)]
pub struct FakeKms {
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    keys: BTreeMap<String, (KeyInfo, Option<SigningKey>)>,
    aliases: BTreeMap<String, String>,
    /// Calls of `sign`, `create_key` and `schedule_deletion`.
    signs: usize,
    creates: usize,
    deletions: Vec<String>,
    /// What `sign` returns instead of a real signature.
    signature: Option<Vec<u8>>,
    /// A key another `ca init` points the alias at just before this one's CreateAlias.
    race: Option<(String, String)>,
}

impl std::fmt::Debug for FakeKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FakeKms")
    }
}

impl FakeKms {
    /// Adds a key; returns its id.
    pub fn key(&self, usage: &str, spec: &str, state: &str) -> String {
        let mut st = self.state.borrow_mut();
        let key_id = format!("fake-key-{}", st.keys.len() + 1);
        let signer = (spec == "ECC_NIST_P256").then(|| {
            SigningKey::from_slice(&[u8::try_from(st.keys.len() + 1).unwrap(); 32]).unwrap()
        });
        let info = KeyInfo {
            arn: format!("arn:aws:kms:us-east-1:{FAKE_ACCOUNT}:key/{key_id}"),
            key_id: key_id.clone(),
            usage: usage.into(),
            spec: spec.into(),
            state: state.into(),
        };
        st.keys.insert(key_id.clone(), (info, signer));
        key_id
    }

    pub fn alias(&self, alias: &str, key_id: &str) {
        self.state
            .borrow_mut()
            .aliases
            .insert(alias.into(), key_id.into());
    }

    pub fn lose_race_for(&self, alias: &str, winner: &str) {
        self.state.borrow_mut().race = Some((alias.into(), winner.into()));
    }

    pub fn answer_sign_with(&self, der: Vec<u8>) {
        self.state.borrow_mut().signature = Some(der);
    }

    pub fn signs(&self) -> usize {
        self.state.borrow().signs
    }

    pub fn creates(&self) -> usize {
        self.state.borrow().creates
    }

    pub fn deletions(&self) -> Vec<String> {
        self.state.borrow().deletions.clone()
    }

    pub fn key_count(&self) -> usize {
        self.state.borrow().keys.len()
    }

    pub fn verifying_key(&self, key_id: &str) -> p256::ecdsa::VerifyingKey {
        *self.state.borrow().keys[key_id]
            .1
            .as_ref()
            .unwrap()
            .verifying_key()
    }

    fn resolve(&self, key: &str) -> Option<String> {
        let st = self.state.borrow();
        match st.aliases.get(key) {
            Some(id) => Some(id.clone()),
            None => st.keys.contains_key(key).then(|| key.to_owned()),
        }
    }
}

/// DER `ECDSA-Sig-Value` of a p256 signature.
pub fn der_signature(signature: &Signature) -> Vec<u8> {
    let integer = |bytes: &[u8]| {
        let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
        let mut content = if trimmed.first().is_some_and(|b| *b >= 0x80) {
            vec![0]
        } else {
            vec![]
        };
        content.extend(trimmed);
        let mut out = vec![0x02, u8::try_from(content.len()).unwrap()];
        out.extend(content);
        out
    };
    let body = [
        integer(&signature.r().to_bytes()),
        integer(&signature.s().to_bytes()),
    ]
    .concat();
    let mut out = vec![0x30, u8::try_from(body.len()).unwrap()];
    out.extend(body);
    out
}

impl Kms for &FakeKms {
    async fn describe(&self, key: &str) -> Result<Option<KeyInfo>, KmsError> {
        let Some(id) = self.resolve(key) else {
            return Ok(None);
        };
        Ok(Some(self.state.borrow().keys[&id].0.clone()))
    }

    async fn create_key(&self, curve: Curve, _description: &str) -> Result<KeyInfo, KmsError> {
        self.state.borrow_mut().creates += 1;
        let id = self.key("SIGN_VERIFY", curve.key_spec(), "Enabled");
        Ok(self.state.borrow().keys[&id].0.clone())
    }

    async fn create_alias(&self, alias: &str, key_id: &str) -> Result<(), KmsError> {
        let race = self.state.borrow_mut().race.take();
        if let Some((raced, winner)) = race {
            self.alias(&raced, &winner);
        }
        if self.state.borrow().aliases.contains_key(alias) {
            return Err(KmsError::AlreadyExists(alias.into()));
        }
        self.alias(alias, key_id);
        Ok(())
    }

    async fn schedule_deletion(&self, key_id: &str) -> Result<(), KmsError> {
        self.state.borrow_mut().deletions.push(key_id.into());
        Ok(())
    }

    async fn public_key(&self, key_id: &str) -> Result<Vec<u8>, KmsError> {
        let st = self.state.borrow();
        let (info, signer) = st
            .keys
            .get(key_id)
            .ok_or_else(|| KmsError::NotFound(key_id.into()))?;
        Ok(match (info.spec.as_str(), signer) {
            ("ECC_NIST_P256", Some(signer)) => {
                let point = signer.verifying_key().to_encoded_point(false);
                [P256_SPKI_HEADER.as_slice(), point.as_bytes()].concat()
            }
            ("ECC_NIST_P384", _) => {
                // A point of the right shape (nothing here checks it is on the curve).
                let point = [[0x04].as_slice(), &[0x11; 96]].concat();
                [P384_SPKI_HEADER.as_slice(), &point].concat()
            }
            _ => b"not an EC key".to_vec(),
        })
    }

    async fn sign(&self, key_id: &str, message: &[u8], curve: Curve) -> Result<Vec<u8>, KmsError> {
        let mut st = self.state.borrow_mut();
        st.signs += 1;
        if let Some(der) = &st.signature {
            return Ok(der.clone());
        }
        assert_eq!(curve, Curve::P256, "the fake signs with P-256 only");
        let signer = st.keys[key_id].1.as_ref().unwrap();
        let signature: Signature = signer.sign(message);
        Ok(der_signature(&signature))
    }
}
