//! `linkproxy`: a loopback TCP proxy that makes each connection behave like one TCP connection to
//! real S3 — a few tens of MB/s and a round trip of tens of milliseconds — in front of a local S3
//! server, whose loopback connections are otherwise all fast and instant. Throughput from real S3
//! comes from parallel requests; on loopback a low concurrency goes unseen. Benchmarks only
//! (`tests/bench/table.sh`); not a test.
//!
//! ```text
//! linkproxy --upstream 127.0.0.1:PORT --rate-mbps 8 --rtt-ms 20 [--port 0] [--idle-secs 300]
//! ```
//! prints `ready PORT` on stdout once it listens on 127.0.0.1 (as `tests/helpers/*.py` do), serves
//! until SIGTERM or SIGINT, then prints `linkproxy: connections=… max_concurrent=… up_bytes=…
//! down_bytes=…` on stderr and exits 0.
//!
//! The link model, per accepted connection:
//! - **Handshake**: nothing is forwarded before one round trip has passed since the accept (the
//!   SYN/SYN-ACK a new connection to S3 costs; the local kernel already completed it instantly).
//! - **Upload rate** (client → server): a bottleneck of `rate` bytes per second, one per
//!   connection, as a virtual clock: each chunk read leaves the bottleneck at
//!   `max(now, previous departure) + len / rate`. The reader stops reading while the bottleneck is
//!   more than [`QUEUE_AHEAD`] behind, so the client's socket fills up and TCP pushes back on the
//!   client, as a slow link does; no more than `rate × (QUEUE_AHEAD + rtt / 2)` bytes wait in here.
//! - **Latency**: every chunk, in each direction, is delivered half a round trip after it left the
//!   bottleneck (or after it was read, downstream, which has no rate cap: responses are small). A
//!   request/response exchange therefore costs one round trip on top of its transfer time.
//!
//! Not modelled: slow start, loss, a shared bottleneck between connections. Every loop is bounded:
//! the pumps by end of stream, errors and an idle timeout; the accept loop by the signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};

/// Largest read from a socket: big enough that 100+ MB/s over all connections is a few thousand
/// reads a second (the proxy shares the CPU with what it measures), small enough to pace smoothly.
const CHUNK: usize = 64 * 1024;

/// How far the upload bottleneck may run behind before the reader stops reading: a little slack so
/// that timer granularity (about 1 ms) does not lose rate.
const QUEUE_AHEAD: Duration = Duration::from_millis(5);

/// Chunks waiting for their delivery time, per direction. At 64 KiB each this bounds the proxy's
/// memory per connection; the pacing above keeps far fewer in the upload direction.
const PIPE_CHUNKS: usize = 64;

#[derive(Parser, Debug)]
#[command(
    about = "Loopback TCP proxy capping each connection's upload rate and adding a round trip"
)]
struct Args {
    /// The server to forward to; must be a loopback address (127.0.0.1:PORT).
    #[arg(long)]
    upstream: SocketAddr,
    /// Upload (client → server) cap per connection, in MB/s (10^6 bytes per second).
    #[arg(long, value_parser = parse_rate)]
    rate_mbps: f64,
    /// Round trip time added to each connection, in milliseconds (half each way).
    #[arg(long, default_value_t = 20)]
    rtt_ms: u64,
    /// Port to listen on, on 127.0.0.1 (0: a free one; the chosen port is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A connection with no byte in either direction for this long is closed.
    #[arg(long, default_value_t = 300)]
    idle_secs: u64,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (0.001..=100_000.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a rate between 0.001 and 100000 MB/s")),
    }
}

/// The link every connection gets.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// Upload rate, bytes per second.
    bytes_per_sec: f64,
    /// Half the round trip: the one-way delay.
    one_way: Duration,
    idle: Duration,
}

