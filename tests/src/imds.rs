//! A real IMDSv2 stand-in on 127.0.0.1 (`tests/helpers/imds.py`): token flow, user data from a
//! file, instance ID, and a request log that shows whether the token flow was used; optionally not
//! up for its first seconds, as at an EC2 boot. One per test, killed on drop.

use std::io::Write;
use std::ops::Deref;
use std::time::Duration;

use crate::helper::HelperServer;

/// How the stand-in is down before it comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Nothing listens on the port: connections are refused.
    Refusing,
    /// Every request is answered 503 Service Unavailable.
    Answering503,
}

/// A running IMDS stand-in (its endpoint and request log through [`HelperServer`]).
pub struct ImdsServer {
    server: HelperServer,
    _user_data: Option<tempfile::NamedTempFile>,
}

impl ImdsServer {
    /// Starts the server serving `user_data` (404 for `/latest/user-data` when `None`) and
    /// `instance_id`. Its log lists method, path, token_ttl, token (valid|invalid|none), status.
    pub fn start(user_data: Option<&[u8]>, instance_id: &str) -> Self {
        Self::start_after(user_data, instance_id, Duration::ZERO, Down::Refusing)
    }

    /// A stand-in turned off for good: every request is answered 403 Forbidden, as IMDS answers
    /// when the instance's metadata endpoint is turned off.
    pub fn turned_off() -> Self {
        Self {
            server: HelperServer::start("imds.py", ["--turned-off"]),
            _user_data: None,
        }
    }

    /// As [`ImdsServer::start`], but down (as `how` says) for its first `down_for`, counted from
    /// now: the port is known at once, so a client can be started before the service is up.
    pub fn start_after(
        user_data: Option<&[u8]>,
        instance_id: &str,
        down_for: Duration,
        how: Down,
    ) -> Self {
        let user_data = user_data.map(|bytes| {
            let mut file = tempfile::NamedTempFile::new().expect("user data file");
            file.write_all(bytes).expect("write user data");
            file
        });
        let mut args = vec![
            "--instance-id".into(),
            std::ffi::OsString::from(instance_id),
        ];
        if let Some(file) = &user_data {
            args.extend(["--user-data".into(), file.path().as_os_str().to_owned()]);
        }
        if !down_for.is_zero() {
            let how = match how {
                Down::Refusing => "refuse",
                Down::Answering503 => "503",
            };
            args.extend([
                "--down-for".into(),
                down_for.as_secs_f64().to_string().into(),
                "--down-as".into(),
                how.into(),
            ]);
        }
        Self {
            server: HelperServer::start("imds.py", args),
            _user_data: user_data,
        }
    }
}

impl Deref for ImdsServer {
    type Target = HelperServer;
    fn deref(&self) -> &HelperServer {
        &self.server
    }
}
