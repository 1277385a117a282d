//! Key rollover on the running binary, without a restart: keys made with `clusterns dnssec
//! keygen`, listed in the config, switched by editing the config and sending SIGHUP. At each
//! step the DNSKEY set, the CDS set and which key signs are checked, and every signature is
//! verified with hickory-proto's validator against the DNSKEY set the server publishes. A
//! reload with a key file others may read is refused and the running keys go on signing.
//! `clusterns lookup --dnssec` prints a signed answer offline.

mod common;

use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_proto::rr::dnssec::Verifier;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use common::*;

fn keygen(dir: &Path, file: &str, role: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .current_dir(dir)
        .args([
            "dnssec", "keygen", "--zone", "repl.co", "--role", role, "--out", file,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The key tags are read back from the DNSKEY set the server serves.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("IN DNSKEY"), "{text}");
    let key = std::fs::read_to_string(dir.join(file)).unwrap();
    assert!(key.contains("private_key"));
}

fn write_config(dir: &Path, keys: &[(&str, &str)]) {
    let mut text = config_text("");
    let zone_end = "soa = { rname = \"hostmaster.repl.co\" }\n";
    let mut list = String::new();
    for (file, state) in keys {
        list.push_str(&format!(
            "[[zone.dnssec.key]]\nfile = \"{file}\"\nstate = \"{state}\"\n"
        ));
    }
    text = text.replacen(zone_end, &format!("{zone_end}{list}"), 1);
    std::fs::write(dir.join("clusterns.toml"), text).unwrap();
}

fn ask(addr: std::net::SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new();
    m.set_id(7)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut e = Edns::new();
    e.set_max_payload(4096);
    e.set_dnssec_ok(true);
    m.set_edns(e);
    let mut s = tcp_connect(addr);
    tcp_send(&mut s, &m.to_vec().unwrap());
    tcp_read(&mut s).unwrap()
}

fn of<T: Clone>(m: &Message, f: impl Fn(&RData) -> Option<&T>) -> Vec<T> {
    m.answers()
        .iter()
        .filter_map(|r| r.data().and_then(&f).cloned())
        .collect()
}

fn dnskeys(m: &Message) -> Vec<DNSKEY> {
    of(m, |d| match d {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    })
}

fn sigs(m: &Message) -> Vec<RRSIG> {
    of(m, |d| match d {
        RData::DNSSEC(DNSSECRData::RRSIG(s)) => Some(s),
        _ => None,
    })
}

/// The key tags of the DNSKEY set, of the CDS set, and of the keys signing an app's answer
/// and the DNSKEY set; every signature verified against the published DNSKEY set.
fn state(addr: std::net::SocketAddr) -> (Vec<u16>, Vec<u16>, Vec<u16>, Vec<u16>) {
    let keys_msg = ask(addr, "repl.co.", RecordType::DNSKEY);
    let keys = dnskeys(&keys_msg);
    let mut tags: Vec<u16> = keys
        .iter()
        .map(|k| k.calculate_key_tag().unwrap())
        .collect();
    tags.sort();
    let cds = ask(addr, "repl.co.", RecordType::CDS);
    let mut cds_tags: Vec<u16> = cds
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::DNSSEC(DNSSECRData::CDS(c))) => Some(c.key_tag()),
            _ => None,
        })
        .collect();
    cds_tags.sort();
    let verify = |m: &Message, t: RecordType| -> Vec<u16> {
        let set: Vec<Record> = m
            .answers()
            .iter()
            .filter(|r| r.record_type() == t)
            .cloned()
            .collect();
        assert!(!set.is_empty(), "{t} answer: {m}");
        let mut signers = Vec::new();
        for sig in sigs(m) {
            let key = keys
                .iter()
                .find(|k| k.calculate_key_tag().unwrap() == sig.key_tag())
                .unwrap_or_else(|| panic!("signed by {}, not in DNSKEY {tags:?}", sig.key_tag()));
            key.verify_rrsig(set[0].name(), DNSClass::IN, &sig, &set)
                .unwrap_or_else(|e| panic!("{t}: {e}"));
            signers.push(sig.key_tag());
        }
        signers.sort();
        signers
    };
    let app = verify(
        &ask(addr, "coolgame.mark.repl.co.", RecordType::A),
        RecordType::A,
    );
    let dnskey = verify(&keys_msg, RecordType::DNSKEY);
    (tags, cds_tags, app, dnskey)
}

