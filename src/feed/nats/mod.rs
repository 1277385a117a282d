//! The NATS JetStream fan-out: relays publish the ordered change stream of the source of
//! truth to a JetStream stream (and table snapshots to an object store); edges follow it
//! with `feed.source = "nats"`. This module holds what both sides share: the message format
//! ([`message`]), the client plumbing ([`client`]) and the snapshots ([`snapshot`]); and the relay itself
//! ([`relay`], [`lease`]).

pub mod client;
pub mod lease;
pub mod message;
pub mod relay;
pub mod snapshot;
