//! A real IMDSv2 stand-in on 127.0.0.1 (`tests/helpers/imds.py`): token flow, user data from a
//! file, instance ID, and a request log that shows whether the token flow was used. One per test,
//! killed on drop.

use std::io::Write;
use std::ops::Deref;

use crate::helper::HelperServer;

/// A running IMDS stand-in (its endpoint and request log through [`HelperServer`]).
pub struct ImdsServer {
    server: HelperServer,
    _user_data: Option<tempfile::NamedTempFile>,
}

impl ImdsServer {
    /// Starts the server serving `user_data` (404 for `/latest/user-data` when `None`) and
    /// `instance_id`. Its log lists method, path, token_ttl, token (valid|invalid|none), status.
    pub fn start(user_data: Option<&[u8]>, instance_id: &str) -> Self {
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
