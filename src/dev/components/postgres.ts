import pg from 'pg';
import { createEnvDb, databaseUrl, ensureDatabase, migrateToLatest } from '../../db/connect.ts';
import type { Component, StackContext } from '../component.ts';
import { nodeEntrypoint } from '../node.ts';
import { processFiles, startDetached } from '../process.ts';

function redacted(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Postgres: the server named by DATABASE_URL, or an embedded PGlite we start ourselves. */
export const postgres: Component = {
  name: 'postgres',
  startTimeoutMs: 60_000,
  hint: 'with DATABASE_URL set, check that server is running and reachable; without it, check FACTORY_PGLITE_PORT is free',
  endpoint: (ctx) => redacted(databaseUrl(ctx.env)),
  // An external server (DATABASE_URL) is never started here; the embedded one listens on loopback.
  binds: (ctx) => (ctx.env.DATABASE_URL ? [] : [{ host: '127.0.0.1', port: ctx.env.FACTORY_PGLITE_PORT, variable: 'FACTORY_PGLITE_PORT' }]),
  async healthy(ctx: StackContext) {
    if (!ctx.env.DATABASE_URL) return answers(databaseUrl(ctx.env));
    // An external server is healthy when it answers; its database is created by prepare().
    const admin = new URL(ctx.env.DATABASE_URL);
    admin.pathname = '/postgres';
    return answers(admin.toString());
  },
  async start(ctx) {
    if (ctx.env.DATABASE_URL) throw new Error(`the Postgres server at ${redacted(ctx.env.DATABASE_URL)} does not answer`);
    const { command, args } = nodeEntrypoint('src/dev/pglite-server.ts');
    startDetached(processFiles(ctx.env.FACTORY_HOME, 'postgres'), command, args);
  },
  async prepare(ctx) {
    const url = databaseUrl(ctx.env);
    if (ctx.env.DATABASE_URL) await ensureDatabase(url);
    const db = createEnvDb(ctx.env, 1);
    try {
      const applied = await migrateToLatest(db);
      if (applied.length) ctx.log.info({ applied }, 'migrations applied');
    } finally {
      await db.destroy();
    }
  },
};
