//! Loopback endpoints that never answer, for the unhappy paths: a port where nothing listens
//! (connections are refused) and a listener that accepts into its backlog but never reads or
//! replies (connections complete, requests hang until the client's deadline).

use std::net::{Ipv4Addr, TcpListener};

/// A loopback port where nothing listens: free when chosen, then released. (Another process could
/// take it meanwhile; on a test machine's loopback that has not been seen.)
pub fn refused_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free loopback port")
        .port()
}

/// `http://127.0.0.1:PORT` at [`refused_port`].
pub fn refused_endpoint() -> String {
    format!("http://127.0.0.1:{}", refused_port())
}

/// A listener that never accepts: the kernel completes handshakes into its backlog, nobody ever
/// reads a request or answers. Closed on drop.
pub struct SilentListener(TcpListener);

impl SilentListener {
    /// Binds a free loopback port.
    pub fn start() -> Self {
        Self(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("silent listener binds"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!(
            "http://{}",
            self.0.local_addr().expect("silent listener address")
        )
    }
}
