//! Every edge sees an update: two servers fed by the same PostgreSQL, one taking updates
//! (TSIG-signed, built with `domain`'s message builder and client-side signer), the other
//! answering. Each update replaces the challenge value; the time from the UPDATE's response
//! to the other server's answer is measured (p50/p99). `perf/acme_latency.sh` runs it with
//! 1,000 updates in release and records the figures in `perf/RESULTS.md`.
//!
//! Without `CLUSTERNS_TEST_PG` it prints why and passes (PostgreSQL tests skip the same way).

mod common;
#[path = "pg/mod.rs"]
mod pg;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::base::iana::{Class, Opcode, Rcode, Rtype};
use domain::base::{Message, MessageBuilder, Name, Record, Ttl, UnknownRecordData};
use domain::rdata::tsig::Time48;
use domain::tsig::{Algorithm, ClientTransaction, Key};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

use common::*;

const KEY: &str = "acme-mark";
/// 32 bytes; the key file carries it base64-encoded.
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const NAME: &str = "_acme-challenge.coolgame.mark.repl.co";

fn config(conninfo: &str, updates: bool) -> String {
    let update = if updates {
        format!(
            r#"
[update]
enabled = true
keys = "keys.conf"
rate = 100000
burst = 100000

[[update.grant]]
key = "{KEY}"
names = ["_acme-challenge.*.mark.repl.co"]
"#
        )
    } else {
        String::new()
    };
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
threads = 1

[feed]
source = "postgres"
postgres = "{conninfo}"
{update}
[[zone]]
apex = "repl.co"
ns = ["ns1.repl.co"]
acme = "txt"
soa = {{ rname = "hostmaster.repl.co" }}
[[zone.host]]
name = "ns1"
a = ["127.0.0.1"]

[[cluster]]
name = "east"
ipv4 = ["203.0.113.1"]
"#
    )
}

/// A signed UPDATE that replaces `old` (if any) by `new` at NAME.
fn update(
    id: u16,
    old: Option<&str>,
    new: &str,
    key: &Arc<Key>,
) -> (Vec<u8>, ClientTransaction<Arc<Key>>) {
    let txt = |s: &str| {
        let mut v = vec![s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    };
    let rec = |class: Class, ttl: u32, value: &str| {
        Record::new(
            NAME.parse::<Name<Vec<u8>>>().unwrap(),
            class,
            Ttl::from_secs(ttl),
            UnknownRecordData::from_octets(Rtype::TXT, txt(value)).unwrap(),
        )
    };
    let mut b = MessageBuilder::new_vec();
    b.header_mut().set_id(id);
    b.header_mut().set_opcode(Opcode::UPDATE);
    let mut q = b.question();
    q.push((
        "repl.co".parse::<Name<Vec<u8>>>().unwrap(),
        Rtype::SOA,
        Class::IN,
    ))
    .unwrap();
    let mut au = q.answer().authority();
    if let Some(old) = old {
        // RFC 2136 2.5.4: delete an RR from an RRset (class NONE, TTL 0).
        au.push(rec(Class::NONE, 0, old)).unwrap();
    }
    au.push(rec(Class::IN, 60, new)).unwrap();
    let mut add = au.additional();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let tx = ClientTransaction::request(key.clone(), &mut add, Time48::from_u64(now)).unwrap();
    (add.finish(), tx)
}

fn txt_values(addr: SocketAddr) -> Vec<String> {
    udp_ask(addr, NAME, RecordType::TXT)
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            Some(RData::TXT(t)) => Some(String::from_utf8_lossy(&t.txt_data()[0]).into_owned()),
            _ => None,
        })
        .collect()
}

/// `CLUSTERNS_ACME_LATENCY_NO_NOTIFY=1`: the tables' NOTIFY triggers are disabled, so the
/// edges only find changes by polling (`feed.poll_interval_ms`, 500 ms by default): the latency
/// when notifications are lost (a connection pooler in transaction mode drops them).
fn without_notify() -> bool {
    std::env::var("CLUSTERNS_ACME_LATENCY_NO_NOTIFY").as_deref() == Ok("1")
}

