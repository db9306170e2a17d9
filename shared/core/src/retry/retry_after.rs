//! The receiver's `Retry-After` header: parsing it (delay-seconds or an
//! HTTP-date) and bounding how far it may push the next attempt back.

use std::str::FromStr;
use std::time::Duration;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The longest a receiver's `Retry-After` may push the next attempt back:
/// 6 hours. Long enough for a receiver's maintenance window, short enough
/// that one header cannot park a delivery for days, and within one SQS
/// visibility timeout ([`MAX_VISIBILITY`](super::MAX_VISIBILITY)).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// Parses a `Retry-After` header value (RFC 9110 section 10.2.3) received at
/// `now` into how long to wait.
///
/// - delay-seconds (`"120"`, ASCII digits only): that many seconds. A number
///   too large for a `u64` saturates (then [`honour_retry_after`] caps it).
/// - an HTTP-date in any of the three forms RFC 9110 requires recipients to
///   accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
///   (`Sunday, 06-Nov-94 08:49:37 GMT`, a two-digit year more than 50 years
///   ahead of `now` meaning the previous century) and asctime
///   (`Sun Nov  6 08:49:37 1994`): the time until then, or zero for a date
///   not in the future. The weekday must be a weekday name but is not
///   checked against the date; names are matched case-insensitively.
///
/// Surrounding whitespace is ignored. Anything else — empty, negative
/// (`"-5"`), signed (`"+5"`), fractional (`"1.5"`), an impossible date — is
/// `None`: the header is ignored.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can make the parse fail.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let date = parse_http_date(value, now.year())?;
    let ahead = date - now;
    Some(if ahead.is_positive() {
        ahead.unsigned_abs()
    } else {
        Duration::ZERO
    })
}

const SHORT_WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn parse_http_date(s: &str, this_year: i32) -> Option<OffsetDateTime> {
    let tokens: Vec<&str> = s.split_ascii_whitespace().collect();
    let (year, month, day, clock) = match tokens.as_slice() {
        // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        [weekday, day, month, year, clock, gmt] => {
            weekday_in(weekday.strip_suffix(',')?, &SHORT_WEEKDAYS)?;
            is_gmt(gmt)?;
            (digits(year, 4, 4)?, month_named(month)?, digits(day, 2, 2)?, *clock)
        }
        // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
        [weekday, date, clock, gmt] => {
            weekday_in(weekday.strip_suffix(',')?, &LONG_WEEKDAYS)?;
            is_gmt(gmt)?;
            let mut parts = date.split('-');
            let (day, month, yy) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            let yy: i32 = digits(yy, 2, 2)?;
            let mut year = this_year - this_year.rem_euclid(100) + yy;
            if year > this_year + 50 {
                year -= 100;
            }
            (year, month_named(month)?, digits(day, 2, 2)?, *clock)
        }
        // asctime: Sun Nov  6 08:49:37 1994
        [weekday, month, day, clock, year] => {
            weekday_in(weekday, &SHORT_WEEKDAYS)?;
            (digits(year, 4, 4)?, month_named(month)?, digits(day, 1, 2)?, *clock)
        }
        _ => return None,
    };
    let mut hms = clock.split(':');
    let (h, m, sec) = (hms.next()?, hms.next()?, hms.next()?);
    if hms.next().is_some() {
        return None;
    }
    let time = Time::from_hms(digits(h, 2, 2)?, digits(m, 2, 2)?, digits(sec, 2, 2)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

fn weekday_in(name: &str, names: &[&str]) -> Option<()> {
    names.iter().any(|n| n.eq_ignore_ascii_case(name)).then_some(())
}

fn is_gmt(zone: &str) -> Option<()> {
    zone.eq_ignore_ascii_case("GMT").then_some(())
}

fn month_named(name: &str) -> Option<Month> {
    let i = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(name))?;
    Month::try_from(i as u8 + 1).ok()
}

