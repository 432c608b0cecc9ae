//! The one-line JSON result of an acquisition (`acquire --result-json`): what a caller needs without
//! parsing logs or fetching the manifest. The `watch` daemon runs each job as a child process and
//! turns this line into its CloudWatch result event; SSM Run Command shows it as the output.

use std::collections::BTreeMap;

use imaging::BadRange;
use imaging::{Manifest, Status};
use serde::{Deserialize, Serialize};

use crate::exit::Exit;

/// The result line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcquisitionResult {
    /// `completed`, `completed_with_errors` or `failed`.
    pub status: String,
    /// The process exit code (see the README's table).
    pub exit_code: u8,
    /// Evidence name, when the run got that far.
    #[serde(default)]
    pub evidence_name: Option<String>,
    /// Bytes imaged.
    #[serde(default)]
    pub bytes: u64,
    /// Seconds from first read to durable image.
    #[serde(default)]
    pub duration_seconds: f64,
    /// Average MB/s.
    #[serde(default)]
    pub mb_per_s: f64,
    /// Whole-image digests.
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
    /// Where the image is: one URI, or one per segment.
    #[serde(default)]
    pub image: Vec<String>,
    /// Where the manifest is.
    #[serde(default)]
    pub manifest: Option<String>,
    /// Ranges zero-filled because they could not be read.
    #[serde(default)]
    pub bad_ranges: Vec<BadRange>,
    /// Why the run failed.
    #[serde(default)]
    pub error: Option<String>,
}

impl AcquisitionResult {
    /// The result of a run that wrote `manifest` at `manifest_uri`.
    pub fn from_manifest(manifest: &Manifest, manifest_uri: String) -> Self {
        let status = manifest.acquisition.status;
        let exit = match status {
            Status::Completed => Exit::Ok,
            Status::CompletedWithErrors => Exit::CompletedWithErrors,
        };
        let image = match &manifest.image.s3 {
            Some(s3) => s3
                .objects
                .iter()
                .map(|o| format!("s3://{}/{}", s3.bucket, o.key))
                .collect(),
            None => vec![manifest.image.location.clone()],
        };
        Self {
            status: serde_json::to_value(status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            exit_code: exit.code(),
            evidence_name: Some(manifest.case.evidence_name.clone()),
            bytes: manifest.image.size_bytes,
            duration_seconds: manifest.acquisition.duration_seconds,
            mb_per_s: manifest.acquisition.throughput_mb_per_s,
            hashes: manifest
                .image
                .hashes
                .iter()
                .map(|(a, d)| (a.to_string(), d.clone()))
                .collect(),
            image,
            manifest: Some(manifest_uri),
            bad_ranges: manifest.bad_ranges.clone(),
            error: None,
        }
    }

    /// The result of a run that failed with `exit` because of `error`.
    pub fn failed(exit: Exit, error: String) -> Self {
        Self {
            status: "failed".to_owned(),
            exit_code: exit.code(),
            evidence_name: None,
            bytes: 0,
            duration_seconds: 0.0,
            mb_per_s: 0.0,
            hashes: BTreeMap::new(),
            image: Vec::new(),
            manifest: None,
            bad_ranges: Vec::new(),
            error: Some(error),
        }
    }

    /// Prints the line on stdout.
    pub fn print(&self) {
        if let Ok(line) = serde_json::to_string(self) {
            println!("{line}");
        }
    }
}