#[test]
fn a_csk_rolls_over_by_reload_and_a_bad_key_file_is_refused() {
    let s = setup("");
    let dir = s.dir.path();
    keygen(dir, "old.key", "csk");
    keygen(dir, "new.key", "csk");
    write_config(dir, &[("old.key", "active")]);
    let log = dir.join("server.log");
    let child = spawn_binary_logged(&s.config_path, false, Some(&log));
    let addr = child.addr;
    let (tags, cds, app, dnskey) = state(addr);
    assert_eq!(tags.len(), 1);
    let old = tags[0];
    assert_eq!(
        (cds.clone(), app.clone(), dnskey.clone()),
        (vec![old], vec![old], vec![old])
    );

    type State = (Vec<u16>, Vec<u16>, Vec<u16>, Vec<u16>);
    let reload = |keys: &[(&str, &str)], done: &dyn Fn(&State) -> bool| {
        write_config(dir, keys);
        child.signal(libc::SIGHUP);
        assert!(
            wait_for(Duration::from_secs(5), || done(&state(addr))),
            "{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        state(addr)
    };
    // 1. Pre-publish: the new key is in DNSKEY and CDS, signs nothing.
    let (tags, cds, app, dnskey) =
        reload(&[("old.key", "active"), ("new.key", "published")], &|s| {
            s.0.len() == 2
        });
    let new = *tags.iter().find(|t| **t != old).unwrap();
    assert_eq!(cds.len(), 2);
    assert_eq!((app, dnskey), (vec![old], vec![old]));
    // 2. Switch: the new key signs; the old one stays in DNSKEY, leaves CDS.
    let (tags, cds, app, dnskey) = reload(&[("old.key", "retired"), ("new.key", "active")], &|s| {
        s.2 == vec![new]
    });
    assert_eq!(tags.len(), 2);
    assert_eq!((cds, app, dnskey), (vec![new], vec![new], vec![new]));
    // A reload with a key file others may read is refused; the running keys go on.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("new.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    write_config(dir, &[("new.key", "active")]);
    child.signal(libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("chmod 600")
    }));
    let (tags, _, app, _) = state(addr);
    assert_eq!((tags.len(), app), (2, vec![new]));
    std::fs::set_permissions(dir.join("new.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // 3. Retire: the old key leaves.
    let (tags, cds, app, dnskey) = reload(&[("new.key", "active")], &|s| s.0.len() == 1);
    assert_eq!(
        (tags, cds, app, dnskey),
        (vec![new], vec![new], vec![new], vec![new])
    );
}

#[test]
fn lookup_prints_the_signed_answer() {
    let s = setup("");
    let dir = s.dir.path();
    keygen(dir, "k.key", "csk");
    write_config(dir, &[("k.key", "active")]);
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterns"))
            .args(["lookup", "--config", path_str(&s.config_path)])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let signed = run(&["--dnssec", "coolgame.mark.repl.co", "A"]);
    assert!(signed.contains("RRSIG"), "{signed}");
    assert!(signed.contains("203.0.113.1"), "{signed}");
    let plain = run(&["coolgame.mark.repl.co", "A"]);
    assert!(!plain.contains("RRSIG"), "{plain}");
    let denial = run(&["--dnssec", "nobody.repl.co", "A"]);
    assert!(denial.contains("NSEC"), "{denial}");
    assert!(denial.contains("NOERROR"), "{denial}");
}
