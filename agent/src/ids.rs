//! AWS identifiers the agent takes as text — the account that must own the bucket, the collecting
//! instance, the KMS key — each checked by one function that every entry point calls: `acquire`'s
//! flags and the daemon's `run-job` JSON (`AcquireArgs::checked`), the configuration's layers
//! (`config::typed`) and IMDS. A value that reaches the manifest, an S3 header or object metadata
//! is refused here rather than by S3 an hour into an upload, or not at all (an instance ID with a
//! newline was written into the manifest as given).

/// An AWS account ID: exactly 12 digits (S3's `x-amz-expected-bucket-owner`).
pub fn account_id(text: &str) -> Result<String, String> {
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        Ok(text.to_owned())
    } else {
        Err(format!("{text:?} is not a 12-digit AWS account ID"))
    }
}

/// An EC2 instance ID: `i-` and 8 or 17 lower-case hex digits, the IDs EC2 issues (the same shape
/// as snapshot and volume IDs).
pub fn instance_id(text: &str) -> Result<String, String> {
    ec2_id(text, "i-", "an EC2 instance ID")
}

/// `ami-` and 8 or 17 lower-case hex digits: an AMI ID, as IMDS gives it (`meta-data/ami-id`).
pub fn ami_id(text: &str) -> Result<String, String> {
    ec2_id(text, "ami-", "an AMI ID")
}

/// A region or instance type as IMDS names them (`us-east-1`, `m7i.large`): 1 to 64 lower-case
/// letters, digits, '-' and '.'. `None` for anything else, which is then not recorded.
pub fn ec2_word(text: &str) -> Option<String> {
    let ok = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    ok.then(|| text.to_owned())
}

/// `PREFIX` and 8 or 17 lower-case hex digits, the two lengths EC2 issues.
fn ec2_id(text: &str, prefix: &str, what: &str) -> Result<String, String> {
    let hex = text.strip_prefix(prefix).unwrap_or_default();
    let ok = matches!(hex.len(), 8 | 17)
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not {what} ({prefix} and 8 or 17 lower-case hex digits)"
        ))
    }
}

/// A KMS key ID, alias or ARN, trimmed: not empty, no whitespace or control characters (it is
/// sent as an HTTP header, where a newline would end it).
pub fn kms_key_id(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{text:?} is not a KMS key ID, alias or ARN (one word, no spaces or control characters)"
        ));
    }
    Ok(trimmed.to_owned())
}

/// An Object Lock retention mode, in any case (`governance`, `COMPLIANCE`): the one place the
/// modes are named, from the SDK's own list, for `--object-lock-mode`, the configuration and the
/// daemon's job alike.
pub fn object_lock_mode(text: &str) -> Result<aws_sdk_s3::types::ObjectLockMode, String> {
    use aws_sdk_s3::types::ObjectLockMode;
    ObjectLockMode::values()
        .iter()
        .find(|mode| mode.eq_ignore_ascii_case(text))
        .map(|mode| ObjectLockMode::from(*mode))
        .ok_or_else(|| {
            format!(
                "{text:?} is not an Object Lock mode ({})",
                ObjectLockMode::values().join(" or ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_are_twelve_digits() {
        assert_eq!(account_id("123456789012").as_deref(), Ok("123456789012"));
        for bad in [
            "abc",
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "123456789012\n",
            " 123456789012",
        ] {
            assert!(account_id(bad).unwrap_err().contains("12-digit"), "{bad:?}");
        }
    }

    #[test]
    fn instance_ids_are_what_ec2_issues() {
        for good in ["i-0123456789abcdef0", "i-0a1b2c3d"] {
            assert_eq!(instance_id(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "i-",
            "i-0123456789abcdef0\nforged: line",
            "i-0123456789ABCDEF0",
            "i-0123456789abcdef",
            "i-0123456789abcdef01",
            "i-0a1b2c3g",
            "0123456789abcdef0",
            "vol-0123456789abcdef0",
        ] {
            assert!(
                instance_id(bad).unwrap_err().contains("EC2 instance ID"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn regions_and_instance_types_are_ec2_words() {
        assert_eq!(ec2_word("us-east-1").as_deref(), Some("us-east-1"));
        assert_eq!(ec2_word("m7i.large").as_deref(), Some("m7i.large"));
        assert_eq!(ec2_word(&"a".repeat(64)).map(|w| w.len()), Some(64));
        for bad in ["", "US-EAST-1", "a b", "a\nb", "a/b", &"a".repeat(65)] {
            assert_eq!(ec2_word(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn kms_key_ids_are_one_word() {
        assert_eq!(
            kms_key_id(" alias/evidence ").as_deref(),
            Ok("alias/evidence")
        );
        for bad in ["", "  ", "alias/a b", "alias/a\nb", "alias/a\u{7}"] {
            assert!(kms_key_id(bad).unwrap_err().contains("KMS key"), "{bad:?}");
        }
    }
}
