//! EventBridge schedule expressions: `rate(5 minutes)` and
//! `cron(minutes hours day-of-month month day-of-week year)` in UTC, with
//! `*`, `?`, lists, ranges and steps (`0/15`, `MON-FRI`, `JAN,JUL`). The
//! `L`, `W` and `#` forms are refused rather than misread.

use std::time::Duration;
use time::OffsetDateTime;

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// `rate(n unit)`: every `n` units.
    Rate(Duration),
    /// `cron(...)`: at the matching minutes, in UTC.
    Cron(Box<Cron>),
}

/// The fields of a `cron(...)` expression, each expanded to the values it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u8>,
    hours: Vec<u8>,
    days: Option<Vec<u8>>,
    months: Vec<u8>,
    /// 1 = Sunday .. 7 = Saturday, as in EventBridge.
    weekdays: Option<Vec<u8>>,
    years: Option<Vec<u16>>,
}

/// Why a schedule expression cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Neither `rate(...)` nor `cron(...)`.
    #[error("expected rate(...) or cron(...)")]
    Form,
    /// `rate(...)` without a value and a unit.
    #[error("rate(<n> <unit>) expected")]
    RateForm,
    /// A rate value that is not a whole number.
    #[error("rate: {0:?} is not a whole number")]
    RateNumber(String),
    /// `rate(0 ...)`.
    #[error("rate: the value must be positive")]
    RateZero,
    /// A rate unit EventBridge does not take (or the wrong number for it).
    #[error("rate: unit {0:?} (minute(s), hour(s), day(s); singular only for 1)")]
    RateUnit(String),
    /// A cron expression without its six fields.
    #[error("cron needs six fields: minutes hours day-of-month month day-of-week year")]
    CronFields,
    /// Both or neither of day-of-month and day-of-week given.
    #[error("cron: exactly one of day-of-month and day-of-week must be '?'")]
    CronDays,
    /// `L`, `W` or `#`, which the local runner does not fire.
    #[error("cron field {0:?}: L, W and # are not supported locally")]
    CronUnsupported(String),
    /// A step that is not a positive number.
    #[error("cron step {0:?}")]
    CronStep(String),
    /// A value outside its field's range.
    #[error("cron field {part:?} outside {lo}-{hi}")]
    CronRange {
        /// The part of the field.
        part: String,
        /// The field's least value.
        lo: u16,
        /// The field's greatest value.
        hi: u16,
    },
    /// A value that is not a number (nor a name of its field).
    #[error("cron value {0:?} is not a number")]
    CronNumber(String),
}

impl Expression {
    /// Reads `rate(...)` or `cron(...)` (surrounding spaces ignored).
    pub fn parse(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if let Some(inner) = s.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            let (n, unit) = inner.trim().split_once(' ').ok_or(Error::RateForm)?;
            let n: u64 = n.parse().map_err(|_| Error::RateNumber(n.to_string()))?;
            if n == 0 {
                return Err(Error::RateZero);
            }
            let secs = match (unit.trim(), n) {
                ("minute", 1) | ("minutes", 2..) => 60,
                ("hour", 1) | ("hours", 2..) => 3600,
                ("day", 1) | ("days", 2..) => 86_400,
                (u, _) => {
                    return Err(Error::RateUnit(u.to_string()));
                }
            };
            return Ok(Self::Rate(Duration::from_secs(n * secs)));
        }
        if let Some(inner) = s.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
            let f: Vec<&str> = inner.split_whitespace().collect();
            if f.len() != 6 {
                return Err(Error::CronFields);
            }
            let days = optional(f[2], 1, 31, &[])?;
            let weekdays = optional(f[4], 1, 7, &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])?;
            if days.is_some() == weekdays.is_some() {
                return Err(Error::CronDays);
            }
            let months = field(
                f[3],
                1,
                12,
                &[
                    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
                ],
            )?;
            let years = if f[5] == "*" {
                None
            } else {
                Some(field16(f[5], 1970, 2199)?)
            };
            return Ok(Self::Cron(Box::new(Cron {
                minutes: field(f[0], 0, 59, &[])?,
                hours: field(f[1], 0, 23, &[])?,
                days,
                months,
                weekdays,
                years,
            })));
        }
        Err(Error::Form)
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        match self {
            Self::Rate(d) => Some(after + *d),
            Self::Cron(c) => c.next_after(after),
        }
    }
}

impl Cron {
    fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut t = after.replace_second(0).ok()?.replace_nanosecond(0).ok()? + time::Duration::minutes(1);
        // Walk minute by minute, skipping whole days and hours that cannot
        // match; bounded to about five years.
        let limit = after + time::Duration::days(5 * 366);
        while t <= limit {
            let day_ok = self.months.contains(&(t.month() as u8))
                && self.years.as_ref().is_none_or(|y| y.contains(&(t.year() as u16)))
                && self.days.as_ref().is_none_or(|d| d.contains(&t.day()))
                && self
                    .weekdays
                    .as_ref()
                    .is_none_or(|w| w.contains(&(t.weekday().number_days_from_sunday() + 1)));
            if !day_ok {
                t = (t + time::Duration::days(1))
                    .replace_hour(0)
                    .ok()?
                    .replace_minute(0)
                    .ok()?;
                continue;
            }
            if !self.hours.contains(&t.hour()) {
                t = (t + time::Duration::hours(1)).replace_minute(0).ok()?;
                continue;
            }
            if self.minutes.contains(&t.minute()) {
                return Some(t);
            }
            t += time::Duration::minutes(1);
        }
        None
    }
}

