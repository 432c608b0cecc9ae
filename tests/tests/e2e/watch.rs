//! Device detection against real inotify and real loop devices. There is no udev here, so each
//! test plays udev: it creates `by-label`/`by-id` symlinks in a temporary disk root.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use collector_e2e::{LoopDevice, require_root};
use forensic_collector::detect::{AttachedDisk, Refusal, WatchEvent, WatchSettings, Watcher};

const MIB: u64 = 1 << 20;

/// What the brief promises the daemon: link created → reported within this.
const REPORT_WITHIN: Duration = Duration::from_secs(2);

/// Long enough after a report for a duplicate to have settled too (quiet period plus margin).
const SILENCE: Duration = Duration::from_millis(1200);

const VOLUME_LINK: &str = "nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";

fn arm(root: &Path) -> Watcher {
    Watcher::arm(WatchSettings {
        disk_root: root.to_path_buf(),
        ..WatchSettings::default()
    })
    .expect("the watcher arms")
}

/// Held while this suite takes a loop device number, so that the re-attachment test can give a
/// number back and take it again without another test grabbing it in between.
static LOOP_NUMBERS: Mutex<()> = Mutex::new(());

fn loop_numbers() -> MutexGuard<'static, ()> {
    LOOP_NUMBERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A loop device over a sparse file of `size` bytes.
fn loop_disk(work: &Path, name: &str, size: u64) -> LoopDevice {
    let file = work.join(name);
    fs::File::create(&file).unwrap().set_len(size).unwrap();
    let _numbers = loop_numbers();
    LoopDevice::attach(&file, &[])
}

fn link(root: &Path, dir: &str, name: &str, target: &Path) -> PathBuf {
    fs::create_dir_all(root.join(dir)).unwrap();
    let path = root.join(dir).join(name);
    symlink(target, &path).unwrap();
    path
}

fn next(watcher: &mut Watcher, within: Duration) -> Option<WatchEvent> {
    watcher
        .next_event(Instant::now() + within)
        .expect("watching works")
}

fn expect_attached(watcher: &mut Watcher, since: Instant) -> AttachedDisk {
    match next(watcher, REPORT_WITHIN) {
        Some(WatchEvent::Attached(disk)) => {
            let latency = since.elapsed();
            eprintln!(
                "link created → Attached: {latency:?} ({})",
                disk.device.display()
            );
            assert!(latency < REPORT_WITHIN, "reported after {latency:?}");
            disk
        }
        other => panic!("expected Attached within {REPORT_WITHIN:?}, got {other:?}"),
    }
}

fn expect_refused(watcher: &mut Watcher) -> (PathBuf, PathBuf, Refusal) {
    match next(watcher, REPORT_WITHIN) {
        Some(WatchEvent::Refused { disk, link, reason }) => {
            eprintln!("refused {}: {reason}", disk.display());
            (disk, link, reason)
        }
        other => panic!("expected Refused within {REPORT_WITHIN:?}, got {other:?}"),
    }
}

fn expect_silence(watcher: &mut Watcher) {
    if let Some(event) = next(watcher, SILENCE) {
        panic!("expected no further event, got {event:?}");
    }
}

/// A filesystem mounted for the life of this value.
struct Mounted(PathBuf);

impl Mounted {
    fn new(device: &Path, at: &Path) -> Self {
        fs::create_dir_all(at).unwrap();
        let status = Command::new("mount").arg(device).arg(at).status();
        assert!(status.is_ok_and(|s| s.success()), "mount {device:?}");
        Self(at.to_path_buf())
    }
}

/// A loop device attached at a chosen number (`losetup DEVICE FILE`), detached on drop.
struct LoopAt(PathBuf);

