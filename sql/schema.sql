-- clusterns: the PostgreSQL change feed.
--
-- The platform's database is the source of truth for which cluster every app ("repl") lives
-- in. clusterns reads it in two ways (src/feed/postgres.rs):
--
--   1. at start (and whenever changes it had not read yet were pruned), one consistent
--      REPEATABLE READ read of the whole `repls` table plus the position that read reflects
--      (the highest `repl_changes.seq`, or the pruning mark if higher);
--   2. from then on, the rows of `repl_changes` with `seq` greater than the last one it
--      applied, in `seq` order, woken by NOTIFY on the channel `clusterns_changes`, together
--      with the pruning mark (`repl_changes_pruned`, below) in the same statement.
--
-- The platform only writes `repls` with plain INSERT / UPDATE / DELETE (or TRUNCATE); the
-- triggers below append one row per change to `repl_changes` in the same transaction, so the
-- log can never disagree with the table.
--
-- Apply it with `psql -v ON_ERROR_STOP=1 -f sql/schema.sql` or from Rust with
-- `clusterns::feed::postgres::apply_schema`. It is idempotent (IF NOT EXISTS / OR REPLACE) and
-- runs as one transaction, so it can be applied again on every deploy, and over a database set
-- up by an older version. It needs PostgreSQL 14 or later (CREATE OR REPLACE TRIGGER). It does
-- not GRANT anything: clusterns needs SELECT on `repls`, `repl_changes`,
-- `repl_changes_pruned`, `acme_txt` and `lb_health`, nothing else; whoever prunes `repl_changes` also needs UPDATE on
-- `repl_changes_pruned` (the pruning triggers run as the pruner).
--
-- Names (ids, users, slugs, clusters) must be lower-case DNS labels: 1 to 63 bytes of a-z,
-- 0-9, '-' and '_'; and no id, user or slug may be '_acme-challenge' (`_acme-challenge.<name>`
-- is where ACME DNS-01 challenges are looked up). CHECK constraints on `repls` refuse new and
-- updated rows that break this. They are added NOT VALID, so that an existing table that
-- already holds such rows still takes this schema: clusterns never lower-cases a name (two
-- rows 'DupId' and 'dupid' must not become one DNS name, where deleting one would remove the
-- other), it logs and skips every row that is not exactly a lower-case label, and counts it as
-- rejected. Fix or delete such rows, then, if you like, make the constraints cover old rows
-- too: `ALTER TABLE repls VALIDATE CONSTRAINT repls_id_label` (and _user_name_, _slug_,
-- _cluster_label).
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
-- (or the log truncated). Triggers keep, in the one row of `repl_changes_pruned`, the highest
-- seq ever deleted from the log (`pruned_upto`), in the same transaction as the deletion.
-- Readers read it in the same snapshot as the rows they read: a reader whose position is below
-- it has missed changes and reloads the whole table; one at or past it (deleted rows it had
-- read already, seq numbers that rolled back) is not affected. Do not delete that row; do
-- not let anything but the triggers write `repl_changes`.
--
-- Triggers do not fire with `session_replication_role = replica` (logical replication apply,
-- some restore tools): changes written that way do not reach the log, and log rows pruned
-- that way do not raise the pruning mark (readers would not know what they missed).

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

-- The pruning mark: one row (its key can only be true), `pruned_upto` = the highest seq ever
-- deleted from repl_changes, 0 if none.
CREATE TABLE IF NOT EXISTS repl_changes_pruned (
    one         boolean PRIMARY KEY DEFAULT true CHECK (one),
    pruned_upto bigint NOT NULL CHECK (pruned_upto >= 0)
);

-- No pruning while the mark is set up: a DELETE that started before this transaction's
-- triggers exist would not raise it. (Writers of repls are already kept out by the lock above.)
LOCK TABLE repl_changes IN SHARE ROW EXCLUSIVE MODE;

