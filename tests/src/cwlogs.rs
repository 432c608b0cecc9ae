//! CloudWatch Logs for the reporting suite: a client for the reporter, a reader that pages a stream
//! back with GetLogEvents, and a loopback proxy in front of moto that records every PutLogEvents
//! call (moto does not enforce the batch limits, so the suite checks them on the wire) and can
//! answer the first calls with HTTP 500.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::config::{Credentials, Region};
use aws_sdk_cloudwatchlogs::error::SdkError;
use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsError;

use crate::MotoServer;

/// Socket reads and writes in the proxy give up after this, so no thread outlives a test for long.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Pages read from one stream at most (10,000 events each).
const MAX_PAGES: usize = 100;

/// A CloudWatch Logs client for `endpoint` with test credentials and the reporter's limits
/// (`forensic_collector::aws::with_cloudwatch_limits`).
pub fn logs_client(endpoint: &str) -> Client {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"));
    let shared = runtime.block_on(forensic_collector::aws::with_cloudwatch_limits(loader).load());
    Client::new(&shared)
}

/// Reads log streams back, for assertions.
pub struct LogsReader {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl LogsReader {
    /// A reader of the server at `endpoint`.
    pub fn new(endpoint: &str) -> Self {
        Self {
            runtime: tokio::runtime::Runtime::new().expect("tokio runtime"),
            client: logs_client(endpoint),
        }
    }

    /// Every event of `group`/`stream` from the start as (timestamp ms, message); empty while the
    /// group or stream does not exist.
    pub fn events(&self, group: &str, stream: &str) -> Vec<(i64, String)> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self.runtime.block_on(
                self.client
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send(),
            );
            let page = match page {
                Ok(page) => page,
                Err(SdkError::ServiceError(e))
                    if matches!(e.err(), GetLogEventsError::ResourceNotFoundException(_)) =>
                {
                    return events;
                }
                Err(err) => panic!("GetLogEvents {group}/{stream}: {err:?}"),
            };
            events.extend(page.events().iter().map(|e| {
                (
                    e.timestamp().unwrap_or_default(),
                    e.message().unwrap_or_default().to_owned(),
                )
            }));
            let next = page.next_forward_token().map(str::to_owned);
            if page.events().is_empty() || next.is_none() || next == token {
                return events;
            }
            token = next;
        }
        panic!("{group}/{stream} has more than {MAX_PAGES} pages");
    }

    /// The newest event's message, as the attaching Lambda reads it (GetLogEvents from the end,
    /// limit 1).
    pub fn latest(&self, group: &str, stream: &str) -> Option<String> {
        let page = self
            .runtime
            .block_on(
                self.client
                    .get_log_events()
                    .log_group_name(group)
                    .log_stream_name(stream)
                    .start_from_head(false)
                    .limit(1)
                    .send(),
            )
            .ok()?;
        page.events().first()?.message().map(str::to_owned)
    }

    /// Polls `group`/`stream` until `done` holds for its events, failing the test after `limit`.
    pub fn wait_for(
        &self,
        group: &str,
        stream: &str,
        limit: Duration,
        done: impl Fn(&[(i64, String)]) -> bool,
    ) -> Vec<(i64, String)> {
        let deadline = Instant::now() + limit;
        loop {
            let events = self.events(group, stream);
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{group}/{stream} not as expected within {limit:?}; {} events: {:?}",
                events.len(),
                events.iter().rev().take(5).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// One PutLogEvents call as the proxy saw it.
#[derive(Debug, Clone)]
pub struct PutCall {
    /// Log group.
    pub group: String,
    /// Event timestamps, in the order sent.
    pub timestamps: Vec<i64>,
    /// UTF-8 bytes of each message.
    pub message_bytes: Vec<usize>,
    /// HTTP status returned to the client.
    pub status: u16,
}

impl PutCall {
    /// The batch size as CloudWatch counts it: message bytes plus 26 per event.
    pub fn batch_bytes(&self) -> usize {
        self.message_bytes.iter().map(|b| b + 26).sum()
    }
}

struct ProxyState {
    upstream: SocketAddr,
    fail_puts: AtomicUsize,
    calls: Mutex<Vec<PutCall>>,
    stop: AtomicBool,
}

/// A recording proxy in front of a moto server on 127.0.0.1.
pub struct LogsProxy {
    port: u16,
    state: Arc<ProxyState>,
    acceptor: Option<JoinHandle<()>>,
}

impl LogsProxy {
    /// Starts the proxy in front of `upstream`; the first `fail_puts` PutLogEvents calls get an
    /// HTTP 500 ServiceUnavailableException without reaching moto.
    pub fn start(upstream: &MotoServer, fail_puts: usize) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("proxy listens");
        let port = listener.local_addr().expect("proxy address").port();
        let state = Arc::new(ProxyState {
            upstream: SocketAddr::from((Ipv4Addr::LOCALHOST, upstream.port())),
            fail_puts: AtomicUsize::new(fail_puts),
            calls: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let shared = Arc::clone(&state);
        let acceptor = std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let state = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = relay(client, &state);
                });
            }
        });
        Self {
            port,
            state,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every PutLogEvents call so far.
    pub fn puts(&self) -> Vec<PutCall> {
        self.state.calls.lock().expect("proxy log").clone()
    }
}

