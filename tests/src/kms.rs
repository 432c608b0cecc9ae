//! KMS signing keys in moto for the custody suites: moto's KMS signs and verifies RAW messages with
//! RSA and ECC keys and gives their public halves (its RSASSA-PSS salt is the longest the key
//! allows, where KMS's is 32 bytes; both are PSS, and the collector and `openssl … -sigopt
//! rsa_pss_saltlen:auto` accept either). Disabled keys are refused as KMS refuses them
//! (`tests/helpers/motokms.py`).

use crate::MotoServer;

/// A KMS client of one moto server.
pub struct Kms {
    runtime: tokio::runtime::Runtime,
    client: aws_sdk_kms::Client,
}

impl Kms {
    /// A client of `moto`, with its test credentials.
    pub fn on(moto: &MotoServer) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let creds =
            aws_sdk_kms::config::Credentials::new("testing", "testing", None, None, "tests");
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(moto.endpoint())
                .region(aws_sdk_kms::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .load(),
        );
        Self {
            client: aws_sdk_kms::Client::new(&config),
            runtime,
        }
    }

    /// A new `SIGN_VERIFY` key of `spec` (`ECC_NIST_P256`, `RSA_2048`, …): its ARN.
    pub fn signing_key(&self, spec: &str) -> String {
        self.key(spec, aws_sdk_kms::types::KeyUsageType::SignVerify)
    }

    /// A new key of `spec` and `usage`: its ARN.
    pub fn key(&self, spec: &str, usage: aws_sdk_kms::types::KeyUsageType) -> String {
        let answer = self
            .runtime
            .block_on(
                self.client
                    .create_key()
                    .key_spec(aws_sdk_kms::types::KeySpec::from(spec))
                    .key_usage(usage)
                    .send(),
            )
            .expect("CreateKey");
        answer
            .key_metadata()
            .expect("key metadata")
            .arn()
            .expect("key ARN")
            .to_owned()
    }

    /// Disables `key` (an ARN or ID; moto's DisableKey takes only the ID).
    pub fn disable(&self, key: &str) {
        let id = key.rsplit('/').next().unwrap_or(key);
        self.runtime
            .block_on(self.client.disable_key().key_id(id).send())
            .expect("DisableKey");
    }
}
