import { type Kysely, sql } from 'kysely';

/**
 * Issue 12 item 2: each audit event keeps, from its append on, the exact canonical text its hash
 * covers (`canonical`), so `audit verify` hashes the text as streamed instead of rebuilding it from
 * the columns in JavaScript. The columns stay what the application reads; verify checks that the
 * columns and the text say the same (docs/design.md, "Audit verify reads the hashed text").
 * Nullable: rows appended before this migration have none and are verified from their columns as
 * before. No backfill: the table refuses UPDATE, and a text computed now would attest nothing more.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE audit_events ADD COLUMN canonical text`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the audit trail is never migrated down');
}
