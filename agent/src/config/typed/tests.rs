//! Validation: defaults, bad values naming their key, good values becoming types.

use super::*;
use aws_sdk_s3::types::ObjectLockMode;
use imaging::s3::limits;

fn with(edit: impl FnOnce(&mut RawConfig)) -> Result<Config, Invalid> {
    let mut raw = RawConfig::default();
    edit(&mut raw);
    validate(&raw)
}

#[test]
fn defaults_are_valid_and_match_the_engine() {
    let config = with(|_| {}).unwrap();
    let engine = PipelineConfig::default();
    assert_eq!(config.imaging.chunk_size, engine.chunk_size);
    assert_eq!(config.imaging.queue_depth, engine.queue_depth);
    assert_eq!(config.imaging.piece_size, engine.piece_size);
    assert_eq!(config.imaging.piece_algorithm, HashAlgorithm::Blake3);
    assert_eq!(config.imaging.algorithms, engine.algorithms);
    assert_eq!(config.s3.min_part_size, limits::MIN_PART_SIZE);
    assert_eq!(config.watch.on_complete, OnComplete::Poweroff);
    assert!(config.job.destination.is_none() && config.job.use_imds);
}

#[test]
fn bad_values_name_their_key() {
    type Edit = Box<dyn FnOnce(&mut RawConfig)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "job.bucket",
            Box::new(|r| r.job.bucket = Some("Bad_Bucket".into())),
        ),
        (
            "job.bucket",
            Box::new(|r| r.job.bucket = Some("b/x".into())),
        ),
        ("job.prefix", Box::new(|r| r.job.prefix = "a/../b".into())),
        (
            "job.incident_id",
            Box::new(|r| r.job.incident_id = Some("../etc".into())),
        ),
        (
            "job.source_volume_id",
            Box::new(|r| r.job.source_volume_id = Some("vol-xyz".into())),
        ),
        (
            "job.expected_volumes",
            Box::new(|r| r.job.expected_volumes = Some(0)),
        ),
        // Issue 10: the examiner is checked by the manifest's own rule.
        (
            "job.examiner",
            Box::new(|r| r.job.examiner = Some("a\u{202e}b".into())),
        ),
        (
            "watch.disk_root",
            Box::new(|r| r.watch.disk_root = "dev/disk".into()),
        ),
        ("watch.concurrency", Box::new(|r| r.watch.concurrency = 9)),
        (
            "imaging.hashes",
            Box::new(|r| r.imaging.hashes = RawHashList::Csv("sha256,crc".into())),
        ),
        (
            "imaging.hashes",
            Box::new(|r| r.imaging.hashes = RawHashList::Csv("blake3".into())),
        ),
        (
            "imaging.chunk_size",
            Box::new(|r| r.imaging.chunk_size = RawSize::Text("1000".into())),
        ),
        (
            "imaging.piece_size",
            Box::new(|r| r.imaging.piece_size = RawSize::Text("lots".into())),
        ),
        (
            "imaging.queue_depth",
            Box::new(|r| r.imaging.queue_depth = 0),
        ),
        // Issue 12: pieces are blake3 or sha256 only.
        (
            "imaging.piece_hash",
            Box::new(|r| r.imaging.piece_hash = "md5".into()),
        ),
        (
            "imaging.piece_hash",
            Box::new(|r| r.imaging.piece_hash = "crc32".into()),
        ),
        (
            "s3.part_size",
            Box::new(|r| r.s3.part_size = RawSize::Text("1MiB".into())),
        ),
        (
            "s3.parts_in_flight",
            Box::new(|r| r.s3.parts_in_flight = Some(0)),
        ),
        (
            "s3.expected_bucket_owner",
            Box::new(|r| r.s3.expected_bucket_owner = Some("12345".into())),
        ),
        (
            "s3.object_lock_retain_days",
            Box::new(|r| r.s3.object_lock_mode = Some("COMPLIANCE".into())),
        ),
        (
            "s3.object_lock_mode",
            Box::new(|r| {
                r.s3.object_lock_mode = Some("forever".into());
                r.s3.object_lock_retain_days = Some(1);
            }),
        ),
        (
            "cloudwatch.readiness_group",
            Box::new(|r| r.cloudwatch.readiness_group = "a b".into()),
        ),
        (
            "cloudwatch.progress_interval_secs",
            Box::new(|r| r.cloudwatch.progress_interval_secs = 0),
        ),
    ];
    for (key, edit) in cases {
        let err = with(edit).unwrap_err();
        assert_eq!(err.key, key, "{err:?}");
    }
}

