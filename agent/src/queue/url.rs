//! The job queue's URL (`job.queue_url`), checked when the configuration is: an SQS queue URL is
//! `scheme://host/ACCOUNT/NAME`, and anything else is a typo or not a queue. The SDK sends the URL
//! as a field of each request to the endpoint it resolved itself, so the host names no server we
//! connect to; it is kept as written.

use std::fmt;
use std::str::FromStr;

/// SQS queue names: 1 to 80 characters.
const MAX_NAME: usize = 80;

/// A standard SQS queue's URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrl(String);

impl QueueUrl {
    /// The URL as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for QueueUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let shape = "an SQS queue URL is https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE";
        let url =
            url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e}); {shape}"))?;
        if !matches!(url.scheme(), "https" | "http") || !url.has_host() {
            return Err(format!("{text:?}: {shape}"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("{text:?} carries credentials; {shape}"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(format!("{text:?} has a query or fragment; {shape}"));
        }
        let segments: Vec<&str> = url.path_segments().map_or_else(Vec::new, Iterator::collect);
        let [account, name] = segments.as_slice() else {
            return Err(format!("{text:?}: {shape}"));
        };
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "{text:?}: {account:?} is not a 12-digit account ID; {shape}"
            ));
        }
        if name.ends_with(".fifo") {
            return Err(format!(
                "{text:?} is a FIFO queue; the flow's job queue is a standard queue (docs/flow.md)"
            ));
        }
        let valid_name = (1..=MAX_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(format!(
                "{text:?}: {name:?} is not a queue name (1 to {MAX_NAME} letters, digits, '-' or '_')"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_of_aws_and_of_a_local_endpoint_are_accepted_as_written() {
        for good in [
            "https://sqs.eu-west-1.amazonaws.com/123456789012/forensic-jobs",
            "http://127.0.0.1:5000/123456789012/jobs_1",
            &format!(
                "https://sqs.us-east-1.amazonaws.com/123456789012/{}",
                "q".repeat(80)
            ),
        ] {
            let url: QueueUrl = good.parse().expect(good);
            assert_eq!(url.as_str(), good);
            assert_eq!(url.to_string(), good);
        }
    }

    #[test]
    fn anything_but_a_standard_queue_url_is_refused_saying_why() {
        for (bad, why) in [
            ("sqs.eu-west-1.amazonaws.com/123456789012/q", "not a URL"),
            (
                "ftp://sqs.eu-west-1.amazonaws.com/123456789012/q",
                "SQS queue URL",
            ),
            (
                "https://user:pw@sqs.eu-west-1.amazonaws.com/123456789012/q",
                "credentials",
            ),
            (
                "https://user@sqs.eu-west-1.amazonaws.com/123456789012/q",
                "credentials",
            ),
            (
                "https://:pw@sqs.eu-west-1.amazonaws.com/123456789012/q",
                "credentials",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/q?x=1",
                "query",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/q#x",
                "query or fragment",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012",
                "SQS queue URL",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/q/x",
                "SQS queue URL",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/12345678901/q",
                "12-digit",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/12345678901a/q",
                "12-digit",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/q.fifo",
                "FIFO",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/",
                "queue name",
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/a.b",
                "queue name",
            ),
        ] {
            let err = bad.parse::<QueueUrl>().expect_err(bad);
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!(
            "https://sqs.us-east-1.amazonaws.com/123456789012/{}",
            "q".repeat(81)
        );
        assert!(long.parse::<QueueUrl>().unwrap_err().contains("queue name"));
    }
}
