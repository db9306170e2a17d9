//! What a receiver's HTTP status means for a delivery: delivered, gone
//! (disable the endpoint), or retry, with or without honouring
//! `Retry-After`.

/// What a receiver's HTTP status means for the delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 410 Gone: the receiver wants no more; disable the endpoint and end
    /// the delivery.
    Gone,
    /// Any other status: try again per the endpoint's policy.
    /// `retry_after_allowed` says whether the response's `Retry-After` may
    /// push the next attempt back (429, 502, 503, 504).
    Retry {
        /// Whether a `Retry-After` may set the delay.
        retry_after_allowed: bool,
    },
}

/// Judges a receiver's status code. 2xx is delivered; 410 is gone; 429, 502,
/// 503 and 504 are retried honouring `Retry-After`; every other status is
/// retried per policy without it: 3xx (redirects are never followed), other
/// 4xx and 5xx, and anything outside 200..=599.
///
/// Transport errors (timeouts, refused or reset connections) have no status;
/// the caller retries them per policy, like
/// `Verdict::Retry { retry_after_allowed: false }`.
pub fn judge(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        410 => Verdict::Gone,
        429 | 502 | 503 | 504 => Verdict::Retry {
            retry_after_allowed: true,
        },
        _ => Verdict::Retry {
            retry_after_allowed: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_judged_as_designed() {
        let retry = |allowed| Verdict::Retry {
            retry_after_allowed: allowed,
        };
        let cases = [
            (200, Verdict::Delivered),
            (201, Verdict::Delivered),
            (204, Verdict::Delivered),
            (299, Verdict::Delivered),
            (301, retry(false)),
            (302, retry(false)),
            (304, retry(false)),
            (307, retry(false)),
            (400, retry(false)),
            (401, retry(false)),
            (403, retry(false)),
            (404, retry(false)),
            (408, retry(false)),
            (409, retry(false)),
            (410, Verdict::Gone),
            (413, retry(false)),
            (429, retry(true)),
            (500, retry(false)),
            (501, retry(false)),
            (502, retry(true)),
            (503, retry(true)),
            (504, retry(true)),
            (505, retry(false)),
            (0, retry(false)),
            (100, retry(false)),
            (199, retry(false)),
            (300, retry(false)),
            (600, retry(false)),
            (u16::MAX, retry(false)),
        ];
        for (status, verdict) in cases {
            assert_eq!(judge(status), verdict, "{status}");
        }
    }
}
