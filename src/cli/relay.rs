//! `clusterns relay`: publishes the source of truth's change stream to NATS JetStream (see
//! `feed::nats::relay`), with its Prometheus endpoint, until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::feed::nats::relay;
use clusterns::metrics::relay::{RelayEndpoint, RelayMetrics};

/// `clusterns relay`: runs until SIGTERM or SIGINT (`--once`: publishes what the source holds
/// now, puts a snapshot, exits).
pub(crate) fn relay(config_path: PathBuf, once: bool) -> Result<(), String> {
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let metrics = Arc::new(RelayMetrics::default());
    let _endpoint = match config.relay.metrics {
        Some(addr) => Some(
            RelayEndpoint::start(addr, metrics.clone())
                .map_err(|e| format!("relay metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("installing the signal handler: {e}"))?;
    }
    relay::run(Arc::new(config), once, stop, metrics)
}
