//! The functions' log subscriber.
//!
//! Like `lambda_runtime::tracing::init_default_subscriber` (level from
//! `AWS_LAMBDA_LOG_LEVEL`, then `RUST_LOG`, else INFO; JSON when
//! `AWS_LAMBDA_LOG_FORMAT` is `JSON`), but a JSON line carries its spans
//! once: the span list (function, then Lambda's request id and trace id),
//! without repeating the innermost span beside it. That repetition was a
//! third of every line, and CloudWatch Logs bills every byte ingested.

use tracing_subscriber::filter::{EnvFilter, LevelFilter};

/// Installs the subscriber; a second call changes nothing.
pub fn init() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let builder = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(level.into())
                .from_env_lossy(),
        );
    let _ = if json {
        builder.json().with_current_span(false).with_span_list(true).try_init()
    } else {
        builder.try_init()
    };
}
