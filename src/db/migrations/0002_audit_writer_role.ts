import { type Kysely, sql } from 'kysely';

/**
 * Least privilege for the audit trail: the role that appends events may read and insert, nothing
 * more; even with the triggers disabled it cannot UPDATE, DELETE or TRUNCATE. Appends switch to it
 * with SET LOCAL ROLE, so the connecting user must be a member (the migrating user is made one).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'factory_audit_writer') THEN
        CREATE ROLE factory_audit_writer NOLOGIN;
      END IF;
    END $$`.execute(db);
  await sql`REVOKE ALL ON audit_events FROM factory_audit_writer`.execute(db);
  await sql`GRANT SELECT, INSERT ON audit_events TO factory_audit_writer`.execute(db);
  await sql`GRANT USAGE ON SEQUENCE audit_events_seq_seq TO factory_audit_writer`.execute(db);
  await sql`GRANT factory_audit_writer TO CURRENT_USER`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the audit trail is never migrated down');
}
