//! One evidence set under an S3 prefix, as an acquisition stores it: its keys
//! (`<prefix>/<incident>/disk_evidence/<file>`, or `memory_evidence/`), the check that none of them exists yet, the claim
//! on its name, the image's sink, the companions, the tags, and the removal of exactly what this
//! run created when it stops before its manifest. The caller says what to do and when; this type
//! holds the client, the runtime and the ledger of owned objects that every step needs.

use aws_sdk_s3::Client;
use tokio::runtime::Handle;

use super::claim::{self, S3Claim};
use super::exists::{self, EvidenceKeys};
use super::owned::{self, Cleanup, Ledger, OwnedObject};
use super::protect;
use super::small::{self, Stored};
use super::{S3Options, S3Sink, S3Url, real_version};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::naming::{EvidenceFiles, EvidenceKind, SafeName};
use crate::sink::Sink;

/// An evidence set's place in a bucket, and what this run stored there.
pub struct S3Evidence {
    runtime: Handle,
    client: Client,
    url: S3Url,
    incident: SafeName,
    kind: EvidenceKind,
    options: S3Options,
    /// The objects this run created: only these are ever deleted, and they must be unchanged
    /// before a companion is stored.
    ledger: Ledger,
    /// This run's claim on its evidence name, when it took one (released on drop).
    claim: Option<S3Claim>,
}

impl S3Evidence {
    /// The evidence of incident `incident` under `url`, reached with `client` on `runtime`.
    pub fn new(
        runtime: Handle,
        client: Client,
        url: S3Url,
        incident: SafeName,
        options: S3Options,
    ) -> Self {
        Self {
            runtime,
            client,
            url,
            incident,
            kind: EvidenceKind::Disk,
            options,
            ledger: Ledger::default(),
            claim: None,
        }
    }

    /// The same place for evidence of `kind` (its own folder under the incident).
    #[must_use]
    pub fn with_kind(mut self, kind: EvidenceKind) -> Self {
        self.kind = kind;
        self
    }

    /// The `s3://bucket/key` URI of `file_name` of the evidence.
    pub fn uri(&self, file_name: &str) -> String {
        format!("s3://{}/{}", self.url.bucket(), self.key(file_name))
    }

    fn key(&self, file_name: &str) -> String {
        self.url.key(&format!(
            "{}/{}/{file_name}",
            self.incident,
            self.kind.folder()
        ))
    }

    /// The keys of the evidence set named by `files`.
    fn evidence_keys(&self, files: &EvidenceFiles) -> EvidenceKeys {
        EvidenceKeys {
            image: self.key(&files.image),
            companions: [&files.sidecar, &files.capture_log, &files.manifest]
                .into_iter()
                .map(|f| self.key(f))
                .collect(),
        }
    }

    /// What of evidence `files` is already stored (image, segment or companion), as the error that
    /// refuses it; `None` when the name is free.
    pub fn existing(&self, files: &EvidenceFiles) -> Result<Option<Error>> {
        let found = exists::existing_evidence(
            &self.runtime,
            &self.client,
            self.url.bucket(),
            &self.evidence_keys(files),
            &self.options,
        )?;
        Ok(found.map(|key| exists::found_before(self.url.bucket(), &key)))
    }

    /// Refuses a bucket without Object Lock when `required` or when the options ask for retention
    /// or a legal hold (which a bucket without it would refuse only after the upload).
    pub fn require_object_lock(&self, required: bool) -> Result<()> {
        if !required && !self.options.needs_object_lock() {
            return Ok(());
        }
        protect::require_object_lock(
            &self.runtime,
            &self.client,
            self.url.bucket(),
            &self.options,
        )
    }

    /// Claims evidence `name` for this run, `token` saying who holds it; false when another run
    /// does.
    pub fn claim(&mut self, name: &SafeName, token: &str) -> Result<bool> {
        let key = self.key(&claim::claim_file_name(name.as_str()));
        self.claim = claim::claim_name(
            &self.runtime,
            &self.client,
            self.url.bucket(),
            &key,
            token,
            &self.options,
        )?;
        Ok(self.claim.is_some())
    }

    /// Gives up this run's claim on its name, if it holds one.
    pub fn release_claim(&mut self) {
        if let Some(claim) = self.claim.take() {
            claim::release(
                &self.runtime,
                &self.client,
                self.url.bucket(),
                &claim,
                &self.options,
            );
        }
    }

    /// The sink for the image of `files`, `size` bytes; `metadata` goes on its object(s) and is
    /// kept for their tags.
    pub fn image_sink(
        &mut self,
        files: &EvidenceFiles,
        size: u64,
        metadata: Vec<(String, String)>,
    ) -> Result<Box<dyn Sink>> {
        self.options.metadata = metadata;
        let sink = S3Sink::create(
            self.runtime.clone(),
            self.client.clone(),
            self.url.bucket(),
            &self.key(&files.image),
            size,
            &self.options,
            self.ledger.clone(),
        )?;
        Ok(Box::new(sink))
    }