#[test]
fn good_values_become_types() {
    let config = with(|r| {
        r.job.bucket = Some("my-evidence-bucket".into());
        r.job.prefix = "/forensics/".into();
        r.job.incident_id = Some("IR-2026-0042".into());
        r.job.source_volume_id = Some("vol0123456789abcdef0".into());
        r.job.examiner = Some(" J. Doe ".into());
        r.imaging.hashes = RawHashList::Csv("blake3, md5, sha256".into());
        r.imaging.piece_size = RawSize::Text("0".into());
        r.imaging.piece_hash = "SHA256".into();
        r.s3.part_size = RawSize::Bytes(16 << 20);
        r.s3.object_lock_mode = Some("compliance".into());
        r.s3.object_lock_retain_days = Some(365);
        r.watch.idle_timeout_secs = 60;
    })
    .unwrap();
    assert_eq!(config.job.examiner.as_deref(), Some("J. Doe"));
    let dest = config.job.destination.unwrap();
    assert_eq!(dest.bucket(), "my-evidence-bucket");
    assert_eq!(dest.key("x"), "forensics/x");
    assert_eq!(
        config.job.source_volume_id.unwrap().as_str(),
        "vol-0123456789abcdef0"
    );
    assert_eq!(
        config.imaging.algorithms,
        [
            HashAlgorithm::Blake3,
            HashAlgorithm::Md5,
            HashAlgorithm::Sha256
        ]
    );
    assert_eq!(config.imaging.piece_size, None);
    assert_eq!(config.imaging.piece_algorithm, HashAlgorithm::Sha256);
    assert_eq!(config.s3.min_part_size, 16 << 20);
    assert!(
        config.s3.require_object_lock,
        "a retention implies an Object Lock bucket"
    );
    assert_eq!(config.watch.idle_timeout, Some(Duration::from_secs(60)));
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .to_utc();
    let retention = config.s3.retention(now).unwrap();
    assert_eq!(retention.mode, ObjectLockMode::Compliance);
    assert_eq!(
        retention.retain_until.to_rfc3339(),
        "2027-01-01T00:00:00+00:00"
    );
}

