//! What is served is a function of the feed and the configuration alone, whatever the history:
//! the table's cluster indexes refer to a registry of the cluster names the feed has used (in
//! the order it first used them), not to the configuration's list.
//!
//! - a change naming a cluster the configuration lacks is applied: its app answers SERVFAIL
//!   (and is counted in `clusterns_feed_apps_unknown_cluster`) until a configuration with that
//!   cluster is loaded, then answers with its addresses; the same after a restart from a
//!   checkpoint and after a restart without one;
//! - a checkpoint loads under a configuration that reorders its clusters or lacks one that no
//!   app uses (nothing is renumbered, nothing replayed);
//! - a reload that drops a cluster apps still use is still refused.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clusterns::config::Config;
use clusterns::feed::Builder;
use clusterns::name::DomainName;
use clusterns::resolve::{resolve, Outcome, Question};
use clusterns::table::MAX_CLUSTERS;
use clusterns::wire::rrset::{Owner, RrSet};
use domain::base::iana::{Class, Rtype};

/// The addresses of every cluster any test configures.
fn addresses(cluster: &str) -> Ipv4Addr {
    match cluster {
        "east" => Ipv4Addr::new(203, 0, 113, 1),
        "west" => Ipv4Addr::new(198, 51, 100, 7),
        "later" => Ipv4Addr::new(192, 0, 2, 77),
        "a" => Ipv4Addr::new(192, 0, 2, 10),
        "b" => Ipv4Addr::new(192, 0, 2, 11),
        "c" => Ipv4Addr::new(192, 0, 2, 12),
        other => panic!("no addresses for {other}"),
    }
}

/// A configuration with `clusters` (in that order), the journal `journal.log`, and the
/// checkpoint `table.ckpt` when `checkpoint`.
fn config(dir: &Path, clusters: &[&str], checkpoint: bool) -> Arc<Config> {
    let mut text = String::from("[feed]\njournal = \"journal.log\"\n");
    if checkpoint {
        text.push_str("checkpoint = \"table.ckpt\"\n");
    }
    text.push_str(
        "[[zone]]\napex = \"repl.co\"\nns = [\"ns.example.net\"]\nsoa = { rname = \"hostmaster.repl.co\" }\n",
    );
    for c in clusters {
        text.push_str(&format!(
            "[[cluster]]\nname = \"{c}\"\nipv4 = [\"{}\"]\n",
            addresses(c)
        ));
    }
    Arc::new(Config::parse(&dir.join("clusterns.toml"), &text).unwrap())
}

/// What a name's A query gets.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// The A set of this cluster.
    Cluster(&'static str),
    ServFail,
    NxDomain,
    Other(String),
}

fn ask(b: &Builder, name: &str) -> Answer {
    let snap = b.shared().load_full();
    let wire: DomainName = name.parse().unwrap();
    let q = Question {
        name: wire.wire(),
        qtype: Rtype::A,
        qclass: Class::IN,
    };
    match resolve(&snap, &q) {
        Outcome::Hit { answer, zone, .. } => {
            for c in ["east", "west", "later", "a", "b", "c"] {
                if *answer == RrSet::a(&[addresses(c)], zone.ttl, Owner::Query) {
                    return Answer::Cluster(c);
                }
            }
            Answer::Other(format!("{answer:?}"))
        }
        Outcome::ServFail => Answer::ServFail,
        Outcome::NxDomain { .. } => Answer::NxDomain,
        other => Answer::Other(format!("{other:?}")),
    }
}

/// The gauge as a scrape shows it.
fn unknown_gauge(b: &Builder) -> String {
    let text = clusterns::metrics::render(&clusterns::metrics::Sources {
        workers: Vec::new(),
        shared: b.shared(),
        feed: b.status(),
        updates: None,
    });
    text.lines()
        .find(|l| l.starts_with("clusterns_feed_apps_unknown_cluster "))
        .expect("the gauge is exported")
        .to_string()
}

/// Overwrites every line of the journal with a comment of the same length: a reader resuming
/// at a checkpoint's position is none the wiser, a full replay finds nothing.
fn blank_journal(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let blank: String = text
        .lines()
        .map(|l| format!("#{}\n", " ".repeat(l.len().saturating_sub(1))))
        .collect();
    assert_eq!(blank.len(), text.len());
    std::fs::write(path, blank).unwrap();
    text
}

