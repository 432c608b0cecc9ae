//! The job context in EC2 user data: JSON, TOML, or the shell script of the original flow.
//!
//! User data is written by whoever launches the instance, in whatever shape their tooling produces.
//! We recognise the shape instead of asking for one: a JSON object; a TOML document with known keys;
//! else `KEY=VALUE` lines (plain, `export`ed, or `echo "KEY=VALUE" >> /etc/environment` as the
//! original RunInstances call writes them). User data is parsed, never executed: a line we do not
//! recognise is ignored, and `$VAR` or backticks stay literal (and then fail validation).

use super::env::{self, Ignored};
use super::error::ConfigError;
use super::layers::{self, Setting};
use super::origin::{Origin, UserDataFormat};
use super::settings::{self, SECTIONS};

/// Settings found in user data and the format they were in.
#[derive(Debug, Clone, PartialEq)]
pub struct UserData {
    /// The detected format.
    pub format: UserDataFormat,
    /// Checked settings, all with origin `user data (format)`.
    pub settings: Vec<Setting>,
    /// Values read but not used (an `IMAGE_NAME` that is no volume ID).
    pub ignored: Vec<Ignored>,
}

/// EC2 accepts at most 16 KiB of user data (before base64). Anything longer did not come from EC2,
/// and is refused before any parser looks at it.
pub const MAX_BYTES: usize = 16 << 10;

/// The byte-order mark some Windows editors put first; it is not part of the first line.
const BOM: char = '\u{feff}';

/// Detects the format of `text` and extracts its settings; `None` for empty user data.
pub fn parse(text: &str) -> Result<Option<UserData>, ConfigError> {
    if text.len() > MAX_BYTES {
        return Err(ConfigError::UserData {
            message: format!(
                "{} bytes, more than EC2's {MAX_BYTES}-byte limit for user data",
                text.len()
            ),
        });
    }
    // Without this, `\u{feff}DESTINATION_BUCKET=…` is not a valid name and the line is lost.
    let text = text.strip_prefix(BOM).unwrap_or(text);
    if text.trim().is_empty() {
        return Ok(None);
    }
    let json_reason = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => {
            return structured(text, UserDataFormat::Json).map(Some);
        }
        Ok(other) => format!("JSON but not an object ({})", json_kind(&other)),
        Err(e) => format!("not JSON ({e})"),
    };
    let toml_reason = match text.parse::<toml::Table>() {
        Ok(table) if has_known_keys(&table) => {
            return structured(text, UserDataFormat::Toml).map(Some);
        }
        Ok(_) => "TOML without any known key".to_owned(),
        Err(e) => format!("not TOML ({})", e.message()),
    };
    let read = shell(text)?;
    if read.settings.is_empty() && read.ignored.is_empty() {
        return Err(ConfigError::UserData {
            message: format!("{json_reason}; {toml_reason}; no recognised KEY=VALUE line"),
        });
    }
    Ok(Some(UserData {
        format: UserDataFormat::Shell,
        settings: read.settings,
        ignored: read.ignored,
    }))
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn has_known_keys(table: &toml::Table) -> bool {
    table
        .keys()
        .any(|k| SECTIONS.contains(&k.as_str()) || settings::find("job", k).is_some())
}

/// JSON or TOML: section tables, or top-level keys that belong to `[job]`; `{"job": {…}}` is the
/// same thing with a wrapper.
fn structured(text: &str, format: UserDataFormat) -> Result<UserData, ConfigError> {
    let table: toml::Table = match format {
        UserDataFormat::Json => serde_json::from_str(text).map_err(|e| ConfigError::UserData {
            message: format!("JSON object with unsupported values ({e})"),
        })?,
        _ => text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::UserData {
                message: format!("not TOML ({})", e.message()),
            })?,
    };
    let mut sections = toml::Table::new();
    let mut job = toml::Table::new();
    for (key, value) in table {
        if key == "job" {
            if let toml::Value::Table(body) = value {
                job.extend(body);
                continue;
            }
            sections.insert(key, value);
        } else if SECTIONS.contains(&key.as_str()) {
            sections.insert(key, value);
        } else {
            job.insert(key, value);
        }
    }
    if !job.is_empty() {
        sections.insert("job".into(), toml::Value::Table(job));
    }
    let settings = layers::flatten(&sections, &Origin::UserData(format))?;
    Ok(UserData {
        format,
        settings,
        ignored: Vec::new(),
    })
}