/// `s` as a number of `min..=max` ASCII digits (no sign).
fn digits<T: FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    if !(min..=max).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The delay before the next attempt when the receiver sent `Retry-After`:
/// never sooner than `policy_delay` (our own schedule), and never later than
/// `max` because of the header (a longer `policy_delay` still wins).
/// `max(policy_delay, min(retry_after, max))`; without a header,
/// `policy_delay`.
pub fn honour_retry_after(policy_delay: Duration, retry_after: Option<Duration>, max: Duration) -> Duration {
    match retry_after {
        Some(wanted) => policy_delay.max(wanted.min(max)),
        None => policy_delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::MAX_VISIBILITY;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn at(s: &str) -> OffsetDateTime {
        crate::time_util::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn retry_after_accepts_delta_seconds() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(parse_retry_after("120", now), Some(secs(120)));
        assert_eq!(parse_retry_after(" 120 ", now), Some(secs(120)));
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("007", now), Some(secs(7)));
        assert_eq!(parse_retry_after("99999999", now), Some(secs(99_999_999)));
        // Too large for u64: saturates (and is capped when honoured).
        assert_eq!(parse_retry_after("99999999999999999999999", now), Some(secs(u64::MAX)));
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let now = at("1994-11-06T08:47:37Z");
        let two_min = Some(secs(120));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), two_min);
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), two_min);
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), two_min);
        assert_eq!(parse_retry_after("Sun Nov 06 08:49:37 1994", now), two_min);
        assert_eq!(parse_retry_after("  sun, 06 nov 1994 08:49:37 gmt\t", now), two_min);
        // The weekday is not checked against the date.
        assert_eq!(parse_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", now), two_min);
        // `now` with a fraction of a second and another offset.
        let now = at("1994-11-06T09:47:36.5+01:00");
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::from_millis(120_500))
        );
        // Across a year boundary and a leap day.
        let now = at("2028-02-28T23:00:00Z");
        assert_eq!(
            parse_retry_after("Tue, 29 Feb 2028 23:00:00 GMT", now),
            Some(secs(86_400))
        );
    }

    #[test]
    fn rfc_850_years_are_read_relative_to_now() {
        let now = at("2026-06-01T00:00:00Z");
        assert_eq!(parse_retry_after("Monday, 01-Jun-26 00:01:00 GMT", now), Some(secs(60)));
        // 2076 is not more than 50 years ahead; 2077 is, so it means 1977.
        assert!(parse_retry_after("Monday, 01-Jun-76 00:00:00 GMT", now).unwrap() > secs(49 * 365 * 86_400));
        assert_eq!(
            parse_retry_after("Wednesday, 01-Jun-77 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_dates_in_the_past_mean_now() {
        let now = at("2026-01-01T00:00:00Z");
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("Thu, 01 Jan 2026 00:00:01 GMT", now), Some(secs(1)));
    }

    #[test]
    fn retry_after_garbage_is_ignored() {
        let now = at("2026-01-01T00:00:00Z");
        for garbage in [
            "",
            "   ",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "120s",
            "soon",
            "١٢٠", // Arabic-Indic digits are not ASCII digits
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37 +0000",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 31 Feb 2026 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 1994 08:49:37:00 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sun, 06-Nov-94 08:49:37 GMT",
            "Sun Nov 6 08:49:37 94",
            "Sun Nov 123 08:49:37 1994",
            "2026-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_within_bounds() {
        let max = MAX_RETRY_AFTER;
        assert_eq!(max, secs(6 * 3600));
        assert!(MAX_RETRY_AFTER <= MAX_VISIBILITY);
        // Without a header: the policy's delay.
        assert_eq!(honour_retry_after(secs(10), None, max), secs(10));
        // Later than our schedule: the header wins.
        assert_eq!(honour_retry_after(secs(10), Some(secs(120)), max), secs(120));
        // Sooner than our schedule: never sooner.
        assert_eq!(honour_retry_after(secs(10), Some(secs(1)), max), secs(10));
        assert_eq!(honour_retry_after(secs(10), Some(Duration::ZERO), max), secs(10));
        // Beyond the bound: capped.
        assert_eq!(honour_retry_after(secs(10), Some(secs(99_999_999)), max), max);
        assert_eq!(honour_retry_after(secs(10), Some(Duration::MAX), max), max);
        assert_eq!(honour_retry_after(secs(10), Some(max), max), max);
        // A policy delay longer than the bound still wins.
        assert_eq!(
            honour_retry_after(secs(86_400), Some(secs(99_999_999)), max),
            secs(86_400)
        );
        assert_eq!(honour_retry_after(secs(86_400), Some(secs(60)), max), secs(86_400));
        // A bound of zero ignores the header.
        assert_eq!(honour_retry_after(secs(10), Some(secs(120)), Duration::ZERO), secs(10));
    }
}
