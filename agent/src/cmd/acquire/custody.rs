//! The acquisition's custody record: the facts gathered before the first byte is read, and the
//! signed statement stored after the capture log and before the manifest.
//!
//! With a signing key (`custody.kms_key_id`, `--sign-kms-key-id`) the run proves it may sign
//! before anything is created ([`signer`]), and at the end signs the statement of the manifest's
//! exact bytes and stores it and its signature beside the manifest, each conditionally; if KMS
//! does not sign, the run fails as any store would: what it stored is removed, no manifest.

use imaging::custody::{CustodyFacts, SignatureRecord, Signing, Statement};
use imaging::{EvidenceFiles, Manifest};

use super::destination::Destination;
use crate::cli::AcquireArgs;
use crate::config::Config;
use crate::custody::facts;
use crate::custody::kms::Signer;
use crate::exit::{Exit, Failure};

/// The custody facts of a prepared run, and its signer.
pub(super) struct CustodyPlan {
    /// What the manifest's custody section says besides the step times.
    pub(super) facts: CustodyFacts,
    signer: Option<Signer>,
}

/// The key that signs this run's statement, ready (it signed the probe), when one is set.
pub(super) fn signer(settings: &Config) -> Result<Option<Signer>, Failure> {
    let Some(key_id) = &settings.sign_kms_key_id else {
        return Ok(None);
    };
    let runtime = crate::aws::runtime()?;
    let (_, kms) = crate::aws::custody_clients(runtime);
    let signer = Signer::ready(runtime, kms, key_id)?;
    tracing::info!(key = %signer.key_arn(), algorithm = %signer.algorithm(),
        "Custody statements will be signed with this KMS key.");
    Ok(Some(signer))
}

/// Whether the run talks to AWS (S3, a snapshot, KMS, Step Functions): then STS is asked who it
/// is, and IMDS where it runs.
pub(super) fn uses_aws(args: &AcquireArgs, signed: bool) -> bool {
    signed
        || args.dest.is_some()
        || args.task_token.is_some()
        || args.source.to_string_lossy().starts_with("ebs-snapshot://")
}

/// Gathers the facts (STS when the run uses AWS) for the files `files`.
pub(super) fn prepare(
    args: &AcquireArgs,
    signer: Option<Signer>,
    files: &EvidenceFiles,
    instance: Option<&crate::imds::InstanceData>,
    instance_id: Option<&str>,
) -> Result<CustodyPlan, Failure> {
    let principal = if uses_aws(args, signer.is_some()) {
        let runtime = crate::aws::runtime()?;
        let (sts, _) = crate::aws::custody_clients(runtime);
        facts::principal(runtime, &sts)
    } else {
        None
    };
    let tool = facts::tool().map_err(|e| {
        Failure::new(
            Exit::Internal,
            anyhow::anyhow!("cannot hash this program (/proc/self/exe): {e}"),
        )
    })?;
    let signature = signer.as_ref().map_or(SignatureRecord::Unsigned, |signer| {
        SignatureRecord::Signed {
            key_arn: signer.key_arn().to_owned(),
            algorithm: signer.algorithm(),
            statement: files.custody_statement.clone(),
            signature: files.custody_signature.clone(),
        }
    });
    let facts = CustodyFacts {
        principal,
        unix_user: facts::unix_user(),
        host: facts::host(instance, instance_id),
        tool,
        examiner: args.examiner.clone(),
        settings: facts::origins(&args.setting_origins, &args.settings),
        detected_at: args.detected_at,
        signature,
    };
    Ok(CustodyPlan { facts, signer })
}

impl CustodyPlan {
    /// With a signer: the statement of `record` (the manifest's bytes), signed, stored with its
    /// signature. Without one, nothing.
    pub(super) fn sign_and_store(
        &self,
        destination: &Destination,
        files: &EvidenceFiles,
        manifest: &Manifest,
        record: &[u8],
    ) -> Result<(), Failure> {
        let Some(signer) = &self.signer else {
            return Ok(());
        };
        let location = destination.describe_file(&files.manifest);
        let signing = Signing {
            manifest_file: &files.manifest,
            location: &location,
            key_arn: signer.key_arn(),
            algorithm: signer.algorithm(),
            signed_at: chrono::Utc::now(),
        };
        let signed = Statement::new(manifest, record, &signing)
            .map(|statement| statement.to_bytes())
            .filter(|bytes| bytes.len() <= Statement::MAX_BYTES)
            .ok_or_else(|| {
                Failure::new(
                    Exit::Internal,
                    anyhow::anyhow!(
                        "no custody statement of at most 4,096 bytes can be made of this manifest"
                    ),
                )
            })
            .and_then(|statement| {
                let runtime = crate::aws::runtime()?;
                Ok((signer.sign(runtime, &statement)?, statement))
            });
        let (signature, statement) = match signed {
            Ok(pair) => pair,
            Err(failure) => {
                destination.discard();
                tracing::error!(error = %failure.error, cleanup = %destination.cleanup_report(),
                    "The custody statement was not signed: no manifest written.");
                return Err(failure);
            }
        };
        destination.store(&files.custody_statement, &statement)?;
        destination.store(&files.custody_signature, &signature)?;
        tracing::info!(key = %signer.key_arn(), algorithm = %signer.algorithm(),
            statement = %files.custody_statement, "Custody statement signed.");
        Ok(())
    }
}
