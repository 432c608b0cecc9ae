//! The binary speaks TLS to an `https://` endpoint. The AWS SDK is built without its default
//! features (Cargo.toml's `[workspace.dependencies]`); a feature cut too far leaves a binary that
//! has no HTTPS client and fails only against real S3. Loopback only: a listener that records the
//! first bytes a client sends, which for TLS are a handshake record (content type 22, version 3.x).

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

use collector_e2e::{Run, collector, without_inherited_settings};

/// How long the binary may take to open its first connection.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn an_https_endpoint_gets_a_tls_client_hello() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("listener binds");
    let port = listener.local_addr().expect("listener address").port();
    let (sender, first_bytes) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            stream
                .set_read_timeout(Some(CONNECT_DEADLINE))
                .expect("read timeout");
            let mut head = [0u8; 3];
            let _ = sender.send(stream.read_exact(&mut head).map(|()| head));
        }
    });
    let mut cmd = collector();
    without_inherited_settings(&mut cmd)
        .args(["verify", "s3://evidence/case/disk.manifest.json"])
        .env("AWS_ENDPOINT_URL", format!("https://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let mut child = Run::spawn(&mut cmd);
    let head = first_bytes.recv_timeout(CONNECT_DEADLINE);
    let _ = child.kill();
    let run = Run::wait(child);
    let head = head
        .unwrap_or_else(|_| panic!("no connection within {CONNECT_DEADLINE:?}: {}", run.stderr))
        .expect("the client sends at least 3 bytes");
    assert_eq!(
        (head[0], head[1]),
        (0x16, 0x03),
        "not a TLS handshake record: {head:02x?}\n{}",
        run.stderr
    );
}
