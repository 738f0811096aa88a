import { type Kysely, sql } from 'kysely';
import { DB_ROLES, ensureAppRoles, grantToApp } from '../roles.ts';

/**
 * Least privilege (src/db/roles.ts): the workers connect as factory_worker, the CLI as factory_reader.
 * Tables made by later migrations are readable by both through default privileges; their writes
 * are granted with grantToApp.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await ensureAppRoles(db);
  // Nobody but the owner creates objects in the schema (PostgreSQL 15's default; stated, not assumed).
  await sql`REVOKE CREATE ON SCHEMA public FROM PUBLIC`.execute(db);
  await sql`GRANT USAGE ON SCHEMA public TO ${sql.id(DB_ROLES.app)}, ${sql.id(DB_ROLES.read)}`.execute(db);
  await grantToApp(db, 'dataset_versions', { insert: true });
  await grantToApp(db, 'model_versions', { insert: true, update: ['state', 'updated_at'], sequence: 'model_versions_id_seq' });
  await grantToApp(db, 'approvals', { insert: true });
  await grantToApp(db, 'deployments', { insert: true });
  // The audit trail: read by both; inserted only through factory_audit_writer (0002), never changed.
  await grantToApp(db, 'audit_events');
  // Tables later migrations create (as this owner) are readable by both; writes need grantToApp.
  await sql`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${sql.id(DB_ROLES.app)}, ${sql.id(DB_ROLES.read)}`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the audit trail is never migrated down');
}
