//! The CloudWatch reporter against a real CloudWatch Logs API (moto on 127.0.0.1): the readiness
//! text the attaching Lambda compares, PutLogEvents limits checked on the wire by a recording
//! proxy, and the unhappy paths — an endpoint that refuses, one that never answers, 500s, and a
//! server that dies and comes back empty — none of which may block a producer.

use std::time::{Duration, Instant};

use collector_e2e::cwlogs::{LogsProxy, LogsReader, logs_client};
use collector_e2e::{MotoServer, SilentListener, refused_endpoint};
use forensic_collector::cloudwatch::{ReportSettings, Reporter};
use serde_json::{Value, json};

const INSTANCE: &str = "i-0123456789abcdef0";
const CAPTURE: &str = "ForensicDiskCapture";
const READINESS: &str = "ForensicDiskReadiness";

fn settings(capacity: usize, flush_timeout: Duration) -> ReportSettings {
    ReportSettings {
        queue_capacity: capacity,
        flush_timeout,
        // The original flow's text, which its attaching Lambda compares byte for byte.
        readiness_message: "incron is running".into(),
        ..ReportSettings::new(INSTANCE)
    }
}

fn parse(events: &[(i64, String)]) -> Vec<Value> {
    events
        .iter()
        .map(|(_, m)| {
            serde_json::from_str(m).unwrap_or_else(|e| panic!("not JSON ({e}): {m:.200}"))
        })
        .collect()
}

fn seq_event(phase: &str, seq: usize) -> Value {
    json!({"event": "progress", "job": "job-1", "volume": "vol-0123456789abcdef0",
           "phase": phase, "seq": seq})
}

fn total_reported_lost(events: &[Value]) -> u64 {
    events
        .iter()
        .filter(|e| e["event"] == "events_dropped")
        .map(|e| e["count"].as_u64().expect("count"))
        .sum()
}

#[test]
fn readiness_message_is_the_exact_text_in_the_readiness_stream() {
    let moto = MotoServer::start();
    let reader = LogsReader::new(&moto.endpoint());
    let reporter = Reporter::start(
        logs_client(&moto.endpoint()),
        settings(100, Duration::from_secs(5)),
    );
    reporter.readiness();
    let events = reader.wait_for(READINESS, INSTANCE, Duration::from_secs(15), |e| {
        !e.is_empty()
    });
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "incron is running");
    assert_eq!(
        reader.latest(READINESS, INSTANCE).as_deref(),
        Some("incron is running")
    );
    assert!(
        reader.events(CAPTURE, INSTANCE).is_empty(),
        "readiness goes to its own group only"
    );
    let stats = reporter.shutdown(Instant::now() + Duration::from_secs(5));
    assert!(!stats.readiness_pending);
    assert_eq!((stats.sent, stats.dropped, stats.failed), (0, 0, 0));
}

