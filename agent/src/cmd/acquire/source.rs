//! What `acquire` reads: a device or file opened read-only, an EBS snapshot read through the
//! EBS direct APIs, or this host's physical memory (`memory://`). Everything the command does with
//! its source that differs between them is here; the rest of the run (destination, pipeline,
//! manifest, publishing) is the same for all.

use std::fs;

use anyhow::anyhow;
use imaging::Input;
use imaging::SafeName;
use imaging::SourceRecord;
use imaging::VolumeId;
use imaging::{Memory, MemoryReader};
use imaging::{ReadOnlyFlag, Source, SourceKind, SourceOptions};
use imaging::{Snapshot, SnapshotId};

use crate::cli::AcquireArgs;
use crate::exit::{Exit, Failure};

/// An opened source.
pub enum Opened {
    /// A block device or regular file.
    Device(Source),
    /// An EBS snapshot, checked against the service; its requests run on the process's runtime.
    Snapshot {
        /// The snapshot.
        snapshot: Snapshot,
    },
    /// This host's physical memory, through the first reader that works (or the one named).
    Memory(Memory),
}

/// The scheme of a memory source: `memory://` (the first reader that works, in AVML's order) or
/// `memory://kcore`, `memory://crash`, `memory://mem`.
pub const MEMORY_SCHEME: &str = "memory://";

/// The reader `source` asks for when it is a memory source: `Some(None)` for any, `Some(Some(r))`
/// for one; `None` when it is not a memory source; an error for an unknown reader.
pub fn memory_source(source: &str) -> Result<Option<Option<MemoryReader>>, String> {
    let Some(name) = source.strip_prefix(MEMORY_SCHEME) else {
        return Ok(None);
    };
    if name.is_empty() {
        return Ok(Some(None));
    }
    MemoryReader::from_name(name).map(|r| Some(Some(r))).ok_or_else(|| {
        format!("{source:?}: the memory reader must be kcore, crash or mem (or none: memory:// tries each)")
    })
}

impl Opened {
    /// Opens what `args.source` names. A snapshot is asked for (DescribeSnapshots,
    /// ListSnapshotBlocks, its first block) here, so a missing one or a missing permission
    /// refuses the run before anything is written; a device is only opened, and gets its kernel
    /// read-only flag later ([`Opened::write_block`]).
    pub fn open(args: &AcquireArgs) -> Result<Self, Failure> {
        let text = args.source.to_string_lossy();
        if let Some(reader) =
            memory_source(&text).map_err(|e| Failure::new(Exit::Usage, anyhow!(e)))?
        {
            return Ok(Self::Memory(Memory::open(reader)?));
        }
        let snapshot =
            SnapshotId::from_source(&text).map_err(|e| Failure::new(Exit::Usage, anyhow!(e)))?;
        let Some(id) = snapshot else {
            let source = Source::open(
                &args.source,
                &SourceOptions {
                    set_read_only: !args.no_kernel_read_only,
                    ..SourceOptions::default()
                },
            )?;
            return Ok(Self::Device(source));
        };
        let runtime = crate::aws::runtime()?;
        let (ebs, ec2) = crate::aws::snapshot_clients(runtime);
        let snapshot = Snapshot::open(id, ebs, &ec2, runtime.handle().clone())?;
        Ok(Self::Snapshot { snapshot })
    }