#[test]
fn an_app_on_an_unconfigured_cluster_answers_servfail_then_its_addresses_whatever_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    std::fs::write(
        &journal,
        "1 set r1 mark game east\n2 set r2 ann site later\n3 set r3 ann blog later\n4 delete r3\n",
    )
    .unwrap();
    let without = |ckpt| config(dir.path(), &["east", "west"], ckpt);
    let with = |ckpt| config(dir.path(), &["west", "later", "east"], ckpt);

    // The change naming `later` is taken (not rejected): SERVFAIL, counted.
    let mut b = Builder::load(without(true)).unwrap();
    assert_eq!(b.rejected(), 0);
    assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("east"));
    assert_eq!(ask(&b, "site.ann.repl.co"), Answer::ServFail);
    assert_eq!(ask(&b, "r2.repl.co"), Answer::ServFail);
    assert_eq!(ask(&b, "blog.ann.repl.co"), Answer::NxDomain);
    assert_eq!(b.apps_on_unconfigured_clusters(), 1);
    assert_eq!(unknown_gauge(&b), "clusterns_feed_apps_unknown_cluster 1");
    // So is one that arrives while the server runs.
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut more, b"5 set r4 zed app later\n").unwrap();
    assert_eq!(b.poll_once(Duration::ZERO).unwrap(), 1);
    assert_eq!(b.rejected(), 0);
    assert_eq!(ask(&b, "app.zed.repl.co"), Answer::ServFail);
    assert_eq!(unknown_gauge(&b), "clusterns_feed_apps_unknown_cluster 2");
    // A checkpoint written while `later` is not configured.
    b.checkpoint_now();
    assert!(dir.path().join("table.ckpt").exists());

    // SIGHUP with `later` (and the clusters in another order): its addresses, at once.
    b.reload(with(true)).unwrap();
    assert_eq!(ask(&b, "site.ann.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "r2.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "app.zed.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("east"));
    assert_eq!(unknown_gauge(&b), "clusterns_feed_apps_unknown_cluster 0");
    // And back: a configuration without `later` again is refused while apps use it.
    let e = b.reload(without(true)).unwrap_err();
    assert!(
        e.contains("cluster later is gone from the new configuration but 2 apps still use it"),
        "{e}"
    );
    assert_eq!(ask(&b, "r2.repl.co"), Answer::Cluster("later"));
    drop(b);

    // Restart from the checkpoint (the journal blanked: only the checkpoint can hold them).
    let text = blank_journal(&journal);
    let b = Builder::load(with(true)).unwrap();
    assert_eq!(ask(&b, "site.ann.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "app.zed.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("east"));
    assert_eq!(unknown_gauge(&b), "clusterns_feed_apps_unknown_cluster 0");
    drop(b);
    std::fs::write(&journal, &text).unwrap();

    // Restart without a checkpoint: the same answers.
    let b = Builder::load(with(false)).unwrap();
    assert_eq!(ask(&b, "site.ann.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "app.zed.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("east"));
    assert_eq!(b.rejected(), 0);
    drop(b);

    // And under the configuration without `later`, from the checkpoint or from the journal:
    // SERVFAIL both ways, both counted.
    for ckpt in [true, false] {
        let b = Builder::load(without(ckpt)).unwrap();
        assert_eq!(
            ask(&b, "site.ann.repl.co"),
            Answer::ServFail,
            "checkpoint: {ckpt}"
        );
        assert_eq!(
            ask(&b, "app.zed.repl.co"),
            Answer::ServFail,
            "checkpoint: {ckpt}"
        );
        assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("east"));
        assert_eq!(unknown_gauge(&b), "clusterns_feed_apps_unknown_cluster 2");
    }
}

#[test]
fn a_checkpoint_loads_under_a_configuration_that_reorders_and_drops_an_unused_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    // Cluster names enter the registry as a, b, c; b's only app is deleted.
    std::fs::write(
        &journal,
        "1 set r1 mark game a\n2 set r0 mark old b\n3 set r2 ann site c\n4 delete r0\n",
    )
    .unwrap();
    let mut b = Builder::load(config(dir.path(), &["a", "b", "c"], true)).unwrap();
    assert_eq!(ask(&b, "site.ann.repl.co"), Answer::Cluster("c"));
    b.checkpoint_now();
    drop(b);

    // A replay of the journal now finds nothing: what answers comes from the checkpoint.
    blank_journal(&journal);
    let mut b = Builder::load(config(dir.path(), &["c", "a"], true)).unwrap();
    assert_eq!(
        b.table().len(),
        2,
        "loaded from the checkpoint, not replayed"
    );
    let names: Vec<&str> = b
        .table()
        .clusters()
        .names()
        .iter()
        .map(|l| l.as_str())
        .collect();
    assert_eq!(
        names,
        ["a", "b", "c"],
        "the checkpoint's registry, as it was"
    );
    assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("a"));
    assert_eq!(ask(&b, "r1.repl.co"), Answer::Cluster("a"));
    assert_eq!(ask(&b, "site.ann.repl.co"), Answer::Cluster("c"));
    assert_eq!(ask(&b, "old.mark.repl.co"), Answer::NxDomain);
    assert_eq!(b.apps_on_unconfigured_clusters(), 0);

    // The feed goes on from there; `b` comes back with its old index.
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut more, b"5 set r5 zed app b\n6 set r1 mark game c\n").unwrap();
    assert_eq!(b.poll_once(Duration::ZERO).unwrap(), 2);
    assert_eq!(ask(&b, "app.zed.repl.co"), Answer::ServFail);
    assert_eq!(ask(&b, "game.mark.repl.co"), Answer::Cluster("c"));
    assert_eq!(b.table().get("r5").map(|a| a.2), Some(1));
    assert_eq!(b.apps_on_unconfigured_clusters(), 1);
    // Dropping `a` (no app on it any more) is fine; dropping `c` is not.
    b.reload(config(dir.path(), &["c", "b"], true)).unwrap();
    assert_eq!(ask(&b, "app.zed.repl.co"), Answer::Cluster("b"));
    assert_eq!(b.apps_on_unconfigured_clusters(), 0);
    let e = b.reload(config(dir.path(), &["b"], true)).unwrap_err();
    assert!(e.contains("cluster c is gone"), "{e}");
}

