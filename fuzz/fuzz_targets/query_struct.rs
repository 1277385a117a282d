//! Structure-aware fuzzing of the packet path: the input is decoded with `arbitrary` into a
//! query (ID, flags, opcode, a name made of labels from the snapshot's vocabulary under one of
//! its zones, in random case, a type, a class, optional EDNS with options, and now and then a
//! defect), encoded to wire bytes and run through the same checks as the `packet` target
//! (`clusterns_fuzz::check`, over UDP and TCP), so that the fuzzer spends its time in
//! `resolve` and `encode` rather than in the header parser.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// Labels the snapshot knows (apps, users, slugs, hosts, zones) and a few it does not.
#[derive(Debug, Clone, Copy, Arbitrary)]
enum Word {
    Coolgame,
    Mark,
    Site,
    Ann,
    Wide,
    Huge,
    Lost,
    Zed,
    Notes,
    Blog,
    Bob,
    R0,
    R1,
    R2,
    R3,
    R7,
    R8,
    R9,
    Uuid,
    S63,
    U63,
    Ns1,
    Ns2,
    Infra,
    Acme,
    Repl,
    Co,
    Dev,
    Sub,
    X,
    Www,
    Star,
    Nobody,
}

impl Word {
    fn text(self) -> String {
        match self {
            Word::Coolgame => "coolgame".into(),
            Word::Mark => "mark".into(),
            Word::Site => "site".into(),
            Word::Ann => "ann".into(),
            Word::Wide => "wide".into(),
            Word::Huge => "huge".into(),
            Word::Lost => "lost".into(),
            Word::Zed => "zed".into(),
            Word::Notes => "notes".into(),
            Word::Blog => "blog".into(),
            Word::Bob => "bob".into(),
            Word::R0 => "r0".into(),
            Word::R1 => "r1".into(),
            Word::R2 => "r2".into(),
            Word::R3 => "r3".into(),
            Word::R7 => "r7".into(),
            Word::R8 => "r8".into(),
            Word::R9 => "r9".into(),
            Word::Uuid => clusterns_fuzz::UUID.into(),
            Word::S63 => "s".repeat(63),
            Word::U63 => "u".repeat(63),
            Word::Ns1 => "ns1".into(),
            Word::Ns2 => "ns2".into(),
            Word::Infra => "infra".into(),
            Word::Acme => "_acme-challenge".into(),
            Word::Repl => "repl".into(),
            Word::Co => "co".into(),
            Word::Dev => "dev".into(),
            Word::Sub => "sub".into(),
            Word::X => "x".into(),
            Word::Www => "www".into(),
            Word::Star => "*".into(),
            Word::Nobody => "nobody".into(),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Label {
    Word(Word),
    /// Any bytes (cut to 63).
    Raw(Vec<u8>),
    /// `n` (mod 64) times `a`: long names.
    Long(u8),
}

/// The zone the name ends in.
#[derive(Debug, Arbitrary)]
enum Zone {
    ReplCo,
    SubReplCo,
    ReplDev,
    XCo,
    /// Outside every zone.
    ExampleCom,
    /// Only the labels.
    None,
}

#[derive(Debug, Arbitrary)]
enum QType {
    A,
    Aaaa,
    Any,
    Txt,
    Mx,
    Ns,
    Soa,
    Caa,
    Cname,
    Axfr,
    Ixfr,
    Opt,
    Maila,
    Tkey,
    Tsig,
    Other(u16),
}

impl QType {
    fn code(&self) -> u16 {
        match self {
            QType::A => 1,
            QType::Aaaa => 28,
            QType::Any => 255,
            QType::Txt => 16,
            QType::Mx => 15,
            QType::Ns => 2,
            QType::Soa => 6,
            QType::Caa => 257,
            QType::Cname => 5,
            QType::Axfr => 252,
            QType::Ixfr => 251,
            QType::Opt => 41,
            QType::Maila => 254,
            QType::Tkey => 249,
            QType::Tsig => 250,
            QType::Other(t) => *t,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum QClass {
    In,
    Ch,
    Hs,
    Any,
    Other(u16),
}

#[derive(Debug, Arbitrary)]
struct EdnsOption {
    code: u16,
    data: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct Edns {
    udp_size: u16,
    /// Mostly 0; other versions get BADVERS.
    version: Option<u8>,
    dnssec_ok: bool,
    ext_rcode: u8,
    /// The other flag bits (Z).
    z: u16,
    options: Vec<EdnsOption>,
}

/// A defect to put in an otherwise well-formed query.
#[derive(Debug, Arbitrary)]
enum Defect {
    /// A second OPT record.
    TwoOpt,
    /// An OPT whose owner is not the root.
    OptOwner,
    /// A record before the OPT in the additional section.
    RecordBeforeOpt,
    /// Bytes after the last record.
    Trailing(Vec<u8>),
    /// Another question count.
    QdCount(u16),
    /// A compression pointer in place of the question's zone.
    Pointer(u8),
    /// The OPT's RDLENGTH one more than its data.
    OptLen,
}

#[derive(Debug, Arbitrary)]
struct Query {
    id: u16,
    rd: bool,
    cd: bool,
    ad: bool,
    aa: bool,
    tc: bool,
    z: bool,
    /// None: QUERY.
    opcode: Option<u8>,
    labels: Vec<Label>,
    zone: Zone,
    /// Bit i upper-cases the i-th letter of the name.
    case: u64,
    qtype: QType,
    /// None: IN.
    qclass: Option<QClass>,
    edns: Option<Edns>,
    /// None: no defect.
    defect: Option<Defect>,
}

fn opt_record(e: &Edns, owner: &[u8]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for o in &e.options {
        let data = &o.data[..o.data.len().min(512)];
        rdata.extend_from_slice(&o.code.to_be_bytes());
        rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let mut r = owner.to_vec();
    r.extend_from_slice(&41u16.to_be_bytes());
    r.extend_from_slice(&e.udp_size.to_be_bytes());
    r.push(e.ext_rcode);
    r.push(e.version.unwrap_or(0));
    let flags = (u16::from(e.dnssec_ok) << 15) | (e.z & 0x7fff);
    r.extend_from_slice(&flags.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(&rdata);
    r
}

impl Query {
    fn encode(&self) -> Vec<u8> {
        let mut name = Vec::new();
        let mut letter = 0;
        let zone: &[&str] = match self.zone {
            Zone::ReplCo => &["repl", "co"],
            Zone::SubReplCo => &["sub", "repl", "co"],
            Zone::ReplDev => &["repl", "dev"],
            Zone::XCo => &["x", "co"],
            Zone::ExampleCom => &["example", "com"],
            Zone::None => &[],
        };
        let texts = self
            .labels
            .iter()
            .take(8)
            .map(|l| match l {
                Label::Word(w) => w.text().into_bytes(),
                Label::Raw(b) => b[..b.len().min(63)].to_vec(),
                Label::Long(n) => vec![b'a'; usize::from(n % 64)],
            })
            .chain(zone.iter().map(|z| z.as_bytes().to_vec()));
        for text in texts {
            if text.is_empty() {
                continue;
            }
            name.push(text.len() as u8);
            for mut b in text {
                if b.is_ascii_lowercase() {
                    if self.case >> (letter % 64) & 1 == 1 {
                        b.make_ascii_uppercase();
                    }
                    letter += 1;
                }
                name.push(b);
            }
        }
        name.push(0);

        let opcode = self.opcode.unwrap_or(0) & 0x0f;
        let b2 =
            (opcode << 3) | u8::from(self.aa) << 2 | u8::from(self.tc) << 1 | u8::from(self.rd);
        let b3 = u8::from(self.z) << 6 | u8::from(self.ad) << 5 | u8::from(self.cd) << 4;
        let qclass = match &self.qclass {
            None | Some(QClass::In) => 1,
            Some(QClass::Ch) => 3,
            Some(QClass::Hs) => 4,
            Some(QClass::Any) => 255,
            Some(QClass::Other(c)) => *c,
        };
        let mut additional = Vec::new();
        let mut arcount = 0u16;
        if let Some(e) = &self.edns {
            if matches!(self.defect, Some(Defect::RecordBeforeOpt)) {
                // A TXT record owned by the root.
                additional.extend_from_slice(&[0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 1, b'x']);
                arcount += 1;
            }
            let owner: &[u8] = if matches!(self.defect, Some(Defect::OptOwner)) {
                b"\x01x\x00"
            } else {
                b"\x00"
            };
            let mut opt = opt_record(e, owner);
            if matches!(self.defect, Some(Defect::OptLen)) {
                // RDLENGTH one more than the data.
                let at = owner.len() + 8;
                let len = u16::from_be_bytes([opt[at], opt[at + 1]]).wrapping_add(1);
                opt[at..at + 2].copy_from_slice(&len.to_be_bytes());
            }
            additional.extend_from_slice(&opt);
            arcount += 1;
            if matches!(self.defect, Some(Defect::TwoOpt)) {
                additional.extend_from_slice(&opt_record(e, b"\x00"));
                arcount += 1;
            }
        }
        let qdcount = match self.defect {
            Some(Defect::QdCount(n)) => n,
            _ => 1,
        };
        let mut pkt = self.id.to_be_bytes().to_vec();
        pkt.extend_from_slice(&[b2, b3]);
        pkt.extend_from_slice(&qdcount.to_be_bytes());
        pkt.extend_from_slice(&[0, 0, 0, 0]);
        pkt.extend_from_slice(&arcount.to_be_bytes());
        match self.defect {
            Some(Defect::Pointer(p)) => {
                // The first label, then a pointer.
                let first = usize::from(name[0]) + 1;
                pkt.extend_from_slice(&name[..first.min(name.len() - 1)]);
                pkt.extend_from_slice(&[0xc0, p]);
            }
            _ => pkt.extend_from_slice(&name),
        }
        pkt.extend_from_slice(&self.qtype.code().to_be_bytes());
        pkt.extend_from_slice(&qclass.to_be_bytes());
        pkt.extend_from_slice(&additional);
        if let Some(Defect::Trailing(t)) = &self.defect {
            pkt.extend_from_slice(&t[..t.len().min(64)]);
        }
        pkt
    }
}

fuzz_target!(|q: Query| {
    clusterns_fuzz::check_packet(&q.encode());
});
