//! `acquire`'s setting flags, made from the settings table. Every key declared with
//! `#[flag = "…"]` becomes `--…`, with its help (the entry's first sentence, its default and its
//! range), read from text as an environment variable is (`layers::typed_text`), and applied as the
//! top layer over the defaults; the result is checked by `typed::validate`, the one check the
//! config file, user data and the environment get. The daemon hands each child the same values
//! from its configuration ([`SettingFlags::of`]), so a key with a flag needs no line in `cli.rs`,
//! in the daemon's plan or in `acquire`: the table entry, the typed field and the code that uses
//! it are all there is.

use std::collections::BTreeMap;

use clap::{Arg, ArgAction, ArgMatches};
use serde::{Deserialize, Serialize};

use super::layers::{self, KeyPath, Layers, Setting};
use super::origin::Origin;
use super::raw::RawConfig;
use super::settings::{self, ALL, Initial, Spec};
use super::typed::{self, Config};

/// The values given for flagged settings, by `section.key`, as typed values. Also the settings
/// part of the daemon's JSON job (`run-job`): `{"s3.part_size": "8MiB", "s3.legal_hold": true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SettingFlags(BTreeMap<String, toml::Value>);

/// Every setting that has a flag, in table order.
fn flagged() -> impl Iterator<Item = (&'static Spec, &'static str)> {
    ALL.iter().filter_map(|spec| Some((spec, spec.flag?)))
}

impl SettingFlags {
    /// The flagged settings of a configuration, as a child job carries them: every flagged key
    /// with its effective value, so the child uses exactly what the daemon was configured with.
    pub fn of(raw: &RawConfig) -> Self {
        // `typed::validate` refuses a tree that does not convert, so a validated one always does.
        let tree = toml::Value::try_from(raw).unwrap_or(toml::Value::Table(toml::Table::new()));
        Self(
            flagged()
                .filter_map(|(spec, _)| {
                    let value = tree.get(spec.section)?.get(spec.key)?;
                    Some((key_of(spec).to_string(), value.clone()))
                })
                .collect(),
        )
    }

    /// Whether `dotted` (`section.key`) was given.
    pub fn contains(&self, dotted: &str) -> bool {
        self.0.contains_key(dotted)
    }

    /// The configuration these values make over the defaults, checked as every source is; the
    /// error names the flag.
    pub fn config(&self) -> Result<Config, String> {
        let mut layers = Layers::default();
        layers.apply(self.settings()?);
        let raw = layers.merged().map_err(|e| e.to_string())?;
        typed::validate(&raw).map_err(|invalid| {
            let flag = settings::find_dotted(&invalid.key).and_then(|spec| spec.flag);
            match flag {
                Some(flag) => format!("--{flag}: {}", invalid.message),
                None => format!("{}: {}", invalid.key, invalid.message),
            }
        })
    }

    /// Each value as a setting from its flag. A key without a flag is refused: a JSON job may set
    /// only what `acquire` may.
    fn settings(&self) -> Result<Vec<Setting>, String> {
        self.0
            .iter()
            .map(|(dotted, value)| {
                let flag = settings::find_dotted(dotted)
                    .and_then(|spec| spec.flag)
                    .ok_or_else(|| format!("{dotted} is not a setting acquire takes"))?;
                let key = KeyPath::parse(dotted).unwrap_or_else(|| KeyPath::new(dotted, ""));
                Setting::checked(key, value.clone(), Origin::Flag(format!("--{flag}")))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}

fn key_of(spec: &Spec) -> KeyPath {
    KeyPath::new(spec.section, spec.key)
}

/// A setting that takes no value: given, it is `true`.
fn is_switch(spec: &Spec) -> bool {
    matches!(spec.default, Initial::Bool(_))
}

/// The flag of `spec`: a switch, or a value read as the key's type.
fn arg(spec: &'static Spec, flag: &'static str) -> Arg {
    let arg = Arg::new(flag).long(flag).help(help(spec));
    if is_switch(spec) {
        return arg.action(ArgAction::SetTrue);
    }
    arg.value_name(value_name(spec))
        .value_parser(move |text: &str| layers::typed_text(&key_of(spec), text))
}

/// `--help`'s line: the entry's first sentence, its default and the range it accepts.
pub fn help(spec: &Spec) -> String {
    let doc = spec
        .doc
        .iter()
        .map(|line| line.trim())
        .collect::<Vec<_>>()
        .join(" ");
    let mut text = doc
        .split_inclusive(". ")
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned();
    if let Some(default) = default_text(spec.default) {
        text.push_str(&format!(" [default: {default}]"));
    }
    if let Some(bound) = settings::shown_range(spec) {
        text.push_str(&format!(" [range: {}]", bound.range_text()));
    }
    text
}

/// A default as `--help` shows it (switches and unset keys show none).
fn default_text(default: Initial) -> Option<String> {
    match default {
        Initial::Unset | Initial::Bool(_) => None,
        Initial::Count(n) => Some(n.to_string()),
        Initial::Size(n) => Some(settings::size_text(n)),
        Initial::Text(text) => Some(text.to_owned()),
        Initial::List(items) => Some(items.join(",")),
    }
}

fn value_name(spec: &Spec) -> &'static str {
    match spec.default {
        Initial::Size(_) => "SIZE",
        Initial::Count(_) => "N",
        Initial::List(_) => "LIST",
        _ if spec.bound.is_some() => "N",
        _ => "TEXT",
    }
}

impl clap::FromArgMatches for SettingFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for (spec, flag) in flagged() {
            let value = if is_switch(spec) {
                matches.get_flag(flag).then_some(toml::Value::Boolean(true))
            } else {
                matches.get_one::<toml::Value>(flag).cloned()
            };
            if let Some(value) = value {
                self.0.insert(key_of(spec).to_string(), value);
            }
        }
        Ok(())
    }
}

