//! `[server.rrl]`: response rate limiting for UDP (applied by `server::rrl`).

use serde::Deserialize;

/// `[rrl]` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RrlConfig {
    /// Responses per second allowed per client network and class (0: off).
    #[serde(default)]
    pub rate: u32,
    /// Every `slip`-th limited response is sent truncated; 0: drop them all.
    #[serde(default = "default_slip")]
    pub slip: u32,
    #[serde(default = "default_v4")]
    pub ipv4_prefix: u8,
    #[serde(default = "default_v6")]
    pub ipv6_prefix: u8,
    /// Buckets per worker (a power of two is not required).
    #[serde(default = "default_table")]
    pub table_size: usize,
}

fn default_slip() -> u32 {
    2
}
fn default_v4() -> u8 {
    24
}
fn default_v6() -> u8 {
    56
}
fn default_table() -> usize {
    65_536
}

impl Default for RrlConfig {
    fn default() -> Self {
        RrlConfig {
            rate: 0,
            slip: default_slip(),
            ipv4_prefix: default_v4(),
            ipv6_prefix: default_v6(),
            table_size: default_table(),
        }
    }
}
