//! DNSSEC online signing: keys and their files (`key`), the shared validity windows
//! (`window`), RRSIG and compact-denial NSEC records (`rrsig`, `nsec`), a zone's signing
//! keys and key records (`zone`), and each worker's signer with its cache and miss limit
//! (`cache`, `sign`). The query layer (`query::signed`) signs a reply when the query has DO
//! and its zone has keys.

pub mod cache;
pub mod key;
pub mod nsec;
pub mod rrsig;
pub mod sign;
pub mod window;
pub mod zone;