impl LoopAt {
    fn attach(device: &Path, file: &Path) -> Self {
        let out = Command::new("losetup")
            .arg(device)
            .arg(file)
            .output()
            .expect("losetup runs (util-linux)");
        assert!(
            out.status.success(),
            "losetup {}: {}",
            device.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Self(device.to_path_buf())
    }
}

impl Drop for LoopAt {
    fn drop(&mut self) {
        for _ in 0..50 {
            let detached = Command::new("losetup").arg("-d").arg(&self.0).status();
            if detached.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn link_directories_created_after_arming_are_watched_without_a_race() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let dev = loop_disk(work.path(), "late.img", 8 * MIB);
    // Neither the disk root nor its link directories exist yet, as at boot.
    let root = work.path().join("disk");
    let mut watcher = arm(&root);
    assert_eq!(next(&mut watcher, Duration::from_millis(200)), None);

    let created = Instant::now();
    // Directory and link in immediate succession: the link may exist before the watch on by-id.
    let by_id = link(&root, "by-id", "virtio-late", dev.path());
    let disk = expect_attached(&mut watcher, created);

    assert_eq!(disk.device, dev.path());
    assert_eq!(disk.links, vec![by_id]);
    assert_eq!(disk.size, 8 * MIB);
    assert_eq!(disk.label, None);
    assert_eq!(disk.volume_id, None);
    let rdev = fs::metadata(dev.path()).unwrap().rdev();
    assert_eq!(
        disk.dev,
        (libc::major(rdev), libc::minor(rdev)).into(),
        "the disk is identified by its device number"
    );
    expect_silence(&mut watcher);
}

#[test]
fn a_disk_linked_before_arming_is_found_by_the_initial_scan() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let dev = loop_disk(work.path(), "early.img", 4 * MIB);
    let root = work.path().join("disk");
    let by_label = link(&root, "by-label", r"case\x20042", dev.path());
    // Links udev is still writing (temporary names) are not disks.
    link(&root, "by-label", ".#case042tmp", dev.path());

    let armed = Instant::now();
    let mut watcher = arm(&root);
    let disk = expect_attached(&mut watcher, armed);

    assert_eq!(disk.device, dev.path());
    assert_eq!(disk.links, vec![by_label]);
    assert_eq!(disk.label.as_deref(), Some("case 042"));
    expect_silence(&mut watcher);
}

#[test]
fn a_disk_seen_through_several_links_and_a_partition_is_reported_once() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("gpt.img");
    fs::File::create(&image).unwrap().set_len(16 * MIB).unwrap();
    let sgdisk = Command::new("sgdisk")
        .args(["-n", "1:2048:+4M", "-c", "1:evidence"])
        .arg(&image)
        .output()
        .expect("sgdisk runs (gdisk package)");
    assert!(sgdisk.status.success(), "sgdisk: {sgdisk:?}");
    let dev = {
        let _numbers = loop_numbers();
        LoopDevice::attach_partitioned(&image)
    };
    let part = dev.partition(1);
    let root = work.path().join("disk");
    fs::create_dir_all(root.join("by-id")).unwrap();
    fs::create_dir_all(root.join("by-label")).unwrap();
    let mut watcher = arm(&root);

    // Stage the links, then move them in together, as udev does with renames.
    let staging = work.path().join("staging");
    fs::create_dir(&staging).unwrap();
    let planned = [
        ("by-label", "EVIDENCE", part.as_path()),
        (
            "by-id",
            &format!("{VOLUME_LINK}-part1") as &str,
            part.as_path(),
        ),
        ("by-id", VOLUME_LINK, dev.path()),
    ]
    .map(|(dir, name, target)| {
        let staged = staging.join(name);
        symlink(target, &staged).unwrap();
        (staged, root.join(dir).join(name))
    });
    let created = Instant::now();
    for (staged, path) in &planned {
        fs::rename(staged, path).unwrap();
    }
    let disk = expect_attached(&mut watcher, created);

    assert_eq!(disk.device, dev.path(), "the whole disk, not the partition");
    let want: Vec<PathBuf> = planned.iter().map(|(_, path)| path.clone()).collect();
    assert_eq!(disk.links, want);
    assert_eq!(disk.label.as_deref(), Some("EVIDENCE"));
    assert_eq!(disk.size, 16 * MIB);
    expect_silence(&mut watcher);

    // A link added later for the reported disk is still the same disk.
    link(&root, "by-id", "virtio-vol0123456789abcdef0", &part);
    expect_silence(&mut watcher);
}

#[test]
fn a_disk_with_a_mounted_filesystem_is_refused_never_attached() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let image = work.path().join("ext4.img");
    fs::File::create(&image).unwrap().set_len(32 * MIB).unwrap();
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-L", "LIVE"])
        .arg(&image)
        .status()
        .expect("mkfs.ext4 runs (e2fsprogs)");
    assert!(mkfs.success());
    let dev = {
        let _numbers = loop_numbers();
        LoopDevice::attach(&image, &[])
    };
    let mnt = work.path().join("mnt");
    let _mounted = Mounted::new(dev.path(), &mnt);
    let root = work.path().join("disk");
    let mut watcher = arm(&root);

    let by_label = link(&root, "by-label", "LIVE", dev.path());
    let (disk, link_seen, reason) = expect_refused(&mut watcher);

    assert_eq!(disk, dev.path());
    assert_eq!(link_seen, by_label);
    match reason {
        Refusal::InUse(live) => assert_eq!(live.mount_points, vec![mnt.clone()]),
        other => panic!("expected InUse, got {other:?}"),
    }
    link(&root, "by-id", VOLUME_LINK, dev.path());
    expect_silence(&mut watcher);
}

#[test]
fn the_hosts_own_root_disk_is_refused() {
    require_root();
    let root_dev = fs::metadata("/").unwrap().dev();
    let sys = format!(
        "/sys/dev/block/{}:{}",
        libc::major(root_dev),
        libc::minor(root_dev)
    );
    let name = fs::canonicalize(&sys)
        .unwrap_or_else(|e| panic!("{sys}: the root filesystem must be on a block device: {e}"));
    let disk_name = if name.join("partition").exists() {
        name.parent().unwrap().file_name().unwrap().to_owned()
    } else {
        name.file_name().unwrap().to_owned()
    };
    let host_disk = Path::new("/dev").join(disk_name);
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("disk");
    let mut watcher = arm(&root);

    // Only links and sysfs are read: the watcher never opens a device.
    link(&root, "by-id", "virtio-host-root", &host_disk);
    let (disk, _, reason) = expect_refused(&mut watcher);

    assert_eq!(disk, host_disk);
    match reason {
        Refusal::InUse(live) => {
            assert!(live.mount_points.contains(&PathBuf::from("/")), "{live:?}")
        }
        other => panic!("expected InUse, got {other:?}"),
    }
}

