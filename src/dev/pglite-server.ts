/**
 * The embedded default database: PGlite (Postgres compiled to WASM) served over the Postgres wire
 * protocol, so the factory's `pg` + kysely code runs unchanged against it. Started by `factory dev up`
 * when DATABASE_URL is unset.
 */
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { loadEnv } from '../config/env.ts';
import { createLogger } from '../log.ts';
import path from 'node:path';

const env = loadEnv();
const log = createLogger('pglite');
const dataDir = path.join(env.FACTORY_HOME, 'pglite');
const db = await PGlite.create({ dataDir });
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: env.FACTORY_PGLITE_PORT, maxConnections: 16 });
await server.start();
log.info({ dataDir, port: env.FACTORY_PGLITE_PORT }, 'PGlite serving the Postgres protocol');

const shutdown = async () => {
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
