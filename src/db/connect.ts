import { Kysely, Migrator, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Env } from '../config/env.ts';
import { migrationProvider } from './migrations/index.ts';
import type { Database } from './schema.ts';

export function databaseUrl(env: Env): string {
  return env.DATABASE_URL ?? `postgres://postgres@127.0.0.1:${env.FACTORY_PGLITE_PORT}/postgres`;
}

/** A kysely instance over a `pg` pool. */
export function createDb(url: string, { poolSize = 4 }: { poolSize?: number } = {}): Kysely<Database> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: 5_000, idleTimeoutMillis: 10_000 });
  // An idle connection that breaks (database restarted, network cut) is dropped from the pool; without
  // a listener its 'error' event would crash the worker. The next query opens a new connection.
  pool.on('error', () => {});
  return new Kysely<Database>({
    dialect: new PostgresDialect({
      pool,
    }),
  });
}

export function createEnvDb(env: Env, poolSize = 4): Kysely<Database> {
  return createDb(databaseUrl(env), { poolSize });
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
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
