//! Where log lines go and in what form: to stderr, filtered by `CLUSTERNS_LOG` (tracing's
//! env-filter syntax, `info` by default), as
//! - `text`: plain lines, coloured only when stderr is a terminal;
//! - `journald`: each line prefixed with its syslog priority (`<3>` error, `<4>` warn,
//!   `<6>` info, `<7>` debug and trace) and no timestamp, which journald reads from a
//!   service's stderr (sd-daemon(3)); the default when stderr is the journal
//!   (`$JOURNAL_STREAM` names it);
//! - `json`: one JSON object per line, for log shippers.
//!
//! `CLUSTERNS_LOG_FORMAT=text|journald|json` chooses one.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The forms of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Journald,
    Json,
}

impl Format {
    /// The form `CLUSTERNS_LOG_FORMAT` names, else journald's when stderr is the journal, else
    /// text. An unknown name is text, with a warning once logging runs.
    fn chosen() -> (Format, Option<String>) {
        match std::env::var("CLUSTERNS_LOG_FORMAT").as_deref() {
            Ok("text") => (Format::Text, None),
            Ok("journald") => (Format::Journald, None),
            Ok("json") => (Format::Json, None),
            Ok(other) => (
                Format::Text,
                Some(format!(
                    "CLUSTERNS_LOG_FORMAT={other:?} is not text, journald or json: using text"
                )),
            ),
            Err(_) if stderr_is_the_journal() => (Format::Journald, None),
            Err(_) => (Format::Text, None),
        }
    }
}

/// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM` is
/// `<device>:<inode>` of that stream (systemd.exec(5)).
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream == format!("{}:{}", meta.dev(), meta.ino())
}

/// Prefixes each line with its syslog priority, for journald.
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let priority = match *event.metadata().level() {
            Level::ERROR => 3,
            Level::WARN => 4,
            Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Starts logging to stderr; returns the form chosen.
pub fn init() -> Format {
    let filter =
        || EnvFilter::try_from_env("CLUSTERNS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let (format, complaint) = Format::chosen();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr);
    match format {
        Format::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        Format::Journald => builder
            .with_ansi(false)
            .without_time()
            .event_format(Priority(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_ansi(false),
            ))
            .init(),
        Format::Json => builder.json().with_ansi(false).init(),
    }
    if let Some(c) = complaint {
        tracing::warn!("{c}");
    }
    format
}