impl clap::Args for SettingFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        flagged().fold(cmd, |cmd, (spec, flag)| cmd.arg(arg(spec, flag)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(argv: &[&str]) -> Result<SettingFlags, String> {
        use clap::FromArgMatches;
        let cmd = <SettingFlags as clap::Args>::augment_args(clap::Command::new("t"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("t").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        SettingFlags::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    #[test]
    fn flags_are_read_as_the_keys_types_and_checked_as_the_config_is() {
        let flags = parsed(&["--part-size", "8MiB", "--legal-hold", "--queue-depth", "4"]).unwrap();
        let config = flags.config().unwrap();
        assert_eq!(config.s3.min_part_size, 8 << 20);
        assert!(config.s3.legal_hold);
        assert!(
            config.s3.require_object_lock,
            "a legal hold needs Object Lock"
        );
        assert_eq!(config.imaging.queue_depth, 4);
        let err = parsed(&["--parts-in-flight", "65"])
            .unwrap()
            .config()
            .unwrap_err();
        assert_eq!(
            err,
            "--parts-in-flight: parts in flight 65 must be between 1 and 64"
        );
        assert!(parsed(&["--queue-depth", "many"]).is_err());
        assert!(
            parsed(&["--legal-hold", "yes"]).is_err(),
            "a switch takes no value"
        );
    }

    #[test]
    fn no_flags_give_the_defaults() {
        let flags = parsed(&[]).unwrap();
        assert_eq!(flags, SettingFlags::default());
        let config = flags.config().unwrap();
        let defaults = typed::validate(&RawConfig::default()).unwrap();
        assert_eq!(config.imaging.chunk_size, defaults.imaging.chunk_size);
        assert_eq!(config.imaging.algorithms, defaults.imaging.algorithms);
        assert_eq!(config.s3.min_part_size, defaults.s3.min_part_size);
    }

    // A child job is the daemon's configuration: every flagged key, and the child reads back
    // exactly the same settings.
    #[test]
    fn a_configuration_travels_to_a_child_whole() {
        let mut raw = RawConfig::default();
        raw.s3.part_size = super::super::raw::RawSize::Text("16MiB".into());
        raw.s3.legal_hold = true;
        raw.imaging.queue_depth = 3;
        let flags = SettingFlags::of(&raw);
        assert_eq!(
            flags.0.len(),
            flagged().count() - 4,
            "all but the unset ones"
        );
        let json = serde_json::to_string(&flags).unwrap();
        let back: SettingFlags = serde_json::from_str(&json).unwrap();
        let config = back.config().unwrap();
        assert_eq!(config.s3.min_part_size, 16 << 20);
        assert!(config.s3.legal_hold);
        assert_eq!(config.imaging.queue_depth, 3);
    }

    #[test]
    fn a_job_may_set_only_flagged_keys() {
        let mut flags = SettingFlags::default();
        flags.0.insert(
            "watch.poweroff_command".into(),
            toml::Value::Array(vec!["/bin/sh".into()]),
        );
        assert!(
            flags
                .config()
                .unwrap_err()
                .contains("not a setting acquire takes")
        );
        let mut flags = SettingFlags::default();
        flags
            .0
            .insert("s3.part_size".into(), toml::Value::Boolean(true));
        assert!(
            flags.config().is_err(),
            "a value of the wrong type is refused"
        );
    }

    #[test]
    fn help_is_the_first_sentence_the_default_and_the_range() {
        assert_eq!(
            help(&settings::PARTS_IN_FLIGHT),
            "Parts uploading at once; unset, the upload follows the link (more parts while they \
             add throughput, up to what the part memory holds). [range: 1-64]"
        );
        assert!(help(&settings::S3_MAX_ATTEMPTS).ends_with(". [default: 10] [range: 1-100]"));
        assert!(help(&settings::CHUNK_SIZE).contains("[default: 1MiB] [range: 4 KiB-"));
        assert!(!help(&settings::LEGAL_HOLD).contains("[default"));
    }

    // `--help` names what each flag takes, and clap's update path knows the same flags.
    #[test]
    fn each_flag_names_what_it_takes() {
        let cmd = <SettingFlags as clap::Args>::augment_args(clap::Command::new("t"));
        let help = cmd.clone().render_help().to_string();
        for shown in [
            "--part-size <SIZE>",
            "--queue-depth <N>",
            "--parts-in-flight <N>",
            "--hash <LIST>",
            "--piece-hash <TEXT>",
            "--sse-kms-key-id <TEXT>",
        ] {
            assert!(help.contains(shown), "{shown} missing from:\n{help}");
        }
        assert!(
            help.contains("--legal-hold  "),
            "a switch takes no value:\n{help}"
        );
        let update = <SettingFlags as clap::Args>::augment_args_for_update(clap::Command::new("t"));
        let names = |cmd: &clap::Command| -> Vec<String> {
            cmd.get_arguments()
                .map(|a| a.get_id().to_string())
                .collect()
        };
        assert_eq!(names(&update), names(&cmd));
        assert_eq!(names(&cmd).len(), flagged().count());
    }

    // docs/config.md lists every flag with its key, and no other.
    #[test]
    fn the_documented_flags_are_the_declared_ones() {
        let docs = include_str!("../../../docs/config.md");
        let documented: Vec<&str> = docs
            .lines()
            .filter(|line| line.starts_with("| `--"))
            .collect();
        let declared: Vec<String> = flagged()
            .map(|(spec, flag)| format!("| `--{flag}` | `{}` |", key_of(spec)))
            .collect();
        assert_eq!(documented, declared);
    }
}
