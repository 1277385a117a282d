//! Tests of `postgres`.

use super::*;
use crate::name::{check_label, Label};

fn l(s: &str) -> Label {
    check_label(s).unwrap()
}

#[test]
fn decodes_set_of_lower_case_labels() {
    let s = decode_row(
        7,
        "set",
        "r-one",
        Some("mark"),
        Some("cool_game"),
        Some("east"),
    )
    .unwrap();
    assert_eq!(
        s,
        Sequenced {
            seq: 7,
            change: Change::Upsert {
                id: l("r-one"),
                user: l("mark"),
                slug: l("cool_game"),
                cluster: l("east"),
            },
        }
    );
    assert_eq!(s.to_string(), "7 set r-one mark cool_game east");
    // The longest label, and the reserved name where it is not an app's label.
    let long = "a".repeat(63);
    assert!(decode_row(8, "set", &long, Some(&long), Some(&long), Some(&long)).is_ok());
    assert!(decode_row(9, "set", "r", Some("u"), Some("s"), Some("_acme-challenge")).is_ok());
}

#[test]
fn never_lower_cases_a_name() {
    // Each column in turn holds a capital: the row is rejected, not folded into the
    // lower-case app it would collide with.
    let row = ["dupid", "mark", "game", "east"];
    for col in 0..4 {
        let mut r = row.map(str::to_string);
        r[col] = r[col].replacen(|c: char| c.is_ascii_lowercase(), "X", 1);
        let err = decode_row(3, "set", &r[0], Some(&r[1]), Some(&r[2]), Some(&r[3])).unwrap_err();
        assert!(err.contains("upper-case"), "{err}");
        assert!(
            err.starts_with("repl_changes seq 3 (\"set\" of app "),
            "{err}"
        );
    }
    let err = decode_row(4, "delete", "DupId", None, None, None).unwrap_err();
    assert!(
        err.contains("id: label \"DupId\" has upper-case letters"),
        "{err}"
    );
}

#[test]
fn the_acme_challenge_label_is_reserved_for_apps() {
    for col in 0..3 {
        let mut r = ["r", "u", "s"];
        r[col] = RESERVED_LABEL;
        let err = decode_row(5, "set", r[0], Some(r[1]), Some(r[2]), Some("east")).unwrap_err();
        assert!(err.contains("\"_acme-challenge\" is reserved"), "{err}");
    }
    let err = decode_row(6, "delete", RESERVED_LABEL, None, None, None).unwrap_err();
    assert!(err.contains("reserved"), "{err}");
}

#[test]
fn quotes_are_capped() {
    assert_eq!(quote("abc"), "\"abc\"");
    let exact = "x".repeat(QUOTE_MAX);
    assert_eq!(quote(&exact), format!("{exact:?}"));
    let huge = "y".repeat(10 << 20);
    let q = quote(&huge);
    assert_eq!(q, format!("{:?}... (10485760 bytes)", &huge[..QUOTE_MAX]));
    // Cut at a character boundary.
    let wide = "é".repeat(100);
    assert_eq!(quote(&wide), format!("{:?}... (200 bytes)", "é".repeat(32)));
    // Every message that quotes a value keeps it short.
    let err = decode_row(1, &huge, &huge, None, None, None).unwrap_err();
    assert!(err.len() < 400, "{} bytes", err.len());
    let err = decode_row(1, "set", &huge, Some(&huge), Some(&huge), Some(&huge)).unwrap_err();
    assert!(err.len() < 400, "{} bytes", err.len());
    let err = decode_row(1, "set", "r", Some(&huge), Some("s"), Some("c")).unwrap_err();
    assert!(err.len() < 400 && err.contains("(10485760 bytes)"), "{err}");
    let err = decode_row(
        1,
        "set",
        "r",
        Some("u"),
        Some(&format!("a b{huge}")),
        Some("c"),
    )
    .unwrap_err();
    assert!(err.len() < 400, "{} bytes", err.len());
}

#[test]
fn a_gap_says_what_was_lost() {
    let e = PgError::Gap {
        after: 10,
        pruned_upto: 795,
    };
    let text = e.to_string();
    assert!(
        text.contains("after seq 10 up to seq 795 were pruned"),
        "{text}"
    );
    assert!(text.contains("reloaded"), "{text}");
}

