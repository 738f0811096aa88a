import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/**
 * Retirements (issue 9 item 6): one row per retired model version, written by the `modelRetirement`
 * workflow in the same transaction that moves the version to `retired`, retires the gateway route
 * naming it and appends `model.retired`. A fact: the workers may only insert it.
 *
 * `retention` lists each evidence object whose Object Lock was extended to run from the retirement
 * (`[{role, uri, retainUntil, previous}]`): an examiner reads when each object may go without asking
 * the store.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE retirements (
      id text PRIMARY KEY,
      model_version_id integer NOT NULL UNIQUE REFERENCES model_versions(id),
      model_name text NOT NULL,
      version integer NOT NULL,
      previous_state text NOT NULL,
      reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
      requested_by text NOT NULL,
      workflow_id text NOT NULL,
      run_id text NOT NULL,
      route_retired boolean NOT NULL,
      retention jsonb NOT NULL,
      policy_digest text NOT NULL,
      retired_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX retirements_model ON retirements (model_name, retired_at)`.execute(db);
  await grantToApp(db, 'retirements', { insert: true });
}

export async function down(): Promise<void> {
  throw new Error('retirements are facts: never migrated down');
}
