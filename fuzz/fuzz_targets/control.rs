//! Fuzzes the control protocol (`clusterns::control::protocol`): arbitrary bytes as what a
//! client sends on the control socket, framed as the server reads it, then parsed; and the
//! same bytes as reply lines the client reads.
//!
//! Checks that nothing panics and that
//! - framing is the same whichever way the bytes arrive: every prefix frames as "incomplete"
//!   until the newline (or the size limit) is reached and as the same line from then on, and
//!   a line is never longer than `MAX_REQUEST`;
//! - a request that parses prints back (`Request::to_line`) to a line that frames whole and
//!   parses to the same request;
//! - an error is one short line (it goes into an `error` status line);
//! - reply lines: every body or error line the server can write parses back to what it carries.

#![no_main]

use clusterns::control::protocol::{
    body_line, error_line, frame, one_line, parse_reply_line, parse_request, Framing, ReplyLine,
    MAX_REQUEST,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let whole = frame(data);
    for len in 0..=data.len().min(MAX_REQUEST + 1) {
        let part = frame(&data[..len]);
        match whole {
            Framing::Line(n) if len > n => assert_eq!(part, Framing::Line(n), "prefix {len}"),
            Framing::TooLong if len >= MAX_REQUEST => assert_eq!(part, Framing::TooLong),
            _ => assert_eq!(part, Framing::Incomplete, "prefix {len} of {whole:?}"),
        }
    }
    if let Framing::Line(n) = whole {
        assert!(n < MAX_REQUEST);
        match parse_request(&data[..n]) {
            Ok(r) => {
                let line = r.to_line();
                assert_eq!(frame(line.as_bytes()), Framing::Line(line.len() - 1));
                assert_eq!(parse_request(&line.as_bytes()[..line.len() - 1]), Ok(r));
            }
            Err(e) => {
                let m = e.to_string();
                assert!(m.len() < 400 && !m.contains('\n'), "{m:?}");
            }
        }
    }
    // Any bytes as a request line, framing aside.
    if let Err(e) = parse_request(data) {
        assert!(!e.to_string().contains('\n'));
    }
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let _ = parse_reply_line(line);
        let body = body_line(line);
        assert_eq!(body.matches('\n').count(), 1);
        assert_eq!(
            parse_reply_line(body.trim_end_matches('\n')),
            Ok(ReplyLine::Body(&one_line(line)))
        );
        let err = error_line(line);
        assert_eq!(err.matches('\n').count(), 1);
        assert!(matches!(
            parse_reply_line(err.trim_end_matches('\n')),
            Ok(ReplyLine::Error(_))
        ));
    }
});