#[test]
fn decodes_delete_ignoring_the_rest() {
    let s = decode_row(9, "delete", "r-one", None, None, None).unwrap();
    assert_eq!(
        s,
        Sequenced {
            seq: 9,
            change: Change::Delete { id: l("r-one") },
        }
    );
    // The trigger records the last values of a deleted app; they are not used, not even
    // validated.
    let s = decode_row(10, "delete", "r-two", Some("a b"), Some(""), Some("x")).unwrap();
    assert_eq!(s.change, Change::Delete { id: l("r-two") });
}

#[test]
fn rejects_bad_rows_with_a_clear_message() {
    type Case<'a> = (
        i64,
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Option<&'a str>,
        &'a str,
    );
    let cases: &[Case] = &[
        (0, "set", "r", Some("u"), Some("s"), Some("c"), "start at 1"),
        (-3, "delete", "r", None, None, None, "start at 1"),
        (
            5,
            "upsert",
            "r",
            Some("u"),
            Some("s"),
            Some("c"),
            "unknown op \"upsert\"",
        ),
        (
            5,
            "set",
            "r",
            None,
            Some("s"),
            Some("c"),
            "user_name is NULL",
        ),
        (5, "set", "r", Some("u"), None, Some("c"), "slug is NULL"),
        (5, "set", "r", Some("u"), Some("s"), None, "cluster is NULL"),
        (
            5,
            "set",
            "r.x",
            Some("u"),
            Some("s"),
            Some("c"),
            "id: label \"r.x\"",
        ),
        (
            5,
            "set",
            "r",
            Some("a b"),
            Some("s"),
            Some("c"),
            "user_name: label",
        ),
        (
            5,
            "set",
            "r",
            Some("u"),
            Some(""),
            Some("c"),
            "slug: empty label",
        ),
        (5, "delete", "", None, None, None, "id: empty label"),
    ];
    for &(seq, op, id, user, slug, cluster, expected) in cases {
        let err = decode_row(seq, op, id, user, slug, cluster).unwrap_err();
        assert!(
            err.contains(expected),
            "{err:?} should contain {expected:?}"
        );
        if seq > 0 {
            assert!(
                err.starts_with(&format!("repl_changes seq {seq} ")),
                "{err:?} should name the row"
            );
        }
    }
    let long = "a".repeat(64);
    let err = decode_row(1, "set", "r", Some("u"), Some(&long), Some("c")).unwrap_err();
    assert!(err.contains("longer than 63 bytes"), "{err}");
}

