import { Kysely, Migrator, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Env } from '../config/env.ts';
import { DB_ROLES } from './roles.ts';
import type { Database } from './schema.ts';

/** The owner's connection (migrations, the stack's preparation): DATABASE_URL, else the embedded PGlite. */
export function databaseUrl(env: Env): string {
  return env.DATABASE_URL ?? `postgres://postgres@127.0.0.1:${env.FACTORY_PGLITE_PORT}/postgres`;
}

/**
 * The name the audit chain's signed checkpoints are kept under (audit-checkpoints/<name>/): the
 * database's name, so two databases sharing an evidence bucket never read each other's anchors.
 */
export function auditChainName(env: Env): string {
  const name = decodeURIComponent(new URL(databaseUrl(env)).pathname.slice(1)) || 'postgres';
  return name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 100);
}

/** Who connects: the owner (migrations), the workers, or the CLI (reads only). */
export type DbRole = 'owner' | 'worker' | 'reader';

/**
 * The connection for a role. The workers use FACTORY_APP_DATABASE_URL, the CLI
 * FACTORY_READER_DATABASE_URL; unset, DATABASE_URL with its user replaced by factory_worker or
 * factory_reader and no password (trust or certificate authentication; production sets the
 * variables with passwords). The embedded PGlite is single-user: every role gets its one superuser
 * connection there (README, "Database roles": nothing is enforced there).
 */
export function databaseUrlFor(env: Env, role: DbRole): string {
  if (role === 'owner' || !env.DATABASE_URL) return databaseUrl(env);
  const explicit = role === 'worker' ? env.FACTORY_APP_DATABASE_URL : env.FACTORY_READER_DATABASE_URL;
  if (explicit) return explicit;
  const url = new URL(env.DATABASE_URL);
  url.username = role === 'worker' ? DB_ROLES.worker : DB_ROLES.reader;
  url.password = '';
  return url.toString();
}

/** The pool under each kysely instance made here: for what kysely cannot do (COPY, in audit verify). */
const pools = new WeakMap<Kysely<Database>, pg.Pool>();

/** The `pg` pool under a kysely instance from createDb (undefined for one made elsewhere). */
export function pgPoolOf(db: Kysely<Database>): pg.Pool | undefined {
  return pools.get(db);
}

/** A kysely instance over a `pg` pool. */
export function createDb(url: string, { poolSize = 4 }: { poolSize?: number } = {}): Kysely<Database> {
  // A connection waits up to 15 s for a free slot: under a burst, a query that waits is cheaper than an
  // activity attempt that fails and is retried from the start.
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 15_000, idleTimeoutMillis: 10_000 });
  // An idle connection that breaks (database restarted, network cut) is dropped from the pool; without
  // a listener its 'error' event would crash the worker. The next query opens a new connection.
  pool.on('error', () => {});
  const db = new Kysely<Database>({
    dialect: new PostgresDialect({
      pool,
    }),
  });
  pools.set(db, pool);
  return db;
}

/** A pool for a role (default: the owner, as the stack's preparation and tests that tamper need). */
export function createEnvDb(env: Env, poolSize = 4, role: DbRole = 'owner'): Kysely<Database> {
  return createDb(databaseUrlFor(env, role), { poolSize });
}

/** Creates the database named in the URL when the server lacks it (a fresh CI machine). */
export async function ensureDatabase(url: string): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1)) || 'postgres';
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE "${name.replaceAll('"', '""')}"`);
  } finally {
    await client.end();
  }
}

export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  // Numbers are reserved per change (docs/design.md): a database that ran 0007 before 0005 landed runs 0005 next.
  // The migrations load only here: a command that only reads (`trace`) does not load every one of them.
  const { migrationProvider } = await import('./migrations/index.ts');
  const migrator = new Migrator({ db, provider: migrationProvider, allowUnorderedMigrations: true });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
