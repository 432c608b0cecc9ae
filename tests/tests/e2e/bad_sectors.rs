//! Unreadable sectors with real kernel EIO (a loop device over a FUSE file that fails chosen byte
//! ranges): zero-filled exactly there, identical elsewhere, listed in the manifest, distinct exit code.

use std::fs;

use collector_e2e::{
    FaultFs, LoopDevice, Run, acquire, collector, random_file, require_root, sha256_hex,
};
use serde_json::Value;

const MIB: u64 = 1 << 20;

#[test]
fn bad_sectors_are_zero_filled_and_listed_exactly() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("failing.raw");
    random_file(&backing, 16 * MIB, 21);
    // (byte range that fails, first sector, sector count) — sectors are 512 bytes.
    let bad: [(u64, u64, u64, u64); 3] = [
        (MIB, MIB + 512, 2048, 1),
        (5_000_000, 5_000_100, 9765, 1),
        (8 * MIB + 1000, 8 * MIB + 3000, 16385, 5),
    ];
    let args: Vec<String> = bad
        .iter()
        .flat_map(|(start, end, _, _)| ["--bad".to_owned(), format!("{start}-{end}")])
        .collect();
    let fs_ = FaultFs::mount(&backing, &args);
    let dev = LoopDevice::attach(&fs_.file(), &["-r", "--direct-io=on"]);
    let out = work.path().join("out");

    let run =
        Run::of(acquire(dev.path(), &out).args(["--name", "failing", "--sector-retries", "1"]));
    run.expect_code(3);
    assert!(run.stderr.contains("unreadable sectors"), "{}", run.stderr);

    let mut expected = fs::read(&backing).unwrap();
    for (_, _, sector, count) in bad {
        let start = usize::try_from(sector * 512).unwrap();
        let end = start + usize::try_from(count * 512).unwrap();
        expected[start..end].fill(0);
    }
    let image = fs::read(out.join("failing.image.dd")).unwrap();
    assert_eq!(image.len(), expected.len());
    let differing: Vec<usize> = (0..image.len())
        .step_by(512)
        .filter(|&i| image[i..i + 512] != expected[i..i + 512])
        .collect();
    assert!(
        differing.is_empty(),
        "sectors differ from the zero-filled source: {:?}",
        &differing[..differing.len().min(10)]
    );

    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(out.join("failing.manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["acquisition"]["status"], "completed_with_errors");
    assert_eq!(manifest["acquisition"]["bad_bytes"], 7 * 512);
    assert_eq!(manifest["image"]["hashes"]["sha256"], sha256_hex(&expected));
    let ranges = manifest["bad_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), bad.len(), "{ranges:?}");
    for (range, (_, _, sector, count)) in ranges.iter().zip(bad) {
        assert_eq!(range["first_sector"], sector);
        assert_eq!(range["sector_count"], count);
        assert_eq!(range["offset"], sector * 512);
        assert_eq!(range["length"], count * 512);
        assert_eq!(range["errno"], 5, "EIO from the loop device");
    }
    Run::of(
        collector()
            .arg("verify")
            .arg(out.join("failing.manifest.json")),
    )
    .expect_code(0);
}

#[test]
fn nvme_style_enodata_errors_are_media_errors_too() {
    require_root();
    let work = tempfile::tempdir().unwrap();
    let backing = work.path().join("nvme.raw");
    random_file(&backing, 4 * MIB, 22);
    // A regular-file source straight on the FUSE file: the error reaches us unchanged (ENODATA, as
    // NVMe reports unrecovered reads), not converted to EIO by a loop device.
    let fs_ = FaultFs::mount(
        &backing,
        &[
            "--bad".into(),
            "2097152-2097664".into(),
            "--errno".into(),
            "ENODATA".into(),
        ],
    );
    let out = work.path().join("out");
    let run = Run::of(acquire(fs_.file(), &out).args(["--name", "nvme", "--sector-retries", "0"]));
    run.expect_code(3);

    let manifest: Value =
        serde_json::from_str(&fs::read_to_string(out.join("nvme.manifest.json")).unwrap()).unwrap();
    let ranges = manifest["bad_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1, "{ranges:?}");
    assert_eq!(ranges[0]["first_sector"], 4096);
    assert_eq!(ranges[0]["sector_count"], 1);
    assert_eq!(ranges[0]["errno"], 61, "ENODATA must be recorded as such");
    let mut expected = fs::read(&backing).unwrap();
    expected[2_097_152..2_097_664].fill(0);
    assert!(fs::read(out.join("nvme.image.dd")).unwrap() == expected);
}