fn optional(f: &str, lo: u8, hi: u8, names: &[&str]) -> Result<Option<Vec<u8>>, Error> {
    if f == "?" {
        Ok(None)
    } else {
        field(f, lo, hi, names).map(Some)
    }
}

fn field(f: &str, lo: u8, hi: u8, names: &[&str]) -> Result<Vec<u8>, Error> {
    field16(f, lo as u16, hi as u16)
        .or_else(|e| {
            if names.is_empty() {
                return Err(e);
            }
            let mut replaced = f.to_uppercase();
            for (i, n) in names.iter().enumerate() {
                replaced = replaced.replace(n, &(i as u16 + lo as u16).to_string());
            }
            field16(&replaced, lo as u16, hi as u16)
        })
        .map(|v| v.into_iter().map(|x| x as u8).collect())
}

fn field16(f: &str, lo: u16, hi: u16) -> Result<Vec<u16>, Error> {
    if f.contains(['L', 'W', '#']) {
        return Err(Error::CronUnsupported(f.to_string()));
    }
    let mut out = Vec::new();
    for part in f.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u16>().map_err(|_| Error::CronStep(s.to_string()))?),
            None => (part, 1),
        };
        if step == 0 {
            return Err(Error::CronStep("0".into()));
        }
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None if part.contains('/') => (num(r)?, hi),
                None => (num(r)?, num(r)?),
            },
        };
        if a < lo || b > hi || a > b {
            return Err(Error::CronRange {
                part: part.to_string(),
                lo,
                hi,
            });
        }
        out.extend((a..=b).step_by(step as usize));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn num(s: &str) -> Result<u16, Error> {
    s.parse().map_err(|_| Error::CronNumber(s.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn rates() {
        assert_eq!(
            Expression::parse("rate(1 minute)").unwrap(),
            Expression::Rate(Duration::from_secs(60))
        );
        assert_eq!(
            Expression::parse("rate(5 minutes)").unwrap(),
            Expression::Rate(Duration::from_secs(300))
        );
        assert_eq!(
            Expression::parse("rate(2 hours)").unwrap(),
            Expression::Rate(Duration::from_secs(7200))
        );
        assert_eq!(
            Expression::parse("rate(1 minutes)"),
            Err(Error::RateUnit("minutes".into()))
        );
        assert_eq!(Expression::parse("rate(0 minutes)"), Err(Error::RateZero));
        assert_eq!(Expression::parse("rate(5 weeks)"), Err(Error::RateUnit("weeks".into())));
        assert_eq!(Expression::parse("every 5 minutes"), Err(Error::Form));
    }

    #[test]
    fn cron_next_firings() {
        let e = Expression::parse("cron(0/15 * * * ? *)").unwrap();
        assert_eq!(
            e.next_after(datetime!(2026-11-29 10:07:30 UTC)),
            Some(datetime!(2026-11-29 10:15 UTC))
        );
        assert_eq!(
            e.next_after(datetime!(2026-11-29 10:15 UTC)),
            Some(datetime!(2026-11-29 10:30 UTC))
        );
        // 2026-11-29 is a Sunday: next weekday 09:00 is Monday.
        let e = Expression::parse("cron(0 9 ? * MON-FRI *)").unwrap();
        assert_eq!(
            e.next_after(datetime!(2026-11-29 10:00 UTC)),
            Some(datetime!(2026-11-30 09:00 UTC))
        );
        let e = Expression::parse("cron(30 2 1 JAN,JUL ? *)").unwrap();
        assert_eq!(
            e.next_after(datetime!(2026-11-29 10:00 UTC)),
            Some(datetime!(2027-01-01 02:30 UTC))
        );
        let e = Expression::parse("cron(0 0 ? * 1 2027)").unwrap(); // Sundays of 2027
        assert_eq!(
            e.next_after(datetime!(2026-11-29 10:00 UTC)),
            Some(datetime!(2027-01-03 00:00 UTC))
        );
    }

    #[test]
    fn cron_refuses_what_it_cannot_read() {
        for bad in [
            "cron(0 9 * * * *)",   // both days given
            "cron(0 9 ? * ? *)",   // neither
            "cron(0 9 L * ? *)",   // last day
            "cron(0 9 ? * 2#1 *)", // nth weekday
            "cron(61 9 * * ? *)",
            "cron(0 9 * *)",
        ] {
            assert!(Expression::parse(bad).is_err(), "{bad}");
        }
    }
}
