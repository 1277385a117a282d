//! `clusterns ctl`: one request to a running server's control socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clusterns::control::protocol::Request;

use crate::cli::args::*;

/// `clusterns ctl`: one request to the running server; its body lines go to stdout as they
/// come; an error reply is this command's error.
pub(crate) fn ctl(
    config: &Path,
    socket: Option<PathBuf>,
    timeout: u64,
    action: CtlAction,
) -> Result<(), String> {
    let socket = match socket {
        Some(s) => s,
        None => clusterns::control::client::socket_of_config(config)?,
    };
    let request = match action {
        CtlAction::Status => Request::Status,
        CtlAction::Stats => Request::Stats,
        CtlAction::Reload => Request::Reload,
        CtlAction::Checkpoint => Request::Checkpoint,
        CtlAction::App { name } => Request::App(name),
        CtlAction::Apps { user } => Request::Apps(user),
        CtlAction::Dump => Request::Dump,
    };
    // What the server would refuse is refused here, with the same words.
    let line = request.to_line();
    clusterns::control::protocol::parse_request(line.trim_end().as_bytes())
        .map_err(|e| format!("cannot ask that: {e}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    clusterns::control::client::request(
        &socket,
        &config.display().to_string(),
        &request,
        Duration::from_secs(timeout.max(1)),
        &mut out,
    )
}
