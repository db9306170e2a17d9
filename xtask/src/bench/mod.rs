//! The benchmarks, one module each, sharing one set of statistics:
//!
//! - `init` (`cargo xtask bench-init`): the release binaries' zipped size
//!   and cold-init time per function;
//! - `delivery` (`cargo xtask bench-delivery`): the delivery engine against
//!   the raw HTTP client, CPU per delivery, slow-endpoint isolation;
//! - `cost` (`cargo xtask bench-cost`): AWS requests per delivery counted on
//!   the local stack, and the cost per million deliveries;
//! - `stats`: percentiles, medians and the number formats they all print.

pub(crate) mod cost;
pub(crate) mod delivery;
pub(crate) mod init;
pub(crate) mod stats;