#[test]
fn a_burst_is_delivered_in_order_within_putlogevents_limits_and_a_huge_event_is_marked() {
    const SMALL: usize = 25_000;
    const BIG_AT: usize = 12_345;
    let moto = MotoServer::start();
    let proxy = LogsProxy::start(&moto, 0);
    let reader = LogsReader::new(&moto.endpoint());
    let reporter = Reporter::start(
        logs_client(&proxy.endpoint()),
        settings(30_000, Duration::from_secs(30)),
    );
    let started = Instant::now();
    for seq in 0..=SMALL {
        if seq == BIG_AT {
            reporter.emit(json!({"event": "big", "job": "job-1", "blob": "b".repeat(300 * 1024)}));
        } else {
            // ~110 bytes each: 10,000 of them pass the byte limit, so both limits are exercised.
            let mut event = seq_event("burst", seq);
            event["pad"] = json!("p".repeat(16));
            reporter.emit(event);
        }
    }
    let stats = reporter.shutdown(Instant::now() + Duration::from_secs(120));
    let took = started.elapsed();
    assert_eq!((stats.sent, stats.dropped, stats.failed), (25_001, 0, 0));

    let events = parse(&reader.events(CAPTURE, INSTANCE));
    assert_eq!(events.len(), SMALL + 1);
    for (index, event) in events.iter().enumerate() {
        if index == BIG_AT {
            assert_eq!(event["event"], "big");
            assert_eq!(event["truncated"], true);
            assert!(event["original_bytes"].as_u64().expect("size") > 300 * 1024);
            let head = event["head"].as_str().expect("head");
            assert!(head.starts_with('{') && head.len() > 200_000);
        } else {
            assert_eq!(event["seq"], index, "event {index} out of order");
            assert!(event["timestamp"].is_string());
        }
    }

    let puts: Vec<_> = proxy
        .puts()
        .into_iter()
        .filter(|p| p.group == CAPTURE)
        .collect();
    assert!(puts.iter().all(|p| p.status == 200));
    assert_eq!(
        puts.iter().map(|p| p.timestamps.len()).sum::<usize>(),
        SMALL + 1
    );
    for put in &puts {
        assert!(
            put.timestamps.len() <= 10_000,
            "{} events",
            put.timestamps.len()
        );
        assert!(
            put.batch_bytes() <= 1_048_576,
            "{} bytes",
            put.batch_bytes()
        );
        assert!(
            put.message_bytes
                .iter()
                .all(|&b| (1..=262_144 - 26).contains(&b))
        );
        assert!(put.timestamps.windows(2).all(|w| w[0] <= w[1]));
        let span = put.timestamps.last().unwrap_or(&0) - put.timestamps.first().unwrap_or(&0);
        assert!(span < 24 * 3_600_000);
    }
    let fullest = puts.iter().map(|p| p.batch_bytes()).max().unwrap_or(0);
    assert!(
        fullest > 1_000_000,
        "a burst fills calls to the byte limit ({fullest})"
    );
    eprintln!(
        "25,001 events in {} PutLogEvents calls, {took:?} from first emit to shutdown",
        puts.len()
    );
}

#[test]
fn a_refused_connection_never_blocks_emit_and_shutdown_keeps_its_deadline() {
    let endpoint = refused_endpoint();
    let reporter = Reporter::start(
        logs_client(&endpoint),
        settings(1_000, Duration::from_secs(1)),
    );
    reporter.readiness();
    let started = Instant::now();
    for seq in 0..100_000 {
        reporter.emit(seq_event("down", seq));
    }
    let emitting = started.elapsed();
    assert!(
        emitting < Duration::from_secs(1),
        "100,000 emits took {emitting:?}"
    );

    let deadline = Instant::now() + Duration::from_secs(2);
    let stats = reporter.shutdown(deadline);
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(
        late < Duration::from_millis(500),
        "shutdown returned {late:?} after its deadline"
    );
    assert_eq!(stats.sent, 0);
    assert!(stats.dropped >= 99_000, "{stats:?}");
    assert_eq!(stats.dropped + stats.failed, 100_000, "{stats:?}");
    assert!(stats.readiness_pending);
    eprintln!("100,000 emits in {emitting:?} with CloudWatch unreachable; {stats:?}");
}

#[test]
fn a_server_that_never_answers_costs_no_more_than_the_deadline() {
    // Listening but never accepting: connections complete, requests are never answered.
    let silent = SilentListener::start();
    let endpoint = silent.endpoint();
    // Each call may take 10 s, far longer than the shutdown deadline allows.
    let reporter = Reporter::start(
        logs_client(&endpoint),
        settings(100, Duration::from_secs(10)),
    );
    let started = Instant::now();
    for seq in 0..10 {
        reporter.emit(seq_event("silent", seq));
    }
    assert!(started.elapsed() < Duration::from_millis(100));
    // Past the batch window: a PutLogEvents call is now waiting for an answer.
    std::thread::sleep(Duration::from_millis(1_500));
    let deadline = Instant::now() + Duration::from_secs(1);
    let stats = reporter.shutdown(deadline);
    let late = Instant::now().saturating_duration_since(deadline);
    assert!(
        late < Duration::from_millis(500),
        "shutdown returned {late:?} after its deadline"
    );
    assert_eq!((stats.sent, stats.dropped, stats.failed), (0, 0, 10));
}