    /// What the pipeline reads.
    pub fn input(&self) -> Input<'_> {
        match self {
            Self::Device(source) => Input::Device(source),
            Self::Snapshot { snapshot, .. } => Input::Snapshot(snapshot),
            Self::Memory(memory) => Input::Memory(memory),
        }
    }

    /// The opened device or file, when the source is one.
    pub fn device(&self) -> Option<&Source> {
        match self {
            Self::Device(source) => Some(source),
            Self::Snapshot { .. } | Self::Memory(_) => None,
        }
    }

    /// Bytes to image.
    pub fn size(&self) -> u64 {
        self.input().size()
    }

    /// The source as the log names it: the path given, or `ebs-snapshot://snap-…`.
    pub fn describe(&self) -> String {
        match self {
            Self::Device(source) => source.path().display().to_string(),
            Self::Snapshot { snapshot, .. } => snapshot.id().uri(),
            Self::Memory(memory) => format!("{} ({})", memory.uri(), memory.path().display()),
        }
    }

    /// Sets the device's kernel read-only flag when it is due; a snapshot cannot be written
    /// through the APIs this program calls.
    pub fn write_block(&mut self) {
        if let Self::Device(source) = self {
            source.write_block();
        }
    }

    /// The evidence name when none is given: the EBS volume ID of a device that has one, else the
    /// device's or file's own name; a snapshot's ID; for memory `<instance ID>-memory` (else
    /// `<host name>-memory`).
    pub fn default_name(&self, instance_id: Option<&str>) -> Result<SafeName, Failure> {
        let usage = |message: String| Failure::new(Exit::Usage, anyhow!(message));
        let source = match self {
            Self::Device(source) => source,
            Self::Snapshot { snapshot, .. } => {
                return SafeName::parse(snapshot.id().as_str(), "evidence name").map_err(usage);
            }
            Self::Memory(_) => {
                let host = instance_id.map_or_else(crate::sysinfo::hostname, str::to_owned);
                return SafeName::sanitise(&format!("{host}-memory")).ok_or_else(|| {
                    usage("cannot derive a name for the memory image; pass --name".to_owned())
                });
            }
        };
        if let Some(id) = &source.identity().ebs_volume_id {
            return SafeName::parse(id.as_str(), "evidence name").map_err(usage);
        }
        let base = match source.kind() {
            SourceKind::BlockDevice => source.identity().kernel_name.clone(),
            SourceKind::RegularFile | SourceKind::EbsSnapshot | SourceKind::Memory => None,
        };
        let base = base.or_else(|| {
            let path =
                fs::canonicalize(source.path()).unwrap_or_else(|_| source.path().to_path_buf());
            path.file_stem().map(|s| s.to_string_lossy().into_owned())
        });
        base.as_deref().and_then(SafeName::sanitise).ok_or_else(|| {
            usage(format!(
                "cannot derive a name from {}; pass --name",
                source.path().display()
            ))
        })
    }

    /// The EBS volume actually attached and read (a device's, from its NVMe serial).
    pub fn attached_volume(&self) -> Option<&VolumeId> {
        self.device()?.identity().ebs_volume_id.as_ref()
    }

    /// The suspect's volume when the source itself says: a snapshot's volume, as
    /// DescribeSnapshots gave it.
    pub fn origin_volume(&self) -> Option<VolumeId> {
        match self {
            Self::Device(_) | Self::Memory(_) => None,
            Self::Snapshot { snapshot, .. } => {
                snapshot.volume_id().and_then(VolumeId::from_serial_or_id)
            }
        }
    }

    /// What the manifest records of the source (for a snapshot, after its run).
    pub fn record(&self) -> SourceRecord {
        match self {
            Self::Device(source) => SourceRecord::of_device(source),
            Self::Snapshot { snapshot, .. } => SourceRecord::of_snapshot(snapshot),
            Self::Memory(memory) => SourceRecord::of_memory(memory),
        }
    }

    /// Logs what was opened, and warns about what makes a capture weaker. `volume_given`: the
    /// operator named the suspect's volume (`--source-volume-id`).
    pub fn report(&self, name: &SafeName, volume_given: bool) {
        let source = match self {
            Self::Device(source) => source,
            Self::Memory(memory) => {
                report_memory(memory, name);
                return;
            }
            Self::Snapshot { snapshot, .. } => {
                let record = snapshot.record();
                if !volume_given
                    && record.volume_id.as_deref()
                        == Some(imaging::Snapshot::COPIED_SNAPSHOT_VOLUME)
                {
                    tracing::warn!(
                        "The snapshot is a copy: DescribeSnapshots names no source volume (vol-ffffffff). Pass --source-volume-id to record the suspect's volume."
                    );
                }
                tracing::info!(
                    source = %snapshot.id().uri(),
                    name = %name,
                    size = snapshot.size(),
                    block_size = record.block_size,
                    volume = record.volume_id.as_deref().unwrap_or("-"),
                    started = %record.start_time.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                    "Snapshot opened through the EBS direct APIs."
                );
                return;
            }
        };
        let identity = source.identity();
        tracing::info!(
            source = %source.path().display(),
            name = %name,
            size = source.size(),
            logical_sector = source.logical_sector_size(),
            model = identity.model.as_deref().unwrap_or("-"),
            serial = identity.serial.as_deref().unwrap_or("-"),
            "Source opened read-only."
        );
        if !source.direct_io() {
            tracing::warn!(
                "The source's filesystem refuses O_DIRECT; reading through the page cache."
            );
        }
        let live = source.live_use();
        if !live.is_idle() {
            tracing::warn!(
                mounts = ?live.mount_points,
                swaps = ?live.swaps,
                holders = ?live.holders,
                "Live acquisition: the host is using this device, so the kernel read-only flag is left alone and the image is only crash-consistent."
            );
        }
        if let ReadOnlyFlag::Failed(reason) = source.read_only_flag() {
            tracing::warn!(reason = %reason, "Could not set the kernel read-only flag; the device is still opened read-only.");
        }
    }
}

/// Logs the memory source: the reader, why earlier ones were passed over, and what the image is.
fn report_memory(memory: &Memory, name: &SafeName) {
    for (reader, why) in memory.passed_over() {
        tracing::info!(reader = reader.name(), reason = %why, "Memory reader passed over.");
    }
    let record = memory.record();
    tracing::info!(
        source = %memory.uri(),
        path = %memory.path().display(),
        name = %name,
        size = memory.size(),
        ranges = record.ranges.len(),
        kernel = %record.kernel_release,
        "Physical memory opened; the image is LiME, one header per System RAM range."
    );
    tracing::warn!(
        "Memory is live: the image is a smear of the capture's interval, each page as it was when read."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_source_names_any_reader_or_one() {
        assert_eq!(memory_source("memory://"), Ok(Some(None)));
        for reader in MemoryReader::ALL {
            assert_eq!(
                memory_source(&format!("memory://{}", reader.name())),
                Ok(Some(Some(reader)))
            );
        }
    }

    #[test]
    fn other_sources_are_not_memory() {
        for source in [
            "/dev/nvme1n1",
            "ebs-snapshot://snap-0123456789abcdef0",
            "memory",
        ] {
            assert_eq!(memory_source(source), Ok(None), "{source}");
        }
    }

    #[test]
    fn an_unknown_memory_reader_is_refused_with_the_choices() {
        for source in ["memory://kmem", "memory:///dev/mem"] {
            let err = memory_source(source).unwrap_err();
            assert!(err.contains("must be kcore, crash or mem"), "{err}");
        }
    }
}