#[test]
fn an_ebs_by_id_link_name_gives_the_volume_id() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let dev = loop_disk(work.path(), "ebs.img", 4 * MIB);
    let root = work.path().join("disk");
    fs::create_dir_all(&root).unwrap();
    let mut watcher = arm(&root);

    let created = Instant::now();
    link(&root, "by-id", VOLUME_LINK, dev.path());
    let disk = expect_attached(&mut watcher, created);

    assert_eq!(
        disk.volume_id.map(|id| id.to_string()).as_deref(),
        Some("vol-0123456789abcdef0")
    );
}

#[test]
fn a_link_renamed_into_by_id_is_detected() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let dev = loop_disk(work.path(), "renamed.img", 4 * MIB);
    let root = work.path().join("disk");
    fs::create_dir_all(root.join("by-id")).unwrap();
    let mut watcher = arm(&root);

    // Created elsewhere on the same filesystem, then renamed into place: only IN_MOVED_TO fires.
    let staged = root.join("tmp-link");
    symlink(dev.path(), &staged).unwrap();
    let created = Instant::now();
    let final_path = root.join("by-id").join(VOLUME_LINK);
    fs::rename(&staged, &final_path).unwrap();
    let disk = expect_attached(&mut watcher, created);

    assert_eq!(disk.device, dev.path());
    assert_eq!(disk.links, vec![final_path]);
}

#[test]
fn a_link_to_a_regular_file_is_refused_once() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("not-a-disk.img");
    fs::write(&file, vec![0u8; 4096]).unwrap();
    let root = work.path().join("disk");
    let mut watcher = arm(&root);

    let by_id = link(&root, "by-id", "virtio-file", &file);
    let (disk, link_seen, reason) = expect_refused(&mut watcher);

    assert_eq!(disk, file);
    assert_eq!(link_seen, by_id);
    assert!(
        matches!(&reason, Refusal::NotABlockDevice(why) if why.contains("regular file")),
        "{reason:?}"
    );
    link(&root, "by-label", "FILE", &file);
    expect_silence(&mut watcher);
}

#[test]
fn a_dangling_link_is_reported_once_its_device_node_appears() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let dev = loop_disk(work.path(), "late-node.img", 4 * MIB);
    let root = work.path().join("disk");
    let mut watcher = arm(&root);

    // udev may write the link before the node it points to exists.
    let node = work.path().join("nodes/late-node");
    let by_id = link(&root, "by-id", "virtio-late-node", &node);
    expect_silence(&mut watcher);

    fs::create_dir_all(node.parent().unwrap()).unwrap();
    let rdev = fs::metadata(dev.path()).unwrap().rdev();
    let mknod = Command::new("mknod")
        .arg(&node)
        .arg("b")
        .arg(libc::major(rdev).to_string())
        .arg(libc::minor(rdev).to_string())
        .status()
        .expect("mknod runs (coreutils)");
    assert!(mknod.success());
    let appeared = Instant::now();
    let disk = expect_attached(&mut watcher, appeared);

    assert_eq!(disk.device, dev.path(), "reported by its real node");
    assert_eq!(disk.links, vec![by_id]);
}

#[test]
fn a_disk_detached_and_attached_again_under_the_same_number_is_a_new_disk() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let second_file = work.path().join("second.img");
    fs::File::create(&second_file)
        .unwrap()
        .set_len(6 * MIB)
        .unwrap();
    let root = work.path().join("disk");
    let mut watcher = arm(&root);

    let numbers = loop_numbers();
    let first_file = work.path().join("first.img");
    fs::File::create(&first_file)
        .unwrap()
        .set_len(4 * MIB)
        .unwrap();
    let first = LoopDevice::attach(&first_file, &[]);
    let device = first.path().to_path_buf();
    let first_link = link(&root, "by-id", "virtio-first", &device);
    let created = Instant::now();
    let disk = expect_attached(&mut watcher, created);
    assert_eq!(
        (disk.device.as_path(), disk.size),
        (device.as_path(), 4 * MIB)
    );

    drop(first);
    let _second = LoopAt::attach(&device, &second_file);
    drop(numbers);
    fs::remove_file(first_link).unwrap();
    let created = Instant::now();
    link(&root, "by-id", "virtio-second", &device);
    let again = expect_attached(&mut watcher, created);

    assert_eq!(again.dev, disk.dev, "the same device number");
    assert_eq!(again.size, 6 * MIB, "but the new attachment");
    expect_silence(&mut watcher);
}
