//! DNSSEC: signing keys and their files (`key`); online signing builds on them.

pub mod key;
