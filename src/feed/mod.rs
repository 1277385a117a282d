//! Change feeds and the builder thread that turns them into published snapshots.

pub mod acme;
pub(crate) mod batch;
pub(crate) mod builder;
pub mod change;
pub mod checkpoint;
pub mod compact;
pub(crate) mod durable;
pub mod fold;
pub mod journal;
pub mod nats;
pub mod postgres;
pub(crate) mod source;
pub(crate) mod status;
pub(crate) mod watch;
pub mod writer;

pub use builder::{Builder, BuilderHandle};
pub use change::{Change, Sequenced};
