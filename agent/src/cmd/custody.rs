//! `forensic-collector custody export-key`: the public half of a signing key as PEM, so an
//! examiner checks custody signatures offline (`verify --public-key`, or openssl alone).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::anyhow;

use crate::cli::ExportKeyArgs;
use crate::exit::{Exit, Failure};

/// Asks KMS for the key's public half and writes it, with the algorithms KMS says it signs with.
pub fn export_key(args: &ExportKeyArgs) -> Result<Exit, Failure> {
    let key_id = crate::ids::kms_key_id(&args.kms_key_id)
        .map_err(|e| Failure::new(Exit::Usage, anyhow!("--kms-key-id: {e}")))?;
    let runtime = crate::aws::runtime()?;
    let (_, kms) = crate::aws::custody_clients(runtime);
    let (key, arn, algorithms) = crate::custody::kms::public_key(runtime, &kms, &key_id)?;
    let pem = key.to_pem();
    match &args.out {
        None => print!("{pem}"),
        Some(path) => {
            // A new file, never through a link: the same rule as evidence.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .and_then(|mut file| file.write_all(pem.as_bytes()).map(|()| file))
                .map_err(|e| Failure::new(Exit::Output, anyhow!("{}: {e}", path.display())))?;
            file.flush()
                .map_err(|e| Failure::new(Exit::Output, anyhow!("{}: {e}", path.display())))?;
        }
    }
    tracing::info!(key = %arn, algorithms = %algorithms.join(","),
        "Public key exported: `forensic-collector verify --public-key` or openssl checks custody signatures with it.");
    Ok(Exit::Ok)
}