/// `KEY=VALUE` assignments with a recognised key, in order.
fn shell(text: &str) -> Result<env::Read, ConfigError> {
    let origin = Origin::UserData(UserDataFormat::Shell);
    let mut read = env::Read::default();
    for line in text.lines() {
        let Some((name, value)) = assignment(line) else {
            continue;
        };
        env::refuse_path_variable(&name, &value, &origin)?;
        if let Some(key) = env::key_of(&name) {
            read.push(&name, key, &value, origin.clone())?;
        } else {
            env::warn_if_unknown(&name, &origin);
        }
    }
    Ok(read)
}

/// One assignment from a line: `KEY=VALUE`, `export KEY=VALUE`, `echo "KEY=VALUE" >> FILE`.
fn assignment(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let word = if let Some(rest) = line.strip_prefix("echo ") {
        shell_word(rest.trim_start())
    } else {
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let (name, rest) = line.split_once('=')?;
        format!("{name}={}", shell_word(rest))
    };
    let (name, value) = word.split_once('=')?;
    let valid_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid_name.then(|| (name.to_owned(), unquote(value)))
}

/// The first shell word of `text`: quoted (`"…"`, `'…'`, without the quotes) or up to whitespace or
/// a shell operator (`;`, `>`, `|`, `&`). Enough for the lines launch tooling writes; anything
/// fancier is not recognised.
fn shell_word(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            (None, c) if c.is_whitespace() || matches!(c, ';' | '>' | '|' | '&') => break,
            (_, c) => out.push(c),
        }
    }
    out
}

