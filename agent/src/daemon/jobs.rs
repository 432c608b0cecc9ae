//! The job table: which disks (or the snapshot) were taken, in what order, and how each ended.
//! Pure bookkeeping, so the daemon loop stays about events and the rules here are unit-tested.

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;

use imaging::SnapshotId;

use crate::detect::AttachedDisk;
use crate::result::AcquisitionResult;

/// Where a job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Waiting for a free slot.
    Queued,
    /// Its child process runs.
    Running,
    /// Ended, with the child's result.
    Done(AcquisitionResult),
}

/// What a job images.
#[derive(Debug, Clone)]
pub enum JobSource {
    /// A disk the watcher found attached.
    Disk(AttachedDisk),
    /// The job's EBS snapshot (`job.snapshot_id`), read through the EBS direct APIs.
    Snapshot(SnapshotId),
}

impl JobSource {
    /// Whether `self` and `other` are the same evidence: the same EBS volume ever, the same device
    /// number while `self`'s job (`done` says whether it ended) is not done, the same snapshot.
    fn same_as(&self, other: &Self, done: bool) -> bool {
        match (self, other) {
            (Self::Disk(a), Self::Disk(b)) => {
                (b.volume_id.is_some() && a.volume_id == b.volume_id) || (a.dev == b.dev && !done)
            }
            (Self::Snapshot(a), Self::Snapshot(b)) => a == b,
            _ => false,
        }
    }
}

impl JobSource {
    /// What the child is given to read: the device path as it is (not re-spelt through text), or
    /// `ebs-snapshot://snap-…`.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Disk(disk) => disk.device.clone(),
            Self::Snapshot(id) => PathBuf::from(id.uri()),
        }
    }
}

impl fmt::Display for JobSource {
    /// The device path, or `ebs-snapshot://snap-…`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk(disk) => write!(f, "{}", disk.device.display()),
            Self::Snapshot(id) => f.write_str(&id.uri()),
        }
    }
}

/// One disk or snapshot to image.
#[derive(Debug, Clone)]
pub struct Job {
    /// Index in detection order; also the job's ID in events (`job-1`, …).
    pub index: usize,
    /// The disk or snapshot.
    pub source: JobSource,
    /// Evidence name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// When it was detected (the disk settled, the snapshot or queued job taken): the custody
    /// record's first event.
    pub detected_at: chrono::DateTime<chrono::Utc>,
}

impl Job {
    /// `job-N`, 1-based.
    pub fn id(&self) -> String {
        format!("job-{}", self.index + 1)
    }

    /// The attached volume's ID, else the device path, or the snapshot ID: what a responder
    /// recognises.
    pub fn volume(&self) -> String {
        match &self.source {
            JobSource::Disk(disk) => disk
                .volume_id
                .as_ref()
                .map_or_else(|| disk.device.display().to_string(), ToString::to_string),
            JobSource::Snapshot(id) => id.to_string(),
        }
    }
}

/// All jobs of this run.
#[derive(Debug, Default)]
pub struct JobTable {
    jobs: Vec<Job>,
    queue: VecDeque<usize>,
}

impl JobTable {
    /// Adds a disk or snapshot unless it is already a job: the same EBS volume ever, the same
    /// device number while that job is not done (the watcher reports each attachment once; this
    /// guards against a volume detached and attached again being imaged twice), the same
    /// snapshot. Returns the new job's index.
    pub fn add(&mut self, source: JobSource, name: String) -> Option<usize> {
        let duplicate = self.jobs.iter().any(|job| {
            job.source
                .same_as(&source, matches!(job.state, JobState::Done(_)))
        });
        if duplicate {
            return None;
        }
        let index = self.jobs.len();
        self.jobs.push(Job {
            index,
            source,
            name,
            state: JobState::Queued,
            detected_at: chrono::Utc::now(),
        });
        self.queue.push_back(index);
        Some(index)
    }

    /// The next queued job, if fewer than `concurrency` run.
    pub fn next_to_start(&mut self, concurrency: usize) -> Option<&mut Job> {
        if self.running() >= concurrency {
            return None;
        }
        let index = self.queue.pop_front()?;
        let job = &mut self.jobs[index];
        job.state = JobState::Running;
        Some(job)
    }

    /// Records a job's end.
    pub fn finish(&mut self, index: usize, result: AcquisitionResult) -> Option<&Job> {
        let job = self.jobs.get_mut(index)?;
        job.state = JobState::Done(result);
        Some(job)
    }

    /// A job by index.
    pub fn get(&self, index: usize) -> Option<&Job> {
        self.jobs.get(index)
    }

    /// Jobs whose child runs.
    pub fn running(&self) -> usize {
        self.jobs
            .iter()
            .filter(|j| j.state == JobState::Running)
            .count()
    }

    /// Jobs taken so far, in any state: the next job's ordinal.
    pub fn taken(&self) -> usize {
        self.jobs.len()
    }

