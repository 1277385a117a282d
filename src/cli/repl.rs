//! `clusterns repl` and `clusterns journal compact`: changing the journal by hand.

use std::path::PathBuf;
use std::sync::Arc;

use clusterns::config::{Config, SourceConfig};
use clusterns::feed::journal::append;
use clusterns::feed::{Builder, Change};
use clusterns::name::Label;

use crate::cli::args::*;

pub(crate) fn repl(config_path: PathBuf, action: ReplAction) -> Result<(), String> {
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let SourceConfig::Journal { path } = &config.feed.source else {
        return Err(format!(
            "{}: the feed is PostgreSQL; change apps in the database (see sql/schema.sql)",
            config_path.display()
        ));
    };
    let check_cluster = |c: &Label| {
        if config.cluster_index(c.as_str()).is_none() {
            Err(format!("cluster {c} is not in {}", config_path.display()))
        } else {
            Ok(())
        }
    };
    // Every check is made on the table as the feed has it now (the checkpoint, if there is
    // one, and the journal after it), by the server's own rules.
    let mut table = Builder::load(config.clone())
        .map_err(|e| format!("loading the feed: {e}"))?
        .into_table();
    let change = match action {
        ReplAction::Set {
            id,
            user,
            slug,
            cluster,
        } => {
            check_cluster(&cluster)?;
            check_names(&config, &id, &user, &slug)?;
            let change = Change::Upsert {
                id,
                user,
                slug,
                cluster,
            };
            // Refuses a change the server would skip (a name another app holds).
            change.apply_to(&mut table)?;
            change
        }
        ReplAction::Move { id, cluster } => {
            check_cluster(&cluster)?;
            let (user, slug) = current(&table, &id)?;
            Change::Upsert {
                id,
                user,
                slug,
                cluster,
            }
        }
        ReplAction::Delete { id } => {
            current(&table, &id)?;
            Change::Delete { id }
        }
    };
    drop(table);
    // Number after the checkpoint too: a journal that lost its lines must never be numbered
    // again from where it now ends (the server would take the new lines as already applied).
    // The journal is read from where the checkpoint left it, not from its start.
    let (floor, from) = clusterns::feed::writer::journal_floor(config.feed.checkpoint.as_deref())?;
    let appended = append(path, &[change], floor, from, floor == 0).map_err(|e| {
        if floor > 0 && e.kind() == std::io::ErrorKind::NotFound {
            format!(
                "journal {} has no changes but checkpoint {} is at sequence {floor}: the journal \
                 was deleted or rotated away. Run `clusterns journal compact --config {}` to \
                 start it again from the table (or restore it)",
                path.display(),
                config
                    .feed
                    .checkpoint
                    .as_ref()
                    .map_or(String::new(), |c| c.display().to_string()),
                config_path.display()
            )
        } else {
            format!("{}: {e}", path.display())
        }
    })?;
    if let Some(torn) = appended.dropped {
        eprintln!(
            "clusterns: {}: removed an incomplete last line (no newline; a writer died): {torn}",
            path.display()
        );
    }
    for s in appended.written {
        println!("{s}");
    }
    Ok(())
}

/// Refuses app names that could never be reached: a reserved label, or an id or user that is
/// a configured host (or the name above one), or a zone nested in a served zone.
pub(crate) fn check_names(
    config: &Config,
    id: &Label,
    user: &Label,
    slug: &Label,
) -> Result<(), String> {
    use clusterns::feed::journal::RESERVED_LABEL;
    for (what, l) in [("repl id", id), ("user", user), ("slug", slug)] {
        if l.as_str() == RESERVED_LABEL {
            return Err(format!("{what} {RESERVED_LABEL} is reserved"));
        }
    }
    for (what, l) in [("repl id", id), ("user", user)] {
        if let Some(by) = config.answered_elsewhere(l.as_str()) {
            return Err(format!(
                "{what} {l} would be answered by the {by} in the configuration, never as an app"
            ));
        }
    }
    Ok(())
}

/// The user and slug of app `id` in `table`.
pub(crate) fn current(
    table: &clusterns::table::Table,
    id: &Label,
) -> Result<(Label, Label), String> {
    let (user, slug, _) = table
        .get(id.as_str())
        .ok_or_else(|| format!("repl {id} does not exist"))?;
    let label = |s: String| s.parse::<Label>().map_err(|e| format!("journal: {e}"));
    Ok((label(user)?, label(slug)?))
}

pub(crate) fn compact(config_path: PathBuf, keep_old: Option<PathBuf>) -> Result<(), String> {
    let config = Arc::new(Config::load(&config_path).map_err(|e| e.to_string())?);
    let c = clusterns::feed::compact::compact(config, keep_old.as_deref())?;
    println!(
        "{}: compacted to {} apps at sequence {} ({} -> {} bytes)",
        c.path.display(),
        c.apps,
        c.seq,
        c.bytes_before,
        c.bytes_after
    );
    Ok(())
}
