//! A real S3-compatible server on 127.0.0.1 for the suites: moto in server mode (installed by
//! `tests/helpers/setup-deps.sh`) through `tests/helpers/motoserver.py`, which makes its conditional
//! writes atomic as S3's are; one per test, killed on drop. Started like every helper server
//! ([`HelperServer`]): moto binds its own port, so no other process can take it first.

use std::process::Command;

use crate::helper::HelperServer;

/// A running moto server (its endpoint, port and request log through [`HelperServer`]).
pub struct MotoServer(HelperServer);

impl MotoServer {
    /// Starts moto on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts moto on `port` (e.g. where a killed one was, to bring a service back; 0 = a free one).
    pub fn start_on(port: u16) -> Self {
        Self::start_with(port, &[])
    }

    /// Starts moto on `port` with extra `motoserver.py` arguments such as `["--ebs-page-cap", "3"]`.
    pub fn start_with(port: u16, args: &[&str]) -> Self {
        let mut all = vec!["--port".to_owned(), port.to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        Self(HelperServer::start("motoserver.py", all))
    }

    /// Environment for the binary (and the SDK in tests): this endpoint, static test credentials, no IMDS.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// `forensic-collector` with this server's endpoint and test credentials in its environment.
    pub fn collector(&self) -> Command {
        let mut cmd = crate::collector();
        for (key, value) in self.env() {
            cmd.env(key, value);
        }
        cmd
    }

    /// `forensic-collector watch --config CONFIG` as on an EC2 instance whose IMDSv2 is `imds`
    /// (user data, instance ID), with this server as every AWS service.
    pub fn watch(&self, imds: &crate::ImdsServer, config: &std::path::Path) -> Command {
        let mut cmd = self.collector();
        cmd.env_remove("AWS_EC2_METADATA_DISABLED")
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.endpoint())
            .env_remove("FORENSIC_COLLECTOR_CONFIG")
            .args(["watch", "--config"])
            .arg(config);
        cmd
    }

    /// An SDK client for assertions.
    pub fn client(&self, runtime: &tokio::runtime::Runtime) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests");
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(self.endpoint())
                .region(aws_sdk_s3::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .load(),
        );
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&config)
                .force_path_style(true)
                .build(),
        )
    }
}

impl std::ops::Deref for MotoServer {
    type Target = HelperServer;
    fn deref(&self) -> &HelperServer {
        &self.0
    }
}

/// `tests/helpers/faultproxy.py` in front of a server: injects S3 500s, resets and 403s, EBS
/// throttling, 503s, broken and corrupted blocks and denials, and records every request's headers (its endpoint and log through [`HelperServer`]).
pub struct FaultProxy(HelperServer);

impl FaultProxy {
    /// Starts the proxy in front of `upstream` with extra arguments such as `["--fail-parts", "3"]`.
    pub fn start(upstream: &MotoServer, args: &[&str]) -> Self {
        let mut all = vec![upstream.port().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        Self(HelperServer::start("faultproxy.py", all))
    }
}

impl std::ops::Deref for FaultProxy {
    type Target = HelperServer;
    fn deref(&self) -> &HelperServer {
        &self.0
    }
}

/// A moto server with one bucket, a runtime and an SDK client for assertions: the common start of
/// every S3 suite.
pub struct LocalS3 {
    /// The server.
    pub server: MotoServer,
    /// Runtime for the client.
    pub runtime: tokio::runtime::Runtime,
    /// Client for assertions (talks to moto directly).
    pub client: aws_sdk_s3::Client,
}

impl LocalS3 {
    /// Starts moto and creates `bucket`, with Object Lock enabled when `object_lock`.
    pub fn with_bucket(bucket: &str, object_lock: bool) -> Self {
        let server = MotoServer::start();
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let client = server.client(&runtime);
        runtime
            .block_on(
                client
                    .create_bucket()
                    .bucket(bucket)
                    .object_lock_enabled_for_bucket(object_lock)
                    .send(),
            )
            .expect("create bucket");
        Self {
            server,
            runtime,
            client,
        }
    }

    /// `forensic-collector` with this server's endpoint and test credentials in its environment.
    pub fn collector(&self) -> Command {
        self.server.collector()
    }

    /// Multipart uploads still open in `bucket`.
    pub fn open_uploads(&self, bucket: &str) -> usize {
        self.runtime
            .block_on(self.client.list_multipart_uploads().bucket(bucket).send())
            .expect("list multipart uploads")
            .uploads()
            .len()
    }

    /// Downloads a single-part object of `bucket` with the SDK (which checks its SHA-256).
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.runtime.block_on(async {
            let object = self
                .client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {bucket}/{key}: {e:?}"));
            let body = object.body.collect().await.expect("object body");
            body.into_bytes().to_vec()
        })
    }

    /// Downloads any object over plain HTTP (moto does not check signatures). Not the SDK: moto
    /// reports multipart checksums without their `-N` suffix, which the SDK then validates as a
    /// whole-object digest and rejects.
    pub fn get_http(&self, bucket: &str, key: &str) -> Vec<u8> {
        let out = Command::new("curl")
            .args([
                "-sSf",
                &format!("{}/{bucket}/{key}", self.server.endpoint()),
            ])
            .output()
            .expect("curl runs (tests/helpers/setup-deps.sh installs it)");
        assert!(
            out.status.success(),
            "GET {bucket}/{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Number of objects in `bucket`.
    pub fn object_count(&self, bucket: &str) -> usize {
        self.runtime
            .block_on(self.client.list_objects_v2().bucket(bucket).send())
            .expect("list objects")
            .contents()
            .len()
    }
}
