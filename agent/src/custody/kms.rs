//! KMS signing of custody statements, and the online checks `verify` and `custody export-key` ask
//! KMS for.
//!
//! A run with a signing key proves before the first byte is read that it may sign: [`Signer::ready`]
//! signs a fixed probe message (one `kms:Sign`, the only permission the collector role has on the
//! key), which also tells the key's ARN and which of the two algorithms its spec takes, without
//! `kms:DescribeKey`. An hour-long capture that could not sign at its end would leave nothing; one
//! refused at its start costs nothing. The statement itself is signed at the end ([`Signer::sign`]),
//! RAW (KMS hashes it): moto's KMS does not implement DIGEST, and a RAW statement is what openssl
//! checks.

use anyhow::anyhow;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use imaging::custody::{PublicKey, SigningAlgorithm};
use tokio::runtime::Runtime;

use crate::exit::{Exit, Failure};

/// What the probe signature is over: never a statement (which is JSON), so it vouches for nothing.
const PROBE: &[u8] = b"forensic-collector: may this role sign custody statements with this key?";

/// A KMS key this run may sign with.
#[derive(Debug, Clone)]
pub struct Signer {
    client: aws_sdk_kms::Client,
    /// The key's ARN, as KMS named it when it signed the probe.
    key_arn: String,
    /// The algorithm its spec takes.
    algorithm: SigningAlgorithm,
}

impl Signer {
    /// Signs the probe with `key_id` (ID, alias or ARN), trying each algorithm until KMS takes one.
    pub fn ready(
        runtime: &Runtime,
        client: aws_sdk_kms::Client,
        key_id: &str,
    ) -> Result<Self, Failure> {
        let mut refusals = Vec::new();
        for algorithm in SigningAlgorithm::ALL {
            match runtime.block_on(sign(&client, key_id, algorithm, PROBE)) {
                Ok((key_arn, _)) => {
                    return Ok(Self {
                        client,
                        key_arn,
                        algorithm,
                    });
                }
                Err(SignRefusal::Algorithm(text)) => refusals.push(format!("{algorithm}: {text}")),
                Err(SignRefusal::Other(text)) => {
                    return Err(signing(format!(
                        "KMS key {key_id} cannot sign custody statements: {text}"
                    )));
                }
            }
        }
        Err(signing(format!(
            "KMS key {key_id} signs with neither ECDSA_SHA_256 (ECC_NIST_P256) nor RSASSA_PSS_SHA_256 (RSA): {}",
            refusals.join("; ")
        )))
    }

    /// The key's ARN.
    pub fn key_arn(&self) -> &str {
        &self.key_arn
    }

    /// The algorithm.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// Signs `statement` (at most 4,096 bytes): the signature's bytes.
    pub fn sign(&self, runtime: &Runtime, statement: &[u8]) -> Result<Vec<u8>, Failure> {
        runtime
            .block_on(sign(&self.client, &self.key_arn, self.algorithm, statement))
            .map(|(_, signature)| signature)
            .map_err(|refusal| {
                signing(format!(
                    "KMS did not sign the custody statement with {}: {}",
                    self.key_arn,
                    refusal.text()
                ))
            })
    }
}

/// Why KMS did not sign.
enum SignRefusal {
    /// The key does not take this algorithm (its spec is another).
    Algorithm(String),
    /// Anything else: denied, disabled, not found, unreachable.
    Other(String),
}

impl SignRefusal {
    fn text(&self) -> &str {
        match self {
            Self::Algorithm(text) | Self::Other(text) => text,
        }
    }
}

/// One RAW `Sign`: the key's ARN and the signature.
async fn sign(
    client: &aws_sdk_kms::Client,
    key_id: &str,
    algorithm: SigningAlgorithm,
    message: &[u8],
) -> Result<(String, Vec<u8>), SignRefusal> {
    let answer = client
        .sign()
        .key_id(key_id)
        .message(Blob::new(message))
        .message_type(MessageType::Raw)
        .signing_algorithm(SigningAlgorithmSpec::from(algorithm.name()))
        .send()
        .await
        .map_err(|err| {
            let text = error_text(&err);
            // KMS answers an algorithm its key spec does not take with InvalidKeyUsageException
            // (moto: a ValidationException naming the algorithm): the next one may be the key's.
            // Everything else (denied, disabled, not found, unreachable) refuses the key.
            let code = err.code().unwrap_or_default();
            if code == "InvalidKeyUsageException"
                || (code == "ValidationException" && text.contains("lgorithm"))
            {
                SignRefusal::Algorithm(text)
            } else {
                SignRefusal::Other(text)
            }
        })?;
    let arn = answer.key_id.unwrap_or_else(|| key_id.to_owned());
    let signature = answer
        .signature
        .map(Blob::into_inner)
        .ok_or_else(|| SignRefusal::Other("KMS answered without a signature".to_owned()))?;
    Ok((arn, signature))
}

/// KMS's own check of `signature` over `message` with `key_id` (`verify` without `--public-key`):
/// `Ok(true)` valid, `Ok(false)` invalid, `Err` when KMS could not be asked.
pub fn verify_online(
    runtime: &Runtime,
    client: &aws_sdk_kms::Client,
    key_id: &str,
    algorithm: SigningAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<bool, Failure> {
    let answer = runtime.block_on(
        client
            .verify()
            .key_id(key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signature(Blob::new(signature))
            .signing_algorithm(SigningAlgorithmSpec::from(algorithm.name()))
            .send(),
    );
    match answer {
        Ok(answer) => Ok(answer.signature_valid),
        Err(err) => {
            let code = err.code().unwrap_or_default();
            // KMS says an invalid signature this way rather than with `SignatureValid: false`.
            if code == "KMSInvalidSignatureException" {
                return Ok(false);
            }
            Err(signing(format!(
                "KMS could not check the signature with {key_id}: {} (check offline with --public-key)",
                error_text(&err)
            )))
        }
    }
}

/// The public half of `key_id` (`kms:GetPublicKey`), and the algorithms KMS says it signs with.
pub fn public_key(
    runtime: &Runtime,
    client: &aws_sdk_kms::Client,
    key_id: &str,
) -> Result<(PublicKey, String, Vec<String>), Failure> {
    let answer = runtime
        .block_on(client.get_public_key().key_id(key_id).send())
        .map_err(|err| {
            signing(format!(
                "KMS did not give the public key of {key_id}: {}",
                error_text(&err)
            ))
        })?;
    let der = answer
        .public_key
        .ok_or_else(|| signing(format!("KMS gave no public key for {key_id}")))?;
    let key = PublicKey::from_der(der.as_ref())
        .map_err(|e| signing(format!("KMS's public key for {key_id}: {e}")))?;
    let arn = answer.key_id.unwrap_or_else(|| key_id.to_owned());
    let algorithms = answer
        .signing_algorithms
        .unwrap_or_default()
        .iter()
        .map(|a| a.as_str().to_owned())
        .collect();
    Ok((key, arn, algorithms))
}

/// An SDK error as one line: KMS's code and message when it answered (`AccessDeniedException: …`),
/// else the whole chain (a connection that failed, a timeout).
fn error_text<E, R>(err: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match (err.code(), err.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code.to_owned(),
        _ => DisplayErrorContext(err).to_string(),
    }
}

fn signing(message: String) -> Failure {
    Failure::new(Exit::Signing, anyhow!(message))
}
