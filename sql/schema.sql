-- clusterns: the PostgreSQL change feed.
--
-- The platform's database is the source of truth for which cluster every app ("repl") lives
-- in. clusterns reads it in two ways (src/feed/postgres.rs):
--
--   1. at start (and whenever it has fallen too far behind), one consistent REPEATABLE READ
--      read of the whole `repls` table plus the highest `repl_changes.seq` that read reflects;
--   2. from then on, the rows of `repl_changes` with `seq` greater than the last one it
--      applied, in `seq` order, woken by NOTIFY on the channel `clusterns_changes`.
--
-- The platform only writes `repls` with plain INSERT / UPDATE / DELETE (or TRUNCATE); the
-- triggers below append one row per change to `repl_changes` in the same transaction, so the
-- log can never disagree with the table.
--
-- Apply it with `psql -v ON_ERROR_STOP=1 -f sql/schema.sql` or from Rust with
-- `clusterns::feed::postgres::apply_schema`. It is idempotent (IF NOT EXISTS / OR REPLACE) and
-- runs as one transaction, so it can be applied again on every deploy. It needs PostgreSQL 14
-- or later (CREATE OR REPLACE TRIGGER). It does not GRANT anything: clusterns needs SELECT on
-- `repls` and `repl_changes`, nothing else.
--
-- Names (ids, users, slugs, clusters) must be DNS labels: letters, digits, '-' and '_', at most
-- 63 bytes. clusterns lower-cases them; a row it cannot use is logged and skipped, never
-- served. The table does not enforce this, so that an existing table keeps working.
--
-- Ordering: the sequence number is the position in the feed. A reader asks for
-- `seq > last` and never looks back, so a row must never become visible after a row with a
-- larger seq, or the reader would skip it forever. A plain sequence does not give that: two
-- transactions take 7 and 8, the one with 8 commits first, a reader sees 8, and 7 appears
-- later behind its back. Therefore every writer takes one transaction-scoped advisory lock
-- (key 7164230245974110830, the bytes of "clustern") BEFORE it calls nextval, and holds it to
-- commit or rollback: the next writer gets its numbers only after the previous one has ended,
-- so seq order equals commit order.
--
-- The trade-off: transactions that change repls are serialized from their first change to
-- their commit. A long transaction that changes an app blocks every other writer of repls until
-- it ends; keep such transactions short. Reads of repls are never blocked. The lock is taken
-- by a BEFORE statement trigger, before the statement locks any row, so two writers cannot
-- deadlock on "row lock vs. advisory lock" (a transaction that first locks repls rows with
-- SELECT ... FOR UPDATE and only then modifies them can; take the lock first there:
-- `SELECT pg_advisory_xact_lock(7164230245974110830)`).
--
-- Gaps: a rolled-back transaction still consumes its sequence numbers, so seq may have gaps.
-- Readers must not expect seq + 1; they only rely on the order.
--
-- Pruning: old log rows may be deleted, e.g.
--   DELETE FROM repl_changes WHERE changed_at < now() - interval '7 days';
-- A reader whose position is older than the oldest row left (oldest seq > its last seq + 1)
-- reloads the whole table; one that is up to date is not affected.
--
-- Triggers do not fire with `session_replication_role = replica` (logical replication apply,
-- some restore tools): changes written that way do not reach the log.

BEGIN;

-- Applying the schema serializes with writers and with itself (two servers starting at once).
SELECT pg_advisory_xact_lock(7164230245974110830);

-- The apps: one row per app, named <slug>.<user_name>.<zone> and <id>.<zone> in DNS. The
-- unique constraint must stay NOT DEFERRABLE: it is checked row by row, so every prefix of the
-- change log is itself a consistent table (no two apps ever hold the same name).
CREATE TABLE IF NOT EXISTS repls (
    id        text PRIMARY KEY,
    user_name text NOT NULL,
    slug      text NOT NULL,
    cluster   text NOT NULL,
    UNIQUE (user_name, slug)
);

