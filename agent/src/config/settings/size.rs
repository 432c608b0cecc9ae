//! Byte sizes as flags and config keys write them (`1GiB`, `8 MiB`, `1.5G`, `4096`), parsed with
//! checked arithmetic. `bytesize`'s own parser saturates, so `16EiB` became 2^64 - 1 bytes and
//! `100EiB` "16.0 EiB": a typo silently turned into the largest number there is. Here a size that
//! does not fit 64 bits is refused, with the text as given.

use bytesize::Unit;

/// Fraction digits that count: a unit is at most 2^60 < 10^19 bytes, so a 20th digit adds less
/// than a byte; at 19 digits and 2^60 the product stays far inside `u128`.
const FRACTION_DIGITS: usize = 19;

/// `text` as bytes: a whole number of bytes, or a number (with an optional fraction) and a unit
/// (`B`, `K`/`KB`…`E`/`EB` decimal, `Ki`/`KiB`…`Ei`/`EiB` binary, any case, spaces allowed before
/// it), the grammar `bytesize` accepts. A fraction is exact (rounded down to a whole byte), not a
/// float. Refused: anything else, and a size of 2^64 bytes or more.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let not_a_size =
        |why: String| format!("{text:?} is not a size such as \"1GiB\" or \"0\": {why}");
    let too_large = || format!("{text:?} is too large: a size must be below 16 EiB (2^64 bytes)");
    let digits = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(digits);
    let suffix = suffix.trim_start();
    let factor = if suffix.is_empty() {
        1
    } else {
        let unit: Unit = suffix.parse().map_err(|e| not_a_size(format!("{e}")))?;
        // `Unit` keeps its factor private; multiplying by one reads it (at most 2^60, no overflow).
        unit * 1u64
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(not_a_size(format!("{number:?} is not a number")));
    }
    let whole: u128 = match whole {
        "" => 0,
        digits => digits.parse().map_err(|_| too_large())?,
    };
    let kept = &fraction[..fraction.len().min(FRACTION_DIGITS)];
    let fraction: u128 = match kept {
        "" => 0,
        digits => digits
            .parse()
            .map_err(|_| not_a_size("a bad fraction".to_owned()))?,
    };
    let scale = 10u128.pow(u32::try_from(kept.len()).unwrap_or(0));
    let factor = u128::from(factor);
    whole
        .checked_mul(factor)
        .and_then(|bytes| bytes.checked_add(fraction * factor / scale))
        .and_then(|bytes| u64::try_from(bytes).ok())
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytesize::ByteSize;

    const EIB: u64 = 1 << 60;

    #[test]
    fn sizes_parse_as_bytesize_writes_them() {
        for (text, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("1GiB", 1 << 30),
            ("8 MiB", 8 << 20),
            ("160mib", 160 << 20),
            ("1KB", 1000),
            ("1.5KiB", 1536),
            ("5 GB", 5_000_000_000),
            ("18446744073709551615", u64::MAX),
            ("18446744073709551615B", u64::MAX),
            ("15EiB", 15 * EIB),
            ("15.5EiB", 15 * EIB + EIB / 2),
            ("18E", 18_000_000_000_000_000_000),
            (".5KiB", 512),
            ("1.KiB", 1024),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
            assert_eq!(
                parse_size(text).map(ByteSize),
                text.parse::<ByteSize>(),
                "{text}"
            );
        }
    }

    // Issue 19: `bytesize` saturated these to 2^64 - 1; they do not fit, so they are refused.
    #[test]
    fn a_size_past_64_bits_is_refused_not_saturated() {
        for text in [
            "16EiB",
            "100EiB",
            "16.0EiB",
            "19E",
            "18446744073709551616",
            "18446744073709551616B",
            "99999999999999999999999KiB",
            "17179869184GiB",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(
                err.contains("too large") && err.contains(text),
                "{text}: {err}"
            );
        }
    }

    // A fraction is exact: no float rounds a large size up past 2^64 or down by whole bytes.
    #[test]
    fn fractions_are_exact_and_rounded_down() {
        assert_eq!(parse_size("1.1KiB"), Ok(1126));
        assert_eq!(parse_size("0.0000001KiB"), Ok(0));
        assert_eq!(parse_size("15.9999999999999999999EiB"), Ok(u64::MAX));
        assert_eq!(parse_size("15.99999999999999999999999EiB"), Ok(u64::MAX));
        assert_eq!(parse_size("9007199254740993.0B"), Ok(9_007_199_254_740_993));
        assert!(parse_size("16.0000000000000000001EiB").is_err());
    }

    #[test]
    fn junk_is_not_a_size() {
        for text in ["", "GiB", "lots", "1 parsec", "-1", "1..5MiB", ".", "1GiBs"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("is not a size"), "{text}: {err}");
        }
    }
}
