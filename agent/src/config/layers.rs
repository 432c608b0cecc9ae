//! Settings with their provenance, and how layers stack.
//!
//! Every source (file, user data, environment, flags) is flattened into `Setting`s — one
//! `section.key = value` each, tagged with where it came from — and each setting is checked on its
//! own against the raw struct tree, so an unknown key or a wrong type is reported with the source
//! that wrote it. Later layers replace earlier ones key by key; the merged table is what `validate`
//! sees, and the provenance map is what `config check` prints.

use std::collections::BTreeMap;
use std::fmt;

use super::error::ConfigError;
use super::origin::Origin;
use super::raw::RawConfig;
use super::settings::{SECTIONS, defaults_table};

/// `section.key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyPath {
    /// `job`, `watch`, …
    pub section: String,
    /// The key inside the section.
    pub key: String,
}

impl KeyPath {
    /// `section.key` from its parts.
    pub fn new(section: &str, key: &str) -> Self {
        Self {
            section: section.to_owned(),
            key: key.to_owned(),
        }
    }

    /// Parses `section.key`.
    pub fn parse(dotted: &str) -> Option<Self> {
        let (section, key) = dotted.split_once('.')?;
        (!section.is_empty() && !key.is_empty()).then(|| Self::new(section, key))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.section, self.key)
    }
}

/// One value from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting {
    /// Which key.
    pub key: KeyPath,
    /// Its value as written.
    pub value: toml::Value,
    /// Who wrote it.
    pub origin: Origin,
}

impl Setting {
    /// A setting after checking that the key exists, the value has the right type, and the
    /// source may set the key.
    pub fn checked(key: KeyPath, value: toml::Value, origin: Origin) -> Result<Self, ConfigError> {
        check_alone(&key, &value)
            .and_then(|()| origin.may_set(&key.section, &key.key))
            .map_err(|message| ConfigError::Key {
                key: key.to_string(),
                origin: origin.clone(),
                message,
            })?;
        Ok(Self { key, value, origin })
    }
}

/// Deserialises the defaults with `key = value` over them into the raw tree: unknown keys and wrong
/// types fail here, with serde's message (which lists the expected keys or variants).
fn check_alone(key: &KeyPath, value: &toml::Value) -> Result<(), String> {
    if !SECTIONS.contains(&key.section.as_str()) {
        return Err(format!(
            "unknown section `{}`, expected one of {}",
            key.section,
            SECTIONS.join(", ")
        ));
    }
    let mut table = defaults_table();
    if let Some(toml::Value::Table(section)) = table.get_mut(&key.section) {
        section.insert(key.key.clone(), value.clone());
    }
    toml::Value::Table(table)
        .try_into::<RawConfig>()
        .map(drop)
        .map_err(|e| e.message().to_owned())
}

/// Flattens a parsed document (`[section] key = value`) into checked settings.
pub fn flatten(table: &toml::Table, origin: &Origin) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    for (section, body) in table {
        let toml::Value::Table(body) = body else {
            return Err(ConfigError::Key {
                key: section.clone(),
                origin: origin.clone(),
                message: format!("expected a table [{section}], found a {}", body.type_str()),
            });
        };
        for (key, value) in body {
            settings.push(Setting::checked(
                KeyPath::new(section, key),
                value.clone(),
                origin.clone(),
            )?);
        }
    }
    Ok(settings)
}

/// A setting from a string (environment variable, shell user data, flag): the string itself if the
/// key takes a string, else the string read as a TOML value (`300`, `true`, `["sha256"]`).
pub fn from_text(key: KeyPath, text: &str, origin: Origin) -> Result<Setting, ConfigError> {
    let value = typed_text(&key, text).and_then(|value| {
        origin.may_set(&key.section, &key.key)?;
        Ok(value)
    });
    match value {
        Ok(value) => Ok(Setting { key, value, origin }),
        Err(message) => Err(ConfigError::Key {
            key: key.to_string(),
            origin,
            message,
        }),
    }
}

/// `text` as the value `key` takes, or the message of reading it as a string.
pub fn typed_text(key: &KeyPath, text: &str) -> Result<toml::Value, String> {
    let as_string = toml::Value::String(text.to_owned());
    let first_error = match check_alone(key, &as_string) {
        Ok(()) => return Ok(as_string),
        Err(message) => message,
    };
    let typed = format!("v = {text}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"));
    match typed {
        Some(value) if check_alone(key, &value).is_ok() => Ok(value),
        _ => Err(first_error),
    }
}

/// The effective value of every key that some source set, with its provenance.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    settings: BTreeMap<KeyPath, Setting>,
}

impl Layers {
    /// Applies settings over what is there: a later call wins for the keys it sets.
    pub fn apply(&mut self, settings: impl IntoIterator<Item = Setting>) {
        for setting in settings {
            self.settings.insert(setting.key.clone(), setting);
        }
    }

    /// Where `key` came from (default when no source set it).
    pub fn origin(&self, key: &KeyPath) -> Origin {
        self.settings
            .get(key)
            .map_or(Origin::Default, |s| s.origin.clone())
    }

    /// The defaults with every setting on top, as one document.
    fn table(&self) -> toml::Table {
        let mut table = defaults_table();
        for setting in self.settings.values() {
            if let Some(toml::Value::Table(section)) = table.get_mut(&setting.key.section) {
                section.insert(setting.key.key.clone(), setting.value.clone());
            }
        }
        table
    }

    /// The merged document as the raw struct tree.
    pub fn merged(&self) -> Result<RawConfig, ConfigError> {
        toml::Value::Table(self.table())
            .try_into::<RawConfig>()
            .map_err(|e| ConfigError::Internal(format!("merged settings do not fit: {e}")))
    }

