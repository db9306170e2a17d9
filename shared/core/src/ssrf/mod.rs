//! The SSRF guard: which endpoint URLs and which addresses Switchyard may
//! call.
//!
//! A webhook URL is chosen by a tenant, so without a guard a tenant could
//! make Switchyard call into its own network: the instance metadata service
//! (`169.254.169.254`), loopback services, private subnets. The guard runs
//! twice:
//!
//! 1. [`check_url`] when an endpoint is registered and again before each
//!    attempt: the scheme must be `https` (unless the policy allows `http`),
//!    an IP-literal host must be a global address, and `localhost` names are
//!    refused. Other domain names pass here.
//! 2. [`check_ip`] at connect time, on every address a domain name resolves
//!    to. The HTTP client connects only to the addresses that pass, so the
//!    address checked is the address connected to and DNS rebinding (a name
//!    that resolves to a public address at registration and to a private one
//!    later) fails.
//!
//! # What is refused
//!
//! [`classify`] refuses every address that is not globally reachable unicast;
//! [`Blocked`] names the range. Addresses that embed an IPv4 address:
//!
//! - IPv4-mapped (`::ffff:0:0/96`) and IPv4-compatible (`::/96`) addresses are
//!   always refused, whatever they embed: a resolver never needs to return
//!   them, and on a dual-stack socket they reach the embedded IPv4 address.
//! - NAT64 with the well-known prefix (`64:ff9b::/96`) is classified by the
//!   embedded IPv4 address: allowed when it is global, refused as
//!   [`Blocked::Nat64`] otherwise. IPv6-only networks with DNS64 (such as
//!   IPv6-only AWS subnets) reach every IPv4-only endpoint this way.
//!   Local-use NAT64 prefixes (`64:ff9b:1::/48`) embed addresses in an
//!   operator-defined way and are always refused.
//! - 6to4 (`2002::/16`) and Teredo (`2001::/32`) are deprecated transition
//!   mechanisms relayed through third parties; they are always refused.
//!
//! The allow-list ([`SsrfPolicy::allow`]) exists for tests and local mode: an
//! address inside one of its blocks is allowed whatever its range. Blocks
//! match their own address family only: `127.0.0.0/8` does not allow
//! `::ffff:127.0.0.1`.
//!
//! `ranges` holds the address ranges and [`classify`]; `checks` the
//! policy and the URL and address checks. Every item is re-exported here:
//! callers name `ssrf::X`.

mod checks;
mod ranges;

pub use checks::{IpNet, IpNetError, SsrfError, SsrfPolicy, check_ip, check_registration, check_url};
pub use ranges::{Blocked, classify};