    /// Tags the stored image object(s) with the hashes, which S3 object metadata cannot carry for a
    /// streamed upload (it is fixed before the first byte), beside the case labels of the metadata
    /// (at most 4 + 4 hashes + 1 segment hash: within S3's 10 tags). A failure is a warning: the
    /// manifest, written next, is the authoritative record.
    pub fn tag_image(&self, manifest: &Manifest) {
        let Some(receipt) = &manifest.image.s3 else {
            return;
        };
        // The case labels are the ones the objects already carry as metadata.
        let mut tags = self.options.metadata.clone();
        for (algorithm, digest) in &manifest.image.hashes {
            tags.push((format!("image-{algorithm}"), digest.clone()));
        }
        for object in &receipt.objects {
            let mut object_tags = tags.clone();
            if let Some(digest) = &object.sha256 {
                object_tags.push(("segment-sha256".to_owned(), digest.clone()));
            }
            let tagged = protect::tag_object(
                &self.runtime,
                &self.client,
                &receipt.bucket,
                &object.key,
                object.version_id.as_deref(),
                &object_tags,
                &self.options,
            );
            if let Err(err) = tagged {
                tracing::warn!(key = %object.key, error = %err,
                    "Could not tag the image object with its hashes; the manifest still records them.");
            }
        }
    }

    /// Stores one companion, after checking that the objects stored so far are still this run's;
    /// on any failure removes what this run created (image objects and earlier companions), so
    /// nothing without a manifest is left to look like evidence or to block a rerun
    /// ([`S3Evidence::cleanup`] then says what was removed).
    pub fn store(&self, file_name: &str, contents: &[u8]) -> Result<()> {
        let key = self.key(file_name);
        let (handle, bucket) = (&self.runtime, self.url.bucket());
        let stored = owned::still_ours(
            handle,
            &self.client,
            bucket,
            &self.ledger.objects(),
            &self.options,
        )
        .and_then(|()| {
            small::put_small(
                handle,
                &self.client,
                bucket,
                &key,
                contents.to_vec(),
                &self.options,
            )
        });
        match stored {
            Ok(Stored::Created { etag, version_id }) => {
                self.ledger.record(OwnedObject {
                    key,
                    etag,
                    version_id: real_version(version_id.as_deref()),
                });
                Ok(())
            }
            Ok(Stored::AlreadyIdentical) => Ok(()),
            Err(err) => {
                self.discard();
                Err(err)
            }
        }
    }

    /// Deletes every object this run created (and only those), so nothing without a manifest is
    /// left to look like evidence or to block a rerun.
    pub fn discard(&self) {
        self.ledger.delete_all(
            &self.runtime,
            &self.client,
            self.url.bucket(),
            &self.options,
        );
    }

    /// What the removals so far did: the keys removed, and those that could not be.
    pub fn cleanup(&self) -> Cleanup {
        self.ledger.cleanup()
    }
}

impl Drop for S3Evidence {
    /// The claim on the evidence name goes with the run, whatever its outcome: the evidence now
    /// holds the name, or the name is free again.
    fn drop(&mut self) {
        self.release_claim();
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::config::{BehaviorVersion, Region};

    use super::*;

    /// An evidence set under `url` for incident `IR-7`; building it sends nothing.
    fn evidence(url: &str) -> (tokio::runtime::Runtime, S3Evidence) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .build();
        let evidence = S3Evidence::new(
            runtime.handle().clone(),
            Client::from_conf(config),
            url.parse().expect("url"),
            SafeName::parse("IR-7", "incident").expect("name"),
            S3Options::default(),
        );
        (runtime, evidence)
    }

    // Issue 20: the key layout moved here from the agent; readers (verify, responders) rely on it.
    #[test]
    fn an_evidence_set_lies_under_its_incident_in_the_prefix() {
        let files = EvidenceFiles::new(&SafeName::parse("disk-1", "name").expect("name"));
        let (_runtime, cases) = evidence("s3://evidence-bucket/cases/2026/");
        assert_eq!(
            cases.uri(&files.image),
            format!(
                "s3://evidence-bucket/cases/2026/IR-7/disk_evidence/{}",
                files.image
            )
        );
        let keys = cases.evidence_keys(&files);
        assert_eq!(
            keys.image,
            format!("cases/2026/IR-7/disk_evidence/{}", files.image)
        );
        let companions: Vec<String> = [&files.sidecar, &files.capture_log, &files.manifest]
            .into_iter()
            .map(|f| format!("cases/2026/IR-7/disk_evidence/{f}"))
            .collect();
        assert_eq!(keys.companions, companions);
        let (_runtime, root) = evidence("s3://evidence-bucket");
        assert_eq!(
            root.uri(&files.manifest),
            format!("s3://evidence-bucket/IR-7/disk_evidence/{}", files.manifest)
        );
    }
}