-- A new mark. On a new database: 0. On a database set up by an older version, the log may have
-- been pruned already, and a gap left by pruning cannot be told from one left by a rolled-back
-- transaction: everything below the oldest row left counts as pruned (a reader older than that
-- reloads; none newer does), and with no row left, everything the sequence has handed out.
INSERT INTO repl_changes_pruned (one, pruned_upto)
SELECT true, coalesce(
    (SELECT min(seq) - 1 FROM repl_changes),
    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM repl_changes_seq),
    0)
WHERE NOT EXISTS (SELECT FROM repl_changes_pruned);

-- AFTER each DELETE statement on the log: raise the mark to the highest seq it deleted. (The
-- WHERE keeps a statement that deleted nothing, or only rows below the mark, from writing the
-- row; concurrent pruners serialize on it and each re-checks the latest mark.)
CREATE OR REPLACE FUNCTION clusterns_changes_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repl_changes_pruned AS p SET pruned_upto = d.upto
    FROM (SELECT max(seq) AS upto FROM clusterns_deleted_changes) AS d
    WHERE d.upto > p.pruned_upto;
    RETURN NULL;
END;
$$;

-- TRUNCATE of the log, BEFORE: the rows are still there (TRUNCATE holds its exclusive lock):
-- raise the mark to the highest seq, and remember how far the sequence had gone. AFTER: if the
-- sequence moved in between, another table's BEFORE TRUNCATE trigger in the same statement
-- logged rows that went too (`TRUNCATE repl_changes, repls`): raise the mark to the sequence.
-- And if it went back (`RESTART IDENTITY`), put it back: seq numbers must only grow.
CREATE OR REPLACE FUNCTION clusterns_changes_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    handed_out bigint;
    before_truncate bigint;
BEGIN
    SELECT CASE WHEN is_called THEN last_value ELSE 0 END INTO handed_out FROM repl_changes_seq;
    IF TG_WHEN = 'BEFORE' THEN
        UPDATE repl_changes_pruned AS p SET pruned_upto = d.upto
        FROM (SELECT max(seq) AS upto FROM repl_changes) AS d
        WHERE d.upto > p.pruned_upto;
        PERFORM set_config('clusterns.seq_before_truncate', handed_out::text, true);
        RETURN NULL;
    END IF;
    before_truncate := nullif(current_setting('clusterns.seq_before_truncate', true), '')::bigint;
    IF before_truncate IS NULL THEN
        -- Not seen by the BEFORE trigger (cannot happen): assume the worst.
        before_truncate := 0;
    END IF;
    IF handed_out < before_truncate THEN
        PERFORM setval('repl_changes_seq', before_truncate);
    ELSIF handed_out > before_truncate THEN
        UPDATE repl_changes_pruned SET pruned_upto = handed_out WHERE pruned_upto < handed_out;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER clusterns_changes_deleted
    AFTER DELETE ON repl_changes
    REFERENCING OLD TABLE AS clusterns_deleted_changes
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_changes_deleted();

CREATE OR REPLACE TRIGGER clusterns_changes_truncate_before
    BEFORE TRUNCATE ON repl_changes
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_changes_truncated();

CREATE OR REPLACE TRIGGER clusterns_changes_truncate_after
    AFTER TRUNCATE ON repl_changes
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_changes_truncated();

-- Names as clusterns takes them (see the top): lower-case labels, '_acme-challenge' reserved
-- for ids, users and slugs. NOT VALID: rows already there are not checked (clusterns skips the
-- bad ones); every row inserted or updated from now on is. The character class is spelled out
-- (no ranges), so that no collation can widen it.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'repls'::regclass AND conname = 'repls_id_label') THEN
        ALTER TABLE repls ADD CONSTRAINT repls_id_label
            CHECK (id ~ '^[-_0123456789abcdefghijklmnopqrstuvwxyz]{1,63}$'
                   AND id <> '_acme-challenge') NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'repls'::regclass AND conname = 'repls_user_name_label') THEN
        ALTER TABLE repls ADD CONSTRAINT repls_user_name_label
            CHECK (user_name ~ '^[-_0123456789abcdefghijklmnopqrstuvwxyz]{1,63}$'
                   AND user_name <> '_acme-challenge') NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'repls'::regclass AND conname = 'repls_slug_label') THEN
        ALTER TABLE repls ADD CONSTRAINT repls_slug_label
            CHECK (slug ~ '^[-_0123456789abcdefghijklmnopqrstuvwxyz]{1,63}$'
                   AND slug <> '_acme-challenge') NOT VALID;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'repls'::regclass AND conname = 'repls_cluster_label') THEN
        ALTER TABLE repls ADD CONSTRAINT repls_cluster_label
            CHECK (cluster ~ '^[-_0123456789abcdefghijklmnopqrstuvwxyz]{1,63}$') NOT VALID;
    END IF;
