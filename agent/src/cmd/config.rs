//! `forensic-collector config check`: load every source exactly as `watch` would, validate, and
//! print the effective configuration with each key's provenance. The human form is itself a valid
//! config file (provenance in comments), so it can be saved and edited.

use std::fmt::Write as _;

use crate::cli::ConfigCheckArgs;
use crate::exit::{Exit, Failure};

use crate::config::{self, Effective, LoadOptions};

/// Runs the check; prints to stdout, `json` selects JSON output.
pub fn run(args: &ConfigCheckArgs, json: bool) -> Result<Exit, Failure> {
    let options = LoadOptions::from_process(args.config.clone());
    let effective = config::load(&options).map_err(|e| Failure::new(e.exit(), e))?;
    let job = effective.require_job();
    let text = if json {
        let mut text = serde_json::to_string_pretty(&to_json(&effective, job.is_ok()))
            .map_err(|e| Failure::new(Exit::Internal, e))?;
        text.push('\n');
        text
    } else {
        human(&effective)
    };
    print!("{text}");
    match job {
        Err(missing) if !args.allow_missing_job => Err(Failure::new(missing.exit(), missing)),
        Err(missing) => {
            tracing::warn!("{missing}; `watch` would refuse to start.");
            Ok(Exit::Ok)
        }
        Ok(_) => Ok(Exit::Ok),
    }
}

/// Where the layers came from, one line each.
fn sources(effective: &Effective) -> Vec<(&'static str, String)> {
    let file = effective.file.as_ref().map_or_else(
        || format!("none ({} absent)", config::DEFAULT_PATH),
        |p| p.display().to_string(),
    );
    let user_data = match (effective.imds_skipped, effective.user_data) {
        (Some(why), _) => format!("not read ({why})"),
        (None, Some(format)) => format.name().to_owned(),
        (None, None) => "none".to_owned(),
    };
    let instance = effective
        .instance_id
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let mut lines = vec![
        ("config file", file),
        ("user data", user_data),
        ("instance", instance),
    ];
    // Only when something was ignored, so the usual output is unchanged.
    if !effective.ignored.is_empty() {
        let ignored: Vec<String> = effective
            .ignored
            .iter()
            .map(|i| format!("{}={:?} from {}: {}", i.name, i.value, i.origin, i.reason))
            .collect();
        lines.push(("ignored", ignored.join("; ")));
    }
    lines
}

/// A TOML document with each key's provenance as a trailing comment.
fn human(effective: &Effective) -> String {
    let mut out = String::from("# forensic-collector effective configuration\n");
    for (what, value) in sources(effective) {
        let _ = writeln!(out, "# {what}: {value}");
    }
    let lines: Vec<(String, String, String)> = effective
        .settings
        .iter()
        .map(|s| {
            (
                s.key.section.clone(),
                format!("{} = {}", s.key.key, s.value),
                s.origin.to_string(),
            )
        })
        .collect();
    let width = lines
        .iter()
        .map(|(_, line, _)| line.len())
        .max()
        .unwrap_or(0);
    let mut section = String::new();
    for (sec, line, origin) in lines {
        if sec != section {
            let _ = writeln!(out, "\n[{sec}]");
            section = sec;
        }
        let _ = writeln!(out, "{line:width$}  # {origin}");
    }
    out
}

fn to_json(effective: &Effective, job_ready: bool) -> serde_json::Value {
    let settings: serde_json::Map<String, serde_json::Value> = effective
        .settings
        .iter()
        .map(|s| {
            (
                s.key.to_string(),
                serde_json::json!({
                    "value": serde_json::to_value(&s.value).unwrap_or(serde_json::Value::Null),
                    "source": s.origin.to_string(),
                }),
            )
        })
        .collect();
    let sources: serde_json::Map<String, serde_json::Value> = sources(effective)
        .into_iter()
        .map(|(k, v)| (k.replace(' ', "_"), serde_json::Value::String(v)))
        .collect();
    serde_json::json!({
        "sources": sources,
        "job_ready": job_ready,
        "settings": settings,
    })
}
