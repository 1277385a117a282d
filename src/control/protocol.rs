//! The control protocol, version 1: framing and parsing of requests (untrusted bytes from the
//! socket) and of reply lines. Pure: no I/O, so every split, oversize and garbage case is a
//! unit test and a fuzz target (`fuzz/fuzz_targets/control.rs`).
//!
//! One request per connection over a Unix stream socket:
//!
//! ```text
//! request  = "clusterns-ctl/1" 1*(SP word) LF      ; at most MAX_REQUEST bytes, LF included
//! word     = 1*127(%x21-7E)                         ; printable ASCII, no space
//! reply    = *(body) status                         ; then the server closes
//! body     = "+" text LF                            ; text: UTF-8 without control characters
//! status   = ("ok" / "error" SP text) LF
//! ```
//!
//! Spaces between words may repeat; a CR before the LF is allowed; what follows the LF is never
//! read. Commands: `status`, `stats`, `reload`, `checkpoint`, `app <id-or-name>`,
//! `apps <user>`, `dump`. A reply that ends without a status line was cut off (the server
//! died, or a timeout), which the client reports as such. Later versions change the version
//! number; every version answers a request it cannot read with an `error` status line.

use std::fmt;

/// What every request starts with: the protocol and its version.
pub const MAGIC: &str = "clusterns-ctl/1";

/// The longest request, its newline included.
pub const MAX_REQUEST: usize = 512;

/// The longest word of a request (a `slug.user` name: two labels and the dot).
pub const MAX_WORD: usize = 127;

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Version, configuration, feed, snapshot, reload and uptime.
    Status,
    /// The query counters.
    Stats,
    /// Reload the configuration file (as SIGHUP does).
    Reload,
    /// Write a checkpoint now.
    Checkpoint,
    /// One app, by repl id or `slug.user` name (or a user's apps, by user name).
    App(String),
    /// Every app of a user.
    Apps(String),
    /// Every app, in the journal's line format.
    Dump,
}

impl Request {
    /// The request line (with its newline), as the client sends it.
    pub fn to_line(&self) -> String {
        match self {
            Request::Status => format!("{MAGIC} status\n"),
            Request::Stats => format!("{MAGIC} stats\n"),
            Request::Reload => format!("{MAGIC} reload\n"),
            Request::Checkpoint => format!("{MAGIC} checkpoint\n"),
            Request::App(x) => format!("{MAGIC} app {x}\n"),
            Request::Apps(u) => format!("{MAGIC} apps {u}\n"),
            Request::Dump => format!("{MAGIC} dump\n"),
        }
    }
}

/// Why a request cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Longer than [`MAX_REQUEST`] without a newline.
    TooLong,
    /// The connection ended before the newline.
    Incomplete,
    /// No newline within the time allowed.
    Timeout,
    /// A byte that is not printable ASCII, a space or the final CR, at this offset.
    NotText(usize),
    /// The line does not start with [`MAGIC`]; what it starts with instead.
    NotControl(String),
    /// Another version of the protocol.
    Version(String),
    Empty,
    UnknownCommand(String),
    MissingArgument(&'static str),
    ExtraArgument(String),
    WordTooLong,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLong => write!(f, "request longer than {MAX_REQUEST} bytes"),
            RequestError::Incomplete => write!(f, "request not ended by a newline"),
            RequestError::Timeout => write!(f, "no complete request in time"),
            RequestError::NotText(at) => {
                write!(f, "request byte {at} is not printable ASCII")
            }
            RequestError::NotControl(w) => {
                write!(f, "not a control request (expected {MAGIC:?}, got {w:?})")
            }
            RequestError::Version(w) => write!(
                f,
                "unsupported protocol {w:?}: this server speaks {MAGIC:?} (client and server \
                 versions differ?)"
            ),
            RequestError::Empty => write!(f, "no command"),
            RequestError::UnknownCommand(c) => write!(
                f,
                "unknown command {c:?} (status, stats, reload, checkpoint, app, apps, dump)"
            ),
            RequestError::MissingArgument(what) => write!(f, "missing {what}"),
            RequestError::ExtraArgument(w) => write!(f, "unexpected argument {w:?}"),
            RequestError::WordTooLong => write!(f, "a word longer than {MAX_WORD} bytes"),
        }
    }
}

/// Where the request line is in what was received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No newline yet, and room for more.
    Incomplete,
    /// The line is `buf[..len]` (the newline left out).
    Line(usize),
    /// [`MAX_REQUEST`] bytes without a newline.
    TooLong,
}