/// Counters printed at exit.
#[derive(Default)]
struct Stats {
    connections: AtomicU64,
    open: AtomicU64,
    max_open: AtomicU64,
    up_bytes: AtomicU64,
    down_bytes: AtomicU64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if !args.upstream.ip().is_loopback() {
        eprintln!(
            "linkproxy: --upstream {} is not a loopback address",
            args.upstream
        );
        return std::process::ExitCode::from(2);
    }
    // One worker thread: the proxy must take little CPU from the two cores it shares with the
    // measured processes, and a single thread is plenty for a few dozen paced connections.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("linkproxy: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linkproxy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> std::io::Result<()> {
    let link = Link {
        bytes_per_sec: args.rate_mbps * 1e6,
        one_way: Duration::from_millis(args.rtt_ms) / 2,
        idle: Duration::from_secs(args.idle_secs),
    };
    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    println!("ready {}", listener.local_addr()?.port());
    let stats = Arc::new(Stats::default());
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let stats = Arc::clone(&stats);
                let upstream = args.upstream;
                tokio::spawn(async move {
                    stats.connections.fetch_add(1, Ordering::Relaxed);
                    let open = stats.open.fetch_add(1, Ordering::Relaxed) + 1;
                    stats.max_open.fetch_max(open, Ordering::Relaxed);
                    if let Err(e) = connection(client, upstream, link, &stats).await {
                        eprintln!("linkproxy: connection: {e}");
                    }
                    stats.open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    }
    eprintln!(
        "linkproxy: connections={} max_concurrent={} up_bytes={} down_bytes={}",
        stats.connections.load(Ordering::Relaxed),
        stats.max_open.load(Ordering::Relaxed),
        stats.up_bytes.load(Ordering::Relaxed),
        stats.down_bytes.load(Ordering::Relaxed),
    );
    Ok(())
}

/// Relays one connection both ways until both directions have ended.
async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    link: Link,
    stats: &Stats,
) -> std::io::Result<()> {
    let start = Instant::now() + link.one_way * 2;
    let server = TcpStream::connect(upstream).await?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let up = pump(
        client_r,
        server_w,
        link,
        Some(link.bytes_per_sec),
        start,
        &stats.up_bytes,
    );
    let down = pump(server_r, client_w, link, None, start, &stats.down_bytes);
    let (up, down) = tokio::join!(up, down);
    up.and(down)
}

/// Copies `from` to `to` through the link: paced at `rate` bytes/s if given, each chunk delivered
/// one-way delay after it left the bottleneck, none before `start`. On end of stream it shuts
/// `to`'s write side down (the half-close an HTTP client or server may rely on).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Link,
    rate: Option<f64>,
    start: Instant,
    counter: &AtomicU64,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(PIPE_CHUNKS);
    let reader = async move {
        // When the bottleneck has sent everything read so far.
        let mut free_at = start;
        loop {
            if free_at > Instant::now() + QUEUE_AHEAD {
                sleep_until(free_at - QUEUE_AHEAD).await;
            }
            // read_buf fills spare capacity: no zeroing of a buffer about to be overwritten.
            let mut buf = Vec::with_capacity(CHUNK);
            let n = match timeout(link.idle, from.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Err(_) => return Ok(()),
                Ok(Ok(n)) => n,
                Ok(Err(e)) => return Err(e),
            };
            counter.fetch_add(n as u64, Ordering::Relaxed);
            let left = match rate {
                Some(r) => {
                    free_at = free_at.max(Instant::now()) + Duration::from_secs_f64(n as f64 / r);
                    free_at
                }
                None => Instant::now().max(start),
            };
            if tx.send((left + link.one_way, buf)).await.is_err() {
                return Ok(()); // the writer stopped: its error is the one reported
            }
        }
    };
    let writer = async move {
        // Ends when the reader has ended (the channel closes) or on a write error.
        while let Some((deliver_at, buf)) = rx.recv().await {
            sleep_until(deliver_at).await;
            to.write_all(&buf).await?;
        }
        to.shutdown().await
    };
    let (read, write): (std::io::Result<()>, std::io::Result<()>) = tokio::join!(reader, writer);
    read.and(write)
}
