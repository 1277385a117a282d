//! DNSSEC online signing.
pub mod cache;
pub mod key;
pub mod nsec;
pub mod rrsig;
pub mod sign;
pub mod window;
pub mod zone;
