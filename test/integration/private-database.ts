import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { ensureDatabase } from '../../src/db/connect.ts';
import { env } from '../helpers.ts';

/**
 * A database of a test's own, so the rows it makes up never reach the shared one: a new database
 * `<prefix>_<random>` on the PostgreSQL in DATABASE_URL, or else a private embedded PGlite server.
 */
export async function privateDatabase(prefix: string): Promise<{ url: string; drop: () => Promise<void> }> {
  if (env.DATABASE_URL) {
    const url = new URL(env.DATABASE_URL);
    const name = `${prefix}_${randomBytes(4).toString('hex')}`;
    url.pathname = `/${name}`;
    await ensureDatabase(url.toString());
    return {
      url: url.toString(),
      drop: async () => {
        const admin = new pg.Client({ connectionString: env.DATABASE_URL });
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.end();
      },
    };
  }
  const port = 20_000 + Math.floor(Math.random() * 10_000);
  const pglite = await PGlite.create();
  const server = new PGLiteSocketServer({ db: pglite, host: '127.0.0.1', port, maxConnections: 8 });
  await server.start();
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, drop: async () => (await server.stop(), await pglite.close()) };
}
