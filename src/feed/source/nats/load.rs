//! A downloaded snapshot's contents as changes (what a bootstrap mid-run hands the builder
//! after a reset: apps, challenge records, health reports still within their lease). Its
//! table with the cluster registry it lists is `checkpoint::Loaded::into_table`.

use crate::feed::change::Change;
use crate::name::check_label;
use crate::table::Table;

/// Everything `table` holds as changes that rebuild it from empty: its apps (sorted by id),
/// then its challenge TXT values, then its health reports whose lease ends after `now`
/// (unix seconds). An app whose texts are not labels any more (cannot happen for a table
/// built from changes) is an error naming it.
pub fn changes_of(table: &Table, now: u64) -> Result<Vec<Change>, String> {
    let names = table.clusters().names();
    let mut out = Vec::with_capacity(table.len());
    for (id, user, slug, c) in table.apps() {
        let cluster = names
            .get(usize::from(c))
            .ok_or_else(|| format!("app {id}: cluster #{c} is not in the registry"))?;
        let label = |s: &str| check_label(s).map_err(|e| format!("app {id}: {s:?}: {e}"));
        out.push(Change::Upsert {
            id: label(&id)?,
            user: label(&user)?,
            slug: label(&slug)?,
            cluster: cluster.clone(),
        });
    }
    for e in table.acme().iter() {
        for (value, expires) in &e.values {
            out.push(Change::TxtAdd {
                name: e.name.clone(),
                value: value.clone(),
                expires: *expires,
            });
        }
    }
    out.extend(
        table
            .health()
            .iter()
            .filter(|r| r.until > now)
            .map(Change::Health),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::change::Sequenced;
    use crate::feed::journal::parse_line;

    fn table(lines: &[&str]) -> Table {
        let mut t = Table::default();
        for l in lines {
            let s: Sequenced = parse_line(l).unwrap().unwrap();
            s.change.apply_to(&mut t).unwrap();
        }
        t
    }

    #[test]
    fn a_table_rebuilt_from_its_changes_is_the_same() {
        let t = table(&[
            "1 set r1 mark coolgame us-east",
            "2 set r2 ann blog eu-1",
            "3 set r3 mark other us-east",
            "4 delete r3",
            "5 txt-add _acme-challenge.mark.repl.co 4000000000 6869",
            "6 health eu-1 us-east 192.0.2.1 down 4000000030",
            "7 health eu-1 us-east 192.0.2.2 up 100",
        ]);
        let changes = changes_of(&t, 1_000).unwrap();
        // Two apps, one TXT value, one report within its lease.
        assert_eq!(changes.len(), 4, "{changes:?}");
        let mut rebuilt = Table::default();
        for c in &changes {
            c.apply_to(&mut rebuilt).unwrap();
        }
        assert_eq!(rebuilt.apps(), t.apps());
        assert_eq!(rebuilt.acme().value_count(), 1);
        assert_eq!(rebuilt.health().iter().count(), 1);
    }

    #[test]
    fn the_registry_comes_from_the_list() {
        let t = table(&["1 set r1 mark coolgame us-east", "2 set r2 ann blog eu-1"]);
        let names: Vec<String> = t
            .clusters()
            .names()
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        let folded = t.folded().unwrap();
        let loaded = |clusters: Vec<String>| crate::feed::checkpoint::Loaded {
            table: folded.clone(),
            position: Default::default(),
            clusters,
        };
        let (back, _) = loaded(names.clone()).into_table().unwrap();
        assert_eq!(back.apps(), t.apps());
        let e = loaded(names[..1].to_vec()).into_table().unwrap_err();
        assert!(e.contains("does not list"), "{e}");
        let e = loaded(vec!["Bad Name".into(), "x".into()])
            .into_table()
            .unwrap_err();
        assert!(e.contains("not a label"), "{e}");
    }
}
