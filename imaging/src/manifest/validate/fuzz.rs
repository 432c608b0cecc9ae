//! Bounded fuzzing of manifest parsing and validation: mutations of genuine manifests (hostile
//! numbers and values, removed or duplicated fields and items), byte-level damage to their text,
//! and arbitrary bytes. None may panic, and whatever passes validation must hold what `verify`
//! relies on. A few thousand cases run in about a second.

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::super::sample;
use crate::hash::HashAlgorithm;
use crate::manifest::Manifest;
use crate::naming::SafeName;

/// Values that break naive code: zero, limits, wrong types, escaping names, bad digests.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(1e300)),
        Just(json!(0.5)),
        Just(json!(null)),
        Just(json!(true)),
        Just(json!("")),
        Just(json!("..")),
        Just(json!("../../etc/passwd")),
        Just(json!("sha256")),
        Just(json!([])),
        Just(json!({})),
        any::<u64>().prop_map(|n| json!(n)),
        "[0-9a-f]{0,70}".prop_map(|s| json!(s)),
        ".{0,20}".prop_map(|s| json!(s)),
    ]
}

/// Every JSON pointer into `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            let escaped = k.replace('~', "~0").replace('/', "~1");
            pointers(v, format!("{at}/{escaped}"), out);
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| pointers(v, format!("{at}/{i}"), out)),
        _ => {}
    }
    out.push(at);
}

/// Numbers that break naive arithmetic: zero, one, the limits, and small ones near the sizes.
fn hostile_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 63),
        0u64..4096,
        any::<u64>(),
    ]
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the chosen number (of all numbers in the manifest) with another.
    Number(usize, u64),
    Replace(usize, Value),
    Remove(usize),
    Duplicate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), hostile_number()).prop_map(|(at, n)| Mutation::Number(at, n)),
        3 => (any::<usize>(), hostile_value()).prop_map(|(at, v)| Mutation::Replace(at, v)),
        1 => any::<usize>().prop_map(Mutation::Remove),
        1 => any::<usize>().prop_map(Mutation::Duplicate),
    ]
}

fn apply(value: &mut Value, mutation: &Mutation) {
    let mut all = Vec::new();
    pointers(value, String::new(), &mut all);
    if let Mutation::Number(at, n) = mutation {
        let numbers: Vec<&String> = all
            .iter()
            .filter(|p| value.pointer(p).is_some_and(Value::is_number))
            .collect();
        if let Some(pointer) = numbers.get(at % numbers.len().max(1)) {
            let pointer = (*pointer).clone();
            *value.pointer_mut(&pointer).expect("a number's pointer") = json!(n);
        }
        return;
    }
    let pick = |at: usize| all[at % all.len()].clone();
    let (pointer, replacement) = match mutation {
        Mutation::Number(..) => unreachable!("handled above"),
        Mutation::Replace(at, v) => (pick(*at), Some(v.clone())),
        Mutation::Remove(at) | Mutation::Duplicate(at) => (pick(*at), None),
    };
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        if let Some(v) = replacement {
            *value = v;
        }
        return;
    };
    let Some(parent) = value.pointer_mut(parent) else {
        return;
    };
    match (parent, replacement, mutation) {
        (Value::Object(map), Some(v), _) => {
            map.insert(last.replace("~1", "/").replace("~0", "~"), v);
        }
        (Value::Object(map), None, _) => {
            map.remove(&last.replace("~1", "/").replace("~0", "~"));
        }
        (Value::Array(items), replacement, mutation) => {
            let i: usize = last.parse().expect("array index");
            match (replacement, mutation) {
                (Some(v), _) => items[i] = v,
                (None, Mutation::Duplicate(_)) => items.insert(i, items[i].clone()),
                (None, _) => {
                    items.remove(i);
                }
            }
        }
        _ => {}
    }
}

/// What `verify` relies on once a manifest is accepted, checked on whatever got through.
fn assert_usable(manifest: &Manifest) {
    let image = &manifest.image;
    assert!(image.hashes.contains_key(&HashAlgorithm::Sha256));
    if let Some(piecewise) = &image.piecewise {
        assert!(piecewise.piece_size > 0);
        assert_eq!(
            piecewise.pieces.len() as u64,
            image.size_bytes.div_ceil(piecewise.piece_size)
        );
    }
    if let Some(s3) = &image.s3 {
        assert!(!s3.objects.is_empty());
        let total: u64 = s3.objects.iter().map(|o| o.size_bytes).sum();
        assert_eq!(total, image.size_bytes);
    }
    SafeName::parse(&image.file_name, "file").unwrap();
    let _ = (
        manifest.sha256sum_text(),
        image.object_names(),
        manifest.to_json(),
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No mutation of a genuine manifest panics parsing or validation, and whatever passes
    /// holds what `verify` relies on.
    #[test]
    fn mutated_manifests_never_panic(
        segmented in any::<bool>(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let mut value = if segmented { sample::segmented_json() } else { sample::local_json() };
        for m in &mutations {
            apply(&mut value, m);
        }
        let text = value.to_string();
        if let Ok(manifest) = Manifest::from_json(&text, Path::new("m.json")) {
            assert_usable(&manifest);
        }
    }

    /// Byte-level damage to a genuine manifest's text never panics.
    #[test]
    fn damaged_manifest_text_never_panics(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = sample::segmented().to_json().into_bytes();
        for (at, byte, kind) in edits {
            let at = at % (bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => { bytes.remove(at); }
                _ => bytes.insert(at, byte),
            }
        }
        if let Ok(manifest) = Manifest::from_slice(&bytes, Path::new("m.json")) {
            assert_usable(&manifest);
        }
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Manifest::from_slice(&bytes, Path::new("m.json"));
    }
}
