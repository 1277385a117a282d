//! The `clusterns ctl` side: finds the socket (from `--socket`, or the configuration's
//! `[control]`), sends one request, copies the body lines out as they come and tells success
//! from an error reply and from a reply cut off.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{parse_reply_line, ReplyLine, Request};

/// The socket the configuration at `config` names (`[control] socket`, relative to the file's
/// directory). Only that key is read, so that `ctl reload` reaches the server (which says
/// what is wrong) even when the rest of the file does not validate.
pub fn socket_of_config(config: &Path) -> Result<PathBuf, String> {
    let shown = config.display();
    let text = std::fs::read_to_string(config)
        .map_err(|e| format!("{shown}: cannot read: {e} (or pass --socket)"))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(String::new(), |s| {
            format!("{}:", crate::config::line_of(&text, s.start))
        });
        format!(
            "{shown}:{line} {} (the control socket's path cannot be read from it; pass --socket)",
            e.message().trim_end()
        )
    })?;
    let socket = table
        .get("control")
        .and_then(|c| c.get("socket"))
        .and_then(|s| s.as_str())
        .ok_or_else(|| {
            format!(
                "{shown} sets no control socket: add `[control]` with `socket = \"{}\"` and \
                 restart the server, or pass --socket",
                crate::config::PACKAGE_SOCKET
            )
        })?;
    let dir = config.parent().unwrap_or_else(|| Path::new(""));
    Ok(dir.join(socket))
}

/// Sends `request` to the server at `socket`, writes the body lines of its reply to `out` as
/// they come, and returns `Err` with the server's message for an error reply, or with what
/// went wrong (`config_hint`: where the socket was taken from, for the messages).
pub fn request(
    socket: &Path,
    config_hint: &str,
    request: &Request,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), String> {
    let shown = socket.display();
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!(
            "no control socket at {shown}: is the server running? is [control] socket set in \
             {config_hint}?"
        ),
        io::ErrorKind::ConnectionRefused => format!(
            "nothing answers on {shown}: is the server running? (the socket is left from one \
             that stopped)"
        ),
        io::ErrorKind::PermissionDenied => {
            format!("{shown}: permission denied: run as root or as a member of the server's group")
        }
        _ => format!("{shown}: {e}"),
    })?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{shown}: {e}"))?;
    (&stream)
        .write_all(request.to_line().as_bytes())
        .map_err(|e| format!("{shown}: sending the request: {e}"))?;
    read_reply(BufReader::new(&stream), timeout, out)
}

/// Reads a reply to its status line.
fn read_reply(
    mut reader: impl BufRead,
    timeout: Duration,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) => {
                return Err(
                    "the reply was cut off before its status line (the server stopped?)".into(),
                )
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "no reply within {} s (the server is busy or stuck?)",
                    timeout.as_secs()
                ))
            }
            Err(e) => return Err(format!("reading the reply: {e}")),
        }
        let Some(text) = line.strip_suffix('\n') else {
            return Err("the reply was cut off in a line (the server stopped?)".into());
        };
        match parse_reply_line(text)? {
            ReplyLine::Body(b) => {
                writeln!(out, "{b}").map_err(|e| format!("writing the reply: {e}"))?;
            }
            ReplyLine::Ok => return out.flush().map_err(|e| format!("writing the reply: {e}")),
            ReplyLine::Error(m) => {
                let _ = out.flush();
                return Err(m.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(reply: &str) -> (String, Result<(), String>) {
        let mut out = Vec::new();
        let r = read_reply(reply.as_bytes(), Duration::from_secs(1), &mut out);
        (String::from_utf8(out).unwrap(), r)
    }

    #[test]
    fn success_failure_and_truncation_are_told_apart() {
        assert_eq!(read("+a\n+b\nok\n"), ("a\nb\n".into(), Ok(())));
        assert_eq!(
            read("+a\nerror c.toml:3: bad\n"),
            ("a\n".into(), Err("c.toml:3: bad".into()))
        );
        let (out, r) = read("+a\n+b\n");
        assert_eq!(out, "a\nb\n");
        assert!(r.unwrap_err().contains("cut off before its status line"));
        assert!(read("+a\nok").1.unwrap_err().contains("cut off in a line"));
        assert!(read("").1.unwrap_err().contains("cut off"));
        assert!(read("HTTP/1.0 200 OK\n")
            .1
            .unwrap_err()
            .contains("not a control reply"));
        // Nothing after the status line is read.
        assert_eq!(read("ok\n+late\n"), (String::new(), Ok(())));
    }

    #[test]
    fn the_socket_is_found_in_the_config_even_when_the_rest_is_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c.toml");
        std::fs::write(
            &c,
            "[server]\nbogus = 1\n[control]\nsocket = \"run/ctl.sock\"\n",
        )
        .unwrap();
        assert_eq!(socket_of_config(&c), Ok(dir.path().join("run/ctl.sock")));
        std::fs::write(&c, "[server]\n").unwrap();
        assert!(socket_of_config(&c)
            .unwrap_err()
            .contains("sets no control socket"));
        std::fs::write(&c, "[server]\n[server\n").unwrap();
        let e = socket_of_config(&c).unwrap_err();
        assert!(e.contains("c.toml:2: ") && e.contains("--socket"), "{e}");
        let e = request(
            &dir.path().join("none.sock"),
            "c.toml",
            &Request::Status,
            Duration::from_secs(1),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(
            e.contains("is the server running? is [control] socket set in c.toml?"),
            "{e}"
        );
    }
}