#[test]
fn changes_during_a_fold_add_cluster_names_as_the_builder_does() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&format!("{} set r{i} u{} s{i} east\n", i + 1, i % 7));
    }
    std::fs::write(&journal, &text).unwrap();
    let mut b = Builder::load(config(dir.path(), &["east", "later"], false)).unwrap();
    b.set_fold_min(5);
    let mut more = std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap();
    std::io::Write::write_all(&mut more, b"41 set r1 u1 s1 west\n").unwrap();
    b.poll_once(Duration::ZERO).unwrap();
    // Moves that overflow the overlay: a fold starts.
    for i in 0..10 {
        let line = format!("{} set r{i} u{} s{i} west\n", 42 + i, i % 7);
        std::io::Write::write_all(&mut more, line.as_bytes()).unwrap();
    }
    b.poll_once(Duration::ZERO).unwrap();
    b.maintain();
    // While it runs: names new to the registry, configured or not.
    std::io::Write::write_all(
        &mut more,
        b"52 set r20 u6 s20 later\n53 set r21 u0 s21 north\n54 set r22 u1 s22 west\n",
    )
    .unwrap();
    b.poll_once(Duration::ZERO).unwrap();
    b.finish_fold();
    assert!(b.table().overlay().len() < 10, "the fold was installed");
    let names: Vec<&str> = b
        .table()
        .clusters()
        .names()
        .iter()
        .map(|l| l.as_str())
        .collect();
    assert_eq!(names, ["east", "west", "later", "north"]);
    assert_eq!(ask(&b, "s20.u6.repl.co"), Answer::Cluster("later"));
    assert_eq!(ask(&b, "s21.u0.repl.co"), Answer::ServFail);
    assert_eq!(
        ask(&b, "s22.u1.repl.co"),
        Answer::ServFail,
        "west is not configured"
    );
    assert_eq!(ask(&b, "s30.u2.repl.co"), Answer::Cluster("east"));
    assert_eq!(b.apps_on_unconfigured_clusters(), 10 + 1 + 1);
    // Equal to a replay of the same journal.
    let replayed = Builder::load(config(dir.path(), &["east", "later"], false)).unwrap();
    assert_eq!(replayed.table().apps(), b.table().apps());
    assert_eq!(replayed.table().clusters(), b.table().clusters());
    assert_eq!(replayed.apps_on_unconfigured_clusters(), 12);
}

#[test]
fn a_change_past_the_registrys_capacity_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.log");
    let mut text = String::new();
    for i in 0..=MAX_CLUSTERS {
        text.push_str(&format!("{} set r{i} u s{i} c{i}\n", i + 1));
    }
    // A name already in the registry is still taken.
    text.push_str(&format!("{} set r-last u last c7\n", MAX_CLUSTERS + 2));
    std::fs::write(&journal, &text).unwrap();
    let b = Builder::load(config(dir.path(), &["east"], false)).unwrap();
    assert_eq!(b.rejected(), 1);
    assert_eq!(b.table().clusters().len(), MAX_CLUSTERS);
    assert_eq!(b.table().len(), MAX_CLUSTERS + 1);
    assert_eq!(b.table().get(&format!("r{MAX_CLUSTERS}")), None);
    assert_eq!(b.table().get("r-last").map(|a| a.2), Some(7));
    assert_eq!(ask(&b, "last.u.repl.co"), Answer::ServFail);
}