// Issue 9 item 6: every bounded key accepts its edge and refuses one step past it, naming itself.
#[test]
fn bounds_hold_on_both_sides_and_name_their_key() {
    type Edit = Box<dyn Fn(&mut RawConfig)>;
    let mib = |n: u64| RawSize::Bytes(n << 20);
    let cases: Vec<(&str, Edit, Edit)> = vec![
        (
            "watch.settle_ms",
            Box::new(|r| r.watch.settle_ms = 60_000),
            Box::new(|r| r.watch.settle_ms = 60_001),
        ),
        (
            "watch.idle_timeout_secs",
            Box::new(|r| r.watch.idle_timeout_secs = 30 * 86_400),
            Box::new(|r| r.watch.idle_timeout_secs = 30 * 86_400 + 1),
        ),
        (
            "watch.concurrency",
            Box::new(|r| r.watch.concurrency = 8),
            Box::new(|r| r.watch.concurrency = 0),
        ),
        (
            "imaging.chunk_size",
            Box::new(move |r| {
                r.imaging.chunk_size = mib(64);
                r.imaging.queue_depth = 12;
            }),
            Box::new(move |r| {
                r.imaging.chunk_size = mib(64);
                r.imaging.queue_depth = 13;
            }),
        ),
        (
            "imaging.chunk_size",
            Box::new(move |r| r.imaging.chunk_size = mib(1)),
            Box::new(|r| r.imaging.chunk_size = RawSize::Text("1TiB".into())),
        ),
        (
            "imaging.queue_depth",
            Box::new(|r| r.imaging.queue_depth = 1),
            Box::new(|r| r.imaging.queue_depth = 257),
        ),
        (
            "imaging.piece_size",
            Box::new(move |r| r.imaging.piece_size = mib(1)),
            Box::new(|r| r.imaging.piece_size = RawSize::Bytes((1 << 20) - 1)),
        ),
        (
            "imaging.sector_retries",
            Box::new(|r| r.imaging.sector_retries = 10),
            Box::new(|r| r.imaging.sector_retries = 11),
        ),
        (
            "s3.part_size",
            Box::new(move |r| {
                r.s3.part_size = mib(5 << 10);
                r.s3.parts_in_flight = Some(1);
                r.s3.part_memory = mib(10 << 10);
                r.s3.max_object_size = mib(5 << 10);
            }),
            Box::new(|r| r.s3.part_size = RawSize::Bytes((5 << 30) + 1)),
        ),
        (
            "s3.parts_in_flight",
            Box::new(move |r| {
                r.s3.parts_in_flight = Some(64);
                r.s3.part_memory = mib(325);
            }),
            Box::new(move |r| {
                r.s3.parts_in_flight = Some(65);
                r.s3.part_memory = mib(8 << 10);
            }),
        ),
        (
            "s3.part_memory",
            Box::new(move |r| {
                r.s3.parts_in_flight = Some(1);
                r.s3.part_memory = mib(10);
            }),
            Box::new(move |r| {
                r.s3.parts_in_flight = Some(1);
                r.s3.part_memory = RawSize::Bytes((10 << 20) - 1);
            }),
        ),
        (
            "s3.part_memory",
            Box::new(move |r| r.s3.part_memory = mib(10 << 10)),
            Box::new(|r| r.s3.part_memory = RawSize::Bytes((10 << 30) + 1)),
        ),
        (
            "s3.part_memory",
            Box::new(move |r| {
                r.s3.parts_in_flight = Some(31);
                r.s3.part_memory = mib(160);
            }),
            Box::new(move |r| {
                r.s3.parts_in_flight = Some(32);
                r.s3.part_memory = mib(160);
            }),
        ),
        (
            "s3.max_object_size",
            Box::new(|r| r.s3.max_object_size = RawSize::Bytes(10_000 * (5 << 30))),
            Box::new(|r| r.s3.max_object_size = RawSize::Bytes(10_000 * (5 << 30) + 1)),
        ),
        (
            "s3.max_object_size",
            Box::new(move |r| r.s3.max_object_size = mib(5)),
            Box::new(|r| r.s3.max_object_size = RawSize::Bytes((5 << 20) - 1)),
        ),
        (
            "s3.max_attempts",
            Box::new(|r| r.s3.max_attempts = 100),
            Box::new(|r| r.s3.max_attempts = 101),
        ),
        (
            "s3.max_attempts",
            Box::new(|r| r.s3.max_attempts = 1),
            Box::new(|r| r.s3.max_attempts = 0),
        ),
        (
            "s3.object_lock_retain_days",
            Box::new(|r| {
                r.s3.object_lock_mode = Some("GOVERNANCE".into());
                r.s3.object_lock_retain_days = Some(36_500);
            }),
            Box::new(|r| {
                r.s3.object_lock_mode = Some("GOVERNANCE".into());
                r.s3.object_lock_retain_days = Some(36_501);
            }),
        ),
        (
            "s3.object_lock_retain_days",
            Box::new(|r| {
                r.s3.object_lock_mode = Some("GOVERNANCE".into());
                r.s3.object_lock_retain_days = Some(1);
            }),
            Box::new(|r| {
                r.s3.object_lock_mode = Some("GOVERNANCE".into());
                r.s3.object_lock_retain_days = Some(0);
            }),
        ),
        (
            "cloudwatch.progress_interval_secs",
            Box::new(|r| r.cloudwatch.progress_interval_secs = 3600),
            Box::new(|r| r.cloudwatch.progress_interval_secs = 3601),
        ),
        (
            "cloudwatch.queue_capacity",
            Box::new(|r| r.cloudwatch.queue_capacity = 100_000),
            Box::new(|r| r.cloudwatch.queue_capacity = 100_001),
        ),
        (
            "cloudwatch.queue_capacity",
            Box::new(|r| r.cloudwatch.queue_capacity = 1),
            Box::new(|r| r.cloudwatch.queue_capacity = 0),
        ),
        (
            "cloudwatch.flush_timeout_secs",
            Box::new(|r| r.cloudwatch.flush_timeout_secs = 600),
            Box::new(|r| r.cloudwatch.flush_timeout_secs = 601),
        ),
        (
            "cloudwatch.flush_timeout_secs",
            Box::new(|r| r.cloudwatch.flush_timeout_secs = 1),
            Box::new(|r| r.cloudwatch.flush_timeout_secs = 0),
        ),
    ];
    for (key, inside, outside) in cases {
        let config = with(|r| inside(r));
        assert!(config.is_ok(), "{key} at its bound: {:?}", config.err());
        let err = with(|r| outside(r)).expect_err(key);
        assert_eq!(err.key, key, "{err:?}");
    }
}

#[test]
fn bounded_values_reach_the_typed_config() {
    let config = with(|r| {
        r.watch.settle_ms = 1234;
        r.watch.idle_timeout_secs = 0;
        r.cloudwatch.progress_interval_secs = 7;
        r.cloudwatch.flush_timeout_secs = 9;
        r.cloudwatch.queue_capacity = 11;
        r.s3.parts_in_flight = Some(3);
        r.s3.max_attempts = 5;
    })
    .unwrap();
    assert_eq!(config.watch.settle, Duration::from_millis(1234));
    assert_eq!(config.watch.idle_timeout, None);
    assert_eq!(config.cloudwatch.progress_interval, Duration::from_secs(7));
    assert_eq!(config.cloudwatch.flush_timeout, Duration::from_secs(9));
    assert_eq!(config.cloudwatch.queue_capacity.get(), 11);
    assert_eq!(config.s3.parts_in_flight.map(|n| n.get()), Some(3));
    assert_eq!(config.s3.max_attempts.get(), 5);
}

