import { type Kysely, sql } from 'kysely';

/**
 * `trace` and the approval gate read a version's decisions and deployment by model_version_id; without
 * an index each read scanned the whole table (at 1 M audit events: traceModel p99 149 ms, parallel seq
 * scans). The decisions index also orders by accepted and time, so trace reads the accepted decisions
 * in order and counts the refused ones from the index alone, however many a storm left.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX IF NOT EXISTS approvals_model_version ON approvals (model_version_id, accepted, decided_at)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS deployments_model_version ON deployments (model_version_id, deployed_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS approvals_model_version`.execute(db);
  await sql`DROP INDEX IF EXISTS deployments_model_version`.execute(db);
}
