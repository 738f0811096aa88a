import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/**
 * Post-deployment monitoring (issue 9 item 5).
 *
 * gateway_requests gains what monitoring reads, and nothing that is the request's data:
 * `feature_bins` (per served row, per feature, the decile of the training split the value fell in,
 * row-major, at most 64 rows) and `scores` (the model's P(positive) per row: the output the row's
 * output_summary already holds, typed for SQL). No input value is stored (docs/design.md, "Monitoring").
 *
 * monitoring_windows: one row per monitor window (figures as computed, the thresholds and pack digest
 * judged by, the breaches). monitoring_reviews: one row per review a breach raised;
 * monitoring_acknowledgements: who closed it and why. All are facts: insert only.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE gateway_requests ADD COLUMN feature_bins smallint[], ADD COLUMN scores real[]`.execute(db);

  await sql`
    CREATE TABLE monitoring_windows (
      id bigserial PRIMARY KEY,
      monitor_id text NOT NULL,
      model_name text NOT NULL,
      model_version_id integer REFERENCES model_versions(id),
      window_start timestamptz NOT NULL,
      window_end timestamptz NOT NULL,
      figures jsonb NOT NULL,
      thresholds jsonb,
      breaches jsonb NOT NULL,
      policy_digest text,
      distribution_digest text,
      recorded_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (monitor_id, window_start),
      CHECK (window_end > window_start)
    )`.execute(db);
  await sql`CREATE INDEX monitoring_windows_model ON monitoring_windows (model_name, window_end)`.execute(db);
  await grantToApp(db, 'monitoring_windows', { insert: true, sequence: 'monitoring_windows_id_seq' });

  await sql`
    CREATE TABLE monitoring_reviews (
      review_id text PRIMARY KEY,
      monitor_id text NOT NULL,
      model_name text NOT NULL,
      model_version_id integer REFERENCES model_versions(id),
      window_id bigint NOT NULL REFERENCES monitoring_windows(id),
      breaches jsonb NOT NULL,
      auto_rollback boolean NOT NULL,
      rollback_workflow_id text,
      opened_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX monitoring_reviews_model ON monitoring_reviews (model_name, opened_at)`.execute(db);
  await grantToApp(db, 'monitoring_reviews', { insert: true });

  await sql`
    CREATE TABLE monitoring_acknowledgements (
      review_id text PRIMARY KEY REFERENCES monitoring_reviews(review_id),
      acknowledged_by text NOT NULL,
      reason text NOT NULL CHECK (length(reason) BETWEEN 3 AND 1000),
      acknowledged_at timestamptz NOT NULL
    )`.execute(db);
  await grantToApp(db, 'monitoring_acknowledgements', { insert: true });
}

export async function down(): Promise<void> {
  throw new Error('monitoring records are never migrated down');
}
