//! The receiver's `Retry-After` header: parsing it (delay-seconds or an
//! HTTP-date, the latter read by the `httpdate` crate) and bounding how far
//! it may push the next attempt back.

use std::time::Duration;
use time::OffsetDateTime;

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
///   accept, as the `httpdate` crate reads them: IMF-fixdate
///   (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
///   (`Sunday, 06-Nov-94 08:49:37 GMT`, a two-digit year meaning 1970 to
///   2069) and asctime (`Sun Nov  6 08:49:37 1994`): the time until then,
///   or zero for a date not in the future. Names are matched with their
///   case as RFC 9110 writes them, the weekday must be the date's, and the
///   year must be 1970 to 9999.
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
    let date = OffsetDateTime::from(httpdate::parse_http_date(value).ok()?);
    let ahead = date - now;
    Some(if ahead.is_positive() {
        ahead.unsigned_abs()
    } else {
        Duration::ZERO
    })
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
        assert_eq!(parse_retry_after("  Sun, 06 Nov 1994 08:49:37 GMT\t", now), two_min);
        // Names keep RFC 9110's case, and the weekday must be the date's.
        assert_eq!(parse_retry_after("  sun, 06 nov 1994 08:49:37 gmt\t", now), None);
        assert_eq!(parse_retry_after("Mon, 06 Nov 1994 08:49:37 GMT", now), None);
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
    fn rfc_850_two_digit_years_are_1970_to_2069() {
        let now = at("2026-06-01T00:00:00Z");
        assert_eq!(parse_retry_after("Monday, 01-Jun-26 00:01:00 GMT", now), Some(secs(60)));
        assert!(parse_retry_after("Saturday, 01-Jun-69 00:00:00 GMT", now).unwrap() > secs(42 * 365 * 86_400));
        // 70 and above are the 1900s: in the past.
        assert_eq!(
            parse_retry_after("Tuesday, 01-Jun-76 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
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
    fn retry_after_dates_before_1970_are_ignored() {
        let now = at("2026-01-01T00:00:00Z");
        // httpdate holds 1970 to 9999; an earlier date leaves the policy's
        // delay, as a past date does.
        assert_eq!(parse_retry_after("Wed, 31 Dec 1969 23:59:59 GMT", now), None);
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now),
            Some(secs(253_402_300_799 - 1_767_225_600))
        );
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