END;
$$;

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

-- ACME DNS-01 challenge TXT records (`_acme-challenge.<owner>`), written by the servers that
-- accept RFC 2136 UPDATEs (or `clusterns acme add/remove`), read by every server fed by this
-- database. One row per value: `name` the lower-case challenge name without the final dot,
-- `value` one TXT character-string (1 to 255 bytes), `expires_at` unix seconds at which the
-- writing server's janitor deletes it (edges never expire records by their own clock).
-- Triggers log every change into repl_changes, in the same order as app changes: op
-- 'txt-add' (id = name, value, expires_at) or 'txt-del' (id = name, value; NULL value: every
-- value of the name). clusterns needs SELECT on acme_txt too; a writer needs INSERT, UPDATE and
-- DELETE.
CREATE TABLE IF NOT EXISTS acme_txt (
    name       text NOT NULL CHECK (name ~ '^_acme-challenge(\.[-_0-9a-z]{1,63})+$'),
    value      bytea NOT NULL CHECK (octet_length(value) BETWEEN 1 AND 255),
    expires_at bigint NOT NULL CHECK (expires_at >= 0),
    PRIMARY KEY (name, value)
);

ALTER TABLE repl_changes ADD COLUMN IF NOT EXISTS value bytea;
ALTER TABLE repl_changes ADD COLUMN IF NOT EXISTS expires_at bigint;
-- For the load balancers' health reports (below).
ALTER TABLE repl_changes ADD COLUMN IF NOT EXISTS addr inet;
ALTER TABLE repl_changes ADD COLUMN IF NOT EXISTS up boolean;
-- Widened once per version (a database set up by an older version allows fewer ops); not
-- again on every apply, which would scan the log under an exclusive lock.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_constraint
                   WHERE conrelid = 'repl_changes'::regclass AND conname = 'repl_changes_op_check'
                     AND pg_get_constraintdef(oid) LIKE '%health%') THEN
        ALTER TABLE repl_changes DROP CONSTRAINT IF EXISTS repl_changes_op_check;
        ALTER TABLE repl_changes ADD CONSTRAINT repl_changes_op_check
            CHECK (op IN ('set', 'delete', 'txt-add', 'txt-del', 'health'));
    END IF;
END;
$$;

CREATE OR REPLACE FUNCTION clusterns_acme_txt_log() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (OLD.name, OLD.value, OLD.expires_at)
           IS NOT DISTINCT FROM (NEW.name, NEW.value, NEW.expires_at) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE' AND (OLD.name, OLD.value) IS DISTINCT FROM (NEW.name, NEW.value)) THEN
        INSERT INTO repl_changes (seq, op, id, value)
        VALUES (nextval('repl_changes_seq'), 'txt-del', OLD.name, OLD.value);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO repl_changes (seq, op, id, value, expires_at)
        VALUES (nextval('repl_changes_seq'), 'txt-add', NEW.name, NEW.value, NEW.expires_at);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION clusterns_acme_txt_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    INSERT INTO repl_changes (seq, op, id)
    SELECT nextval('repl_changes_seq'), 'txt-del', t.name
    FROM (SELECT DISTINCT name FROM acme_txt ORDER BY name) AS t;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER clusterns_acme_txt_lock
    BEFORE INSERT OR UPDATE OR DELETE ON acme_txt
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_lock();