// Issue 10 (mutation testing): both sides of the text rules of [s3] and [cloudwatch].
#[test]
fn text_rules_accept_their_edge_and_refuse_past_it() {
    let key_of = |edit: Box<dyn FnOnce(&mut RawConfig)>| with(edit).err().map(|e| e.key);
    for bad in ["", "  ", "alias/a b"] {
        let value = bad.to_owned();
        assert_eq!(
            key_of(Box::new(move |r| r.s3.sse_kms_key_id = Some(value))).as_deref(),
            Some("s3.sse_kms_key_id"),
            "{bad:?}"
        );
    }
    let config = with(|r| r.s3.sse_kms_key_id = Some(" alias/evidence ".into())).unwrap();
    assert_eq!(config.s3.sse_kms_key_id.as_deref(), Some("alias/evidence"));
    for bad in ["12345678901a", "1234567890123", "12345678901"] {
        let value = bad.to_owned();
        assert_eq!(
            key_of(Box::new(move |r| r.s3.expected_bucket_owner = Some(value))).as_deref(),
            Some("s3.expected_bucket_owner"),
            "{bad:?}"
        );
    }
    let config = with(|r| r.s3.expected_bucket_owner = Some("123456789012".into())).unwrap();
    assert_eq!(
        config.s3.expected_bucket_owner.as_deref(),
        Some("123456789012")
    );
    for bad in [String::new(), " ".into(), "m".repeat(1025)] {
        assert_eq!(
            key_of(Box::new(move |r| r.cloudwatch.readiness_message = bad)).as_deref(),
            Some("cloudwatch.readiness_message")
        );
    }
    for good in ["m".to_owned(), "m".repeat(1024)] {
        let config = with(|r| r.cloudwatch.readiness_message = good.clone()).unwrap();
        assert_eq!(config.cloudwatch.readiness_message, good);
    }
}

// Issue 19: a size past 64 bits was saturated to 2^64 - 1 (`16EiB` recorded as
// 18446744073709551615, `100EiB` shown as 16.0 EiB); it is refused, naming the key.
#[test]
fn a_size_past_64_bits_is_refused_naming_its_key() {
    type Edit = Box<dyn FnOnce(&mut RawConfig)>;
    let cases: [(&str, Edit); 4] = [
        (
            "imaging.piece_size",
            Box::new(|r| r.imaging.piece_size = RawSize::Text("16EiB".into())),
        ),
        (
            "imaging.chunk_size",
            Box::new(|r| r.imaging.chunk_size = RawSize::Text("20000000000000000000".into())),
        ),
        (
            "s3.max_object_size",
            Box::new(|r| r.s3.max_object_size = RawSize::Text("100EiB".into())),
        ),
        (
            "s3.part_memory",
            Box::new(|r| r.s3.part_memory = RawSize::Text("16.0 EiB".into())),
        ),
    ];
    for (key, edit) in cases {
        let err = with(edit).unwrap_err();
        assert_eq!(err.key, key, "{err:?}");
        assert!(err.message.contains("too large"), "{err:?}");
    }
}

// Issue 19: a prefix is held to the URL's rules — no empty segment anywhere, no control
// character — with one leading '/' allowed as the way a folder is written.
#[test]
fn a_prefix_has_no_empty_segment_or_control_character() {
    let prefix_of = |prefix: &str| {
        let prefix = prefix.to_owned();
        with(move |r| {
            r.job.bucket = Some("evidence".into());
            r.job.prefix = prefix;
        })
        .map(|c| c.job.destination.unwrap().prefix().to_owned())
    };
    assert_eq!(prefix_of("/cases/").unwrap(), "cases");
    assert_eq!(prefix_of("cases/2026").unwrap(), "cases/2026");
    assert_eq!(prefix_of("").unwrap(), "");
    for bad in ["//cases", "cases//2026", "cases\nforged", "a/\u{7}/b"] {
        assert_eq!(prefix_of(bad).unwrap_err().key, "job.prefix", "{bad:?}");
    }
}

// A validated tree always reaches the daemon's children as it is: one that TOML cannot hold (a
// size past its 64-bit signed integers, possible only from a struct built in code) is refused,
// never sent as the defaults.
#[test]
fn a_tree_the_children_could_not_receive_is_refused() {
    let refused = with(|r| r.imaging.piece_size = RawSize::Bytes(u64::MAX)).unwrap_err();
    assert_eq!(refused.key, "configuration", "{refused:?}");
    with(|r| r.imaging.piece_size = RawSize::Bytes(1 << 40)).unwrap();
}
