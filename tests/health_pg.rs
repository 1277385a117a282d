//! Health reports through PostgreSQL, against a real, private server (see `tests/pg`): the
//! `PgWriter` upserts them into `lb_health`, the triggers log them into the change stream in
//! order (a deleted row as a withdrawal, until 0), `PgSource` reads them back as the journal
//! would have them, and a full load reads the table.
//!
//! Needs `CLUSTERNS_TEST_PG=<PostgreSQL bin dir>` (Debian: `/usr/lib/postgresql/15/bin`);
//! without it every test prints a note and passes.

mod pg;

use std::time::Duration;

use clusterns::feed::postgres::{apply_schema, PgSource};
use clusterns::feed::writer::{ChangeWriter, PgWriter};
use clusterns::feed::Change;
use clusterns::health::report::HealthReport;
use clusterns::health::view::{AddrState, HealthView};
use clusterns::table::Table;

fn report(checker: &str, addr: &str, up: bool, until: u64) -> HealthReport {
    HealthReport {
        checker: checker.parse().unwrap(),
        cluster: "east".parse().unwrap(),
        addr: addr.parse().unwrap(),
        up,
        until,
    }
}

#[test]
fn reports_written_to_lb_health_come_back_through_the_change_stream() {
    let Some(server) = pg::PgServer::start_new() else {
        eprintln!("{}", pg::SKIP);
        return;
    };
    let mut db = server.client();
    apply_schema(&mut db).expect("apply the schema");
    apply_schema(&mut db).expect("and again");
    let mut writer = PgWriter::new(&server.conninfo()).unwrap();
    let written = [
        report("eu", "203.0.113.1", false, 2_000_000_000),
        report("us", "203.0.113.1", false, 2_000_000_000),
        report("ap", "203.0.113.1", true, 2_000_000_000),
        report("eu", "2001:db8::1", true, 2_000_000_000),
    ];
    let changes: Vec<Change> = written.iter().cloned().map(Change::Health).collect();
    assert!(writer.write(&changes).unwrap().is_empty());
    // A renewal of the same report changes the row (until), a repeat of it changes nothing.
    let renewed = report("eu", "203.0.113.1", false, 2_000_000_030);
    writer.write(&[Change::Health(renewed.clone())]).unwrap();
    writer.write(&[Change::Health(renewed.clone())]).unwrap();
    // A withdrawal deletes the row: logged as until 0.
    writer
        .write(&[Change::Health(report("ap", "203.0.113.1", true, 0))])
        .unwrap();

    let mut src = PgSource::new(&server.conninfo());
    let got = src.poll(0, Duration::ZERO, 100).unwrap();
    let lines: Vec<String> = got.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        lines,
        [
            "1 health eu east 203.0.113.1 down 2000000000",
            "2 health us east 203.0.113.1 down 2000000000",
            "3 health ap east 203.0.113.1 up 2000000000",
            "4 health eu east 2001:db8::1 up 2000000000",
            "5 health eu east 203.0.113.1 down 2000000030",
            "6 health ap east 203.0.113.1 up 0",
        ]
    );
    // Applied as every edge does: 2 of 2 fresh reports down.
    let mut table = Table::default();
    for s in &got {
        s.change.apply_to(&mut table).unwrap();
    }
    assert_eq!(table.health().len(), 3);
    let view = HealthView::evaluate(table.health(), 1_900_000_000);
    let east = "east".parse().unwrap();
    assert_eq!(
        view.state(&east, "203.0.113.1".parse().unwrap()),
        AddrState::Down
    );
    assert_eq!(
        view.state(&east, "2001:db8::1".parse().unwrap()),
        AddrState::Up
    );

    // A full load reads lb_health as it is: the same reports.
    let (loaded, seq) = src.load_all().unwrap();
    assert_eq!(seq, 6);
    let mut from_load = Table::default();
    for c in &loaded {
        c.apply_to(&mut from_load).unwrap();
    }
    assert_eq!(from_load.health(), table.health());

    // Direct SQL: an update of the key is a withdrawal and a report; a truncate withdraws all.
    db.batch_execute(
        "UPDATE lb_health SET addr = '203.0.113.9' WHERE checker = 'us';
         TRUNCATE lb_health;",
    )
    .unwrap();
    let lines: Vec<String> = src
        .poll(6, Duration::ZERO, 100)
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "7 health us east 203.0.113.1 down 0",
            "8 health us east 203.0.113.9 down 2000000000",
            "9 health eu east 203.0.113.1 down 0",
            "10 health eu east 2001:db8::1 up 0",
            "11 health us east 203.0.113.9 down 0",
        ]
    );

    // What the constraints refuse never reaches the log.
    for bad in [
        "INSERT INTO lb_health VALUES ('EU', 'east', '10.0.0.1', true, 1)",
        "INSERT INTO lb_health VALUES ('eu', 'east', '10.0.0.0/8', true, 1)",
        "INSERT INTO lb_health VALUES ('eu', 'east', '10.0.0.1', true, -1)",
    ] {
        assert!(db.batch_execute(bad).is_err(), "{bad}");
    }
    assert!(src.poll(11, Duration::ZERO, 100).unwrap().is_empty());
}
