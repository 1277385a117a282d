//! `clusterns check-config`: everything `serve` would refuse, found before it runs.

use std::path::PathBuf;

use clusterns::config::{Config, SourceConfig};

pub(crate) fn check_config(path: PathBuf) -> Result<(), String> {
    let config = Config::load(&path).map_err(|e| e.to_string())?;
    if let SourceConfig::Journal { path } = &config.feed.source {
        if !path.is_file() {
            return Err(format!(
                "{}:{}: feed.journal {} {}; create it (`touch`) or fix the path",
                config.path.display(),
                config.feed_lines.journal.unwrap_or(0),
                path.display(),
                if path.exists() {
                    "is not a file"
                } else {
                    "does not exist"
                }
            ));
        }
    }
    run_time_checks(&config)?;
    // The TSIG key file: readable, private, every grant naming a key in it.
    let update_keys = if config.update.keys.is_some() {
        Some(config.update.load().map_err(|e| e.to_string())?.0)
    } else {
        None
    };
    println!("{}: ok", path.display());
    for z in &config.zones {
        println!(
            "zone {} ttl {} negative-ttl {} ns {} acme {}",
            z.apex,
            z.ttl,
            z.negative_ttl,
            z.ns.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(","),
            match z.acme {
                clusterns::config::AcmeMode::Txt => "txt".to_string(),
                clusterns::config::AcmeMode::Cname => z
                    .acme_validation_zone
                    .as_ref()
                    .map_or("-".to_string(), |a| format!("cname {a}")),
            },
        );
        if let Some(d) = &z.dnssec {
            for k in &d.keys {
                println!(
                    "zone {} dnssec key {} {} {} {:?} {}",
                    z.apex,
                    k.key.key_tag(),
                    k.key.algorithm().name(),
                    k.key.role().name(),
                    k.state,
                    k.file.display()
                );
            }
        }
    }
    for c in &config.clusters {
        println!("{}", cluster_line(c));
    }
    match &config.feed.source {
        SourceConfig::Journal { path } => {
            println!("feed journal {}", path.display())
        }
        SourceConfig::Postgres { conninfo } => println!(
            "feed postgres {}",
            clusterns::config::redact_conninfo(conninfo)
        ),
        SourceConfig::Nats => println!("feed nats"),
    }
    if let Some(n) = &config.nats {
        println!(
            "nats servers {} stream {} subject {} snapshots {} lease {} retention {}s replicas {}",
            n.servers.join(","),
            n.stream,
            n.subject,
            n.snapshot_bucket,
            n.lease_bucket,
            n.retention_secs,
            n.replicas
        );
    }
    if let Some(c) = &config.feed.checkpoint {
        println!("checkpoint {}", c.display());
    }
    if let Some(c) = &config.control {
        println!("control {}", c.socket.display());
    }
    for l in &config.server.listen {
        println!("listen {l}");
    }
    println!("udp_coalesce_us {}", config.server.udp_coalesce_us);
    if let Some(keys) = update_keys {
        println!(
            "update {} keys {} ({} keys) grants {}",
            if config.update.enabled { "on" } else { "off" },
            config
                .update
                .keys
                .as_ref()
                .map_or(String::new(), |k| k.display().to_string()),
            keys.len(),
            config.update.grants.len()
        );
    }
    let a = &config.acme;
    println!(
        "acme ttl {} expire {} max_value_len {} max_values_per_name {} max_names {}",
        a.ttl_secs, a.expire_secs, a.max_value_len, a.max_values_per_name, a.max_names
    );
    Ok(())
}

/// What `serve` would only find out when it runs: the service user exists, and the checkpoint
/// can be written where it is configured (by that user, once root is dropped).
pub(crate) fn run_time_checks(config: &Config) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let file = config.path.display();
    // SAFETY: getuid and getgid only read the process's ids.
    let (mut uid, mut gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if let Some(user) = &config.server.user {
        (uid, gid) = clusterns::privs::lookup(user)
            .map_err(|e| format!("{file}:{}: server.user: {e}", config.user_line.unwrap_or(0)))?;
    }
    if let Some(control) = &config.control {
        let dir = match control.socket.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(format!(
                "{file}:{}: control.socket {}: its directory {} {}",
                control.line,
                control.socket.display(),
                dir.display(),
                if dir.exists() {
                    "is not a directory"
                } else {
                    "does not exist (the package's unit creates /run/clusterns: \
                     RuntimeDirectory=clusterns)"
                }
            ));
        }
    }
    if let Some(ckpt) = &config.feed.checkpoint {
        let line = config.feed_lines.checkpoint.unwrap_or(0);
        let at =
            |what: String| format!("{file}:{line}: feed.checkpoint {}: {what}", ckpt.display());
        if ckpt.is_dir() {
            return Err(at("is a directory; name a file in it".into()));
        }
        let dir = match ckpt.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let meta = std::fs::metadata(&dir)
            .map_err(|e| at(format!("its directory {}: {e}", dir.display())))?;
        if !meta.is_dir() {
            return Err(at(format!("{} is not a directory", dir.display())));
        }
        let mode = meta.mode();
        let writable = uid == 0
            || (meta.uid() == uid && mode & 0o300 == 0o300)
            || (meta.gid() == gid && mode & 0o030 == 0o030)
            || mode & 0o003 == 0o003;
        if !writable {
            return Err(at(format!(
                "its directory {} is not writable by uid {uid} (the service user); \
                 chown it or choose another",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// One cluster as `check-config` prints it: addresses (with weight and priority group where
/// not the defaults), then the policy and the check.
fn cluster_line(c: &clusterns::config::ClusterConfig) -> String {
    fn member<A: std::fmt::Display>(m: &clusterns::config::Member<A>) -> String {
        match (m.weight, m.priority) {
            (1, 1) => m.addr.to_string(),
            (w, 1) => format!("{} weight {w}", m.addr),
            (w, p) => format!("{} weight {w} priority {p}", m.addr),
        }
    }
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut line = format!(
        "cluster {} ipv4 [{}] ipv6 [{}]",
        c.name,
        list(c.ipv4.iter().map(member).collect()),
        list(c.ipv6.iter().map(member).collect()),
    );
    if let Some(n) = c.max_answers {
        line += &format!(" max-answers {n}");
    }
    if let Some(f) = &c.failover {
        line += &format!(" failover {f}");
    }
    if let Some(t) = c.degraded_ttl {
        line += &format!(" degraded-ttl {t}");
    }
    if let Some(check) = &c.check {
        use clusterns::config::CheckKind;
        line += &match &check.kind {
            CheckKind::Tcp => format!(" check tcp port {}", check.port),
            CheckKind::Http {
                path,
                expect_status,
            } => {
                format!(
                    " check http port {} {path} expects {expect_status}",
                    check.port
                )
            }
            CheckKind::Https {
                path,
                expect_status,
            } => {
                format!(
                    " check https port {} {path} expects {expect_status}",
                    check.port
                )
            }
        };
    }
    line
}
