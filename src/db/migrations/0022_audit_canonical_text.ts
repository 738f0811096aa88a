import { type Kysely, sql } from 'kysely';

/** The constraint that holds the columns to the hashed text; `audit verify` checks it is in force. */
export const CANONICAL_AGREES = 'audit_events_canonical_agrees';

/**
 * Its definition as PostgreSQL prints it back (pg_get_constraintdef with search_path pg_catalog):
 * verify compares the catalog with this, so a constraint replaced by a weaker one of the same name,
 * or one calling functions from another schema, is not taken for it.
 */
export const CANONICAL_AGREES_DEF =
  "CHECK (((canonical IS NULL) OR ((canonical)::jsonb = jsonb_build_object('actor', actor, 'eventId', event_id, 'kind', kind, 'occurredAt', occurred_at, 'payload', payload, 'prevHash', prev_hash, 'runId', run_id, 'step', step, 'workflowId', workflow_id))))";

/**
 * Issue 12 item 2: each audit event keeps, from its append on, the exact canonical text its hash
 * covers (`canonical`), so `audit verify` hashes the text as streamed instead of rebuilding it from
 * the columns in JavaScript. The columns stay what the application reads; a CHECK constraint makes
 * the server refuse any row (insert, or update around the triggers) whose columns do not say what
 * its text says, and verify trusts that only while the constraint is in force, validated, and the
 * one defined here (docs/design.md, "Audit verify reads the hashed text").
 * Nullable: rows appended before this migration have none and are verified from their columns as
 * before. No backfill: the table refuses UPDATE, and a text computed now would attest nothing more.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE audit_events ADD COLUMN canonical text`.execute(db);
  await sql`
    ALTER TABLE audit_events ADD CONSTRAINT ${sql.id(CANONICAL_AGREES)} CHECK (canonical IS NULL OR canonical::pg_catalog.jsonb OPERATOR(pg_catalog.=) pg_catalog.jsonb_build_object(
      'actor', actor, 'eventId', event_id, 'kind', kind, 'occurredAt', occurred_at, 'payload', payload,
      'prevHash', prev_hash, 'runId', run_id, 'step', step, 'workflowId', workflow_id))`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the audit trail is never migrated down');
}