    /// Every key with a value (defaults included), its value and its provenance, in section order.
    pub fn effective(&self) -> Vec<Setting> {
        let table = self.table();
        SECTIONS
            .iter()
            .filter_map(|&section| Some((section, table.get(section)?.as_table()?)))
            .flat_map(|(section, body)| {
                body.iter().map(move |(key, value)| {
                    let key = KeyPath::new(section, key);
                    Setting {
                        origin: self.origin(&key),
                        key,
                        value: value.clone(),
                    }
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UserDataFormat;

    fn file() -> Origin {
        Origin::File("/etc/fc.toml".into())
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let mut layers = Layers::default();
        layers.apply(
            flatten(
                &"[job]\nbucket = \"from-file\"\nprefix = \"p\"\n"
                    .parse()
                    .unwrap(),
                &file(),
            )
            .unwrap(),
        );
        let env = Origin::Env("DESTINATION_BUCKET".into());
        layers.apply([from_text(KeyPath::new("job", "bucket"), "from-env", env.clone()).unwrap()]);
        let raw = layers.merged().unwrap();
        assert_eq!(raw.job.bucket.as_deref(), Some("from-env"));
        assert_eq!(raw.job.prefix, "p");
        assert_eq!(layers.origin(&KeyPath::new("job", "bucket")), env);
        assert_eq!(layers.origin(&KeyPath::new("job", "prefix")), file());
        assert_eq!(
            layers.origin(&KeyPath::new("watch", "settle_ms")),
            Origin::Default
        );
    }

    // Issue 10 (mutation testing): both parts are required.
    #[test]
    fn a_key_path_has_a_section_and_a_key() {
        assert_eq!(
            KeyPath::parse("job.bucket"),
            Some(KeyPath::new("job", "bucket"))
        );
        for bad in ["job.", ".bucket", ".", "job"] {
            assert_eq!(KeyPath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_values_take_the_type_of_their_key() {
        let env = || Origin::Env("X".into());
        let settle = from_text(KeyPath::new("watch", "settle_ms"), "500", env()).unwrap();
        assert_eq!(settle.value, toml::Value::Integer(500));
        let incident = from_text(KeyPath::new("job", "incident_id"), "2026", env()).unwrap();
        assert_eq!(incident.value, toml::Value::String("2026".into()));
        let imds = from_text(KeyPath::new("job", "use_imds"), "false", env()).unwrap();
        assert_eq!(imds.value, toml::Value::Boolean(false));
        // Valid TOML of the wrong type is refused too (with the message of reading it as text).
        let err = from_text(KeyPath::new("watch", "settle_ms"), "true", env()).unwrap_err();
        assert!(err.to_string().contains("expected u64"), "{err}");
        let err = from_text(KeyPath::new("watch", "settle_ms"), "soon", env()).unwrap_err();
        assert!(err.to_string().contains("watch.settle_ms"), "{err}");
        assert!(err.to_string().contains("env X"), "{err}");
    }

    #[test]
    fn unknown_keys_and_sections_name_key_and_source() {
        let err = flatten(&"[job]\nbuckt = \"x\"\n".parse().unwrap(), &file()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("job.buckt") && text.contains("file /etc/fc.toml"),
            "{text}"
        );
        assert!(
            text.contains("bucket"),
            "serde lists the expected keys: {text}"
        );
        let err = flatten(&"[jobs]\nbucket = \"x\"\n".parse().unwrap(), &file()).unwrap_err();
        assert!(err.to_string().contains("unknown section `jobs`"), "{err}");
        let err = flatten(&"job = 3\n".parse().unwrap(), &file()).unwrap_err();
        assert!(err.to_string().contains("expected a table [job]"), "{err}");
    }

    // Issue 9 item 5: user data and the environment never choose what runs as root.
    #[test]
    fn user_data_and_env_cannot_set_operator_keys() {
        let command = toml::Value::Array(vec!["touch".into(), "/tmp/x".into()]);
        let key = || KeyPath::new("watch", "poweroff_command");
        for origin in [
            Origin::UserData(UserDataFormat::Json),
            Origin::Env("FORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND".into()),
        ] {
            let err = Setting::checked(key(), command.clone(), origin.clone())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("watch.poweroff_command")
                    && err.contains(&origin.to_string())
                    && err.contains("refused"),
                "{err}"
            );
            let err = from_text(key(), r#"["touch", "/tmp/x"]"#, origin.clone()).unwrap_err();
            assert!(err.to_string().contains("refused"), "{err}");
            let err = from_text(KeyPath::new("watch", "disk_root"), "/dev", origin).unwrap_err();
            assert!(err.to_string().contains("refused"), "{err}");
        }
        for origin in [file(), Origin::Flag("--x".into()), Origin::Default] {
            Setting::checked(key(), command.clone(), origin.clone()).unwrap();
            from_text(KeyPath::new("watch", "disk_root"), "/dev", origin).unwrap();
        }
        // Open keys stay open; unknown keys keep their own message.
        let env = Origin::Env("X".into());
        from_text(KeyPath::new("watch", "on_complete"), "exit", env.clone()).unwrap();
        let err = from_text(KeyPath::new("watch", "poweroff_cmd"), "x", env).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn on_complete_typo_lists_the_choices() {
        let err = flatten(
            &"[watch]\non_complete = \"poweroof\"\n".parse().unwrap(),
            &file(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("watch.on_complete") && err.contains("poweroff"),
            "{err}"
        );
    }
}
