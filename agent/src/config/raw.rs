//! The serde tree generated from the one table of settings in `settings`, with the value types of
//! its fields (`values`), as one place to import the configuration as written.

use super::settings::defaults_table;
pub use super::settings::{RawCloudWatch, RawConfig, RawImaging, RawJob, RawS3, RawWatch};
pub use super::values::{OnComplete, RawHashList, RawSize};

impl Default for RawConfig {
    /// The built-in defaults (`settings::ALL`).
    fn default() -> Self {
        toml::Value::Table(defaults_table())
            .try_into()
            .unwrap_or_else(|e| unreachable!("the defaults fit the struct tree: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::{self, ALL, SECTIONS};

    /// The field names of `section`, from serde's own "expected one of" list.
    fn fields(section: &str) -> Vec<String> {
        let mut doc = settings::defaults_table();
        if let Some(toml::Value::Table(body)) = doc.get_mut(section) {
            body.insert("no_such_key".into(), 1.into());
        }
        let message = toml::Value::Table(doc)
            .try_into::<RawConfig>()
            .unwrap_err()
            .message()
            .to_owned();
        // serde lists the fields of a section with several ("expected one of `a`, `b`") and
        // names the field of a section with one ("expected `a`").
        let list = message
            .split("expected one of ")
            .nth(1)
            .or_else(|| message.split("expected ").nth(1))
            .unwrap_or_else(|| panic!("no field list in {message}"));
        list.split(',')
            .map(|f| f.trim().trim_matches(|c| c == '`' || c == '\n').to_owned())
            .filter(|f| !f.is_empty())
            .collect()
    }

    // Issue 10: each key is one field here and one entry in `settings::ALL`, no more.
    #[test]
    fn every_field_has_one_spec() {
        for &section in SECTIONS {
            let mut declared: Vec<&str> = ALL
                .iter()
                .filter(|s| s.section == section)
                .map(|s| s.key)
                .collect();
            let mut actual = fields(section);
            declared.sort_unstable();
            actual.sort_unstable();
            assert_eq!(declared, actual, "[{section}]");
        }
        assert!(ALL.iter().all(|s| SECTIONS.contains(&s.section)));
    }

    #[test]
    fn the_defaults_fit_the_struct_tree() {
        let raw = RawConfig::default();
        assert!(raw.job.use_imds);
        assert_eq!(raw.watch.on_complete, OnComplete::Poweroff);
        assert_eq!(raw.job.bucket, None);
        assert_eq!(raw.s3.part_memory, RawSize::Text("160MiB".into()));
    }
}
