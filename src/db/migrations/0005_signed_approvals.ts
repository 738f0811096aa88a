import { type Kysely, sql } from 'kysely';

/**
 * Authenticated approvals (21 CFR 11.50, 11.70, 11.200): an accepted signed decision keeps what anyone
 * needs to verify it again without us: the signed statement, the armored OpenSSH signature, the public
 * key that made it and its fingerprint (as `ssh-keygen -l` prints it), when it was signed, and that the
 * gate verified it. Nullable: unsigned decisions (a tier that requires none) and rows from before have
 * none. The append-only triggers of 0001 cover the new columns as they cover the rest.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE approvals
    ADD COLUMN key_fingerprint text,
    ADD COLUMN public_key text,
    ADD COLUMN signed_statement text,
    ADD COLUMN signature text,
    ADD COLUMN signed_at timestamptz,
    ADD COLUMN signature_verified boolean`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the approvals record is never migrated down');
}
