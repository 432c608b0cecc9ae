//! Settings from environment variables: the legacy names the original flow writes to
//! /etc/environment (which systemd passes in with `EnvironmentFile=`), and
//! `FORENSIC_COLLECTOR_<SECTION>_<KEY>` for every key. Shell-shaped user data uses the same names.

use std::collections::BTreeMap;

use imaging::VolumeId;

use super::error::ConfigError;
use super::layers::{self, KeyPath, Setting};
use super::origin::Origin;
use super::settings::{ALL, SECTIONS};

/// Prefix of the per-key variables.
pub const PREFIX: &str = "FORENSIC_COLLECTOR_";

/// The original flow's variable names and the `[job]` keys they set.
pub const LEGACY: [(&str, &str); 4] = [
    ("DESTINATION_BUCKET", "bucket"),
    ("DESTINATION_PREFIX", "prefix"),
    ("IMAGE_NAME", "source_volume_id"),
    ("INCIDENT_ID", "incident_id"),
];

/// `FORENSIC_COLLECTOR_*` names that are not settings but are known: the config file's former
/// variable (refused where it is read, [`refuse_path_variable`]), and names the build and the test
/// harness use. They draw no warning and are never suggested for a typo: only settings are.
pub const OTHER_NAMES: [&str; 3] = [
    super::PATH_VAR,
    // The test harness's path to the binary under test.
    "FORENSIC_COLLECTOR_BIN",
    // Read at build time for `--version`.
    "FORENSIC_COLLECTOR_GIT_REVISION",
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

/// Every variable name that sets a key, in section order.
pub fn setting_names() -> Vec<String> {
    ALL.iter()
        .map(|s| format!("{PREFIX}{}_{}", s.section, s.key).to_ascii_uppercase())
        .collect()
}

/// The setting's variable closest to `name` (Levenshtein distance, from `strsim`, which clap
/// already uses for its own suggestions), for "did you mean". Only settings: a test-only or
/// build-time name ([`OTHER_NAMES`]) would send the operator to a variable that does nothing.
pub fn closest(name: &str) -> Option<String> {
    setting_names()
        .into_iter()
        .min_by_key(|known| strsim::levenshtein(name, known))
}

/// Refuses [`super::PATH_VAR`] set to a non-empty value in `origin` (the environment or shell
/// user data), without reading what it names: it used to choose the config file, and a host still
/// set up that way must learn that it no longer does rather than run on another file. An empty
/// value names nothing and was always taken as unset.
pub fn refuse_path_variable(name: &str, value: &str, origin: &Origin) -> Result<(), ConfigError> {
    if name != super::PATH_VAR || value.is_empty() {
        return Ok(());
    }
    Err(ConfigError::PathVariable {
        name: super::PATH_VAR,
        origin: origin.clone(),
        value: value.to_owned(),
    })
}

/// The warning for a `FORENSIC_COLLECTOR_*` name that is neither a setting nor known, or `None`.
///
/// A warning, not an error: unlike a config file, the environment is shared with other programs
/// (systemd, the test harness, a launcher's own tooling) and may carry names meant for them, so
/// refusing to start over one would turn a stray variable into an outage. The warning names the
/// closest valid variable, which is what a typo needs.
pub fn unknown_warning(name: &str) -> Option<String> {
    if !name.starts_with(PREFIX) || key_of(name).is_some() || OTHER_NAMES.contains(&name) {
        return None;
    }
    let hint = closest(name).map_or_else(String::new, |c| format!(" (did you mean {c}?)"));
    Some(format!(
        "{name} is not a setting and is ignored{hint}; settings are {PREFIX}<SECTION>_<KEY> with a section of {}",
        SECTIONS.join(", ")
    ))
}

/// Logs `unknown_warning` for a name found in `origin`.
pub fn warn_if_unknown(name: &str, origin: &Origin) {
    if let Some(warning) = unknown_warning(name) {
        tracing::warn!(source = %origin, "{warning}");
    }
}

/// A value read but not used, and why; `config check` lists it and the loader logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The variable, e.g. `IMAGE_NAME`.
    pub name: String,
    /// Where it was read, e.g. `env IMAGE_NAME`.
    pub origin: Origin,
    /// The value as written.
    pub value: String,
    /// Why it was not used.
    pub reason: String,
}