impl Drop for LogsProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Serves one request on `client` (the answer closes the connection), recording PutLogEvents.
fn relay(client: TcpStream, state: &ProxyState) -> std::io::Result<()> {
    client.set_read_timeout(Some(IO_TIMEOUT))?;
    client.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" {
            break;
        }
        head.push(line);
    }
    let length = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let is_put = header(&head, "x-amz-target").is_some_and(|t| t.ends_with(".PutLogEvents"));
    let fail = is_put
        && state
            .fail_puts
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
    let response = if fail {
        let body =
            br#"{"__type":"ServiceUnavailableException","message":"injected by the test proxy"}"#;
        let mut response = format!(
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/x-amz-json-1.1\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        response.extend_from_slice(body);
        response
    } else {
        forward(state.upstream, &head, &body)?
    };
    if is_put {
        let status = std::str::from_utf8(&response[..response.len().min(16)])
            .ok()
            .and_then(|s| s.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        record(state, &body, status);
    }
    let mut client = client;
    client.write_all(&response)?;
    client.flush()?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// Sends the request upstream with `Connection: close` and returns the whole answer, its
/// `Connection` header also set to close so the client does not reuse our connection.
fn forward(upstream: SocketAddr, head: &[String], body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut server = TcpStream::connect_timeout(&upstream, IO_TIMEOUT)?;
    server.set_read_timeout(Some(IO_TIMEOUT))?;
    let mut request = Vec::new();
    for line in head.iter().filter(|l| !is_header(l, "connection")) {
        request.extend_from_slice(line.as_bytes());
    }
    request.extend_from_slice(b"Connection: close\r\n\r\n");
    request.extend_from_slice(body);
    server.write_all(&request)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |p| p + 2);
    let (answer_head, rest) = answer.split_at(split);
    let mut response: Vec<u8> = String::from_utf8_lossy(answer_head)
        .split_inclusive("\r\n")
        .filter(|l| !is_header(l, "connection"))
        .flat_map(|l| l.as_bytes().to_vec())
        .collect();
    response.extend_from_slice(b"Connection: close\r\n");
    response.extend_from_slice(rest);
    Ok(response)
}

fn record(state: &ProxyState, body: &[u8], status: u16) {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let events = request["logEvents"].as_array().cloned().unwrap_or_default();
    let call = PutCall {
        group: request["logGroupName"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        timestamps: events
            .iter()
            .map(|e| e["timestamp"].as_i64().unwrap_or_default())
            .collect(),
        message_bytes: events
            .iter()
            .map(|e| e["message"].as_str().map_or(0, str::len))
            .collect(),
        status,
    };
    if let Ok(mut calls) = state.calls.lock() {
        calls.push(call);
    }
}

fn is_header(line: &str, name: &str) -> bool {
    line.split_once(':')
        .is_some_and(|(key, _)| key.trim().eq_ignore_ascii_case(name))
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter()
        .find(|l| is_header(l, name))
        .and_then(|l| l.split_once(':'))
        .map(|(_, value)| value.trim())
}
