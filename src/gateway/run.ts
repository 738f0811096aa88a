/**
 * The inference gateway's entrypoint: `node --import tsx src/gateway/run.ts` (started by
 * `factory dev up`, or the `gateway` service of docker-compose.yml). Reads the policy pack in force
 * (FACTORY_POLICY_PACK, else policies/default.yaml) and FACTORY_GATEWAY_KEYS_FILE; SIGTERM stops it
 * after the requests in flight are answered and logged.
 */
import path from 'node:path';
import { sql } from 'kysely';
import { loadEnv } from '../config/env.ts';
import { createEnvDb, databaseUrlFor } from '../db/connect.ts';
import { createLogger } from '../log.ts';
import { DistributionCache } from '../monitoring/store.ts';
import { GatewayMetrics } from '../metrics/registry.ts';
import { loadPolicyPack, policyPackPath } from '../policy/pack.ts';
import { tritonUrl } from '../serving/triton.ts';
import { bucket, createS3 } from '../storage/s3.ts';
import { KeyRing, readKeysFile } from './keys.ts';
import { PayloadJournal } from './payload-journal.ts';
import { RequestLog } from './request-log.ts';
import { listenForRouteChanges } from './route-events.ts';
import { RouteTable } from './routes.ts';
import { buildGateway } from './server.ts';

const env = loadEnv();
const logger = createLogger('gateway', env.LOG_LEVEL);
const loaded = loadPolicyPack(policyPackPath());
const keys = new KeyRing(loaded.pack, [
  ...(loaded.pack.gatewayKeys ?? []),
  ...(env.FACTORY_GATEWAY_KEYS_FILE ? readKeysFile(env.FACTORY_GATEWAY_KEYS_FILE) : []),
]);
const db = createEnvDb(env, 8, 'worker');
const s3 = createS3(env);
const payloads = new PayloadJournal(path.join(env.FACTORY_HOME, 'gateway', `payload-journal-${env.FACTORY_GATEWAY_PORT}`), s3, bucket(env, 'requests'), logger);
await payloads.start();
// Group-commit figures, logged every 10 s while there is traffic (batch size is what makes it cheap).
const batches = { n: 0, rows: 0, ms: 0 };
const metrics = new GatewayMetrics();
const requestLog = new RequestLog(db, payloads, {
  onBatch: (rows, ms) => {
    metrics.batch(rows, ms);
    batches.n++;
    batches.rows += rows;
    batches.ms += ms;
  },
});
setInterval(() => {
  if (!batches.n) return;
  logger.info({ batches: batches.n, rowsPerBatch: +(batches.rows / batches.n).toFixed(1), msPerBatch: +(batches.ms / batches.n).toFixed(1) }, 'request log');
  Object.assign(batches, { n: 0, rows: 0, ms: 0 });
}, 10_000).unref();
const routes = new RouteTable(db);
// A route switch (rollback, deployment, retirement) is served from the next request: PostgreSQL
// NOTIFYs at commit. The embedded PGlite (no DATABASE_URL) multiplexes one backend, so there the
// 1 s cache TTL alone applies.
const routeEvents = env.DATABASE_URL ? listenForRouteChanges(databaseUrlFor(env, 'worker'), (model) => routes.invalidate(model), logger) : undefined;
const app = await buildGateway({
  keys,
  routes,
  log: requestLog,
  tritonUrl: tritonUrl(env),
  logger,
  maxBodyBytes: env.FACTORY_GATEWAY_MAX_BODY_BYTES,
  ratePerMinute: env.FACTORY_GATEWAY_RATE_LIMIT,
  policyPackDigest: loaded.digest,
  metrics,
  distributions: new DistributionCache(db, s3, (modelVersionId, err) =>
    logger.warn({ modelVersionId, err: err.message }, 'training distribution unreadable: requests logged without monitoring bins'),
  ),
  databaseReady: () =>
    sql`SELECT 1`.execute(db).then(
      () => true,
      () => false,
    ),
});
await app.listen({ host: env.FACTORY_GATEWAY_HOST, port: env.FACTORY_GATEWAY_PORT });
logger.info({ port: env.FACTORY_GATEWAY_PORT, keys: keys.size, policyPack: loaded.digest, triton: tritonUrl(env) }, 'gateway listening');

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await app.close();
      await routeEvents?.stop();
      await requestLog.drain();
      await payloads.close();
      s3.destroy();
      await db.destroy();
      logger.info('gateway stopped');
      process.exit(0);
    })();
  });
}
