//! The benchmarks' capped link (`src/bin/linkproxy.rs`): it relays every byte both ways, is never
//! faster than its cap and round trip, reports its counters on SIGTERM, and refuses to forward off
//! the machine.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const BYTES: usize = 4_000_000;
const RATE_MBPS: f64 = 8.0;
const RTT: Duration = Duration::from_millis(20);

fn linkproxy() -> Command {
    Command::new(env!("CARGO_BIN_EXE_linkproxy"))
}

/// Starts the proxy in front of `upstream` at this suite's cap and round trip.
fn start(upstream: u16) -> (Child, u16) {
    start_capped(upstream, RATE_MBPS, RTT)
}

/// Starts the proxy in front of `upstream`, capping each connection's upload at `rate_mbps` MB/s
/// with round trips of `rtt`; returns it and the port it printed. For the S3 suites too.
pub(crate) fn start_capped(upstream: u16, rate_mbps: f64, rtt: Duration) -> (Child, u16) {
    let mut child = linkproxy()
        .args(["--upstream", &format!("127.0.0.1:{upstream}")])
        .args(["--rate-mbps", &rate_mbps.to_string()])
        .args(["--rtt-ms", &rtt.as_millis().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("linkproxy runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse().ok());
    (
        child,
        port.unwrap_or_else(|| panic!("linkproxy printed {line:?}, not `ready PORT`")),
    )
}

#[test]
fn relays_every_byte_no_faster_than_its_cap_and_round_trip() {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = server.local_addr().unwrap().port();
    // The server reads the whole upload, then answers with what it got.
    let sink = std::thread::spawn(move || {
        let (mut conn, _) = server.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        conn.write_all(&blake3::hash(&got).as_bytes()[..]).unwrap();
        got.len()
    });
    let (proxy, port) = start(upstream);

    let upload: Vec<u8> = (0..BYTES).map(|i| u8::try_from(i % 251).unwrap()).collect();
    let began = Instant::now();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    client.write_all(&upload).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).unwrap();
    let elapsed = began.elapsed();

    assert_eq!(sink.join().unwrap(), BYTES, "the server got every byte");
    assert_eq!(
        answer,
        blake3::hash(&upload).as_bytes(),
        "the bytes are unchanged, the answer relayed"
    );
    // Handshake round trip + the transfer at the cap + half a round trip each way.
    let floor = RTT * 2 + Duration::from_secs_f64(BYTES as f64 / (RATE_MBPS * 1e6));
    assert!(
        elapsed >= floor,
        "{elapsed:?} is faster than the link allows ({floor:?})"
    );
    assert!(
        elapsed < floor * 4,
        "{elapsed:?}: the link is far slower than its cap ({floor:?})"
    );

    let stderr = stop(proxy);
    assert!(
        stderr.contains(&format!(
            "connections=1 max_concurrent=1 up_bytes={BYTES} down_bytes=32"
        )),
        "linkproxy's counters: {stderr}"
    );
}

/// Stops the proxy with SIGTERM; returns what it printed on stderr (its counters), after checking
/// it exited cleanly.
pub(crate) fn stop(proxy: Child) -> String {
    kill(
        Pid::from_raw(proxy.id().try_into().unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let out = proxy.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "linkproxy exited {:?} on SIGTERM: {stderr}",
        out.status
    );
    stderr
}

/// The `max_concurrent=N` counter of a stopped proxy's report.
pub(crate) fn max_concurrent(report: &str) -> usize {
    report
        .split_whitespace()
        .find_map(|word| word.strip_prefix("max_concurrent="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no max_concurrent in linkproxy's report: {report}"))
}

#[test]
fn refuses_an_upstream_off_the_machine() {
    let out = linkproxy()
        .args(["--upstream", "192.0.2.1:80", "--rate-mbps", "8"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}
