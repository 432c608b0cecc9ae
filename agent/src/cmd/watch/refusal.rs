//! A configuration `watch` refuses is reported to CloudWatch before the process exits, so the
//! flow's operators see why the collector never became ready. No readiness message is sent: the
//! flow must not attach a volume to a collector that will not image it.
//!
//! The configuration is unusable as a whole, so the reporter is built from what can still be read
//! ([`salvage`]): `cloudwatch.enabled`, `cloudwatch.capture_group` and
//! `cloudwatch.flush_timeout_secs` as the sources read before the refusal set them when the value
//! is valid, else the built-in default — a broken capture group still reports to
//! `ForensicDiskCapture`. The stream is the instance ID when IMDS answered, else the host name, as
//! for the daemon's own reports. Nothing is sent when the readable configuration turns reporting
//! off or no AWS region is known; a failed delivery (credentials, endpoint) costs at most the
//! flush timeout, and the exit code is the refusal's either way.
//!
//! The event leaves the host, so it carries the refusal's off-host form
//! ([`ConfigError::off_host_text`]): the file, line, column and key, never the config file's text
//! or values. The full message stays on the host (stderr, the journal).

use std::time::{Duration, Instant};

use crate::cloudwatch::{self, ReportSettings, Reporter};
use crate::config::settings::FLUSH_TIMEOUT_SECS;
use crate::config::{ConfigError, Layers};
use crate::daemon::events;

/// Where the refusal goes, as far as the refused configuration still says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salvaged {
    /// `cloudwatch.enabled`.
    pub enabled: bool,
    /// `cloudwatch.capture_group`, when valid.
    pub capture_group: String,
    /// `cloudwatch.flush_timeout_secs`, when within its range.
    pub flush_timeout: Duration,
}

/// The reporting settings readable from `partial` (see the module doc); defaults for the rest.
pub fn salvage(partial: &Layers) -> Salvaged {
    let defaults = Salvaged {
        enabled: true,
        capture_group: cloudwatch::DEFAULT_CAPTURE_GROUP.to_owned(),
        flush_timeout: cloudwatch::DEFAULT_FLUSH_TIMEOUT,
    };
    let Ok(raw) = partial.merged() else {
        return defaults;
    };
    let section = raw.cloudwatch;
    Salvaged {
        enabled: section.enabled,
        capture_group: cloudwatch::check_group("capture_group", &section.capture_group)
            .map_or(defaults.capture_group, |()| section.capture_group),
        flush_timeout: FLUSH_TIMEOUT_SECS
            .check(section.flush_timeout_secs)
            .map_or(defaults.flush_timeout, Duration::from_secs),
    }
}

/// Reports the refusal `error` (in its off-host form, with its exit code) in the capture group and
/// flushes it, bounded by the flush timeout. Never fails: reporting is a courtesy on the way out.
pub fn report(error: &ConfigError, partial: &Layers, instance_id: Option<String>) {
    let salvaged = salvage(partial);
    if !salvaged.enabled {
        tracing::info!("CloudWatch reporting is disabled; the refusal is not reported there.");
        return;
    }
    let mut settings = ReportSettings::new(instance_id.unwrap_or_else(crate::sysinfo::hostname));
    settings.capture_group = salvaged.capture_group;
    settings.flush_timeout = salvaged.flush_timeout;
    if let Err(err) = settings.validate() {
        tracing::warn!(error = %err, "Cannot report the refusal to CloudWatch.");
        return;
    }
    let Ok(runtime) = crate::aws::runtime() else {
        tracing::warn!("Cannot report the refusal to CloudWatch: no runtime.");
        return;
    };
    let client = crate::aws::cloudwatch_client(runtime);
    if client.config().region().is_none() {
        tracing::warn!(
            "Cannot report the refusal to CloudWatch: no AWS region (AWS_REGION, profile or IMDS)."
        );
        return;
    }
    let (group, stream) = (settings.capture_group.clone(), settings.stream.clone());
    let reporter = Reporter::start(client, settings);
    reporter.emit(event(error));
    let stats = reporter.shutdown(Instant::now() + salvaged.flush_timeout);
    if stats.sent > 0 {
        tracing::info!(group, stream, "Refusal reported to CloudWatch.");
    } else {
        tracing::warn!(
            group,
            stream,
            failed = stats.failed,
            "The refusal could not be delivered to CloudWatch before the flush timeout."
        );
    }
}

/// The `config_refused` event for `error`: its off-host form and its exit code.
fn event(error: &ConfigError) -> serde_json::Value {
    events::config_refused(&error.off_host_text(), error.exit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;
    use crate::config::layers;

    fn from_file(text: &str) -> Layers {
        let mut partial = Layers::default();
        let table = text.parse().expect("TOML");
        partial.apply(layers::flatten(&table, &Origin::File("/etc/fc.toml".into())).unwrap());
        partial
    }

    #[test]
    fn nothing_read_gives_the_defaults() {
        let salvaged = salvage(&Layers::default());
        assert!(salvaged.enabled);
        assert_eq!(salvaged.capture_group, "ForensicDiskCapture");
        assert_eq!(salvaged.flush_timeout, Duration::from_secs(10));
    }

    #[test]
    fn valid_values_are_kept() {
        let salvaged = salvage(&from_file(
            "[cloudwatch]\ncapture_group = \"Team/Capture\"\nflush_timeout_secs = 3\n",
        ));
        assert_eq!(salvaged.capture_group, "Team/Capture");
        assert_eq!(salvaged.flush_timeout, Duration::from_secs(3));
        assert!(!salvage(&from_file("[cloudwatch]\nenabled = false\n")).enabled);
    }

    #[test]
    fn a_broken_value_falls_back_to_its_default_alone() {
        let salvaged = salvage(&from_file(
            "[cloudwatch]\ncapture_group = \"Forensic Capture\"\nflush_timeout_secs = 4\n",
        ));
        assert_eq!(salvaged.capture_group, "ForensicDiskCapture");
        assert_eq!(salvaged.flush_timeout, Duration::from_secs(4));
        let salvaged = salvage(&from_file(
            "[cloudwatch]\ncapture_group = \"Mine\"\nflush_timeout_secs = 0\n",
        ));
        assert_eq!(salvaged.capture_group, "Mine");
        assert_eq!(salvaged.flush_timeout, Duration::from_secs(10));
    }
}
