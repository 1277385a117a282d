//! The commands of the `clusterns` binary, one module each; `args` is the command line.

pub(crate) mod acme;
pub(crate) mod args;
pub(crate) mod check;
pub(crate) mod ctl;
pub(crate) mod dnssec;
pub(crate) mod health;
pub(crate) mod lookup;
pub(crate) mod relay;
pub(crate) mod repl;
pub(crate) mod serve;
