//! Messages larger than one CloudWatch event are cut, never dropped, and the cut is marked: plain
//! text gets a trailing marker; a JSON event is replaced by a smaller JSON object that keeps the
//! fields a reader filters on (`event`, `job`, `volume`, `timestamp`), says it was truncated and how
//! big it was, and carries the start of the original text. A capture event therefore stays one
//! JSON object per log event even when a disk with thousands of bad ranges produces a huge result.

use serde_json::{Map, Value};

use super::batch::{EVENT_OVERHEAD_BYTES, MAX_EVENT_BYTES};

/// The most message bytes one event can carry.
pub(super) const MAX_MESSAGE_BYTES: usize = MAX_EVENT_BYTES - EVENT_OVERHEAD_BYTES;

/// Fields copied from a truncated JSON event so filters and dashboards still find it.
const KEPT_FIELDS: [&str; 4] = ["event", "job", "volume", "timestamp"];
/// A kept field larger than this is itself left out: identification needs a short value.
const KEPT_FIELD_MAX_BYTES: usize = 1024;

/// Stands in for an empty message, which the service refuses.
const EMPTY_MESSAGE: &str = "(empty message)";

/// `message` if it fits one event, otherwise its start cut at a character boundary followed by
/// ` [truncated by forensic-collector: N bytes]`.
pub(super) fn fit_text(message: String) -> String {
    if message.is_empty() {
        return EMPTY_MESSAGE.to_owned();
    }
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let marker = format!(
        " [truncated by forensic-collector: {} bytes]",
        message.len()
    );
    let keep = message.floor_char_boundary(MAX_MESSAGE_BYTES - marker.len());
    let mut cut = message;
    cut.truncate(keep);
    cut.push_str(&marker);
    cut
}

/// `text` (the serialised `value`) if it fits one event, otherwise a smaller JSON object:
/// the kept identifying fields, `"truncated": true`, `"original_bytes"` and `"head"`, the
/// longest start of `text` that fits.
pub(super) fn fit_json(value: &Value, text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut object = Map::new();
    for key in KEPT_FIELDS {
        if let Some(field) = value.get(key)
            && field.to_string().len() <= KEPT_FIELD_MAX_BYTES
        {
            object.insert(key.to_owned(), field.clone());
        }
    }
    object.insert("truncated".to_owned(), Value::Bool(true));
    object.insert("original_bytes".to_owned(), Value::from(text.len()));
    let mut head_len = MAX_MESSAGE_BYTES;
    // Removing k bytes from the head removes at least k bytes of output (escaping only grows a
    // character), so the second pass always fits; the bound is for safety, not convergence.
    for _ in 0..4 {
        let head = &text[..text.floor_char_boundary(head_len)];
        object.insert("head".to_owned(), Value::String(head.to_owned()));
        let candidate = Value::Object(object.clone()).to_string();
        if candidate.len() <= MAX_MESSAGE_BYTES {
            return candidate;
        }
        head_len = head
            .len()
            .saturating_sub(candidate.len() - MAX_MESSAGE_BYTES);
    }
    object.remove("head");
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn short_messages_are_unchanged() {
        assert_eq!(fit_text("incron is running".into()), "incron is running");
        let text = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(fit_text(text.clone()), text);
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary_and_marked() {
        let text = "é".repeat(200_000); // 400,000 bytes, two per character
        let cut = fit_text(text);
        assert!(cut.len() <= MAX_MESSAGE_BYTES);
        assert!(cut.ends_with(" [truncated by forensic-collector: 400000 bytes]"));
        assert!(cut.starts_with("éé"));
    }

    #[test]
    fn empty_text_becomes_a_visible_placeholder() {
        assert_eq!(fit_text(String::new()), EMPTY_MESSAGE);
    }

    #[test]
    fn big_json_stays_json_and_keeps_its_identity() {
        let value = json!({
            "event": "job_finished",
            "job": "job-1",
            "volume": "vol-0123456789abcdef0",
            "timestamp": "2026-11-23T13:00:00.000Z",
            "bad_ranges": (0..40_000).map(|i| json!({"offset": i * 512, "length": 512})).collect::<Vec<_>>(),
        });
        let text = value.to_string();
        let original = text.len();
        assert!(original > MAX_MESSAGE_BYTES);
        let fitted = fit_json(&value, text.clone());
        assert!(fitted.len() <= MAX_MESSAGE_BYTES);
        let parsed: Value = serde_json::from_str(&fitted).expect("still JSON");
        assert_eq!(parsed["event"], "job_finished");
        assert_eq!(parsed["job"], "job-1");
        assert_eq!(parsed["volume"], "vol-0123456789abcdef0");
        assert_eq!(parsed["timestamp"], "2026-11-23T13:00:00.000Z");
        assert_eq!(parsed["truncated"], true);
        assert_eq!(parsed["original_bytes"], original);
        let head = parsed["head"].as_str().expect("head is text");
        assert!(head.len() > MAX_MESSAGE_BYTES / 2);
        assert!(text.starts_with(head));
    }

    #[test]
    fn json_full_of_escapes_still_fits() {
        let value = json!({"event": "x", "blob": "\u{1}\"".repeat(100_000)});
        let fitted = fit_json(&value, value.to_string());
        assert!(fitted.len() <= MAX_MESSAGE_BYTES);
        let parsed: Value = serde_json::from_str(&fitted).expect("still JSON");
        assert_eq!(parsed["truncated"], true);
    }
}
