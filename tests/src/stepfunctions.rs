//! Step Functions, SQS and EC2 in moto for the flow's suites: moto's server executes state
//! machines once asked (`POST /moto-api/config`), including `sqs:sendMessage.waitForTaskToken`,
//! so a real `forensic-collector watch` can take the job an execution queues and answer its task
//! token. Clients carry the test credentials of [`crate::MotoServer::env`].

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;

use crate::MotoServer;

/// The account moto runs as.
pub const ACCOUNT: &str = "123456789012";
/// A role ARN for state machines (moto does not check it exists).
pub const ROLE: &str = "arn:aws:iam::123456789012:role/forensic-flow";

/// SQS, Step Functions and EC2 clients for one moto server.
pub struct Flow {
    /// The runtime the clients run on.
    pub runtime: tokio::runtime::Runtime,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
    /// EC2.
    pub ec2: aws_sdk_ec2::Client,
}

impl Flow {
    /// Clients for `moto`, after turning on its execution of state machines.
    pub fn on(moto: &MotoServer) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
        let endpoint = moto.endpoint();
        let answer = runtime.block_on(async {
            let stream = tokio::net::TcpStream::connect(("127.0.0.1", moto.port())).await?;
            let body = r#"{"stepfunctions": {"execute_state_machine": true}}"#;
            let request = format!(
                "POST /moto-api/config HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let mut stream = stream;
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await?;
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut text).await?;
            Ok::<_, std::io::Error>(text)
        });
        let answer = answer.expect("POST /moto-api/config");
        assert!(
            answer.starts_with("HTTP/1.1 2") || answer.starts_with("HTTP/1.0 2"),
            "{answer}"
        );
        let creds =
            aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "tests");
        let config = runtime.block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(&endpoint)
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .credentials_provider(creds)
                .load(),
        );
        Self {
            sqs: aws_sdk_sqs::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            ec2: aws_sdk_ec2::Client::new(&config),
            runtime,
        }
    }

    /// Creates a standard queue and returns its URL.
    pub fn queue(&self, name: &str) -> String {
        let out = self
            .runtime
            .block_on(self.sqs.create_queue().queue_name(name).send())
            .expect("CreateQueue");
        out.queue_url().expect("queue URL").to_owned()
    }

    /// Sends `body` to `queue` as anyone with access could.
    pub fn send(&self, queue: &str, body: &str) {
        self.runtime
            .block_on(
                self.sqs
                    .send_message()
                    .queue_url(queue)
                    .message_body(body)
                    .send(),
            )
            .expect("SendMessage");
    }

    /// Messages in the queue, visible or in flight (SQS's approximate counts, exact in moto).
    pub fn messages(&self, queue: &str) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .runtime
            .block_on(
                self.sqs
                    .get_queue_attributes()
                    .queue_url(queue)
                    .attribute_names(A::ApproximateNumberOfMessages)
                    .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
                    .send(),
            )
            .expect("GetQueueAttributes");
        let count = |name: A| {
            out.attributes()
                .and_then(|a| a.get(&name))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        (
            count(A::ApproximateNumberOfMessages),
            count(A::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Tags `snapshot` `key=value` through EC2.
    pub fn tag(&self, snapshot: &str, key: &str, value: &str) {
        let tag = aws_sdk_ec2::types::Tag::builder()
            .key(key)
            .value(value)
            .build();
        self.runtime
            .block_on(self.ec2.create_tags().resources(snapshot).tags(tag).send())
            .expect("CreateTags");
    }

    /// Creates a Standard state machine from `definition` and returns its ARN.
    pub fn state_machine(&self, name: &str, definition: &str) -> String {
        let out = self
            .runtime
            .block_on(
                self.sfn
                    .create_state_machine()
                    .name(name)
                    .definition(definition)
                    .role_arn(ROLE)
                    .send(),
            )
            .expect("CreateStateMachine");
        out.state_machine_arn().to_owned()
    }

    /// Starts an execution of `machine` with `input` and returns its ARN. Each gets a name of its
    /// own: moto names an unnamed execution "None", so a second one would already exist.
    pub fn start(&self, machine: &str, input: &serde_json::Value) -> String {
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out = self
            .runtime
            .block_on(
                self.sfn
                    .start_execution()
                    .state_machine_arn(machine)
                    .name(format!("run-{}-{n}", std::process::id()))
                    .input(input.to_string())
                    .send(),
            )
            .expect("StartExecution");
        out.execution_arn().to_owned()
    }

    /// The execution's status, output and (when it failed) error and cause.
    pub fn status(&self, execution: &str) -> Outcome {
        let out = self
            .runtime
            .block_on(
                self.sfn
                    .describe_execution()
                    .execution_arn(execution)
                    .send(),
            )
            .expect("DescribeExecution");
        Outcome {
            status: out.status().clone(),
            output: out
                .output()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(serde_json::Value::Null),
            error: out.error().map(str::to_owned),
            cause: out.cause().map(str::to_owned),
        }
    }

    /// Waits (at most `limit`, else the test fails) until the execution has ended.
    pub fn wait(&self, execution: &str, limit: Duration) -> Outcome {
        let deadline = Instant::now() + limit;
        loop {
            let outcome = self.status(execution);
            if outcome.status != ExecutionStatus::Running {
                return outcome;
            }
            assert!(
                Instant::now() < deadline,
                "execution still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The names of the states the execution has left so far, in order, with their outputs.
    pub fn history(&self, execution: &str) -> Vec<(String, String)> {
        let out = self
            .runtime
            .block_on(
                self.sfn
                    .get_execution_history()
                    .execution_arn(execution)
                    .send(),
            )
            .expect("GetExecutionHistory");
        out.events()
            .iter()
            .filter_map(|e| {
                e.state_exited_event_details().map(|d| {
                    (
                        d.name().to_owned(),
                        d.output().unwrap_or_default().to_owned(),
                    )
                })
            })
            .collect()
    }
}

/// How an execution ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: ExecutionStatus,
    /// The output, parsed.
    pub output: serde_json::Value,
    /// The error of a failed execution.
    pub error: Option<String>,
    /// Its cause.
    pub cause: Option<String>,
}