#[test]
fn backoff_doubles_up_to_the_cap_and_resets() {
    let mut src = PgSource::new("host=127.0.0.1 port=1");
    let mut delays = Vec::new();
    for _ in 0..10 {
        let before = Instant::now();
        let _ = src.finish::<()>(Err(PgError::Data("x".into())));
        delays.push(src.retry_at.unwrap() - before);
    }
    assert!(delays[0] >= BACKOFF_MIN && delays[0] < BACKOFF_MIN * 2);
    assert!(delays[1] >= BACKOFF_MIN * 2 && delays[1] < BACKOFF_MIN * 3);
    assert!(delays[9] <= BACKOFF_MAX + Duration::from_millis(1));
    assert!(delays[9] >= BACKOFF_MAX);
    // In backoff, poll gives up within its wait without connecting.
    let start = Instant::now();
    let err = src.poll(0, Duration::from_millis(20), 10).unwrap_err();
    assert!(
        matches!(err, PgError::Backoff { failures: 10, .. }),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(err.to_string().contains("next attempt in"), "{err}");
    let _ = src.finish(Ok(()));
    assert_eq!(src.failures, 0);
    assert!(src.retry_at.is_none());
}

#[test]
fn connection_errors_are_returned_not_panicked() {
    let mut src = PgSource::new("host=127.0.0.1 port=1 user=x connect_timeout=2");
    let err = src.poll(0, Duration::ZERO, 10).unwrap_err();
    assert!(matches!(err, PgError::Db(_)), "{err}");
    assert!(!src.is_connected());
    // An endless wait is not an overflow; it sleeps out the backoff (50 ms) and tries.
    let err = src.poll(0, Duration::MAX, 10).unwrap_err();
    assert!(matches!(err, PgError::Db(_)), "{err}");
    let mut bad = PgSource::new("this is not = a conninfo = string");
    assert!(bad.pruned_upto().is_err());
}

#[test]
fn schema_is_embedded() {
    assert!(SCHEMA.contains("CREATE TABLE IF NOT EXISTS repls"));
    assert!(SCHEMA.contains("CREATE TABLE IF NOT EXISTS repl_changes_pruned"));
    assert!(SCHEMA.contains(RESERVED_LABEL));
    assert!(SCHEMA.contains(CHANNEL));
}

#[test]
fn challenge_rows_decode_or_say_why() {
    let s = decode_txt_row(
        3,
        "txt-add",
        "_acme-challenge.mark.repl.co",
        Some(b"tok"),
        Some(9),
    )
    .unwrap();
    assert_eq!(
        s.to_string(),
        "3 txt-add _acme-challenge.mark.repl.co 9 746f6b"
    );
    let s = decode_txt_row(4, "txt-del", "_acme-challenge.mark.repl.co", None, None).unwrap();
    assert_eq!(s.to_string(), "4 txt-del _acme-challenge.mark.repl.co");
    // Found by the pg_row fuzz target: a challenge name with no owner.
    for (op, name, value, exp, needle) in [
        ("txt-del", "_acme-challenge", None, None, "does not start"),
        (
            "txt-add",
            "_ACME-challenge.a.co",
            Some(&b"x"[..]),
            Some(1),
            "lower-case",
        ),
        (
            "txt-add",
            "_acme-challenge.a.co.",
            Some(&b"x"[..]),
            Some(1),
            "final dot",
        ),
        (
            "txt-add",
            "_acme-challenge.a.co",
            None,
            Some(1),
            "value is NULL",
        ),
        (
            "txt-add",
            "_acme-challenge.a.co",
            Some(&b""[..]),
            Some(1),
            "1 to 255",
        ),
        (
            "txt-add",
            "_acme-challenge.a.co",
            Some(&b"x"[..]),
            None,
            "expires_at is NULL",
        ),
        (
            "txt-add",
            "_acme-challenge.a.co",
            Some(&b"x"[..]),
            Some(-1),
            "negative",
        ),
        ("txt-move", "_acme-challenge.a.co", None, None, "unknown op"),
        // Found by the pg_row fuzz target: the parser's message held the whole name.
        (
            "txt-del",
            &"a.".repeat(3000),
            None,
            None,
            "not a domain name",
        ),
    ] {
        let e = decode_txt_row(5, op, name, value, exp).unwrap_err();
        assert!(e.starts_with("repl_changes seq 5"), "{e}");
        assert!(e.contains(needle), "{name}: {e}");
        assert!(e.len() < 400, "short: {e}");
    }
}

#[test]
fn health_rows_decode_or_say_why() {
    let s = decode_health_row(
        7,
        "eu-1",
        Some("east"),
        Some("203.0.113.1"),
        Some(false),
        Some(1_700_000_030),
    )
    .unwrap();
    assert_eq!(
        s.to_string(),
        "7 health eu-1 east 203.0.113.1 down 1700000030"
    );
    let s = decode_health_row(
        8,
        "eu-1",
        Some("east"),
        Some("2001:db8::1"),
        Some(true),
        Some(0),
    )
    .unwrap();
    assert_eq!(s.to_string(), "8 health eu-1 east 2001:db8::1 up 0");
    assert!(SCHEMA.contains("CREATE TABLE IF NOT EXISTS lb_health"));
    let ok = (Some("east"), Some("10.0.0.1"), Some(true), Some(5));
    for (checker, (cluster, addr, up, until), needle) in [
        ("EU", ok, "upper-case"),
        ("", ok, "checker (id): empty label"),
        ("eu", (None, ok.1, ok.2, ok.3), "cluster is NULL"),
        ("eu", (Some("a.b"), ok.1, ok.2, ok.3), "cluster: label"),
        ("eu", (ok.0, None, ok.2, ok.3), "addr is NULL"),
        (
            "eu",
            (ok.0, Some("10.0.0.0/8"), ok.2, ok.3),
            "not an IPv4 or IPv6",
        ),
        ("eu", (ok.0, ok.1, None, ok.3), "up is NULL"),
        ("eu", (ok.0, ok.1, ok.2, None), "until (expires_at) is NULL"),
        ("eu", (ok.0, ok.1, ok.2, Some(-1)), "negative"),
    ] {
        let e = decode_health_row(5, checker, cluster, addr, up, until).unwrap_err();
        assert!(e.starts_with("repl_changes seq 5 ('health'"), "{e}");
        assert!(e.contains(needle), "{checker} {cluster:?} {addr:?}: {e}");
    }
    let e = decode_health_row(0, "eu", ok.0, ok.1, ok.2, ok.3).unwrap_err();
    assert!(e.contains("start at 1"), "{e}");
}