-- The feed's sequence numbers. CACHE 1 is required: with a per-session cache, sessions would
-- hand out pre-allocated numbers out of order. Only the triggers below may call nextval on it,
-- and only under the advisory lock (so there is deliberately no DEFAULT on repl_changes.seq).
CREATE SEQUENCE IF NOT EXISTS repl_changes_seq AS bigint START 1 CACHE 1 NO CYCLE;
ALTER SEQUENCE repl_changes_seq CACHE 1 NO CYCLE;

-- The change log, one row per change, in seq order:
--   'set'    create the app or replace it (a move to another cluster, a new user or slug);
--            user_name, slug and cluster hold the new values.
--   'delete' remove the app; user_name, slug and cluster hold its last values, for the record
--            (clusterns only uses the id).
-- An UPDATE that changes the id is logged as a delete of the old id and then a set of the new.
CREATE TABLE IF NOT EXISTS repl_changes (
    seq        bigint PRIMARY KEY,
    op         text NOT NULL CHECK (op IN ('set', 'delete')),
    id         text NOT NULL,
    user_name  text,
    slug       text,
    cluster    text,
    changed_at timestamptz NOT NULL DEFAULT now()
);

ALTER SEQUENCE repl_changes_seq OWNED BY repl_changes.seq;

-- For pruning by age.
CREATE INDEX IF NOT EXISTS repl_changes_changed_at ON repl_changes (changed_at);

-- BEFORE each statement that may change apps: take the writers' lock before any row is touched.
-- Updates that name none of the four columns (if the platform adds columns of its own) neither
-- take the lock nor are logged.
CREATE OR REPLACE FUNCTION clusterns_repls_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    RETURN NULL;
END;
$$;

-- AFTER each changed row: append to the log. The lock is taken again (cheap: this transaction
-- already holds it) so that nextval is never called without it, whatever fired the row trigger.
-- Updates that leave the four columns as they were (e.g. an update of another column) are not
-- logged.
CREATE OR REPLACE FUNCTION clusterns_repls_log() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (OLD.id, OLD.user_name, OLD.slug, OLD.cluster)
           IS NOT DISTINCT FROM (NEW.id, NEW.user_name, NEW.slug, NEW.cluster) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id) THEN
        INSERT INTO repl_changes (seq, op, id, user_name, slug, cluster)
        VALUES (nextval('repl_changes_seq'), 'delete', OLD.id, OLD.user_name, OLD.slug, OLD.cluster);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO repl_changes (seq, op, id, user_name, slug, cluster)
        VALUES (nextval('repl_changes_seq'), 'set', NEW.id, NEW.user_name, NEW.slug, NEW.cluster);
    END IF;
    RETURN NULL;
END;
$$;

-- BEFORE TRUNCATE: row triggers do not fire for TRUNCATE, so log a delete for every app while
-- the rows are still there (TRUNCATE already holds its exclusive lock on repls).
CREATE OR REPLACE FUNCTION clusterns_repls_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    INSERT INTO repl_changes (seq, op, id, user_name, slug, cluster)
    SELECT nextval('repl_changes_seq'), 'delete', r.id, r.user_name, r.slug, r.cluster
    FROM (SELECT id, user_name, slug, cluster FROM repls ORDER BY id) AS r;
    RETURN NULL;
END;
$$;

-- AFTER each statement: wake the readers. Notifications are delivered at commit, and several
-- in one transaction with the same payload are folded into one. A statement that changed
-- nothing still notifies; readers then find nothing new, which is harmless.
CREATE OR REPLACE FUNCTION clusterns_repls_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('clusterns_changes', '');
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER clusterns_repls_lock
    BEFORE INSERT OR UPDATE OF id, user_name, slug, cluster OR DELETE ON repls
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_lock();

CREATE OR REPLACE TRIGGER clusterns_repls_log
    AFTER INSERT OR UPDATE OR DELETE ON repls
    FOR EACH ROW EXECUTE FUNCTION clusterns_repls_log();

CREATE OR REPLACE TRIGGER clusterns_repls_truncate
    BEFORE TRUNCATE ON repls
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_truncate();

CREATE OR REPLACE TRIGGER clusterns_repls_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON repls
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_notify();

COMMIT;
