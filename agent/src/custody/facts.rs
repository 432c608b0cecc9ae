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
