//! The one comparison of what re-reading an image measured against what its manifest records,
//! shared by the local and the S3 path. It reports one line per check and every problem; a
//! verification passes only when there is none — and never unless the whole-image SHA-256 was
//! recomputed and matched.

use std::collections::BTreeMap;

use imaging::{HashAlgorithm, Piece};
use imaging::{ImageRecord, MemoryRecord};

/// How many damaged piece numbers one line names; the rest are counted. A different image of a
/// large disk differs in every piece, and the first numbers say enough.
const MAX_PIECES_SHOWN: usize = 64;

/// What re-reading the image found.
pub(super) struct Measured {
    /// Bytes read.
    pub size: u64,
    /// Whole-image digests, for every algorithm the manifest records.
    pub hashes: BTreeMap<HashAlgorithm, String>,
    /// Piece digests, when the manifest records pieces.
    pub pieces: Vec<Piece>,
    /// The `sha256sum` sidecar beside the image.
    pub sidecar: Sidecar,
    /// Stored objects that differ from their own record (size, segment SHA-256).
    pub object_problems: Vec<String>,
    /// For a memory image: the LiME ranges found in it, or what is wrong with its structure.
    pub lime: Option<Result<Vec<(u64, u64)>, String>>,
}

/// The sidecar as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sidecar {
    /// There is none (a copy may travel without it).
    Absent,
    /// Its text.
    Text(String),
    /// Something is there but could not be read as a sidecar: why.
    Unreadable(String),
}

/// What the comparison found: one line per check for the operator, and the problems.
#[derive(Debug, Default)]
pub(super) struct Report {
    /// One line per check, in order (`sha256: OK …`, `pieces: …`, `sidecar: …`).
    pub lines: Vec<String>,
    /// Every difference found; empty means verified.
    pub problems: Vec<String>,
}

/// Compares and reports one line per check and the problems found; no problem means verified.
pub(super) fn compare(
    recorded: &ImageRecord,
    expected_sidecar: Option<&str>,
    measured: &Measured,
) -> Report {
    let mut report = Report {
        lines: Vec::new(),
        problems: measured.object_problems.clone(),
    };
    if measured.size != recorded.size_bytes {
        report.problems.push(format!(
            "size is {} bytes, manifest says {}",
            measured.size, recorded.size_bytes
        ));
    }
    // Manifest validation already refuses this; repeated here because a pass without SHA-256
    // would be a pass that checked nothing an examiner relies on.
    if !recorded.hashes.contains_key(&HashAlgorithm::Sha256) {
        report
            .problems
            .push("the manifest records no SHA-256 of the image".to_owned());
    }
    for (algorithm, expected) in &recorded.hashes {
        let actual = measured.hashes.get(algorithm).map_or("", String::as_str);
        if actual == expected {
            report.lines.push(format!("{algorithm}: OK {actual}"));
        } else {
            report.lines.push(format!(
                "{algorithm}: MISMATCH expected {expected} got {actual}"
            ));
            report.problems.push(format!("{algorithm} differs"));
        }
    }
    if let Some(piecewise) = &recorded.piecewise {
        compare_pieces(&piecewise.pieces, &measured.pieces, &mut report);
    }
    compare_sidecar(&measured.sidecar, expected_sidecar, &mut report);
    report
}

/// A memory image's structure: its LiME headers must be exactly the ranges the manifest records
/// (`source.memory.ranges`), in order, and nothing else. The hashes prove the image is what was
/// captured; this proves what was captured is the LiME image the record describes.
pub(super) fn compare_lime(
    memory: Option<&MemoryRecord>,
    found: Option<&Result<Vec<(u64, u64)>, String>>,
    report: &mut Report,
) {
    let Some(memory) = memory else {
        return;
    };
    let expected: Vec<(u64, u64)> = memory.ranges.iter().map(|r| (r.start, r.end)).collect();
    match found {
        Some(Ok(ranges)) if *ranges == expected => report.lines.push(format!(
            "lime: OK {}",
            counted(ranges.len() as u64, "range")
        )),
        Some(Ok(ranges)) => {
            let first = ranges
                .iter()
                .zip(&expected)
                .position(|(f, e)| f != e)
                .unwrap_or(ranges.len().min(expected.len()));
            report.lines.push(format!(
                "lime: MISMATCH {} in the image, {} in the manifest; they differ from range {first}",
                ranges.len(),
                expected.len()
            ));
            report
                .problems
                .push("the image's LiME ranges differ from the manifest's".to_owned());
        }
        Some(Err(why)) => {
            report.lines.push(format!("lime: MALFORMED {why}"));
            report
                .problems
                .push(format!("the image is not a whole LiME image: {why}"));
        }
        None => report
            .problems
            .push("the memory image's LiME structure was not checked".to_owned()),
    }
}

