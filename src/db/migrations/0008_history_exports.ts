import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/**
 * Each run of a closed lifecycle has its full Temporal history exported to the evidence bucket under
 * Object Lock (Temporal keeps a closed history only for the namespace retention). One row per run:
 * where the object is, its sha256 and how many events it holds. `closed_run_id` names the run that
 * closed the lifecycle; the runs it continued from (continue-as-new) share it. Append-only like the
 * other registry facts (migration 0003's registry_refuse_change).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE history_exports (
      workflow_id   text NOT NULL,
      run_id        text NOT NULL,
      closed_run_id text NOT NULL,
      run_index     integer NOT NULL CHECK (run_index >= 0),
      status        text NOT NULL,
      uri           text NOT NULL,
      digest        text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
      events        integer NOT NULL CHECK (events > 0),
      bytes         bigint NOT NULL CHECK (bytes > 0),
      retain_until  timestamptz NOT NULL,
      exported_at   timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (workflow_id, run_id)
    )`.execute(db);
  await sql`CREATE INDEX history_exports_closed_run ON history_exports (workflow_id, closed_run_id)`.execute(db);
  await sql`
    CREATE TRIGGER history_exports_append_only BEFORE UPDATE OR DELETE ON history_exports
    FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()`.execute(db);
  await sql`
    CREATE TRIGGER history_exports_no_truncate BEFORE TRUNCATE ON history_exports
    FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change()`.execute(db);
  // The workers (the archiver's activity) insert; the CLI reads (audit verify --history).
  await grantToApp(db, 'history_exports', { insert: true });
}

export async function down(): Promise<void> {
  throw new Error('registry facts are never migrated down');
}
