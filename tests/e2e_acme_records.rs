//! End-to-end: ACME challenge TXT records as data. The real binary serves a zone in
//! `acme = "txt"` mode; `clusterns acme add/remove/expire` write through the journal (and
//! PostgreSQL: a row in `acme_txt`), and the answers follow: TXT sets, ANY, NODATA, NXDOMAIN,
//! removal, expiry by the janitor, and a restart from the checkpoint.

mod common;
mod pg;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use common::*;

const NAME: &str = "_acme-challenge.coolgame.mark.repl.co";

/// The common config with `repl.co` answering challenges itself, a checkpoint, `[acme]`.
fn setup_txt() -> Setup {
    let s = setup("");
    let text = std::fs::read_to_string(&s.config_path).unwrap();
    let text = text.replace(
        "acme_validation_zone = \"acme.example.net\"",
        "acme_validation_zone = \"acme.example.net\"\nacme = \"txt\"",
    );
    let text = text.replace(
        "journal = \"journal.log\"",
        "journal = \"journal.log\"\ncheckpoint = \"table.ckpt\"",
    );
    std::fs::write(
        &s.config_path,
        format!("{text}\n[acme]\nttl_secs = 30\nmax_values_per_name = 3\n\n[metrics]\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    s
}

/// Runs `clusterns acme <args>`: (success, stdout, stderr).
fn acme(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .arg("acme")
        .args(args)
        .args(["--config", path_str(config)])
        .env("CLUSTERNS_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn acme_ok(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = acme(config, args);
    assert!(ok, "acme {args:?}: {err}");
    out
}

/// The TXT values of an answer, sorted.
fn txt_values(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::TXT(t)) => Some(
                t.txt_data()
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn waits_for_values(addr: std::net::SocketAddr, name: &str, want: &[&str]) -> bool {
    wait_for(Duration::from_secs(10), || {
        txt_values(&udp_ask(addr, name, RecordType::TXT)) == want
    })
}

#[test]
fn challenge_records_are_added_answered_removed_and_expired() {
    let s = setup_txt();
    let cfg = s.config_path.clone();
    let c = spawn_binary(&cfg, true);
    // Nothing yet: no such name (RFC 8020), with the SOA.
    let m = udp_ask(c.addr, NAME, RecordType::TXT);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);

    // Two values at once (a certificate for a name and its wildcard).
    let out = acme_ok(&cfg, &["add", NAME, "token-one"]);
    assert!(
        out.contains(" txt-add _acme-challenge.coolgame.mark.repl.co "),
        "{out}"
    );
    acme_ok(&cfg, &["add", NAME, "token-two", "--expires-in", "600"]);
    assert!(waits_for_values(c.addr, NAME, &["token-one", "token-two"]));
    let m = udp_ask(
        c.addr,
        "_ACME-Challenge.CoolGame.mark.repl.co",
        RecordType::TXT,
    );
    assert!(m.authoritative());
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().iter().all(|r| r.ttl() == 30), "[acme] ttl_secs");
    assert_eq!(
        m.answers()[0].name().to_ascii(),
        "_ACME-Challenge.CoolGame.mark.repl.co."
    );

    // ANY: the TXT set (RFC 8482); A: NODATA with the SOA.
    let m = udp_ask(c.addr, NAME, RecordType::ANY);
    assert_eq!(txt_values(&m), ["token-one", "token-two"]);
    let m = udp_ask(c.addr, NAME, RecordType::A);
    assert_eq!(m.response_code(), ResponseCode::NoError);
    assert!(m.answers().is_empty());
    assert_eq!(m.name_servers()[0].record_type(), RecordType::SOA);
    // An owner that exists but holds no record: NXDOMAIN.
    let m = udp_ask(c.addr, "_acme-challenge.site.ann.repl.co", RecordType::TXT);
    assert_eq!(m.response_code(), ResponseCode::NXDomain);

    // The list shows both, with their expiry.
    let list = acme_ok(&cfg, &["list"]);
    assert!(list.contains(&format!("{NAME}. \"token-one\" ")), "{list}");
    assert!(list.contains("\"token-two\""), "{list}");

    // Refused as the server would refuse them.
    for (args, needle) in [
        (
            vec!["add", "_acme-challenge.a.b.c.repl.co", "x"],
            "not the apex",
        ),
        (
            vec!["add", "_acme-challenge.example.com", "x"],
            "no configured zone",
        ),
        (vec!["add", "www.repl.co", "x"], "_acme-challenge"),
        (vec!["remove", NAME, "never-added"], "no such value"),
    ] {
        let (ok, _, err) = acme(&cfg, &args);
        assert!(!ok, "{args:?}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let long = "v".repeat(256);
    let (ok, _, err) = acme(&cfg, &["add", NAME, &long]);
    assert!(!ok && err.contains("max_value_len"), "{err}");
    acme_ok(&cfg, &["add", NAME, "token-three"]);
    let (ok, _, err) = acme(&cfg, &["add", NAME, "token-four"]);
    assert!(!ok && err.contains("max_values_per_name"), "{err}");

    // Lines written by hand that break the rules are skipped, logged and counted by reason;
    // the feed goes on.
    append_raw(
        &s.journal_path,
        "900 txt-add _acme-challenge.example.com 1 78\n\
         901 txt-add _acme-challenge.coolgame.mark.repl.co 1 7878\n",
    );
    let m = c.metrics.unwrap();
    assert!(wait_for(Duration::from_secs(10), || {
        let body = http_get(m, "/metrics");
        metric(
            &body,
            "clusterns_acme_changes_rejected_total",
            &["reason=\"acme_name\""],
        ) == 1.0
            && metric(
                &body,
                "clusterns_acme_changes_rejected_total",
                &["reason=\"acme_values_per_name\""],
            ) == 1.0
    }));
    let body = http_get(m, "/metrics");
    assert_eq!(metric(&body, "clusterns_acme_names", &[]), 1.0);
    assert_eq!(metric(&body, "clusterns_acme_values", &[]), 3.0);
    assert!(metric(&body, "clusterns_feed_changes_rejected_total", &[]) >= 2.0);

    // Removal of one value.
    acme_ok(&cfg, &["remove", NAME, "token-one"]);
    assert!(waits_for_values(
        c.addr,
        NAME,
        &["token-three", "token-two"]
    ));

    // Expiry: the janitor deletes what is due (token-three expires at once), through the
    // journal, and only that.
    acme_ok(&cfg, &["add", NAME, "token-three", "--expires-in", "0"]);
    let out = acme_ok(&cfg, &["expire"]);
    assert!(out.contains("txt-del"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(waits_for_values(c.addr, NAME, &["token-two"]));
    let journal = std::fs::read_to_string(&s.journal_path).unwrap();
    assert!(
        journal.contains(" txt-del _acme-challenge.coolgame.mark.repl.co "),
        "{journal}"
    );

    // A restart keeps them: the checkpoint written at shutdown holds them.
    let mut c = c;
    c.signal(libc::SIGTERM);
    assert!(c.child.wait().unwrap().success());
    drop(c);
    let ckpt = s.dir.path().join("table.ckpt");
    let loaded = clusterns::feed::checkpoint::read(&ckpt).unwrap();
    assert_eq!(loaded.table.acme().value_count(), 1);
    let c = spawn_binary(&cfg, true);
    assert_eq!(
        txt_values(&udp_ask(c.addr, NAME, RecordType::TXT)),
        ["token-two"]
    );
    // `lookup` shows them as the server answers them.
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["lookup", "--config", path_str(&cfg), NAME, "TXT"])
        .env("CLUSTERNS_LOG", "error")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("TXT") && text.contains("token-two"), "{text}");
    // Removing the whole set: NXDOMAIN again.
    acme_ok(&cfg, &["remove", NAME]);
    assert!(wait_for(Duration::from_secs(10), || {
        udp_ask(c.addr, NAME, RecordType::TXT).response_code() == ResponseCode::NXDomain
    }));
}

#[test]
fn a_cname_zone_keeps_its_delegation_and_refuses_records() {
    let s = setup("");
    let cfg = s.config_path.clone();
    let (ok, _, err) = acme(&cfg, &["add", NAME, "x"]);
    assert!(!ok && err.contains("CNAME"), "{err}");
    // check-config says which mode each zone is in, and the [acme] settings.
    let out = Command::new(env!("CARGO_BIN_EXE_clusterns"))
        .args(["check-config", "--config", path_str(&cfg)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acme cname acme.example.net."), "{text}");
    assert!(text.contains("acme ttl 60 expire 3600"), "{text}");
}

#[test]
fn a_row_in_acme_txt_reaches_the_answer() {
    let Some((db, mut client)) = pg::with_schema(
        "INSERT INTO repls VALUES ('r-one', 'mark', 'coolgame', 'east');
         INSERT INTO acme_txt VALUES ('_acme-challenge.mark.repl.co', 'loaded', 4000000000);",
    ) else {
        return;
    };
    let s = setup_txt();
    let text = std::fs::read_to_string(&s.config_path).unwrap().replace(
        "source = \"journal\"\njournal = \"journal.log\"",
        &format!(
            "source = \"postgres\"\npostgres = \"{}\"\npoll_interval_ms = 50",
            db.conninfo()
        ),
    );
    std::fs::write(&s.config_path, text).unwrap();
    let c = spawn_binary(&s.config_path, true);
    // Loaded at start, then followed: a row inserted, then one added by the CLI's writer.
    assert!(waits_for_values(
        c.addr,
        "_acme-challenge.mark.repl.co",
        &["loaded"]
    ));
    client
        .batch_execute(&format!(
            "INSERT INTO acme_txt VALUES ('{NAME}', 'from-sql', 4000000000)"
        ))
        .unwrap();
    assert!(waits_for_values(c.addr, NAME, &["from-sql"]));
    acme_ok(&s.config_path, &["add", NAME, "from-cli"]);
    assert!(waits_for_values(c.addr, NAME, &["from-cli", "from-sql"]));
    acme_ok(&s.config_path, &["remove", NAME, "from-sql"]);
    assert!(waits_for_values(c.addr, NAME, &["from-cli"]));
    // A bad row is refused by the table's constraints.
    assert!(client
        .batch_execute("INSERT INTO acme_txt VALUES ('www.repl.co', 'x', 1)")
        .is_err());
}
