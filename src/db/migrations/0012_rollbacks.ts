import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/** The channel the gateway LISTENs on: every change of a route row is announced with its model name. */
export const ROUTE_CHANNEL = 'gateway_routes_changed';

/**
 * Rollback and rollback drills (issue 9, items 3 and 4). Facts, append-only like the other registry
 * facts (registry_refuse_change, migration 0003):
 *
 * - rollbacks: one row per rollback, written in the SAME transaction as the route switch and the
 *   registry state change (who, why, from, to, trigger).
 * - rollback_recoveries: the measured recovery of a rollback (first correct inference, RTO): a row of
 *   its own, because it is known only after the switch and facts are never updated.
 * - rollback_drills: one row per drill with its verdict and timings.
 *
 * And the gateway's route cache invalidation: a trigger NOTIFYs `gateway_routes_changed` with the
 * model name whenever a route row is inserted or updated. NOTIFY is delivered at COMMIT, so the
 * gateway drops its cached route exactly when the switch becomes visible, whoever switched it (a
 * deployment, a rollback, a retirement, a drill's shadow route).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE rollbacks (
      id               text PRIMARY KEY,
      model_name       text NOT NULL,
      from_version_id  integer NOT NULL REFERENCES model_versions(id),
      to_version_id    integer NOT NULL REFERENCES model_versions(id),
      from_version     integer NOT NULL,
      to_version       integer NOT NULL,
      trigger          text NOT NULL CHECK (trigger IN ('manual', 'monitoring', 'drill')),
      requested_by     text NOT NULL CHECK (length(requested_by) BETWEEN 1 AND 320),
      reason           text NOT NULL CHECK (length(reason) BETWEEN 3 AND 1000),
      artifact_digest  text NOT NULL CHECK (artifact_digest ~ '^sha256:[0-9a-f]{64}$'),
      requested_at     timestamptz NOT NULL,
      switched_at      timestamptz NOT NULL DEFAULT now(),
      CHECK (from_version_id <> to_version_id)
    )`.execute(db);
  await sql`CREATE INDEX rollbacks_model_time ON rollbacks (model_name, switched_at)`.execute(db);

  await sql`
    CREATE TABLE rollback_recoveries (
      rollback_id      text PRIMARY KEY REFERENCES rollbacks(id),
      first_correct_at timestamptz NOT NULL,
      rto_ms           integer NOT NULL CHECK (rto_ms >= 0),
      verified_via     text NOT NULL CHECK (verified_via IN ('gateway', 'triton'))
    )`.execute(db);

  await sql`
    CREATE TABLE rollback_drills (
      id                  text PRIMARY KEY,
      model_name          text NOT NULL,
      shadow_model        text NOT NULL,
      live_version        integer,
      previous_version    integer,
      verdict             text NOT NULL CHECK (verdict IN ('passed', 'failed', 'exceeded-rto')),
      rto_ms              integer CHECK (rto_ms >= 0),
      forward_ms          integer CHECK (forward_ms >= 0),
      policy_rto_seconds  integer,
      reason              text,
      evidence_uri        text,
      evidence_digest     text,
      requested_by        text NOT NULL,
      started_at          timestamptz NOT NULL,
      finished_at         timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX rollback_drills_model_time ON rollback_drills (model_name, finished_at)`.execute(db);

  for (const table of ['rollbacks', 'rollback_recoveries', 'rollback_drills']) {
    await sql`
      CREATE TRIGGER ${sql.id(`${table}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql.id(table)}
      FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()`.execute(db);
    await sql`
      CREATE TRIGGER ${sql.id(`${table}_no_truncate`)} BEFORE TRUNCATE ON ${sql.id(table)}
      FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change()`.execute(db);
    await grantToApp(db, table, { insert: true });
  }

  await sql`
    CREATE OR REPLACE FUNCTION gateway_routes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify(${sql.lit(ROUTE_CHANNEL)}, NEW.model_name);
      RETURN NULL;
    END $$`.execute(db);
  await sql`
    CREATE TRIGGER gateway_routes_notify AFTER INSERT OR UPDATE ON gateway_routes
    FOR EACH ROW EXECUTE FUNCTION gateway_routes_notify()`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('registry facts are never migrated down');
}