CREATE OR REPLACE TRIGGER clusterns_acme_txt_log
    AFTER INSERT OR UPDATE OR DELETE ON acme_txt
    FOR EACH ROW EXECUTE FUNCTION clusterns_acme_txt_log();

CREATE OR REPLACE TRIGGER clusterns_acme_txt_truncate
    BEFORE TRUNCATE ON acme_txt
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_acme_txt_truncate();

CREATE OR REPLACE TRIGGER clusterns_acme_txt_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON acme_txt
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_notify();

-- Load-balancer health: the latest report of each checker (`clusterns health`) about each
-- address of each cluster: `up` until unix second `until` (the report's lease; after it the
-- report no longer counts and, with no other, edges answer the address: fail open). Checkers
-- write it (INSERT ... ON CONFLICT DO UPDATE), every server reads it. Triggers log every change
-- into repl_changes, in the same order as app changes: op 'health' (id = checker, cluster,
-- addr, up, expires_at = until); a deleted row (or one whose key changes) is logged as a
-- report of its checker with expires_at 0, which withdraws it. Checker and cluster names are
-- lower-case labels, addr a single address (no network). clusterns needs SELECT on lb_health;
-- a checker needs INSERT, UPDATE and DELETE.
CREATE TABLE IF NOT EXISTS lb_health (
    checker text NOT NULL CHECK (checker ~ '^[-_0123456789abcdefghijklmnopqrstuvwxyz]{1,63}$'),
    cluster text NOT NULL CHECK (cluster ~ '^[-_0123456789abcdefghijklmnopqrstuvwxyz]{1,63}$'),
    addr    inet NOT NULL CHECK (masklen(addr) = CASE family(addr) WHEN 4 THEN 32 ELSE 128 END),
    up      boolean NOT NULL,
    until   bigint NOT NULL CHECK (until >= 0),
    PRIMARY KEY (checker, cluster, addr)
);

CREATE OR REPLACE FUNCTION clusterns_lb_health_log() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND (OLD.checker, OLD.cluster, OLD.addr, OLD.up, OLD.until)
           IS NOT DISTINCT FROM (NEW.checker, NEW.cluster, NEW.addr, NEW.up, NEW.until) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    IF TG_OP = 'DELETE'
       OR (TG_OP = 'UPDATE'
           AND (OLD.checker, OLD.cluster, OLD.addr) IS DISTINCT FROM (NEW.checker, NEW.cluster, NEW.addr)) THEN
        INSERT INTO repl_changes (seq, op, id, cluster, addr, up, expires_at)
        VALUES (nextval('repl_changes_seq'), 'health', OLD.checker, OLD.cluster, OLD.addr, OLD.up, 0);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO repl_changes (seq, op, id, cluster, addr, up, expires_at)
        VALUES (nextval('repl_changes_seq'), 'health', NEW.checker, NEW.cluster, NEW.addr, NEW.up, NEW.until);
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION clusterns_lb_health_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7164230245974110830);
    INSERT INTO repl_changes (seq, op, id, cluster, addr, up, expires_at)
    SELECT nextval('repl_changes_seq'), 'health', h.checker, h.cluster, h.addr, h.up, 0
    FROM (SELECT checker, cluster, addr, up FROM lb_health ORDER BY checker, cluster, addr) AS h;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE TRIGGER clusterns_lb_health_lock
    BEFORE INSERT OR UPDATE OR DELETE ON lb_health
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_lock();

CREATE OR REPLACE TRIGGER clusterns_lb_health_log
    AFTER INSERT OR UPDATE OR DELETE ON lb_health
    FOR EACH ROW EXECUTE FUNCTION clusterns_lb_health_log();

CREATE OR REPLACE TRIGGER clusterns_lb_health_truncate
    BEFORE TRUNCATE ON lb_health
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_lb_health_truncate();

CREATE OR REPLACE TRIGGER clusterns_lb_health_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON lb_health
    FOR EACH STATEMENT EXECUTE FUNCTION clusterns_repls_notify();

COMMIT;