fn updates_count() -> usize {
    std::env::var("CLUSTERNS_ACME_LATENCY_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

#[test]
fn an_update_sent_to_one_server_is_answered_by_the_other() {
    let Some((db, mut client)) =
        pg::with_schema("INSERT INTO repls VALUES ('r-one', 'mark', 'coolgame', 'east')")
    else {
        return;
    };
    if without_notify() {
        client
            .batch_execute(
                "ALTER TABLE acme_txt DISABLE TRIGGER clusterns_acme_txt_notify;
                 ALTER TABLE repls DISABLE TRIGGER clusterns_repls_notify;",
            )
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.conf");
    std::fs::write(
        &keys,
        format!(
            "key \"{KEY}\" {{ algorithm hmac-sha256; secret \"{}\"; }};\n",
            domain::utils::base64::encode_string(&SECRET)
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (a_conf, b_conf) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
    std::fs::write(&a_conf, config(&db.conninfo(), true)).unwrap();
    std::fs::write(&b_conf, config(&db.conninfo(), false)).unwrap();
    let a = spawn_binary_logged(&a_conf, false, Some(&dir.path().join("a.log")));
    let b = spawn_binary(&b_conf, false);

    let key = Arc::new(
        Key::new(
            Algorithm::Sha256,
            SECRET,
            format!("{KEY}.").parse().unwrap(),
            None,
            None,
        )
        .unwrap(),
    );
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = updates_count();
    let mut lag = Vec::with_capacity(n);
    let mut old: Option<String> = None;
    for i in 0..n {
        if without_notify() {
            // Not in step with the edges' polls: a spread-out delay before each update.
            std::thread::sleep(Duration::from_millis((i as u64 * 389) % 500));
        }
        let value = format!("token-{i}");
        let (msg, tx) = update(i as u16, old.as_deref(), &value, &key);
        sock.send_to(&msg, a.addr).unwrap();
        let mut buf = [0u8; 4096];
        let len = sock.recv(&mut buf).expect("an answer to the update");
        let answered = Instant::now();
        let mut reply = Message::from_octets(buf[..len].to_vec()).unwrap();
        assert_eq!(reply.header().rcode(), Rcode::NOERROR, "update {i}: {}", {
            std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default()
        });
        tx.answer(&mut reply, Time48::now())
            .expect("a signed answer");
        // The other server answers the new value (polled over UDP, every 200 µs).
        let deadline = answered + Duration::from_secs(10);
        loop {
            if txt_values(b.addr) == [value.clone()] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "update {i} never reached the other server"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        lag.push(answered.elapsed());
        old = Some(value);
    }
    lag.sort();
    let pct = |p: f64| lag[((lag.len() as f64 * p).ceil() as usize).clamp(1, lag.len()) - 1];
    println!(
        "acme update -> other edge's answer, {n} updates over PostgreSQL ({}): p50 {:?} p99 {:?} max {:?}",
        if without_notify() {
            "NOTIFY off: polling every 500 ms"
        } else {
            "LISTEN/NOTIFY"
        },
        pct(0.50),
        pct(0.99),
        lag[lag.len() - 1]
    );
    // The issue's target with NOTIFY; polling alone is bounded by the poll interval (500 ms),
    // with room for a loaded test machine.
    let bound = Duration::from_secs(if without_notify() { 2 } else { 1 });
    assert!(pct(0.99) < bound, "p99 {:?}", pct(0.99));
    // Both servers agree with the database.
    let rows: i64 = client
        .query_one("SELECT count(*) FROM acme_txt", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    assert_eq!(
        udp_ask(a.addr, NAME, RecordType::TXT).response_code(),
        ResponseCode::NoError
    );
    assert_eq!(txt_values(a.addr), txt_values(b.addr));
}
