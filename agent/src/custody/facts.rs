//! The facts of the custody section the agent knows before a run: the AWS principal (STS), the
//! local user, the host (IMDSv2 when it answers, the kernel), the executable's SHA-256 and where
//! each setting came from.

use std::collections::BTreeMap;
use std::io::Read;

use imaging::custody::{CustodyHost, CustodyTool, Principal, UnixUser};
use sha2::Digest;
use tokio::runtime::Runtime;

use crate::imds::InstanceData;

/// Who the run's AWS calls are made as, when STS answers. Informative, like the host's facts: a
/// run whose S3 or KMS calls work records who made them; a failed lookup is logged, not fatal.
pub fn principal(runtime: &Runtime, sts: &aws_sdk_sts::Client) -> Option<Principal> {
    match runtime.block_on(sts.get_caller_identity().send()) {
        Ok(answer) => Some(Principal {
            arn: answer.arn?,
            account: answer.account?,
            user_id: answer.user_id.unwrap_or_default(),
        }),
        Err(err) => {
            tracing::warn!(error = %aws_sdk_sts::error::DisplayErrorContext(&err),
                "STS did not say who this run is: the manifest records no AWS principal.");
            None
        }
    }
}

/// The effective user and its name.
pub fn unix_user() -> UnixUser {
    let uid = nix::unistd::geteuid();
    let name = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map(|user| user.name);
    UnixUser {
        uid: uid.as_raw(),
        name,
    }
}

/// The host: its name and kernel, and what IMDS said of the instance.
pub fn host(instance: Option<&InstanceData>, instance_id: Option<&str>) -> CustodyHost {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    CustodyHost {
        hostname: crate::sysinfo::hostname(),
        kernel,
        region: instance.and_then(|i| i.region.clone()),
        instance_id: instance_id
            .map(str::to_owned)
            .or_else(|| instance.and_then(|i| i.instance_id.clone())),
        ami_id: instance.and_then(|i| i.ami_id.clone()),
        instance_type: instance.and_then(|i| i.instance_type.clone()),
    }
}

/// This build, with the SHA-256 of the executable running (`/proc/self/exe`: the file the kernel
/// mapped, even if its path was replaced since).
pub fn tool() -> std::io::Result<CustodyTool> {
    let info = crate::sysinfo::tool_info();
    let mut file = std::fs::File::open("/proc/self/exe")?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(CustodyTool {
        version: info.version,
        git_revision: info.git_revision,
        executable_sha256: hex::encode(hasher.finalize()),
    })
}

/// Where each setting an `acquire` takes came from: `given` when a caller (the `watch` daemon)
/// passed its configuration's provenance, else the flags given on this command line (`flag --…`)
/// over the defaults.
pub fn origins(
    given: &BTreeMap<String, String>,
    flags: &crate::config::flags::SettingFlags,
) -> BTreeMap<String, String> {
    if !given.is_empty() {
        return given.clone();
    }
    crate::config::settings::ALL
        .iter()
        .filter(|spec| spec.flag.is_some())
        .map(|spec| {
            let key = format!("{}.{}", spec.section, spec.key);
            let origin = match (flags.contains(&key), spec.flag) {
                (true, Some(flag)) => format!("flag --{flag}"),
                _ => "default".to_owned(),
            };
            (key, origin)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(argv: &[&str]) -> crate::config::flags::SettingFlags {
        let mut all = vec!["forensic-collector", "acquire", "/dev/null"];
        all.extend_from_slice(argv);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Acquire(args) => args.settings,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_command_lines_settings_are_its_flags_over_the_defaults() {
        let origins = origins(
            &BTreeMap::new(),
            &flags(&["--queue-depth", "4", "--sign-kms-key-id", "alias/k"]),
        );
        assert_eq!(origins["imaging.queue_depth"], "flag --queue-depth");
        assert_eq!(origins["custody.kms_key_id"], "flag --sign-kms-key-id");
        assert_eq!(origins["imaging.chunk_size"], "default");
        let flagged = crate::config::settings::ALL
            .iter()
            .filter(|s| s.flag.is_some())
            .count();
        assert_eq!(
            origins.len(),
            flagged,
            "every setting acquire takes, no other"
        );
        assert!(!origins.contains_key("watch.disk_root"));
    }

    #[test]
    fn a_daemons_origins_are_kept_as_given() {
        let given = BTreeMap::from([("job.bucket".to_owned(), "user data (json)".to_owned())]);
        assert_eq!(origins(&given, &flags(&["--queue-depth", "4"])), given);
    }

    #[test]
    fn the_executable_is_hashed_whole() {
        let tool = tool().unwrap();
        let bytes = std::fs::read("/proc/self/exe").unwrap();
        assert_eq!(
            tool.executable_sha256,
            hex::encode(sha2::Sha256::digest(&bytes))
        );
        assert_eq!(tool.version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn the_host_takes_what_imds_said_and_a_given_instance_first() {
        let data = InstanceData {
            instance_id: Some("i-0123456789abcdef0".into()),
            ami_id: Some("ami-0123456789abcdef0".into()),
            region: Some("eu-west-1".into()),
            instance_type: Some("m7i.large".into()),
            ..InstanceData::default()
        };
        let host = host(Some(&data), None);
        assert_eq!(host.instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(host.region.as_deref(), Some("eu-west-1"));
        assert_eq!(host.instance_type.as_deref(), Some("m7i.large"));
        assert_eq!(host.ami_id.as_deref(), Some("ami-0123456789abcdef0"));
        assert!(!host.kernel.is_empty() && host.kernel != "unknown");
        let given = super::host(Some(&data), Some("i-00000000"));
        assert_eq!(given.instance_id.as_deref(), Some("i-00000000"));
        let off = super::host(None, None);
        assert_eq!((off.region, off.instance_id), (None, None));
    }
}
