//! `[control]`: where the control socket (`clusterns ctl`) listens (optional).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::error::{ConfigError, ConfigText};

/// The longest socket path a Unix socket address holds (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The path the Debian package configures (systemd's `RuntimeDirectory=clusterns`).
pub const PACKAGE_SOCKET: &str = "/run/clusterns/clusterns.sock";

/// `[control]`: the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// The socket's path (relative paths in the file are resolved against its directory).
    pub socket: PathBuf,
    /// The line that sets it, for messages about it.
    pub line: usize,
}

/// `[control]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    socket: Spanned<PathBuf>,
}

/// Checks `[control]` (none: no control socket) and resolves its path against `base_dir`.
pub(super) fn validate(
    raw: Option<RawControl>,
    base_dir: &Path,
    at: &ConfigText<'_>,
) -> Result<Option<ControlConfig>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let span = raw.socket.span();
    let line = at.line(span.start);
    let written = raw.socket.into_inner();
    let err = |message: String| at.err(Some(span.clone()), message);
    let text = written.to_string_lossy();
    if text.is_empty() {
        return Err(err(format!(
            "control.socket is empty: name a socket file (the package uses {PACKAGE_SOCKET})"
        )));
    }
    if text.ends_with('/') {
        return Err(err(format!(
            "control.socket {text:?} names a directory: name a file in it"
        )));
    }
    let socket = base_dir.join(&written);
    let len = socket.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(err(format!(
            "control.socket {} is {len} bytes long; a Unix socket path holds at most \
             {MAX_SOCKET_PATH}",
            socket.display()
        )));
    }
    Ok(Some(ControlConfig { socket, line }))
}
