//! The one comparison of what re-reading an image measured against what its manifest records,
//! shared by the local and the S3 path. It prints one line per check and returns every problem; a
//! verification passes only when there is none — and never unless the whole-image SHA-256 was
//! recomputed and matched.

use std::collections::BTreeMap;

use imaging::hash::{HashAlgorithm, Piece};
use imaging::manifest::ImageRecord;

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

/// Prints one line per check and returns the problems found; empty means verified.
pub(super) fn compare(
    recorded: &ImageRecord,
    expected_sidecar: Option<&str>,
    measured: &Measured,
) -> Vec<String> {
    let mut problems = measured.object_problems.clone();
    if measured.size != recorded.size_bytes {
        problems.push(format!(
            "size is {} bytes, manifest says {}",
            measured.size, recorded.size_bytes
        ));
    }
    // Manifest validation already refuses this; repeated here because a pass without SHA-256
    // would be a pass that checked nothing an examiner relies on.
    if !recorded.hashes.contains_key(&HashAlgorithm::Sha256) {
        problems.push("the manifest records no SHA-256 of the image".to_owned());
    }
    for (algorithm, expected) in &recorded.hashes {
        let actual = measured.hashes.get(algorithm).map_or("", String::as_str);
        if actual == expected {
            println!("{algorithm}: OK {actual}");
        } else {
            println!("{algorithm}: MISMATCH expected {expected} got {actual}");
            problems.push(format!("{algorithm} differs"));
        }
    }
    if let Some(piecewise) = &recorded.piecewise {
        let count = piecewise.pieces.len().max(measured.pieces.len());
        let same = |want: Option<&Piece>, got: Option<&Piece>| {
            want.zip(got)
                .is_some_and(|(w, g)| w.digest == g.digest && w.length == g.length)
        };
        let bad: Vec<usize> = (0..count)
            .filter(|&i| !same(piecewise.pieces.get(i), measured.pieces.get(i)))
            .collect();
        if bad.is_empty() {
            println!(
                "pieces: OK {} x {} bytes",
                piecewise.pieces.len(),
                piecewise.piece_size
            );
        } else {
            let shown = &bad[..bad.len().min(MAX_PIECES_SHOWN)];
            let more = bad.len() - shown.len();
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            println!("pieces: MISMATCH in pieces {shown:?}{more}");
            problems.push(format!("{} pieces differ", bad.len()));
        }
    }
    match (&measured.sidecar, expected_sidecar) {
        (Sidecar::Text(text), Some(expected)) if text == expected => println!("sidecar: OK"),
        (Sidecar::Text(_), _) => {
            println!("sidecar: MISMATCH");
            problems.push("the sha256 sidecar disagrees with the manifest".to_owned());
        }
        (Sidecar::Unreadable(why), _) => {
            println!("sidecar: UNREADABLE {why}");
            problems.push(format!("the sha256 sidecar cannot be read: {why}"));
        }
        (Sidecar::Absent, _) => println!("sidecar: absent"),
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use imaging::manifest::Piecewise;

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
        }
    }

    fn sidecar() -> Option<&'static str> {
        Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  s.image.dd\n")
    }

    #[test]
    fn a_full_match_has_no_problems() {
        assert!(compare(&recorded(), sidecar(), &measured()).is_empty());
        let mut no_sidecar = measured();
        no_sidecar.sidecar = Sidecar::Absent;
        assert!(compare(&recorded(), sidecar(), &no_sidecar).is_empty());
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
            compare(&record, None, &got),
            ["the manifest records no SHA-256 of the image"]
        );
        record.hashes.clear();
        got.hashes.clear();
        assert!(!compare(&record, None, &got).is_empty());
    }

    #[test]
    fn a_different_hash_or_size_is_a_problem() {
        let mut got = measured();
        got.hashes.insert(HashAlgorithm::Sha256, OTHER.to_owned());
        assert_eq!(compare(&recorded(), sidecar(), &got), ["sha256 differs"]);
        let mut missing = measured();
        missing.hashes.clear();
        assert_eq!(
            compare(&recorded(), sidecar(), &missing),
            ["sha256 differs"]
        );
        let mut short = measured();
        short.size = 5;
        assert_eq!(
            compare(&recorded(), sidecar(), &short),
            ["size is 5 bytes, manifest says 6"]
        );
    }

    #[test]
    fn damaged_missing_or_extra_pieces_are_counted() {
        let mut got = measured();
        got.pieces[1].digest = OTHER.to_owned();
        assert_eq!(compare(&recorded(), sidecar(), &got), ["1 pieces differ"]);
        let mut fewer = measured();
        fewer.pieces.pop();
        assert_eq!(compare(&recorded(), sidecar(), &fewer), ["1 pieces differ"]);
        let mut more = measured();
        more.pieces.push(piece(3, SHA));
        assert_eq!(compare(&recorded(), sidecar(), &more), ["1 pieces differ"]);
        let mut longer = measured();
        longer.pieces[0].length = 3;
        assert_eq!(
            compare(&recorded(), sidecar(), &longer),
            ["1 pieces differ"]
        );
    }

    #[test]
    fn a_sidecar_that_disagrees_or_cannot_be_read_is_a_problem() {
        let mut got = measured();
        got.sidecar = Sidecar::Text(format!("{OTHER}  s.image.dd\n"));
        assert_eq!(
            compare(&recorded(), sidecar(), &got),
            ["the sha256 sidecar disagrees with the manifest"]
        );
        got.sidecar = Sidecar::Unreadable("not a regular file".into());
        assert_eq!(
            compare(&recorded(), sidecar(), &got),
            ["the sha256 sidecar cannot be read: not a regular file"]
        );
    }

    #[test]
    fn object_problems_found_while_reading_are_kept() {
        let mut got = measured();
        got.object_problems.push("segment x differs".into());
        assert_eq!(compare(&recorded(), sidecar(), &got), ["segment x differs"]);
    }
}