/// Piece by piece: the line says how the image was cut (the real lengths, not the nominal piece
/// size, which a small image never reaches) or which pieces differ.
fn compare_pieces(recorded: &[Piece], measured: &[Piece], report: &mut Report) {
    let count = recorded.len().max(measured.len());
    let same = |want: Option<&Piece>, got: Option<&Piece>| {
        want.zip(got)
            .is_some_and(|(w, g)| w.digest == g.digest && w.length == g.length)
    };
    let bad: Vec<usize> = (0..count)
        .filter(|&i| !same(recorded.get(i), measured.get(i)))
        .collect();
    if bad.is_empty() {
        report
            .lines
            .push(format!("pieces: OK {}", describe_pieces(recorded)));
        return;
    }
    let shown = &bad[..bad.len().min(MAX_PIECES_SHOWN)];
    let more = bad.len() - shown.len();
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let bad_pieces = counted(bad.len() as u64, "piece");
    report.lines.push(format!(
        "pieces: MISMATCH in {bad_pieces} of {count}: {shown:?}{more}"
    ));
    let differ = if bad.len() == 1 { "differs" } else { "differ" };
    report.problems.push(format!("{bad_pieces} {differ}"));
}

/// `1 piece of 67108864 bytes`, `64 pieces of 1048576 bytes`, or, for pieces of several lengths,
/// `17 pieces: 16 x 4194304 bytes + 1 x 1234 bytes` (runs of equal lengths, in order).
fn describe_pieces(pieces: &[Piece]) -> String {
    let mut runs: Vec<(usize, u64)> = Vec::new();
    for piece in pieces {
        match runs.last_mut() {
            Some((n, length)) if *length == piece.length => *n += 1,
            _ => runs.push((1, piece.length)),
        }
    }
    match runs.as_slice() {
        [] => "no pieces".to_owned(),
        [(n, length)] => format!(
            "{} of {}",
            counted(*n as u64, "piece"),
            counted(*length, "byte")
        ),
        runs => {
            let parts: Vec<String> = runs
                .iter()
                .map(|(n, length)| format!("{n} x {}", counted(*length, "byte")))
                .collect();
            format!(
                "{}: {}",
                counted(pieces.len() as u64, "piece"),
                parts.join(" + ")
            )
        }
    }
}

/// The sidecar is compared with the SHA-256 line the manifest records, not with the hash just
/// recomputed: its line says so, lest `sidecar: OK` under `sha256: MISMATCH` read as "the image
/// is fine".
fn compare_sidecar(found: &Sidecar, expected: Option<&str>, report: &mut Report) {
    const WHAT: &str = "the manifest's recorded sha256 (checks the record, not the image)";
    match (found, expected) {
        (Sidecar::Text(text), Some(expected)) if text == expected => {
            report.lines.push(format!("sidecar: OK matches {WHAT}"));
        }
        (Sidecar::Text(_), _) => {
            report
                .lines
                .push(format!("sidecar: MISMATCH differs from {WHAT}"));
            report
                .problems
                .push("the sha256 sidecar disagrees with the manifest".to_owned());
        }
        (Sidecar::Unreadable(why), _) => {
            report.lines.push(format!("sidecar: UNREADABLE {why}"));
            report
                .problems
                .push(format!("the sha256 sidecar cannot be read: {why}"));
        }
        (Sidecar::Absent, _) => report.lines.push("sidecar: absent".to_owned()),
    }
}

