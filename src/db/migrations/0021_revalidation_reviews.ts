import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/**
 * Revalidation reviews (issue 11 item 3, SR 11-7 periodic review): one row per review the
 * `revalidationSweep` opened for a version whose validation fell due (`revalidation_reviews`), and one
 * row for how it ended (`revalidation_outcomes`): revalidated by a validator, failed (rejected), or
 * timed out. Both are facts written by the `revalidationReview` workflow in the same transaction as
 * their audit event: the workers may only insert them. The inventory reads a `revalidated` outcome's
 * `decided_at` as the version's last validation, and a review without an outcome as open.
 *
 * One review per version and due date: the review's workflow id is derived from both (a sweep run
 * twice starts nothing twice) and is the key here (a retried activity inserts nothing twice). A review
 * that timed out without a decision is opened again by the next sweep, as attempt 2, 3, ….
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE revalidation_reviews (
      workflow_id text PRIMARY KEY,
      model_version_id integer NOT NULL REFERENCES model_versions(id),
      model_name text NOT NULL,
      version integer NOT NULL,
      risk_tier text NOT NULL,
      due_at timestamptz NOT NULL,
      last_validated_at timestamptz NOT NULL,
      required_roles jsonb NOT NULL,
      deadline timestamptz NOT NULL,
      policy_digest text NOT NULL,
      run_id text NOT NULL,
      opened_at timestamptz NOT NULL
    )`.execute(db);
  // The sweep's question: has this version a review for this due date already?
  await sql`CREATE INDEX revalidation_reviews_due ON revalidation_reviews (model_version_id, due_at)`.execute(db);
  await grantToApp(db, 'revalidation_reviews', { insert: true });

  await sql`
    CREATE TABLE revalidation_outcomes (
      workflow_id text PRIMARY KEY REFERENCES revalidation_reviews(workflow_id),
      model_version_id integer NOT NULL REFERENCES model_versions(id),
      outcome text NOT NULL CHECK (outcome IN ('revalidated', 'failed', 'timed-out')),
      decided_by jsonb NOT NULL,
      reason text CHECK (reason IS NULL OR length(reason) <= 2000),
      run_id text NOT NULL,
      decided_at timestamptz NOT NULL
    )`.execute(db);
  // The inventory's last validation: the newest revalidated outcome of a version.
  await sql`CREATE INDEX revalidation_outcomes_version ON revalidation_outcomes (model_version_id, decided_at)`.execute(db);
  await grantToApp(db, 'revalidation_outcomes', { insert: true });

  // Append-only even for the schema owner (as the registry's other facts, migration 0003).
  for (const table of ['revalidation_reviews', 'revalidation_outcomes']) {
    await sql`
      CREATE TRIGGER ${sql.id(`${table}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql.id(table)}
      FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()`.execute(db);
    await sql`
      CREATE TRIGGER ${sql.id(`${table}_no_truncate`)} BEFORE TRUNCATE ON ${sql.id(table)}
      FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change()`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('revalidation reviews are facts: never migrated down');
}
