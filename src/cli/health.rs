//! `clusterns health`: the checker. Probes the configured clusters' addresses and writes its
//! reports (state changes, lease renewals) to the source of truth; `--dry-run` prints them as
//! journal lines instead, `--once` probes once and prints what it found.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::feed::change::{Change, Sequenced};
use clusterns::feed::writer::ReportWriter;
use clusterns::health::checker::metrics::MetricsEndpoint;
use clusterns::health::checker::probe::ProbeResult;
use clusterns::health::checker::run::Checker;
use clusterns::health::checker::ReportSink;
use clusterns::health::report::HealthReport;
use clusterns::health::view::AddrState;

/// `clusterns health`: runs until SIGTERM or SIGINT (`--once`: one round).
pub(crate) fn health(config_path: PathBuf, once: bool, dry_run: bool) -> Result<(), String> {
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let mut checker = Checker::new(&config)?;
    if once {
        let mut out = std::io::stdout().lock();
        for o in checker.once()? {
            let state = match o.state {
                AddrState::Up => "up",
                AddrState::Down => "down",
                AddrState::Unknown => "unknown",
            };
            let probe = match &o.probe {
                Some(ProbeResult::Up) => String::new(),
                Some(ProbeResult::Down(why)) => format!(" ({why})"),
                None => " (no answer in time)".into(),
            };
            writeln!(out, "{} {} {state}{probe}", o.cluster, o.addr)
                .map_err(|e| format!("stdout: {e}"))?;
        }
        return Ok(());
    }
    let mut sink: Box<dyn ReportSink> = if dry_run {
        Box::new(PrintSink {
            out: std::io::stdout(),
            seq: 0,
        })
    } else {
        open_sink(&config)?
    };
    let _endpoint = match config.health.metrics {
        Some(addr) => Some(
            MetricsEndpoint::start(addr, checker.metrics().clone())
                .map_err(|e| format!("health metrics on {addr}: {e}"))?,
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| format!("installing the signal handler: {e}"))?;
    }
    checker.run(sink.as_mut(), &stop)
}

/// The writer to the configured source of truth (journal or PostgreSQL), through
/// `feed::writer`. A source that cannot be opened now (PostgreSQL down) is reported and tried
/// again at the next round's write: the checker keeps probing, and its reports stay due.
fn open_sink(config: &Config) -> Result<Box<dyn ReportSink>, String> {
    let writer = match ReportWriter::open(config) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("the feed cannot be written yet (will retry): {e}");
            None
        }
    };
    Ok(Box::new(FeedSink {
        config: config.clone(),
        writer,
    }))
}

/// Reports written to the feed, its writer opened when first needed.
struct FeedSink {
    config: Config,
    writer: Option<ReportWriter>,
}

impl ReportSink for FeedSink {
    fn write(&mut self, reports: &[HealthReport]) -> Result<(), String> {
        let writer = match &mut self.writer {
            Some(w) => w,
            None => self.writer.insert(ReportWriter::open(&self.config)?),
        };
        writer.write(reports)
    }
}

/// `--dry-run`: each report printed as the journal line it would be,
/// `<seq> health <checker> <cluster> <address> up|down <until>`, numbered from 1.
struct PrintSink<W> {
    out: W,
    seq: u64,
}

impl<W: Write + Send> ReportSink for PrintSink<W> {
    fn write(&mut self, reports: &[HealthReport]) -> Result<(), String> {
        for r in reports {
            self.seq += 1;
            let line = Sequenced {
                seq: self.seq,
                change: Change::Health(r.clone()),
            };
            writeln!(self.out, "{line}").map_err(|e| format!("stdout: {e}"))?;
        }
        self.out.flush().map_err(|e| format!("stdout: {e}"))
    }
}