#[test]
fn server_errors_are_retried_without_losing_or_reordering_events() {
    let moto = MotoServer::start();
    let proxy = LogsProxy::start(&moto, 3);
    let reader = LogsReader::new(&moto.endpoint());
    let reporter = Reporter::start(
        logs_client(&proxy.endpoint()),
        settings(1_000, Duration::from_secs(5)),
    );
    for seq in 0..100 {
        reporter.emit(seq_event("retry", seq));
    }
    let stats = reporter.shutdown(Instant::now() + Duration::from_secs(30));
    assert_eq!((stats.sent, stats.dropped, stats.failed), (100, 0, 0));
    let events = parse(&reader.events(CAPTURE, INSTANCE));
    let seqs: Vec<u64> = events.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (0..100).collect::<Vec<u64>>());
    assert_eq!(
        total_reported_lost(&events),
        0,
        "nothing was lost, nothing reported"
    );
    let statuses: Vec<u16> = proxy.puts().iter().map(|p| p.status).collect();
    assert_eq!(&statuses[..3], [500, 500, 500]);
    assert_eq!(statuses.last(), Some(&200));
}

#[test]
fn losses_while_cloudwatch_is_down_are_reported_when_a_new_server_comes_back() {
    let first = MotoServer::start();
    let port = first.port();
    let reporter = Reporter::start(
        logs_client(&first.endpoint()),
        settings(20, Duration::from_secs(2)),
    );
    for seq in 0..3 {
        reporter.emit(seq_event("before", seq));
    }
    LogsReader::new(&first.endpoint())
        .wait_for(CAPTURE, INSTANCE, Duration::from_secs(15), |e| e.len() == 3);
    drop(first);

    let started = Instant::now();
    for seq in 0..50 {
        reporter.emit(seq_event("outage", seq));
    }
    reporter.readiness();
    assert!(started.elapsed() < Duration::from_millis(100));
    std::thread::sleep(Duration::from_secs(1));
    let during = reporter.stats();
    assert_eq!(during.sent, 3);
    assert_eq!(during.dropped, 30, "20 held, 30 dropped: {during:?}");

    // A fresh server on the same port knows no log group: the reporter must create them again.
    let second = MotoServer::start_on(port);
    let reader = LogsReader::new(&second.endpoint());
    let deadline = Instant::now() + Duration::from_secs(60);
    while reporter.stats().sent < 23 {
        assert!(
            Instant::now() < deadline,
            "held events not delivered: {:?}",
            reporter.stats()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for seq in 0..5 {
        reporter.emit(seq_event("after", seq));
    }
    let events = reader.wait_for(CAPTURE, INSTANCE, Duration::from_secs(30), |e| {
        let events = parse(e);
        events.iter().filter(|v| v["phase"] == "after").count() == 5
            && total_reported_lost(&events) == 30
    });
    let events = parse(&events);
    let outage: Vec<u64> = events
        .iter()
        .filter(|v| v["phase"] == "outage")
        .filter_map(|v| v["seq"].as_u64())
        .collect();
    assert_eq!(
        outage,
        (0..20).collect::<Vec<u64>>(),
        "the held events, in order"
    );
    let report = events
        .iter()
        .find(|v| v["event"] == "events_dropped")
        .expect("an events_dropped event");
    assert_eq!(report["dropped_total"], 30);
    assert!(report["timestamp"].is_string());
    assert_eq!(
        reader.latest(READINESS, INSTANCE).as_deref(),
        Some("incron is running"),
        "readiness asked for during the outage arrives after it"
    );

    let stats = reporter.shutdown(Instant::now() + Duration::from_secs(10));
    assert_eq!((stats.sent, stats.dropped, stats.failed), (28, 30, 0));
    assert!(!stats.readiness_pending);
}
