import { type Kysely, sql } from 'kysely';

/**
 * Least privilege in the database. The user in DATABASE_URL owns the schema and runs the migrations;
 * the workers and the CLI connect as LOGIN roles that inherit from NOLOGIN group roles holding exact
 * grants. Neither owns a table, so neither can ALTER it, disable or drop its triggers, and neither is
 * a superuser, so neither can SET session_replication_role (superuser-only in PostgreSQL 15). No group
 * has UPDATE, DELETE or TRUNCATE on audit_events.
 */
export const DB_ROLES = {
  /** Group: what the workers need (read everything, insert registry facts, move a version's state). */
  app: 'factory_app',
  /** Group: read-only (the CLI's trace and audit verify). */
  read: 'factory_read',
  /** Group (migration 0002): SELECT and INSERT on audit_events; appends SET LOCAL ROLE to it. */
  auditWriter: 'factory_audit_writer',
  /** Login, member of factory_app: the workers' connection. */
  worker: 'factory_worker',
  /** Login, member of factory_read: the CLI's connection. */
  reader: 'factory_reader',
} as const;

const NO_POWERS = sql.raw('NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS');

/**
 * Creates the roles when missing (roles are per cluster: another database's migration may have made
 * them) and their memberships. Idempotent. Creating a role needs CREATEROLE: in production a DBA may
 * create the two login roles (with passwords) beforehand, and then nothing here needs it.
 */
export async function ensureAppRoles(db: Kysely<unknown>): Promise<void> {
  const create = async (role: string, login: boolean) => {
    const exists = await sql<{ one: number }>`SELECT 1 AS one FROM pg_roles WHERE rolname = ${role}`.execute(db);
    if (exists.rows.length > 0) return;
    // Another database's migration may create it at the same moment (roles are per cluster).
    await sql`
      DO $$ BEGIN
        CREATE ROLE ${sql.raw(`"${role}"`)} ${sql.raw(login ? 'LOGIN' : 'NOLOGIN')} ${NO_POWERS};
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END $$`.execute(db);
  };
  const member = async (group: string, role: string) => {
    const has = await sql<{ one: number }>`
      SELECT 1 AS one FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles r ON r.oid = m.member
      WHERE g.rolname = ${group} AND r.rolname = ${role}`.execute(db);
    if (has.rows.length === 0) await sql`GRANT ${sql.id(group)} TO ${sql.id(role)}`.execute(db);
  };
  await create(DB_ROLES.auditWriter, false);
  await create(DB_ROLES.app, false);
  await create(DB_ROLES.read, false);
  await create(DB_ROLES.worker, true);
  await create(DB_ROLES.reader, true);
  await member(DB_ROLES.app, DB_ROLES.worker);
  await member(DB_ROLES.read, DB_ROLES.reader);
  // Appends switch to the audit writer (SET LOCAL ROLE): the workers must be able to.
  await member(DB_ROLES.auditWriter, DB_ROLES.app);
}

export interface AppGrants {
  /** The workers insert rows (INSERT … ON CONFLICT DO NOTHING needs no more). */
  insert?: boolean;
  /** Columns the workers may UPDATE; none by default. Never give a fact table's columns. */
  update?: readonly string[];
  /** The table's serial/identity sequence, when the workers insert into it. */
  sequence?: string;
}

/**
 * The one way a migration gives the app roles access to a table it creates (see README, "Database
 * roles"): both groups may SELECT; factory_app gets exactly the writes named. Never DELETE,
 * TRUNCATE, TRIGGER or REFERENCES. Ensures the roles first, so a migration numbered before 0006 may call it.
 *
 *     await grantToApp(db, 'my_table', { insert: true, sequence: 'my_table_id_seq' });
 */
export async function grantToApp(db: Kysely<unknown>, table: string, grants: AppGrants = {}): Promise<void> {
  await ensureAppRoles(db);
  const t = sql.id(table);
  await sql`REVOKE ALL ON ${t} FROM ${sql.id(DB_ROLES.app)}, ${sql.id(DB_ROLES.read)}`.execute(db);
  await sql`GRANT SELECT ON ${t} TO ${sql.id(DB_ROLES.app)}, ${sql.id(DB_ROLES.read)}`.execute(db);
  if (grants.insert) await sql`GRANT INSERT ON ${t} TO ${sql.id(DB_ROLES.app)}`.execute(db);
  if (grants.update?.length) {
    await sql`GRANT UPDATE (${sql.join(grants.update.map((c) => sql.id(c)))}) ON ${t} TO ${sql.id(DB_ROLES.app)}`.execute(db);
  }
  if (grants.sequence) await sql`GRANT USAGE, SELECT ON SEQUENCE ${sql.id(grants.sequence)} TO ${sql.id(DB_ROLES.app)}`.execute(db);
}
