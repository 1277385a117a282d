//! clusterns: a cluster-aware authoritative DNS responder.
//!
//! The query path is `query::respond` (decode, resolve, encode) over an immutable
//! [`snapshot::Snapshot`]; `server` runs it on sockets, `feed` keeps the snapshot current.

pub mod config;
pub mod control;
pub mod dnssec;
pub mod feed;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod name;
pub mod os;
pub mod prefetch;
pub mod privs;
pub mod query;
pub mod resolve;
pub mod server;
pub mod snapshot;
#[cfg(any(test, feature = "synth"))]
pub mod synth;
pub mod table;
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub mod testkit;
pub mod update;
pub mod wire;
pub mod zone;
