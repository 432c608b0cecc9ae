//! The two signing algorithms a custody statement may carry, and their check against a public key,
//! offline: what `verify --public-key` does, and what `openssl dgst -sha256 -verify` does without us.
//!
//! Both are KMS's names for what its asymmetric keys sign with. `ECDSA_SHA_256` (an `ECC_NIST_P256`
//! key) gives a DER-encoded ECDSA signature; `RSASSA_PSS_SHA_256` (an `RSA_2048` … `RSA_4096` key)
//! PSS with SHA-256 and MGF1-SHA-256. KMS's PSS salt is as long as the digest (32 bytes); other
//! signers (moto's KMS among them) use the longest salt the key allows. Both are PSS as its standard
//! defines it, and `openssl … -sigopt rsa_pss_saltlen:auto` accepts either, so the offline check does
//! too.

use std::fmt;

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters, RsaPssSaltLength};
use serde::{Deserialize, Serialize};

/// How a statement is signed, by KMS's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (KMS key spec `ECC_NIST_P256`).
    #[serde(rename = "ECDSA_SHA_256")]
    EcdsaSha256,
    /// RSASSA-PSS with SHA-256 (KMS key specs `RSA_2048`, `RSA_3072`, `RSA_4096`).
    #[serde(rename = "RSASSA_PSS_SHA_256")]
    RsassaPssSha256,
}

/// PSS with the longest salt the key allows, beside the default digest-length salt.
const PSS_MAX_SALT: RsaParameters =
    signature::RSA_PSS_2048_8192_SHA256.with_pss_salt_length(RsaPssSaltLength::Max);

impl SigningAlgorithm {
    /// Every algorithm, in the order a signer tries them on a key whose spec it does not know.
    pub const ALL: [Self; 2] = [Self::EcdsaSha256, Self::RsassaPssSha256];

