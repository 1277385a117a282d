//! Change feeds and the builder thread that turns them into published snapshots.

pub mod batch;
pub mod builder;
pub mod change;
pub mod checkpoint;
pub mod compact;
pub mod durable;
pub mod fold;
pub mod journal;
pub mod postgres;
pub mod source;
pub mod status;
pub mod watch;

pub use builder::{Builder, BuilderHandle};
pub use change::{Change, Sequenced};
