/**
 * Fills a database with lifecycles at scale: registry rows and a hash-chained audit trail identical
 * to what the real activities write (bench/fill-lib.ts; proved in test/integration/bench-fill.test.ts).
 *
 *   npm run bench:fill -- [--events 1000000] [--versions 10000] [--database postgres://…/factory_bench_1m] [--fresh] [--json]
 *
 * --database defaults to DATABASE_URL. --fresh drops and recreates that database first (refused for a
 * database whose name does not start with `factory_bench`), then migrates it. Without --fresh the fill
 * continues the existing chain and registry. Prints what it wrote, the time, and the database size
 * per million audit events.
 */
import { parseArgs } from 'node:util';
import os from 'node:os';
import { sql } from 'kysely';
import pg from 'pg';
import { loadEnv } from '../src/config/env.ts';
import { createDb, databaseUrl, ensureDatabase, migrateToLatest } from '../src/db/connect.ts';
import { bulkFill } from './fill-lib.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    versions: { type: 'string', default: '10000' },
    database: { type: 'string' },
    seed: { type: 'string', default: 'fill' },
    fresh: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});

const whole = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!/^\d+$/.test(v ?? '') || !Number.isSafeInteger(n) || n < 1) {
    console.error(`--${name} must be a whole number ≥ 1 (got ${JSON.stringify(v)})`);
    process.exit(2);
  }
  return n;
};
const events = whole('events', values.events);
const versions = whole('versions', values.versions);
if (!/^[a-z0-9-]{1,40}$/.test(values.seed!)) {
  console.error('--seed: 1 to 40 of a-z, 0-9, -');
  process.exit(2);
}
const url = values.database ?? databaseUrl(loadEnv());
const name = decodeURIComponent(new URL(url).pathname.slice(1));

if (values.fresh) {
  if (!name.startsWith('factory_bench')) {
    console.error(`--fresh drops the database: refused for ${name} (only factory_bench* databases)`);
    process.exit(2);
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await c.end();
}
await ensureDatabase(url);
const db = createDb(url, { poolSize: 2 });
await migrateToLatest(db);
const log = (s: string) => (values.json ? undefined : process.stderr.write(s));
let lastPrint = 0;
const result = await bulkFill(db, {
  events,
  versions,
  seed: values.seed!,
  onProgress: (p) => {
    if (performance.now() - lastPrint < 2_000) return;
    lastPrint = performance.now();
    log(`\r  ${p.lifecycles} lifecycles, ${p.versions} versions, ${p.events} events…`);
  },
});
log('\n');
// As autovacuum would leave it: statistics and the visibility map (index-only scans) up to date.
await sql`VACUUM (ANALYZE)`.execute(db);
const size = await sql<{ db: string; audit: string; total_events: string }>`
  SELECT pg_database_size(current_database())::text AS db, pg_total_relation_size('audit_events')::text AS audit,
    (SELECT count(*) FROM audit_events)::text AS total_events`.execute(db);
await db.destroy();
const s = size.rows[0]!;
const totalEvents = Number(s.total_events);
const mib = (b: number) => b / 2 ** 20;
const out = {
  database: name,
  ...result,
  totalEvents,
  databaseBytes: Number(s.db),
  auditEventsBytes: Number(s.audit),
  databaseMiBPerMillionEvents: Math.round((mib(Number(s.db)) / totalEvents) * 1e6),
  auditEventsMiBPerMillionEvents: Math.round((mib(Number(s.audit)) / totalEvents) * 1e6),
  machine: `${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, shared with other stacks`,
};
if (values.json) console.log(JSON.stringify(out, null, 2));
else {
  console.log(
    `filled ${name}: ${result.lifecycles} lifecycles (${result.stormLifecycles} with refusal storms), ${result.versions} model versions, ` +
      `${result.datasets} dataset versions, ${result.approvals} decisions, ${result.deployments} deployments, ${result.events} audit events ` +
      `in ${(result.millis / 1000).toFixed(1)} s (${Math.round(result.events / (result.millis / 1000))} events/s)`,
  );
  console.log(
    `size: database ${mib(out.databaseBytes).toFixed(0)} MiB for ${totalEvents} events = ${out.databaseMiBPerMillionEvents} MiB per million events ` +
      `(audit_events with indexes: ${out.auditEventsMiBPerMillionEvents} MiB per million); ${out.machine}`,
  );
}