/// Finds the request line in the bytes received so far.
pub fn frame(received: &[u8]) -> Framing {
    let window = &received[..received.len().min(MAX_REQUEST)];
    match window.iter().position(|&b| b == b'\n') {
        Some(len) => Framing::Line(len),
        None if received.len() >= MAX_REQUEST => Framing::TooLong,
        None => Framing::Incomplete,
    }
}

/// Parses a request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() >= MAX_REQUEST {
        return Err(RequestError::TooLong);
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(at) = line.iter().position(|&b| !(0x20..0x7f).contains(&b)) {
        return Err(RequestError::NotText(at));
    }
    // Printable ASCII: valid UTF-8.
    let text = std::str::from_utf8(line).map_err(|e| RequestError::NotText(e.valid_up_to()))?;
    let mut words = text.split(' ').filter(|w| !w.is_empty());
    match words.next() {
        Some(MAGIC) => {}
        Some(w) if w.starts_with("clusterns-ctl/") => {
            return Err(RequestError::Version(clip(w)));
        }
        Some(w) => return Err(RequestError::NotControl(clip(w))),
        None => return Err(RequestError::Empty),
    }
    let words: Vec<&str> = words.collect();
    if words.iter().any(|w| w.len() > MAX_WORD) {
        return Err(RequestError::WordTooLong);
    }
    let (command, args) = match words.split_first() {
        Some((c, a)) => (*c, a),
        None => return Err(RequestError::Empty),
    };
    let one = |what: &'static str| -> Result<String, RequestError> {
        match args {
            [] => Err(RequestError::MissingArgument(what)),
            [a] => Ok((*a).to_string()),
            [_, extra, ..] => Err(RequestError::ExtraArgument((*extra).to_string())),
        }
    };
    let none = |r: Request| match args.first() {
        None => Ok(r),
        Some(extra) => Err(RequestError::ExtraArgument((*extra).to_string())),
    };
    match command {
        "status" => none(Request::Status),
        "stats" => none(Request::Stats),
        "reload" => none(Request::Reload),
        "checkpoint" => none(Request::Checkpoint),
        "dump" => none(Request::Dump),
        "app" => one("repl id or name").map(Request::App),
        "apps" => one("user").map(Request::Apps),
        other => Err(RequestError::UnknownCommand(other.to_string())),
    }
}

/// At most [`MAX_WORD`] bytes of a word, for a message.
fn clip(w: &str) -> String {
    w.chars().take(MAX_WORD).collect()
}

/// One line of a reply (without its newline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyLine<'a> {
    Body(&'a str),
    Ok,
    Error(&'a str),
}

/// Reads one reply line (without its newline).
pub fn parse_reply_line(line: &str) -> Result<ReplyLine<'_>, String> {
    if let Some(text) = line.strip_prefix('+') {
        return Ok(ReplyLine::Body(text));
    }
    if line == "ok" {
        return Ok(ReplyLine::Ok);
    }
    if let Some(message) = line.strip_prefix("error ") {
        return Ok(ReplyLine::Error(message));
    }
    Err(format!(
        "not a control reply line: {:?}",
        line.chars().take(80).collect::<String>()
    ))
}

/// `text` with every control character (a newline among them) made a space: one line.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A body line carrying `text`, with its newline.
pub fn body_line(text: &str) -> String {
    format!("+{}\n", one_line(text))
}

/// The status line of a failure carrying `message`, with its newline.
pub fn error_line(message: &str) -> String {
    let m = one_line(message);
    format!("error {}\n", if m.is_empty() { "failed" } else { &m })
}

