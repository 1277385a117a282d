//! A message in dig's presentation form, for `clusterns lookup`: the header line with
//! `status:`, lower-case flags, questions as `;name. IN TYPE`, the OPT pseudo-section, and
//! each record in zone-file form (`domain`'s), under the section headings dig prints.

use std::fmt::Write;

use domain::base::zonefile_fmt::{DisplayKind, ZonefileFmt};
use domain::base::{Message, ParsedRecord};
use domain::rdata::AllRecordData;

/// The text dig prints for `msg` (without its own comment lines about the transfer).
pub fn dig_style(msg: &Message<[u8]>) -> String {
    let mut s = String::new();
    let h = msg.header();
    let counts = msg.header_counts();
    let flags: Vec<&str> = [
        (h.qr(), "qr"),
        (h.aa(), "aa"),
        (h.tc(), "tc"),
        (h.rd(), "rd"),
        (h.ra(), "ra"),
        (h.ad(), "ad"),
        (h.cd(), "cd"),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .map(|(_, name)| *name)
    .collect();
    let _ = writeln!(
        s,
        ";; ->>HEADER<<- opcode: {}, status: {}, id: {}",
        h.opcode().display_zonefile(DisplayKind::Simple),
        msg.opt_rcode(),
        h.id()
    );
    let _ = writeln!(
        s,
        ";; flags: {}; QUERY: {}, ANSWER: {}, AUTHORITY: {}, ADDITIONAL: {}",
        flags.join(" "),
        counts.qdcount(),
        counts.ancount(),
        counts.nscount(),
        counts.arcount()
    );
    if let Some(opt) = msg.opt() {
        let _ = writeln!(s, "\n;; OPT PSEUDOSECTION:");
        let _ = writeln!(
            s,
            "; EDNS: version: {}, flags:{}; udp: {}",
            opt.version(),
            if opt.dnssec_ok() { " do" } else { "" },
            opt.udp_payload_size()
        );
    }
    let mut questions = msg.question();
    let _ = writeln!(s, "\n;; QUESTION SECTION:");
    for q in &mut questions {
        match q {
            Ok(q) => {
                let _ = writeln!(s, ";{}.\t\t{}\t{}", q.qname(), q.qclass(), q.qtype());
            }
            Err(_) => {
                s.push_str("; <invalid message>\n");
                return s;
            }
        }
    }
    let Ok(mut section) = questions.answer() else {
        s.push_str("; <invalid message>\n");
        return s;
    };
    for (title, count) in [
        ("ANSWER", counts.ancount()),
        ("AUTHORITY", counts.nscount()),
        ("ADDITIONAL", counts.arcount()),
    ] {
        let mut heading = false;
        for record in &mut section {
            let Ok(record) = record else {
                s.push_str("; <invalid message>\n");
                return s;
            };
            if record.rtype() == domain::base::iana::Rtype::OPT {
                continue;
            }
            if !heading && count > 0 {
                let _ = writeln!(s, "\n;; {title} SECTION:");
                heading = true;
            }
            record_line(&mut s, &record);
        }
        match section.next_section() {
            Ok(Some(next)) => section = next,
            _ => break,
        }
    }
    s
}

/// One TXT character-string as dig prints it: in double quotes, `"` and `\` escaped with a
/// backslash, bytes outside printable ASCII as `\DDD`.
pub fn txt_quoted(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for &b in value {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

fn record_line(s: &mut String, record: &ParsedRecord<'_, [u8]>) {
    match record.to_any_record::<AllRecordData<_, _>>() {
        Ok(r) => {
            let _ = writeln!(s, "{}", r.display_zonefile(DisplayKind::Simple));
        }
        Err(_) => {
            let _ = writeln!(
                s,
                "; {}. {} {} {} <invalid data>",
                record.owner(),
                record.ttl().as_secs(),
                record.class(),
                record.rtype()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_values_are_quoted_as_dig_does() {
        assert_eq!(txt_quoted(b"abc"), "\"abc\"");
        assert_eq!(txt_quoted(b"a\"b\\c\n\xff"), "\"a\\\"b\\\\c\\010\\255\"");
    }

    #[test]
    fn prints_what_dig_prints() {
        let snap = crate::testkit::snapshot();
        let mut q = domain::base::MessageBuilder::new_vec().question();
        q.header_mut().set_id(7);
        let name =
            domain::base::Name::<Vec<u8>>::from_chars("coolgame.mark.repl.co".chars()).unwrap();
        q.push((&name, domain::base::iana::Rtype::A)).unwrap();
        let query = q.finish();
        let mut out = vec![0u8; 65535];
        let r = crate::query::respond(snap, &query, &mut out, crate::query::Transport::Tcp);
        let text = dig_style(Message::from_slice(&out[..r.len]).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 7"
        );
        assert_eq!(
            lines[1],
            ";; flags: qr aa; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 0"
        );
        assert!(
            text.contains(";; QUESTION SECTION:\n;coolgame.mark.repl.co.\t\tIN\tA\n"),
            "{text}"
        );
        assert!(
            text.contains(";; ANSWER SECTION:\ncoolgame.mark.repl.co. 60 IN A 203.0.113.1\n"),
            "{text}"
        );
    }
}
