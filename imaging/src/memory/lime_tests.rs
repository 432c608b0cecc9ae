// Test arithmetic on small, known values.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use std::io::Cursor;

use proptest::prelude::*;

use super::*;

/// A LiME image of `ranges` whose memory bytes are a pattern of their address.
fn image(ranges: &[(u64, u64)]) -> Vec<u8> {
    let mut out = Vec::new();
    for &(start, end) in ranges {
        out.extend_from_slice(&header(start, end));
        out.extend((start..end).map(|a| (a % 251) as u8));
    }
    out
}

#[test]
fn a_header_is_limes_bytes() {
    // LiME's own definition (lime.h): magic, version 1, s_addr, e_addr (inclusive), 8 reserved.
    let expected: Vec<u8> = [
        &[0x45, 0x4d, 0x69, 0x4c][..],
        &[1, 0, 0, 0],
        &0x1000u64.to_le_bytes(),
        &0x9fbffu64.to_le_bytes(),
        &[0; 8],
    ]
    .concat();
    assert_eq!(header(0x1000, 0x9fc00).to_vec(), expected);
    assert_eq!(
        parse_header(&header(0x1000, 0x9fc00)),
        Ok((0x1000, 0x9fc00))
    );
    assert_eq!(parse_header(&header(7, 8)), Ok((7, 8)));
}

#[test]
fn damaged_headers_say_what_is_wrong() {
    let good = header(0x1000, 0x2000);
    let with = |at: usize, byte: u8| {
        let mut h = good;
        h[at] = byte;
        h
    };
    assert!(parse_header(&with(0, 0)).unwrap_err().contains("magic"));
    assert!(parse_header(&with(4, 2)).unwrap_err().contains("version 2"));
    assert!(parse_header(&with(31, 1)).unwrap_err().contains("reserved"));
    let mut backwards = good;
    backwards[16..24].copy_from_slice(&0x0fffu64.to_le_bytes());
    assert!(
        parse_header(&backwards)
            .unwrap_err()
            .contains("before its start")
    );
    let mut last = good;
    last[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(
        parse_header(&last)
            .unwrap_err()
            .contains("past the last address")
    );
}

#[test]
fn the_walker_refuses_what_is_not_a_whole_lime_image() {
    let ranges = [(0x1000, 0x1800), (0x4000, 0x4100)];
    let whole = image(&ranges);
    let walk = |bytes: &[u8]| {
        let mut w = LimeWalker::new();
        w.feed(bytes);
        w.finish()
    };
    assert_eq!(walk(&whole), Ok(ranges.to_vec()));
    assert!(walk(&[]).unwrap_err().contains("no LiME range"));
    assert!(
        walk(&whole[..whole.len() - 1])
            .unwrap_err()
            .contains("1 bytes before the end")
    );
    assert!(
        walk(&whole[..0x800 + 32 + 5])
            .unwrap_err()
            .contains("inside a LiME header (5 of 32")
    );
    let mut extra = whole.clone();
    extra.extend_from_slice(&[0u8; 32]);
    assert!(
        walk(&extra)
            .unwrap_err()
            .contains(&format!("image offset {}", whole.len()))
    );
    let overlapping = image(&[(0x4000, 0x4100), (0x1000, 0x1800)]);
    assert!(
        walk(&overlapping)
            .unwrap_err()
            .contains("before the previous range's end")
    );
    let touching = [(0x1000, 0x2000), (0x2000, 0x2100)];
    assert_eq!(walk(&image(&touching)), Ok(touching.to_vec()));
}

#[test]
fn headers_are_read_by_seeking_too() {
    let ranges = [(0x1000, 0x1800), (0x4000, 0x4100)];
    let whole = image(&ranges);
    let size = whole.len() as u64;
    assert_eq!(read_ranges(Cursor::new(&whole), size), Ok(ranges.to_vec()));
    let cut = &whole[..whole.len() - 10];
    assert!(
        read_ranges(Cursor::new(cut), size - 10)
            .unwrap_err()
            .contains("10 bytes before the end")
    );
    let mut bad = whole.clone();
    bad[0x800 + 32] = 0;
    assert!(
        read_ranges(Cursor::new(&bad), size)
            .unwrap_err()
            .contains("image offset 2080")
    );
    // A size that claims more than the file holds is a read error, not a pass.
    assert!(
        read_ranges(Cursor::new(&whole), size + 40)
            .unwrap_err()
            .contains("cannot read")
    );
}

#[test]
fn an_image_ending_inside_a_header_is_found_by_seeking_too() {
    let ranges = [(0x1000, 0x1800), (0x4000, 0x4100)];
    let mut cut = image(&ranges);
    cut.extend_from_slice(&header(0x5000, 0x5100)[..5]);
    let err = read_ranges(Cursor::new(&cut), cut.len() as u64).unwrap_err();
    assert!(err.contains("inside a LiME header (5 of 32"), "{err}");
}

#[test]
fn seeking_stops_at_the_first_bad_header() {
    let ranges = [(0x1000, 0x1800), (0x4000, 0x4100)];
    let mut bad = image(&ranges);
    bad[0] = 0;
    // The size claims more than the file holds: reading on past the bad header would fail there.
    let err = read_ranges(Cursor::new(&bad), bad.len() as u64 + 64).unwrap_err();
    assert!(err.contains("no LiME header at image offset 0"), "{err}");
}

/// Sorted, non-overlapping ranges of 1 to 300 bytes with gaps of 0 to 5000.
fn range_sets() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..5000, 1u64..300), 1..12).prop_map(|parts| {
        let mut at = 0x1000;
        parts
            .into_iter()
            .map(|(gap, len)| {
                let start = at + gap;
                at = start + len;
                (start, at)
            })
            .collect()
    })
}

proptest! {
    // Issue 22: any set of ranges written is read back exactly, whatever the slicing of the stream,
    // and by seeking.
    #[test]
    fn lime_round_trips(ranges in range_sets(), cuts in prop::collection::vec(1usize..97, 1..40)) {
        let bytes = image(&ranges);
        let mut walker = LimeWalker::new();
        let (mut at, mut i) = (0, 0);
        while at < bytes.len() {
            let step = cuts[i % cuts.len()].min(bytes.len() - at);
            walker.feed(&bytes[at..at + step]);
            at += step;
            i += 1;
        }
        prop_assert_eq!(walker.finish(), Ok(ranges.clone()));
        prop_assert_eq!(read_ranges(Cursor::new(&bytes), bytes.len() as u64), Ok(ranges));
    }

    // Cutting a valid image anywhere short of its end is never taken for the whole one (a cut at
    // a range's end is a smaller valid image: verify compares the ranges with the manifest's).
    #[test]
    fn a_cut_image_never_passes(ranges in range_sets(), cut in 0.0f64..1.0) {
        let bytes = image(&ranges);
        let keep = ((bytes.len() as f64) * cut) as usize;
        let mut walker = LimeWalker::new();
        walker.feed(&bytes[..keep.min(bytes.len() - 1)]);
        prop_assert_ne!(walker.finish(), Ok(ranges));
    }
}
