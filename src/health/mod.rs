//! Load-balancer health: what checkers report about the clusters' addresses, the state every
//! edge derives from the reports (quorum, leases), and the answer policy that turns a
//! cluster's configuration and that state into its answers (priority groups, weights,
//! failover, the TTL while degraded).

pub mod answer;
pub mod checker;
pub mod pick;
pub mod report;
pub mod view;
