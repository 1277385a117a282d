//! `clusterns acme`: challenge records written to the source of truth by hand.

use std::path::PathBuf;
use std::sync::Arc;

use clusterns::config::Config;
use clusterns::feed::{Builder, Change};

use crate::cli::args::*;

/// `clusterns acme`: reads the records as the server would (checkpoint and feed), checks a
/// change as the server would, and writes it through the source's writer.
pub(crate) fn acme(config_path: PathBuf, action: AcmeAction) -> Result<(), String> {
    use clusterns::feed::{acme as records, writer};
    use clusterns::name::DomainName;
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let table = Builder::load(config.clone())
        .map_err(|e| format!("loading the feed: {e}"))?
        .into_table();
    let store = table.acme();
    let now = records::unix_now();
    let parse_name = |text: &str| -> Result<DomainName, String> {
        let name: DomainName = text.parse()?;
        records::check_writable(&config, &name)?;
        Ok(name)
    };
    let changes = match action {
        AcmeAction::List => {
            for e in store.iter() {
                for (value, expires) in &e.values {
                    println!(
                        "{} {} {expires} {}",
                        e.name,
                        clusterns::wire::present::txt_quoted(value),
                        expires.saturating_sub(now)
                    );
                }
            }
            return Ok(());
        }
        AcmeAction::Add {
            name,
            value,
            expires_in,
        } => {
            let name = parse_name(&name)?;
            store
                .check_add(&name, value.as_bytes())
                .map_err(|e| format!("{name}: {e}"))?;
            let secs = expires_in.unwrap_or(config.acme.expire_secs);
            vec![records::add(name, value.as_bytes(), now, secs)]
        }
        AcmeAction::Remove { name, value } => {
            let name = parse_name(&name)?;
            let held = store.get(name.wire());
            let found = match (&value, held) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(v), Some(e)) => e.values.iter().any(|(h, _)| **h == *v.as_bytes()),
            };
            if !found {
                return Err(format!("{name} holds no such value"));
            }
            vec![Change::TxtDelete {
                name,
                value: value.map(|v| v.into_bytes().into()),
            }]
        }
        AcmeAction::Expire => records::expired(store, now),
    };
    if changes.is_empty() {
        return Ok(());
    }
    let mut w = writer::open(&config)?;
    let seqs = w.write(&changes)?;
    for (i, c) in changes.into_iter().enumerate() {
        match seqs.get(i) {
            Some(&seq) => println!("{}", clusterns::feed::Sequenced { seq, change: c }),
            None => println!("{}", clusterns::feed::Sequenced { seq: 0, change: c }),
        }
    }
    Ok(())
}
