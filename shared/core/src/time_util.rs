//! Small helpers around `time`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC with the precision the value has (`2026-11-29T03:38:56.123Z`).
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// RFC 3339 in UTC with exactly three fractional digits
/// (`2026-11-29T03:38:56.120Z`): fixed width, so such strings sort in time
/// order. Index sort keys use it.
pub fn sortable(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses RFC 3339 and normalises it to UTC.
pub fn parse_rfc3339(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339).map(|t| t.to_offset(time::UtcOffset::UTC))
}

/// Now, in UTC, truncated to milliseconds (what is stored and sent).
pub fn now_utc() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(now)
}

/// `t` without its fraction of a second (what DynamoDB TTL stores).
pub fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `serde` for `OffsetDateTime` as RFC 3339 in UTC.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Writes `t` as RFC 3339 in UTC.
    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

/// `serde` for `Option<OffsetDateTime>` as RFC 3339 in UTC (or absent).
pub mod serde_rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Writes `t` as RFC 3339 in UTC, or `None`.
    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 time, or `None` for null or absent.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| super::parse_rfc3339(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_strings_have_one_width_and_sort_in_time_order() {
        let a = parse_rfc3339("2026-11-29T03:38:56Z").unwrap();
        let b = parse_rfc3339("2026-11-29T03:38:56.12Z").unwrap();
        let c = parse_rfc3339("2026-11-29T04:38:56.123+01:00").unwrap();
        assert_eq!(sortable(a), "2026-11-29T03:38:56.000Z");
        assert_eq!(sortable(b), "2026-11-29T03:38:56.120Z");
        assert_eq!(sortable(c), "2026-11-29T03:38:56.123Z");
        assert!(sortable(a) < sortable(b) && sortable(b) < sortable(c));
        // rfc3339 alone would not sort these: '.' sorts below 'Z'.
        assert!(rfc3339(b) < rfc3339(a));
    }

    #[test]
    fn formats_in_utc_and_parses_offsets() {
        let t = parse_rfc3339("2026-11-29T04:38:56+01:00").unwrap();
        assert_eq!(rfc3339(t), "2026-11-29T03:38:56Z");
        assert!(parse_rfc3339("yesterday").is_err());
        assert_eq!(now_utc().nanosecond() % 1_000_000, 0);
    }
}