/// `"x"` or `'x'` → `x` (a value quoted inside an already quoted `echo` argument).
fn unquote(value: &str) -> String {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(data: &UserData, key: &str) -> Option<String> {
        data.settings
            .iter()
            .find(|s| s.key.to_string() == key)
            .and_then(|s| s.value.as_str().map(str::to_owned))
    }

    #[test]
    fn the_original_flows_script_is_read_not_run() {
        let script = "#!/bin/bash\n\
            yum install -y something\n\
            echo \"DESTINATION_BUCKET=my-evidence-bucket\" >> /etc/environment\n\
            echo \"IMAGE_NAME=vol-0123456789abcdef0\" >> /etc/environment\n\
            echo 'INCIDENT_ID=IR-2026-0042' | tee -a /etc/environment\n\
            export DESTINATION_PREFIX=\"forensics\"\n\
            echo IMAGE_NAME=vol-0123456789abcdef0>>/etc/environment\n\
            UNRELATED=1\n";
        let data = parse(script).unwrap().unwrap();
        assert_eq!(data.format, UserDataFormat::Shell);
        assert_eq!(
            value(&data, "job.bucket").as_deref(),
            Some("my-evidence-bucket")
        );
        assert_eq!(
            value(&data, "job.source_volume_id").as_deref(),
            Some("vol-0123456789abcdef0")
        );
        assert_eq!(
            value(&data, "job.incident_id").as_deref(),
            Some("IR-2026-0042")
        );
        assert_eq!(value(&data, "job.prefix").as_deref(), Some("forensics"));
        assert_eq!(
            data.settings.len(),
            5,
            "IMAGE_NAME twice; the later line wins"
        );
    }

    // Issue 10: the original flow's IMAGE_NAME may be any name; it does not stop the job.
    #[test]
    fn an_image_name_that_is_no_volume_id_is_ignored_not_refused() {
        let data = parse(
            "echo \"DESTINATION_BUCKET=bkt\" >> /etc/environment\n\
             echo \"IMAGE_NAME=web-01 root disk\" >> /etc/environment\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(value(&data, "job.bucket").as_deref(), Some("bkt"));
        assert_eq!(value(&data, "job.source_volume_id"), None);
        assert_eq!(data.ignored.len(), 1);
        assert_eq!(data.ignored[0].value, "web-01 root disk");
        assert_eq!(
            data.ignored[0].origin,
            Origin::UserData(UserDataFormat::Shell)
        );
        // Alone it is still user data that was understood, not malformed.
        let data = parse("IMAGE_NAME=my-image\n").unwrap().unwrap();
        assert_eq!((data.settings.len(), data.ignored.len()), (0, 1));
    }

    #[test]
    fn plain_key_value_lines_with_quotes() {
        let data = parse("DESTINATION_BUCKET='b-1'\nINCIDENT_ID=\"IR-1\"\n")
            .unwrap()
            .unwrap();
        // Quoted values also parse as TOML, but without known keys: the shell reading wins.
        assert_eq!(data.format, UserDataFormat::Shell);
        assert_eq!(value(&data, "job.bucket").as_deref(), Some("b-1"));
        assert_eq!(value(&data, "job.incident_id").as_deref(), Some("IR-1"));
    }

    #[test]
    fn toml_job_table_and_top_level_keys() {
        for text in [
            "[job]\nbucket = \"bkt\"\nincident_id = \"IR-7\"\n",
            "bucket = \"bkt\"\nincident_id = \"IR-7\"\n",
        ] {
            let data = parse(text).unwrap().unwrap();
            assert_eq!(data.format, UserDataFormat::Toml, "{text}");
            assert_eq!(value(&data, "job.bucket").as_deref(), Some("bkt"));
            assert_eq!(value(&data, "job.incident_id").as_deref(), Some("IR-7"));
        }
        let data = parse("bucket = \"bkt\"\n[watch]\non_complete = \"exit\"\n")
            .unwrap()
            .unwrap();
        assert_eq!(value(&data, "watch.on_complete").as_deref(), Some("exit"));
    }

    #[test]
    fn json_flat_and_wrapped() {
        for text in [
            r#"{"bucket": "bkt", "incident_id": "IR-7", "expected_volumes": 2}"#,
            r#"{"job": {"bucket": "bkt", "incident_id": "IR-7", "expected_volumes": 2}}"#,
        ] {
            let data = parse(text).unwrap().unwrap();
            assert_eq!(data.format, UserDataFormat::Json, "{text}");
            assert_eq!(value(&data, "job.bucket").as_deref(), Some("bkt"));
            let volumes = data
                .settings
                .iter()
                .find(|s| s.key.key == "expected_volumes")
                .unwrap();
            assert_eq!(volumes.value, toml::Value::Integer(2));
        }
    }

    #[test]
    fn empty_user_data_is_no_job_context() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("  \n").unwrap(), None);
    }

    #[test]
    fn unrecognised_user_data_names_the_accepted_formats() {
        for text in [
            "#!/bin/bash\necho hello\n",
            "[1, 2]",
            "{ not json",
            "x = = y",
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, ConfigError::UserData { .. }), "{text}: {err}");
            let message = err.to_string();
            assert!(
                message.contains("malformed user data")
                    && message.contains("JSON")
                    && message.contains("DESTINATION_BUCKET"),
                "{message}"
            );
        }
    }

    #[test]
    fn unknown_keys_in_structured_user_data_name_key_and_format() {
        let err = parse(r#"{"bucket": "bkt", "bukket": "x"}"#).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("job.bukket") && text.contains("user data (json)"),
            "{text}"
        );
        let err = parse("[job]\nbucket = \"b\"\nincident = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("user data (toml)"), "{err}");
    }

    // Issue 9 (also seen): a byte-order mark must not cost the first line.
    #[test]
    fn a_leading_byte_order_mark_is_ignored() {
        let data = parse("\u{feff}DESTINATION_BUCKET=bkt\nINCIDENT_ID=IR-1\n")
            .unwrap()
            .unwrap();
        assert_eq!(value(&data, "job.bucket").as_deref(), Some("bkt"));
        assert_eq!(value(&data, "job.incident_id").as_deref(), Some("IR-1"));
        let data = parse("\u{feff}{\"bucket\": \"bkt\"}").unwrap().unwrap();
        assert_eq!(data.format, UserDataFormat::Json);
        assert_eq!(parse("\u{feff}").unwrap(), None);
    }

    // Issue 9 item 10: user data is bounded like the config file, at EC2's own limit.
    #[test]
    fn user_data_over_ec2s_limit_is_refused() {
        let line = "DESTINATION_BUCKET=bkt\n";
        let mut at_limit = line.repeat(MAX_BYTES / line.len());
        at_limit.push_str(&"#".repeat(MAX_BYTES - at_limit.len()));
        assert_eq!(at_limit.len(), MAX_BYTES);
        assert!(parse(&at_limit).unwrap().is_some());
        at_limit.push('#');
        let err = parse(&at_limit).unwrap_err();
        assert!(
            matches!(err, ConfigError::UserData { .. }) && err.to_string().contains("16384"),
            "{err}"
        );
    }

    // Issue 9 item 5: the shell form is refused too, naming key and source.
    #[test]
    fn shell_user_data_cannot_set_the_poweroff_command() {
        let err = parse("DESTINATION_BUCKET=b\nFORENSIC_COLLECTOR_WATCH_POWEROFF_COMMAND='[\"touch\", \"/tmp/x\"]'\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("watch.poweroff_command")
                && err.contains("user data (shell)")
                && err.contains("refused"),
            "{err}"
        );
    }

    // Issue 19: shell user data naming the config file is refused as the environment's variable
    // is (the original flow copies these lines into /etc/environment), never silently dropped.
    #[test]
    fn shell_user_data_cannot_name_the_config_file() {
        for line in [
            "FORENSIC_COLLECTOR_CONFIG=/root/secret.cred",
            "echo \"FORENSIC_COLLECTOR_CONFIG=/root/secret.cred\" >> /etc/environment",
        ] {
            let err = parse(&format!("DESTINATION_BUCKET=b\n{line}\n")).unwrap_err();
            assert!(
                matches!(&err, ConfigError::PathVariable { origin, value, .. }
                    if *origin == Origin::UserData(UserDataFormat::Shell)
                        && value == "/root/secret.cred"),
                "{line}: {err:?}"
            );
            assert!(
                err.to_string().contains("in user data (shell): refused"),
                "{err}"
            );
        }
        parse("DESTINATION_BUCKET=b\nFORENSIC_COLLECTOR_CONFIG=\n").unwrap();
    }

    // Issue 9 (tests): nesting as deep as 16 KiB allows hits the parsers' depth limits, not the
    // stack (the test thread's 2 MiB stack is smaller than the main thread's).
    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        for open in ["[", "{\"a\":", "a = {b = "] {
            for text in [format!("a = {}", open.repeat(8000)), open.repeat(8000)] {
                let text = &text[..text.len().min(MAX_BYTES)];
                assert!(parse(text).is_err(), "{}", &text[..20]);
            }
        }
    }

    mod fuzz {
        use super::super::parse;
        use proptest::prelude::*;

        proptest! {
            // Bounded so the whole module runs in about a second in CI.
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            // Issue 9 (tests): no input panics the user-data parser.
            #[test]
            fn arbitrary_text_never_panics(text in any::<String>()) {
                let _ = parse(&text);
            }

            #[test]
            fn arbitrary_bytes_as_lossy_text_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = parse(&String::from_utf8_lossy(&bytes));
            }

            #[test]
            fn shaped_text_never_panics(
                text in "(\\u{feff})?([{}\\[\\]\"'=#:,. a-zA-Z_0-9\\n\\t\\\\$`;>|&-]|echo |export |DESTINATION_BUCKET|FORENSIC_COLLECTOR_|job|watch){0,64}"
            ) {
                let _ = parse(&text);
            }
        }
    }

    #[test]
    fn wrong_types_in_user_data_are_reported() {
        let err = parse(r#"{"bucket": "bkt", "expected_volumes": "two"}"#).unwrap_err();
        assert!(err.to_string().contains("job.expected_volumes"), "{err}");
    }
}