    /// KMS's name (`ECDSA_SHA_256`, `RSASSA_PSS_SHA_256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaSha256 => "ECDSA_SHA_256",
            Self::RsassaPssSha256 => "RSASSA_PSS_SHA_256",
        }
    }

    /// The algorithm KMS calls `name`, if it is one of ours.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The checks a signature of this algorithm may pass, in the order they are tried.
    fn verifiers(self) -> &'static [&'static dyn signature::VerificationAlgorithm] {
        match self {
            Self::EcdsaSha256 => &[&signature::ECDSA_P256_SHA256_ASN1],
            Self::RsassaPssSha256 => &[&signature::RSA_PSS_2048_8192_SHA256, &PSS_MAX_SALT],
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a signature did not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The key is not one this algorithm can use (an RSA key for ECDSA, another curve, a key
    /// shorter than 2,048 bits).
    #[error("the public key is not a key for {0}")]
    WrongKeyType(SigningAlgorithm),
    /// The signature is not this key's over these bytes.
    #[error("the signature does not match the statement under this public key")]
    Mismatch,
}

/// A public key as KMS `GetPublicKey` gives it: a DER `SubjectPublicKeyInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    der: Vec<u8>,
}

/// The PEM label of a `SubjectPublicKeyInfo` (`openssl pkey -pubin` reads and writes it).
const PEM_LABEL: &str = "PUBLIC KEY";

impl PublicKey {
    /// Largest key accepted: an RSA-4096 `SubjectPublicKeyInfo` is 550 bytes in DER.
    pub const MAX_DER_BYTES: usize = 4096;

    /// A DER `SubjectPublicKeyInfo` (KMS's `PublicKey` field).
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        if der.is_empty() || der.len() > Self::MAX_DER_BYTES {
            return Err(format!(
                "a public key is 1 to {} bytes of DER, not {}",
                Self::MAX_DER_BYTES,
                der.len()
            ));
        }
        Ok(Self { der: der.to_vec() })
    }

    /// A PEM `PUBLIC KEY` block (what `export-key` and `openssl pkey -pubin -outform PEM` write).
    pub fn from_pem(text: &[u8]) -> Result<Self, String> {
        let (label, der) = pem_rfc7468::decode_vec(text.trim_ascii())
            .map_err(|e| format!("not a PEM block: {e}"))?;
        if label != PEM_LABEL {
            return Err(format!(
                "the PEM block is a {label:?}, not a {PEM_LABEL:?} (SubjectPublicKeyInfo)"
            ));
        }
        Self::from_der(&der)
    }

    /// The key as a PEM `PUBLIC KEY` block, ending with a newline.
    pub fn to_pem(&self) -> String {
        pem_rfc7468::encode_string(PEM_LABEL, pem_rfc7468::LineEnding::LF, &self.der)
            .unwrap_or_default()
    }

    /// Checks `signature` over `message` with `algorithm`.
    pub fn verify(
        &self,
        algorithm: SigningAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), SignatureError> {
        let mut usable = false;
        for verifier in algorithm.verifiers() {
            let Ok(key) = ParsedPublicKey::new(*verifier, &self.der) else {
                continue;
            };
            usable = true;
            if key.verify_sig(message, signature).is_ok() {
                return Ok(());
            }
        }
        Err(if usable {
            SignatureError::Mismatch
        } else {
            SignatureError::WrongKeyType(algorithm)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, RsaKeyPair};

    /// A fresh P-256 key: its public half as SPKI DER, and a signer.
    fn ecdsa() -> (PublicKey, impl Fn(&[u8]) -> Vec<u8>) {
        let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new()).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
        let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            pair.public_key(),
        )
        .unwrap();
        let key = PublicKey::from_der(spki.as_ref()).unwrap();
        (key, move |m: &[u8]| {
            pair.sign(&SystemRandom::new(), m)
                .unwrap()
                .as_ref()
                .to_vec()
        })
    }

    fn rsa_pair() -> RsaKeyPair {
        RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap()
    }

    fn rsa_public(pair: &RsaKeyPair) -> PublicKey {
        let spki = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::PublicKeyX509Der>::as_der(
            pair.public_key(),
        )
        .unwrap();
        PublicKey::from_der(spki.as_ref()).unwrap()
    }

    fn pss_sign(pair: &RsaKeyPair, message: &[u8]) -> Vec<u8> {
        let mut sig = vec![0; pair.public_modulus_len()];
        pair.sign(
            &signature::RSA_PSS_SHA256,
            &SystemRandom::new(),
            message,
            &mut sig,
        )
        .unwrap();
        sig
    }

    #[test]
    fn an_ecdsa_signature_checks_and_any_flip_fails() {
        let (key, sign) = ecdsa();
        let sig = sign(b"statement");
        let alg = SigningAlgorithm::EcdsaSha256;
        assert_eq!(key.verify(alg, b"statement", &sig), Ok(()));
        assert_eq!(
            key.verify(alg, b"statemenT", &sig),
            Err(SignatureError::Mismatch)
        );
        let mut bad = sig.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            key.verify(alg, b"statement", &bad),
            Err(SignatureError::Mismatch)
        );
        let (other, _) = ecdsa();
        assert_eq!(
            other.verify(alg, b"statement", &sig),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            key.verify(SigningAlgorithm::RsassaPssSha256, b"statement", &sig),
            Err(SignatureError::WrongKeyType(
                SigningAlgorithm::RsassaPssSha256
            ))
        );
    }

    #[test]
    fn a_pss_signature_checks_with_a_digest_length_salt_and_the_longest_one() {
        let pair = rsa_pair();
        let key = rsa_public(&pair);
        let alg = SigningAlgorithm::RsassaPssSha256;
        let sig = pss_sign(&pair, b"statement");
        assert_eq!(key.verify(alg, b"statement", &sig), Ok(()));
        assert_eq!(
            key.verify(alg, b"Statement", &sig),
            Err(SignatureError::Mismatch)
        );
        // moto's KMS (and `openssl -sigopt rsa_pss_saltlen:max`) sign with the longest salt.
        let mut long = vec![0; pair.public_modulus_len()];
        pair.sign(
            &const { signature::RSA_PSS_SHA256.with_pss_salt_length(RsaPssSaltLength::Max) },
            &SystemRandom::new(),
            b"statement",
            &mut long,
        )
        .unwrap();
        assert_eq!(key.verify(alg, b"statement", &long), Ok(()));
        assert_eq!(
            key.verify(SigningAlgorithm::EcdsaSha256, b"statement", &sig),
            Err(SignatureError::WrongKeyType(SigningAlgorithm::EcdsaSha256))
        );
        // A PKCS#1 v1.5 signature by the same key is not PSS.
        let mut pkcs1 = vec![0; pair.public_modulus_len()];
        pair.sign(
            &signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            b"statement",
            &mut pkcs1,
        )
        .unwrap();
        assert_eq!(
            key.verify(alg, b"statement", &pkcs1),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn keys_round_trip_through_pem_and_other_blocks_are_refused() {
        let (key, _) = ecdsa();
        let pem = key.to_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"), "{pem}");
        assert_eq!(PublicKey::from_pem(pem.as_bytes()).unwrap(), key);
        assert_eq!(
            PublicKey::from_pem(format!("\n{pem}\n\n").as_bytes()).unwrap(),
            key
        );
        let cert = pem.replace("PUBLIC KEY", "CERTIFICATE");
        let err = PublicKey::from_pem(cert.as_bytes()).unwrap_err();
        assert!(err.contains("\"CERTIFICATE\""), "{err}");
        assert!(PublicKey::from_pem(b"not pem").is_err());
        assert!(PublicKey::from_der(&[]).is_err());
        assert!(PublicKey::from_der(&[0; 4097]).is_err());
        assert!(PublicKey::from_der(&[0; 4096]).is_ok());
        let junk = PublicKey::from_der(&[0x30, 0x03, 1, 2, 3]).unwrap();
        assert_eq!(
            junk.verify(SigningAlgorithm::EcdsaSha256, b"m", b"s"),
            Err(SignatureError::WrongKeyType(SigningAlgorithm::EcdsaSha256))
        );
    }

    #[test]
    fn algorithms_are_named_as_kms_names_them() {
        for alg in SigningAlgorithm::ALL {
            assert_eq!(SigningAlgorithm::from_name(alg.name()), Some(alg));
            assert_eq!(
                serde_json::to_string(&alg).unwrap(),
                format!("\"{}\"", alg.name())
            );
            assert_eq!(alg.to_string(), alg.name());
        }
        assert_eq!(SigningAlgorithm::EcdsaSha256.name(), "ECDSA_SHA_256");
        assert_eq!(
            SigningAlgorithm::RsassaPssSha256.name(),
            "RSASSA_PSS_SHA_256"
        );
        assert_eq!(
            SigningAlgorithm::from_name("RSASSA_PKCS1_V1_5_SHA_256"),
            None
        );
    }
}
