//! Settings from environment variables: the legacy names the original flow writes to
//! /etc/environment (which systemd passes in with `EnvironmentFile=`), and
//! `FORENSIC_COLLECTOR_<SECTION>_<KEY>` for every key. Shell-shaped user data uses the same names.

use std::collections::BTreeMap;

use super::error::ConfigError;
use super::layers::{self, KeyPath, Setting, Source};
use super::raw::SECTIONS;

/// Prefix of the per-key variables.
pub const PREFIX: &str = "FORENSIC_COLLECTOR_";

/// The original flow's variable names and the `[job]` keys they set.
pub const LEGACY: [(&str, &str); 4] = [
    ("DESTINATION_BUCKET", "bucket"),
    ("DESTINATION_PREFIX", "prefix"),
    ("IMAGE_NAME", "source_volume_id"),
    ("INCIDENT_ID", "incident_id"),
];

/// The key a variable sets: a legacy name, or `FORENSIC_COLLECTOR_<SECTION>_<KEY>` whose section
/// exists. Other `FORENSIC_COLLECTOR_*` names (`…_CONFIG`, `…_BIN`) are not settings.
pub fn key_of(name: &str) -> Option<KeyPath> {
    if let Some((_, key)) = LEGACY.iter().find(|(var, _)| *var == name) {
        return Some(KeyPath::new("job", key));
    }
    let rest = name.strip_prefix(PREFIX)?.to_ascii_lowercase();
    let (section, key) = rest.split_once('_')?;
    (SECTIONS.contains(&section) && !key.is_empty()).then(|| KeyPath::new(section, key))
}

/// Whether a variable is one of the legacy names.
fn is_legacy(name: &str) -> bool {
    LEGACY.iter().any(|(var, _)| *var == name)
}

/// Settings from `env`, legacy names first so that `FORENSIC_COLLECTOR_JOB_*` wins over them.
pub fn settings(env: &BTreeMap<String, String>) -> Result<Vec<Setting>, ConfigError> {
    let mut legacy = Vec::new();
    let mut prefixed = Vec::new();
    for (name, value) in env {
        let Some(key) = key_of(name) else { continue };
        let setting = layers::from_text(key, value, Source::Env(name.clone()))?;
        if is_legacy(name) {
            legacy.push(setting);
        } else {
            prefixed.push(setting);
        }
    }
    legacy.extend(prefixed);
    Ok(legacy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn variables_map_to_keys() {
        assert_eq!(
            key_of("FORENSIC_COLLECTOR_WATCH_ON_COMPLETE"),
            Some(KeyPath::new("watch", "on_complete"))
        );
        assert_eq!(
            key_of("FORENSIC_COLLECTOR_S3_PART_SIZE"),
            Some(KeyPath::new("s3", "part_size"))
        );
        assert_eq!(
            key_of("IMAGE_NAME"),
            Some(KeyPath::new("job", "source_volume_id"))
        );
        assert_eq!(key_of("FORENSIC_COLLECTOR_CONFIG"), None);
        assert_eq!(key_of("FORENSIC_COLLECTOR_BIN"), None);
        assert_eq!(key_of("PATH"), None);
    }

    #[test]
    fn prefixed_variables_beat_legacy_ones() {
        let mut layers = layers::Layers::default();
        layers.apply(
            settings(&env(&[
                ("DESTINATION_BUCKET", "legacy-bucket"),
                ("FORENSIC_COLLECTOR_JOB_BUCKET", "new-bucket"),
            ]))
            .unwrap(),
        );
        let raw = layers.merged().unwrap();
        assert_eq!(raw.job.bucket.as_deref(), Some("new-bucket"));
        assert_eq!(
            layers.origin(&KeyPath::new("job", "bucket")),
            Source::Env("FORENSIC_COLLECTOR_JOB_BUCKET".into())
        );
    }

    #[test]
    fn a_misspelt_key_in_a_known_section_is_an_error() {
        let err = settings(&env(&[("FORENSIC_COLLECTOR_JOB_BUCKT", "b")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("job.buckt") && text.contains("env FORENSIC_COLLECTOR_JOB_BUCKT"),
            "{text}"
        );
    }
}