/// What one source's `KEY=VALUE` pairs yield: settings, and values deliberately not used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    /// Checked settings, in the order they apply.
    pub settings: Vec<Setting>,
    /// Values that set nothing (see [`Ignored`]).
    pub ignored: Vec<Ignored>,
}

impl Read {
    /// Adds the setting for variable `name` (a known key) with `value` from `origin`.
    ///
    /// `IMAGE_NAME` is special: the original flow writes a *name* there, which is often the suspect
    /// volume's ID but may be anything the launcher chose. It sets `job.source_volume_id` only
    /// when it is an EBS volume ID; anything else is ignored with a warning, because refusing it
    /// would stop the daemon before its readiness message and leave the flow waiting for ever.
    pub fn push(
        &mut self,
        name: &str,
        key: KeyPath,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConfigError> {
        if name == "IMAGE_NAME" && VolumeId::from_serial_or_id(value).is_none() {
            self.ignored.push(Ignored {
                name: name.to_owned(),
                origin,
                value: value.to_owned(),
                reason: "not an EBS volume ID (vol- and 8 or 17 hex digits), so it names no source volume".to_owned(),
            });
            return Ok(());
        }
        self.settings.push(layers::from_text(key, value, origin)?);
        Ok(())
    }
}

/// Settings from `env`, legacy names first so that `FORENSIC_COLLECTOR_JOB_*` wins over them.
/// Unknown `FORENSIC_COLLECTOR_*` names are logged as warnings; `FORENSIC_COLLECTOR_CONFIG` is
/// refused ([`refuse_path_variable`]).
pub fn settings(env: &BTreeMap<String, String>) -> Result<Read, ConfigError> {
    let mut legacy = Read::default();
    let mut prefixed = Read::default();
    for (name, value) in env {
        let origin = Origin::Env(name.clone());
        refuse_path_variable(name, value, &origin)?;
        let Some(key) = key_of(name) else {
            warn_if_unknown(name, &origin);
            continue;
        };
        let read = if is_legacy(name) {
            &mut legacy
        } else {
            &mut prefixed
        };
        read.push(name, key, value, origin)?;
    }
    legacy.settings.extend(prefixed.settings);
    legacy.ignored.extend(prefixed.ignored);
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
            .unwrap()
            .settings,
        );
        let raw = layers.merged().unwrap();
        assert_eq!(raw.job.bucket.as_deref(), Some("new-bucket"));
        assert_eq!(
            layers.origin(&KeyPath::new("job", "bucket")),
            Origin::Env("FORENSIC_COLLECTOR_JOB_BUCKET".into())
        );
    }

    // Issue 10 (mutation testing): the specific name wins whichever sorts first.
    #[test]
    fn prefixed_variables_beat_legacy_ones_that_sort_after_them() {
        let read = settings(&env(&[
            ("INCIDENT_ID", "IR-legacy"),
            ("FORENSIC_COLLECTOR_JOB_INCIDENT_ID", "IR-new"),
        ]))
        .unwrap();
        let mut layers = layers::Layers::default();
        layers.apply(read.settings);
        assert_eq!(
            layers.merged().unwrap().job.incident_id.as_deref(),
            Some("IR-new")
        );
    }

    // Issue 9 (also seen): a typo in the section part is not silently ignored.
    #[test]
    fn unknown_prefixed_names_get_a_warning_with_the_closest_name() {
        let warning = unknown_warning("FORENSIC_COLLECTOR_WACH_CONCURRENCY").unwrap();
        assert!(
            warning.contains("did you mean FORENSIC_COLLECTOR_WATCH_CONCURRENCY?"),
            "{warning}"
        );
        for quiet in [
            "FORENSIC_COLLECTOR_CONFIG",
            "FORENSIC_COLLECTOR_BIN",
            "FORENSIC_COLLECTOR_WATCH_CONCURRENCY",
            "DESTINATION_BUCKET",
            "PATH",
        ] {
            assert_eq!(unknown_warning(quiet), None, "{quiet}");
        }
        assert!(unknown_warning("FORENSIC_COLLECTOR_CONFG").is_some());
    }

    // Issue 19 (loose edge): a typo was answered with a test-only name ("did you mean
    // FORENSIC_COLLECTOR_BIN?"). Only settings are suggested; the other names stay quiet.
    #[test]
    fn only_settings_are_suggested() {
        let settings = setting_names();
        for other in OTHER_NAMES {
            assert_eq!(unknown_warning(other), None, "{other}");
            let near = format!("{other}X");
            for typo in [other, near.as_str(), &other[..other.len() - 1]] {
                let suggestion = closest(typo).unwrap();
                assert!(settings.contains(&suggestion), "{typo}: {suggestion}");
                let warning = unknown_warning(typo).unwrap_or_default();
                for name in OTHER_NAMES {
                    assert!(!warning.contains(&format!("mean {name}?")), "{warning}");
                }
            }
        }
    }

    // Issue 19: the config file's former variable is refused, from any source, unless empty.
    #[test]
    fn the_config_path_variable_is_refused() {
        let err = settings(&env(&[(super::super::PATH_VAR, "/root/secret.cred")])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::PathVariable { origin: Origin::Env(var), value, .. }
                if var == "FORENSIC_COLLECTOR_CONFIG" && value == "/root/secret.cred"),
            "{err:?}"
        );
        assert_eq!(err.exit(), crate::exit::Exit::Config);
        let text = err.to_string();
        let opening =
            r#"FORENSIC_COLLECTOR_CONFIG="/root/secret.cred" in the environment: refused"#;
        assert!(text.starts_with(opening), "{text}");
        assert_eq!(
            settings(&env(&[("FORENSIC_COLLECTOR_CONFIG", "")])).unwrap(),
            Read::default()
        );
        let origin = Origin::Env("X".into());
        refuse_path_variable("FORENSIC_COLLECTOR_BIN", "/x", &origin).unwrap();
        refuse_path_variable("FORENSIC_COLLECTOR_CONFIG", "/x", &origin).unwrap_err();
    }

    #[test]
    fn every_setting_has_a_variable_name() {
        let names = setting_names();
        assert!(names.contains(&"FORENSIC_COLLECTOR_S3_PART_SIZE".to_owned()));
        assert_eq!(names.len(), ALL.len());
    }

    #[test]
    fn the_environment_cannot_set_the_poweroff_command() {
        let err = settings(&env(&[(
            "FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND",
            r#"["touch", "/tmp/x"]"#,
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("watch.poweroff_command")
                && err.contains("env FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND")
                && err.contains("refused"),
            "{err}"
        );
    }

    // Issue 10: IMAGE_NAME is a name; only a volume ID sets the source volume.
    #[test]
    fn image_name_sets_the_source_volume_only_when_it_is_a_volume_id() {
        let read = settings(&env(&[("IMAGE_NAME", "vol-0123456789abcdef0")])).unwrap();
        assert_eq!(read.ignored, []);
        assert_eq!(read.settings.len(), 1);
        assert_eq!(
            read.settings[0].key,
            KeyPath::new("job", "source_volume_id")
        );
        for name in ["web-server-disk", "vol-nothex", "vol-0123456", ""] {
            let read = settings(&env(&[("IMAGE_NAME", name)])).unwrap();
            assert_eq!(read.settings, [], "{name}");
            assert_eq!(read.ignored.len(), 1, "{name}");
            assert_eq!(read.ignored[0].value, name);
            assert_eq!(read.ignored[0].origin, Origin::Env("IMAGE_NAME".into()));
            assert!(read.ignored[0].reason.contains("not an EBS volume ID"));
        }
        // The explicit key is not a name: its value is passed on as written (and refused by
        // `typed::validate`, see config/tests.rs), never dropped as ignored.
        let read = settings(&env(&[("FORENSIC_COLLECTOR_JOB_SOURCE_VOLUME_ID", "x")])).unwrap();
        assert_eq!(read.ignored.len(), 0);
        assert_eq!(read.settings.len(), 1);
        assert_eq!(read.settings[0].value, toml::Value::String("x".into()));
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