    /// Jobs queued or running.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.running()
    }

    /// Jobs that ended, and of those, how many produced evidence (exit 0 or 3).
    pub fn done(&self) -> (usize, usize) {
        let results: Vec<&AcquisitionResult> = self
            .jobs
            .iter()
            .filter_map(|j| match &j.state {
                JobState::Done(result) => Some(result),
                _ => None,
            })
            .collect();
        let with_evidence = results.iter().filter(|r| r.manifest.is_some()).count();
        (results.len(), with_evidence)
    }

    /// The worst exit code among ended jobs (0 when all completed cleanly), for `on_complete =
    /// "exit"`: a failed job outranks one completed with unreadable sectors.
    pub fn worst_exit(&self) -> u8 {
        self.jobs
            .iter()
            .filter_map(|j| match &j.state {
                JobState::Done(result) => Some(result.exit_code),
                _ => None,
            })
            .max_by_key(|&code| severity(code))
            .unwrap_or(0)
    }
}

/// How bad a job's exit code is: a failure outranks unreadable sectors (3), which outrank success.
pub fn severity(code: u8) -> u8 {
    match code {
        0 => 0,
        3 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Instant;

    use imaging::VolumeId;

    use super::*;
    use crate::exit::Exit;

    fn disk(minor: u32, volume: Option<&str>) -> JobSource {
        JobSource::Disk(AttachedDisk {
            device: PathBuf::from(format!("/dev/nvme{minor}n1")),
            dev: imaging::DeviceNumber::new(259, minor),
            links: Vec::new(),
            label: None,
            volume_id: volume.and_then(VolumeId::from_serial_or_id),
            size: 1 << 30,
            first_seen: Instant::now(),
        })
    }

    fn ok() -> AcquisitionResult {
        let mut result = AcquisitionResult::failed(Exit::Ok, String::new());
        result.status = "completed".into();
        result.manifest = Some("s3://b/m.json".into());
        result
    }

    #[test]
    fn a_volume_is_taken_once_and_a_busy_device_number_is_not_taken_again() {
        let mut table = JobTable::default();
        assert_eq!(
            table.add(disk(1, Some("vol0123456789abcdef0")), "a".into()),
            Some(0)
        );
        // The same volume under another device number: already a job.
        assert_eq!(
            table.add(disk(2, Some("vol0123456789abcdef0")), "b".into()),
            None
        );
        // The same device number while its job is not done: the same disk.
        assert_eq!(table.add(disk(1, None), "c".into()), None);
        table.next_to_start(1).expect("starts");
        table.finish(0, ok());
        // Done, and a different volume now has that device number: a new disk.
        assert_eq!(
            table.add(disk(1, Some("vol0fedcba9876543210")), "d".into()),
            Some(1)
        );
    }

    #[test]
    fn a_snapshot_is_taken_once_and_is_no_disk() {
        let snapshot =
            || JobSource::Snapshot("snap-0123456789abcdef0".parse().expect("a snapshot ID"));
        let mut table = JobTable::default();
        assert_eq!(
            table.add(disk(1, Some("vol0123456789abcdef0")), "a".into()),
            Some(0)
        );
        assert_eq!(
            table.add(snapshot(), "snap-0123456789abcdef0".into()),
            Some(1)
        );
        assert_eq!(table.add(snapshot(), "again".into()), None);
        let other = JobSource::Snapshot("snap-01234567".parse().expect("a snapshot ID"));
        assert_eq!(table.add(other, "b".into()), Some(2));
        let job = table.get(1).expect("added");
        assert_eq!(job.volume(), "snap-0123456789abcdef0");
        assert_eq!(
            job.source.to_string(),
            "ebs-snapshot://snap-0123456789abcdef0"
        );
        assert_eq!(
            job.source.path().to_str(),
            Some("ebs-snapshot://snap-0123456789abcdef0")
        );
        assert_eq!(
            table.get(0).expect("added").source.path(),
            std::path::Path::new("/dev/nvme1n1")
        );
    }

    #[test]
    fn no_more_than_the_concurrency_run_and_the_worst_outcome_wins() {
        let mut table = JobTable::default();
        for minor in 1..=3 {
            table.add(disk(minor, None), format!("d{minor}"));
        }
        assert!(table.next_to_start(2).is_some());
        assert!(table.next_to_start(2).is_some());
        assert!(table.next_to_start(2).is_none(), "two already run");
        assert_eq!(table.pending(), 3);
        table.finish(0, ok());
        let mut partial = ok();
        partial.exit_code = Exit::CompletedWithErrors.code();
        table.finish(1, partial);
        assert_eq!(table.worst_exit(), 3);
        assert_eq!(table.next_to_start(2).map(|j| j.index), Some(2));
        table.finish(
            2,
            AcquisitionResult::failed(Exit::SourceVanished, "gone".into()),
        );
        assert_eq!(table.done(), (3, 2));
        assert_eq!(table.worst_exit(), Exit::SourceVanished.code());
    }
}