/// `1 piece`, `2 pieces`.
fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imaging::Piecewise;

    const SHA: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const OTHER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    fn piece(index: u64, digest: &str) -> Piece {
        Piece {
            index,
            offset: index * 2,
            length: 2,
            digest: digest.to_owned(),
        }
    }

    fn recorded() -> ImageRecord {
        ImageRecord {
            file_name: "s.image.dd".into(),
            location: "file:///e/s.image.dd".into(),
            size_bytes: 6,
            hashes: BTreeMap::from([(HashAlgorithm::Sha256, SHA.to_owned())]),
            piecewise: Some(Piecewise {
                algorithm: HashAlgorithm::Sha256,
                piece_size: 2,
                pieces: (0..3).map(|i| piece(i, SHA)).collect(),
            }),
            s3: None,
        }
    }

    fn measured() -> Measured {
        Measured {
            size: 6,
            hashes: BTreeMap::from([(HashAlgorithm::Sha256, SHA.to_owned())]),
            pieces: (0..3).map(|i| piece(i, SHA)).collect(),
            sidecar: Sidecar::Text(format!("{SHA}  s.image.dd\n")),
            object_problems: Vec::new(),
            lime: None,
        }
    }

    fn memory(ranges: &[(u64, u64)]) -> MemoryRecord {
        let mut offset = 0;
        MemoryRecord {
            reader: imaging::MemoryReader::Kcore,
            kernel_release: "6.1.0".into(),
            banner: "Linux version 6.1.0".into(),
            boot_id: None,
            machine: "x86_64".into(),
            page_size: 4096,
            ami_id: None,
            consistency: "smear".into(),
            ranges: ranges
                .iter()
                .map(|&(start, end)| {
                    let range = imaging::MemoryRange {
                        start,
                        end,
                        image_offset: offset,
                        bytes_read: end - start,
                    };
                    offset += 32 + end - start;
                    range
                })
                .collect(),
        }
    }

    // Issue 22: verify passes a memory image only when its LiME headers are exactly the manifest's
    // ranges; a disk image has no such check.
    #[test]
    fn a_memory_image_must_hold_exactly_the_recorded_lime_ranges() {
        let record = memory(&[(0x1000, 0x2000), (0x4000, 0x8000)]);
        let check = |found: Option<Result<Vec<(u64, u64)>, String>>| {
            let mut report = Report::default();
            compare_lime(Some(&record), found.as_ref(), &mut report);
            report
        };
        let ok = check(Some(Ok(vec![(0x1000, 0x2000), (0x4000, 0x8000)])));
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        assert_eq!(ok.lines, ["lime: OK 2 ranges"]);
        let other = check(Some(Ok(vec![(0x1000, 0x2000), (0x4000, 0x7000)])));
        assert_eq!(
            other.problems,
            ["the image's LiME ranges differ from the manifest's"]
        );
        assert!(
            other.lines[0].contains("differ from range 1"),
            "{:?}",
            other.lines
        );
        let fewer = check(Some(Ok(vec![(0x1000, 0x2000)])));
        assert!(
            fewer.lines[0].contains("1 in the image, 2 in the manifest"),
            "{:?}",
            fewer.lines
        );
        let broken = check(Some(Err("no LiME header at image offset 32".into())));
        assert!(
            broken.problems[0].contains("not a whole LiME image"),
            "{:?}",
            broken.problems
        );
        assert!(!check(None).problems.is_empty());
        let mut disk = Report::default();
        compare_lime(None, None, &mut disk);
        assert!(disk.problems.is_empty() && disk.lines.is_empty());
    }

    fn sidecar() -> Option<&'static str> {
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  s.image.dd\n")
    }

    #[test]
    fn a_full_match_has_no_problems() {
        assert!(
            compare(&recorded(), sidecar(), &measured())
                .problems
                .is_empty()
        );
        let mut no_sidecar = measured();
        no_sidecar.sidecar = Sidecar::Absent;
        assert!(
            compare(&recorded(), sidecar(), &no_sidecar)
                .problems
                .is_empty()
        );
    }

    #[test]
    fn nothing_passes_without_the_sha256() {
        let mut record = recorded();
        record.hashes = BTreeMap::from([(HashAlgorithm::Blake3, SHA.to_owned())]);
        record.piecewise = None;
        let mut got = measured();
        got.hashes = record.hashes.clone();
        got.sidecar = Sidecar::Absent;
        assert_eq!(
            compare(&record, None, &got).problems,
            ["the manifest records no SHA-256 of the image"]
        );
        record.hashes.clear();
        got.hashes.clear();
        assert!(!compare(&record, None, &got).problems.is_empty());
    }

    #[test]
    fn a_different_hash_or_size_is_a_problem() {
        let mut got = measured();
        got.hashes.insert(HashAlgorithm::Sha256, OTHER.to_owned());
        assert_eq!(
            compare(&recorded(), sidecar(), &got).problems,
            ["sha256 differs"]
        );
        let mut missing = measured();
        missing.hashes.clear();
        assert_eq!(
            compare(&recorded(), sidecar(), &missing).problems,
            ["sha256 differs"]
        );
        let mut short = measured();
        short.size = 5;
        assert_eq!(
            compare(&recorded(), sidecar(), &short).problems,
            ["size is 5 bytes, manifest says 6"]
        );
    }

    #[test]
    fn damaged_missing_or_extra_pieces_are_counted() {
        let mut got = measured();
        got.pieces[1].digest = OTHER.to_owned();
        assert_eq!(
            compare(&recorded(), sidecar(), &got).problems,
            ["1 piece differs"]
        );
        let mut fewer = measured();
        fewer.pieces.pop();
        assert_eq!(
            compare(&recorded(), sidecar(), &fewer).problems,
            ["1 piece differs"]
        );
        let mut more = measured();
        more.pieces.push(piece(3, SHA));
        assert_eq!(
            compare(&recorded(), sidecar(), &more).problems,
            ["1 piece differs"]
        );
        let mut longer = measured();
        longer.pieces[0].length = 3;
        assert_eq!(
            compare(&recorded(), sidecar(), &longer).problems,
            ["1 piece differs"]
        );
    }

    #[test]
    fn a_sidecar_that_disagrees_or_cannot_be_read_is_a_problem() {
        let mut got = measured();
        got.sidecar = Sidecar::Text(format!("{OTHER}  s.image.dd\n"));
        assert_eq!(
            compare(&recorded(), sidecar(), &got).problems,
            ["the sha256 sidecar disagrees with the manifest"]
        );
        got.sidecar = Sidecar::Unreadable("not a regular file".into());
        assert_eq!(
            compare(&recorded(), sidecar(), &got).problems,
            ["the sha256 sidecar cannot be read: not a regular file"]
        );
    }

    #[test]
    fn object_problems_found_while_reading_are_kept() {
        let mut got = measured();
        got.object_problems.push("segment x differs".into());
        assert_eq!(
            compare(&recorded(), sidecar(), &got).problems,
            ["segment x differs"]
        );
    }

    // Issue 10: a 64 MiB image printed `pieces: OK 1 x 1073741824 bytes` (the nominal piece
    // size, not the one piece the image is) and a damaged piece was counted "1 pieces differ".
    #[test]
    fn piece_lines_give_the_real_lengths_and_count_in_words() {
        let lengths = |lengths: &[u64]| -> Vec<Piece> {
            lengths
                .iter()
                .enumerate()
                .map(|(i, &length)| Piece {
                    length,
                    ..piece(i as u64, SHA)
                })
                .collect()
        };
        assert_eq!(
            describe_pieces(&lengths(&[67_108_864])),
            "1 piece of 67108864 bytes"
        );
        assert_eq!(describe_pieces(&lengths(&[4, 4, 4])), "3 pieces of 4 bytes");
        assert_eq!(
            describe_pieces(&lengths(&[4, 4, 4, 1])),
            "4 pieces: 3 x 4 bytes + 1 x 1 byte"
        );
        assert_eq!(describe_pieces(&[]), "no pieces");

        let report = compare(&recorded(), sidecar(), &measured());
        assert!(
            report
                .lines
                .contains(&"pieces: OK 3 pieces of 2 bytes".to_owned()),
            "{:?}",
            report.lines
        );
        let mut got = measured();
        got.pieces[0].digest = OTHER.to_owned();
        got.pieces[2].digest = OTHER.to_owned();
        let report = compare(&recorded(), sidecar(), &got);
        assert_eq!(report.problems, ["2 pieces differ"]);
        assert!(
            report
                .lines
                .contains(&"pieces: MISMATCH in 2 pieces of 3: [0, 2]".to_owned()),
            "{:?}",
            report.lines
        );
    }

    #[test]
    fn a_long_list_of_damaged_pieces_names_the_first_and_counts_the_rest() {
        let many = |digest: &str| (0..70).map(|i| piece(i, digest)).collect::<Vec<_>>();
        let mut report = Report::default();
        compare_pieces(&many(SHA), &many(OTHER), &mut report);
        let line = &report.lines[0];
        assert!(
            line.starts_with("pieces: MISMATCH in 70 pieces of 70: [0, 1, "),
            "{line}"
        );
        assert!(line.ends_with(", 62, 63] and 6 more"), "{line}");
        assert_eq!(report.problems, ["70 pieces differ"]);
        let mut report = Report::default();
        let mut some = many(SHA);
        some[69].digest = OTHER.to_owned();
        compare_pieces(&many(SHA), &some, &mut report);
        assert_eq!(report.lines, ["pieces: MISMATCH in 1 piece of 70: [69]"]);
    }

    // Issue 10: after a flipped byte `verify` printed `sha256: MISMATCH` and then `sidecar: OK`,
    // which reads as "the image is fine": the line says what the sidecar was compared with.
    #[test]
    fn the_sidecar_line_says_it_checks_the_record_not_the_image() {
        let mut got = measured();
        got.hashes.insert(HashAlgorithm::Sha256, OTHER.to_owned());
        let report = compare(&recorded(), sidecar(), &got);
        let sidecar_line = report
            .lines
            .iter()
            .find(|l| l.starts_with("sidecar:"))
            .expect("a sidecar line");
        assert_eq!(
            sidecar_line,
            "sidecar: OK matches the manifest's recorded sha256 (checks the record, not the image)"
        );
        assert!(report.lines[0].starts_with("sha256: MISMATCH"));
        got.sidecar = Sidecar::Text(format!("{OTHER}  s.image.dd\n"));
        let report = compare(&recorded(), sidecar(), &got);
        assert!(
            report.lines.iter().any(|l| l
                == "sidecar: MISMATCH differs from the manifest's recorded sha256 (checks the record, not the image)"),
            "{:?}",
            report.lines
        );
    }
}
