//! `job.queue_url` and its companions: job-queue mode, where each message brings its own incident
//! and snapshot. The keys a message decides are refused beside it, so a collector cannot be
//! half a single-job daemon and half a queue worker.

use std::time::Duration;

use super::{Invalid, invalid, optional, within};
use crate::config::raw::RawConfig;
use crate::config::settings;
use crate::queue::QueueUrl;

/// AWS tag values: at most 256 characters.
const MAX_TAG_VALUE: usize = 256;

/// Job-queue mode's settings.
#[derive(Debug, Clone)]
pub struct QueueSection {
    /// The queue.
    pub url: QueueUrl,
    /// The `forensic-collector` tag value a job's snapshot must carry.
    pub snapshot_tag: String,
    /// Between heartbeats.
    pub heartbeat: Duration,
    /// How long the queue may stay empty.
    pub idle: Duration,
}

/// Job-queue mode, when `job.queue_url` is set.
pub fn queue(raw: &RawConfig) -> Result<Option<QueueSection>, Invalid> {
    let job = &raw.job;
    let heartbeat = within(&settings::HEARTBEAT_SECS, job.heartbeat_secs)?;
    let idle = within(&settings::QUEUE_IDLE_SECS, job.queue_idle_secs)?;
    let Some(url) = optional(
        "job.queue_url",
        job.queue_url.as_ref(),
        str::parse::<QueueUrl>,
    )?
    else {
        return Ok(None);
    };
    let per_message = [
        ("job.incident_id", job.incident_id.is_some()),
        ("job.snapshot_id", job.snapshot_id.is_some()),
        ("job.source_volume_id", job.source_volume_id.is_some()),
        ("job.expected_volumes", job.expected_volumes.is_some()),
    ];
    if let Some((key, _)) = per_message.iter().find(|(_, set)| *set) {
        return Err(invalid(
            *key,
            "each queued job names its own; leave it out when job.queue_url is set",
        ));
    }
    if job.bucket.is_none() {
        return Err(invalid(
            "job.bucket",
            "job-queue mode needs the evidence bucket: a job naming another destination is refused",
        ));
    }
    let snapshot_tag = job.snapshot_tag.as_deref().ok_or_else(|| {
        invalid(
            "job.snapshot_tag",
            "job-queue mode needs the forensic-collector tag value a job's snapshot must carry",
        )
    })?;
    check_tag_value(snapshot_tag).map_err(|e| invalid("job.snapshot_tag", e))?;
    Ok(Some(QueueSection {
        url,
        snapshot_tag: snapshot_tag.to_owned(),
        heartbeat: Duration::from_secs(heartbeat),
        idle: Duration::from_secs(idle),
    }))
}

/// A tag value as EC2 accepts it: 1 to 256 letters, digits, spaces and `_ . : / = + - @`.
fn check_tag_value(value: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
    if (1..=MAX_TAG_VALUE).contains(&value.chars().count()) && value.chars().all(allowed) {
        Ok(())
    } else {
        Err(format!(
            "{value:?} is not a tag value (1 to {MAX_TAG_VALUE} letters, digits, spaces and _ . : / = + - @)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(edit: impl FnOnce(&mut RawConfig)) -> RawConfig {
        let mut raw = RawConfig::default();
        raw.job.bucket = Some("evidence-bucket".to_owned());
        raw.job.queue_url =
            Some("https://sqs.eu-west-1.amazonaws.com/123456789012/jobs".to_owned());
        raw.job.snapshot_tag = Some("incident-response".to_owned());
        edit(&mut raw);
        raw
    }

    #[test]
    fn a_queue_with_its_tag_and_bucket_is_job_queue_mode_with_its_timings() {
        let section = queue(&raw(|r| {
            r.job.heartbeat_secs = 7;
            r.job.queue_idle_secs = 90;
        }))
        .expect("valid")
        .expect("queue mode");
        assert_eq!(
            section.url.as_str(),
            "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"
        );
        assert_eq!(section.snapshot_tag, "incident-response");
        assert_eq!(section.heartbeat, Duration::from_secs(7));
        assert_eq!(section.idle, Duration::from_secs(90));
        let defaults = queue(&raw(|_| {})).expect("valid").expect("queue mode");
        assert_eq!(
            (defaults.heartbeat.as_secs(), defaults.idle.as_secs()),
            (60, 300)
        );
        assert!(queue(&RawConfig::default()).expect("valid").is_none());
    }

    #[test]
    fn what_a_message_decides_cannot_be_set_beside_the_queue() {
        type Edit = fn(&mut RawConfig);
        let cases: [(&str, Edit); 4] = [
            ("job.incident_id", |r| {
                r.job.incident_id = Some("INC-1".to_owned())
            }),
            ("job.snapshot_id", |r| {
                r.job.snapshot_id = Some("snap-0123456789abcdef0".to_owned())
            }),
            ("job.source_volume_id", |r| {
                r.job.source_volume_id = Some("vol-0123456789abcdef0".to_owned())
            }),
            ("job.expected_volumes", |r| r.job.expected_volumes = Some(1)),
        ];
        for (key, edit) in cases {
            let err = queue(&raw(edit)).expect_err(key);
            assert_eq!(err.key, key);
        }
        let err = queue(&raw(|r| r.job.bucket = None)).expect_err("no bucket");
        assert_eq!(err.key, "job.bucket");
        let err = queue(&raw(|r| r.job.snapshot_tag = None)).expect_err("no tag");
        assert_eq!(err.key, "job.snapshot_tag");
        let err = queue(&raw(|r| r.job.queue_url = Some("not a url".to_owned()))).expect_err("url");
        assert_eq!(err.key, "job.queue_url");
    }

    #[test]
    fn timings_are_range_checked_even_without_a_queue() {
        let mut plain = RawConfig::default();
        plain.job.heartbeat_secs = 0;
        assert_eq!(queue(&plain).expect_err("zero").key, "job.heartbeat_secs");
        plain.job.heartbeat_secs = 3601;
        assert_eq!(
            queue(&plain).expect_err("past an hour").key,
            "job.heartbeat_secs"
        );
        plain.job.heartbeat_secs = 3600;
        plain.job.queue_idle_secs = 0;
        assert_eq!(queue(&plain).expect_err("zero").key, "job.queue_idle_secs");
    }

    #[test]
    fn tag_values_are_what_ec2_accepts() {
        for good in [
            "a",
            "incident response",
            "x_y.z:1/2=3+4-5@6",
            &"v".repeat(256),
            "é",
        ] {
            assert!(check_tag_value(good).is_ok(), "{good}");
        }
        for bad in ["", &"v".repeat(257), "a;b", "a\nb", "a*", "$(x)"] {
            assert!(check_tag_value(bad).is_err(), "{bad}");
        }
    }
}
