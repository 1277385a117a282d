//! The PostgreSQL [`ChangeWriter`]: one transaction per
//! batch, committed before [`PgWriter::write`](ChangeWriter::write)
//! returns. The schema's triggers number the changes in `repl_changes` (so the write returns
//! no sequence numbers) and NOTIFY every server.
//!
//! Challenge records go to `acme_txt` (an add of a value held already moves its expiry); app
//! changes to `repls`; health reports to `lb_health` (an upsert per checker and address; one
//! with `until` 0 deletes the row, which the trigger logs as that withdrawal).

use postgres::Client;

use super::ChangeWriter;
use crate::feed::change::Change;
use crate::feed::postgres::{connect_plain, PgError};
use crate::name::DomainName;

/// A connection that writes batches of changes (reconnects after an error).
pub struct PgWriter {
    conninfo: String,
    client: Option<Client>,
}

impl std::fmt::Debug for PgWriter {
    /// Leaves out the connection string, which may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgWriter")
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// A challenge name as `acme_txt` holds it: lower-case, without the final dot.
fn column(name: &DomainName) -> String {
    let t = name.to_string();
    t.strip_suffix('.').map_or(t.clone(), str::to_string)
}

impl PgWriter {
    /// A writer for the database at `conninfo`; connects at once so that a wrong setting is
    /// reported now.
    pub fn new(conninfo: &str) -> Result<PgWriter, String> {
        let mut w = PgWriter {
            conninfo: conninfo.to_string(),
            client: None,
        };
        w.client = Some(w.connect()?);
        Ok(w)
    }

    fn connect(&self) -> Result<Client, String> {
        connect_plain(&self.conninfo).map_err(|e| format!("postgres: {e}"))
    }

    fn write_in(client: &mut Client, changes: &[Change]) -> Result<(), PgError> {
        let mut tx = client.transaction()?;
        for c in changes {
            match c {
                Change::TxtAdd {
                    name,
                    value,
                    expires,
                } => {
                    let expires = i64::try_from(*expires).unwrap_or(i64::MAX);
                    tx.execute(
                        "INSERT INTO acme_txt (name, value, expires_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (name, value) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                        &[&column(name), &&value[..], &expires],
                    )?;
                }
                Change::TxtDelete { name, value: None } => {
                    tx.execute("DELETE FROM acme_txt WHERE name = $1", &[&column(name)])?;
                }
                Change::TxtDelete {
                    name,
                    value: Some(v),
                } => {
                    tx.execute(
                        "DELETE FROM acme_txt WHERE name = $1 AND value = $2",
                        &[&column(name), &&v[..]],
                    )?;
                }
                Change::Upsert {
                    id,
                    user,
                    slug,
                    cluster,
                } => {
                    tx.execute(
                        "INSERT INTO repls (id, user_name, slug, cluster) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET user_name = EXCLUDED.user_name, \
                         slug = EXCLUDED.slug, cluster = EXCLUDED.cluster",
                        &[
                            &id.as_str(),
                            &user.as_str(),
                            &slug.as_str(),
                            &cluster.as_str(),
                        ],
                    )?;
                }
                Change::Delete { id } => {
                    tx.execute("DELETE FROM repls WHERE id = $1", &[&id.as_str()])?;
                }
                Change::Health(r) if r.until == 0 => {
                    tx.execute(
                        "DELETE FROM lb_health WHERE checker = $1 AND cluster = $2 AND addr = $3",
                        &[&r.checker.as_str(), &r.cluster.as_str(), &r.addr],
                    )?;
                }
                Change::Health(r) => {
                    let until = i64::try_from(r.until).unwrap_or(i64::MAX);
                    tx.execute(
                        "INSERT INTO lb_health (checker, cluster, addr, up, until) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (checker, cluster, addr) \
                         DO UPDATE SET up = EXCLUDED.up, until = EXCLUDED.until",
                        &[
                            &r.checker.as_str(),
                            &r.cluster.as_str(),
                            &r.addr,
                            &r.up,
                            &until,
                        ],
                    )?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }
}

impl ChangeWriter for PgWriter {
    fn write(&mut self, changes: &[Change]) -> Result<Vec<u64>, String> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = match self.client.take() {
            Some(c) if !c.is_closed() => c,
            _ => self.connect()?,
        };
        Self::write_in(&mut client, changes).map_err(|e| format!("postgres: {e}"))?;
        self.client = Some(client);
        Ok(Vec::new())
    }
}