/// The status line of a success, with its newline.
pub const OK_LINE: &str = "ok\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Request, RequestError> {
        parse_request(text.as_bytes())
    }

    #[test]
    fn every_request_parses_back_from_its_line() {
        for r in [
            Request::Status,
            Request::Stats,
            Request::Reload,
            Request::Checkpoint,
            Request::Dump,
            Request::App("r-one".into()),
            Request::App("coolgame.mark".into()),
            Request::Apps("mark".into()),
        ] {
            let line = r.to_line();
            assert!(line.len() <= MAX_REQUEST);
            assert_eq!(frame(line.as_bytes()), Framing::Line(line.len() - 1));
            assert_eq!(parse(line.trim_end_matches('\n')), Ok(r));
        }
    }

    #[test]
    fn spaces_and_a_final_cr_are_allowed() {
        assert_eq!(
            parse("clusterns-ctl/1   app   r-one  \r"),
            Ok(Request::App("r-one".into()))
        );
        assert_eq!(parse(" clusterns-ctl/1 status"), Ok(Request::Status));
    }

    #[test]
    fn a_request_split_anywhere_is_framed_once_complete() {
        let line = Request::App("coolgame.mark".into()).to_line();
        let bytes = line.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(frame(&bytes[..cut]), Framing::Incomplete, "cut at {cut}");
        }
        assert_eq!(frame(bytes), Framing::Line(bytes.len() - 1));
        // What follows the newline is not part of the request.
        let mut two = bytes.to_vec();
        two.extend_from_slice(b"clusterns-ctl/1 reload\n");
        assert_eq!(frame(&two), Framing::Line(bytes.len() - 1));
    }

    #[test]
    fn oversized_requests_are_refused_at_the_limit() {
        let long = vec![b'a'; MAX_REQUEST - 1];
        assert_eq!(frame(&long), Framing::Incomplete, "one byte left for LF");
        let mut ends = long.clone();
        ends.push(b'\n');
        assert_eq!(frame(&ends), Framing::Line(MAX_REQUEST - 1));
        let full = vec![b'a'; MAX_REQUEST];
        assert_eq!(frame(&full), Framing::TooLong);
        let mut late = vec![b'a'; MAX_REQUEST];
        late.push(b'\n');
        assert_eq!(frame(&late), Framing::TooLong, "the newline came too late");
        assert_eq!(parse_request(&full), Err(RequestError::TooLong));
        let word = format!("{MAGIC} app {}", "x".repeat(MAX_WORD + 1));
        assert_eq!(parse(&word), Err(RequestError::WordTooLong));
        let word = format!("{MAGIC} app {}", "x".repeat(MAX_WORD));
        assert_eq!(parse(&word), Ok(Request::App("x".repeat(MAX_WORD))));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert_eq!(parse(""), Err(RequestError::Empty));
        assert_eq!(parse("   "), Err(RequestError::Empty));
        assert_eq!(parse(MAGIC), Err(RequestError::Empty));
        assert_eq!(
            parse("GET / HTTP/1.0"),
            Err(RequestError::NotControl("GET".into()))
        );
        assert_eq!(
            parse("clusterns-ctl/2 status"),
            Err(RequestError::Version("clusterns-ctl/2".into()))
        );
        assert_eq!(
            parse(&format!("{MAGIC} stauts")),
            Err(RequestError::UnknownCommand("stauts".into()))
        );
        assert_eq!(
            parse(&format!("{MAGIC} STATUS")),
            Err(RequestError::UnknownCommand("STATUS".into())),
            "commands are lower-case"
        );
        assert_eq!(
            parse(&format!("{MAGIC} app")),
            Err(RequestError::MissingArgument("repl id or name"))
        );
        assert_eq!(
            parse(&format!("{MAGIC} apps")),
            Err(RequestError::MissingArgument("user"))
        );
        assert_eq!(
            parse(&format!("{MAGIC} app a b")),
            Err(RequestError::ExtraArgument("b".into()))
        );
        assert_eq!(
            parse(&format!("{MAGIC} dump now")),
            Err(RequestError::ExtraArgument("now".into()))
        );
        for bad in [
            &b"clusterns-ctl/1 status\0"[..],
            b"clusterns-ctl/1\tstatus",
            b"clusterns-ctl/1 app \xc3\xa9",
            b"\xff\xfe",
            b"clusterns-ctl/1 status\r\r",
        ] {
            assert!(
                matches!(parse_request(bad), Err(RequestError::NotText(_))),
                "{bad:?}"
            );
        }
        // Messages stay one short line whatever the input.
        let e = parse(&format!("{} x", "y".repeat(400))).unwrap_err();
        assert!(e.to_string().len() < 200, "{e}");
    }

    #[test]
    fn reply_lines_are_told_apart() {
        assert_eq!(parse_reply_line("+apps: 3"), Ok(ReplyLine::Body("apps: 3")));
        assert_eq!(parse_reply_line("+"), Ok(ReplyLine::Body("")));
        assert_eq!(parse_reply_line("ok"), Ok(ReplyLine::Ok));
        assert_eq!(
            parse_reply_line("error no such app"),
            Ok(ReplyLine::Error("no such app"))
        );
        assert!(parse_reply_line("okay").is_err());
        assert!(parse_reply_line("error").is_err());
        assert!(parse_reply_line("").is_err());
        assert_eq!(body_line("a\nb\tc"), "+a b c\n");
        assert_eq!(error_line("x:1: bad\nthing"), "error x:1: bad thing\n");
        assert_eq!(error_line(""), "error failed\n");
        let e = error_line("two\nlines");
        assert_eq!(
            parse_reply_line(e.trim_end_matches('\n')),
            Ok(ReplyLine::Error("two lines"))
        );
    }
}
