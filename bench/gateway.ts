/**
 * The inference gateway against Triton directly, at the same concurrency, in one run; then
 * trace-from-request at scale.
 *
 *   npm run bench:gateway -- [--concurrency 8] [--seconds 10] [--requests 1000000] [--trace-samples 300]
 *
 * Needs the local stack with a deployed model served by the gateway (`npm run demo` makes one:
 * breast-cancer-classifier) and its dev key ($FACTORY_HOME/gateway/dev-key). Prints requests per
 * second both ways, their ratio, the latency the gateway adds (p50/p99), the request log's batch
 * sizes; then fills gateway_requests up to --requests rows (synthetic rows, in SQL) and measures
 * traceRequest p50/p99 over random ids, and one `factory trace --request` process.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { loadEnv, projectRoot } from '../src/config/env.ts';
import { createEnvDb } from '../src/db/connect.ts';
import { gatewayUrl, readDevKey } from '../src/dev/components/gateway.ts';
import { servingRoutes } from '../src/gateway/routes.ts';
import { tritonUrl } from '../src/serving/triton.ts';
import { traceRequest } from '../src/trace/request.ts';
import { figure } from './summary.ts';

const { values } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '8' },
    seconds: { type: 'string', default: '10' },
    requests: { type: 'string', default: '1000000' },
    'trace-samples': { type: 'string', default: '300' },
    model: { type: 'string', default: 'breast-cancer-classifier' },
  },
});
const C = Number(values.concurrency);
const SECONDS = Number(values.seconds);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const env = loadEnv();
const db = createEnvDb(env, 4);
const key = readDevKey(env.FACTORY_HOME);
if (!key) throw new Error('no dev key: run `factory dev up` (and `npm run demo` for a deployed model)');
const [route] = await servingRoutes(db, values.model);
if (!route) throw new Error(`the gateway serves no ${values.model}: run \`npm run demo\` first`);
const SAMPLE = [
  17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
  0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
];
const body = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: SAMPLE }] });

async function load(url: string, headers: Record<string, string>) {
  const latencies: number[] = [];
  let errors = 0;
  const statuses: Record<number, number> = {};
  const end = Date.now() + SECONDS * 1000;
  const worker = async () => {
    while (Date.now() < end) {
      const t = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
      await res.arrayBuffer();
      if (res.status === 200) latencies.push(performance.now() - t);
      else {
        errors++;
        statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: C }, worker));
  const secs = (performance.now() - t0) / 1000;
  return { rps: latencies.length / secs, p50: pct(latencies, 50), p99: pct(latencies, 99), ok: latencies.length, errors, statuses };
}

const direct = `${tritonUrl(env)}/v2/models/${route.tritonModel}/versions/${route.tritonVersion}/infer`;
const viaGateway = `${gatewayUrl(env)}/v2/models/${route.modelName}/infer`;
const auth = { authorization: `Bearer ${key}` };
// Warm both paths, then alternate so a neighbour's load on the shared machine hits both alike.
await load(direct, {});
const warm = await load(viaGateway, auth);
// Answers other than 200 would make the ratio measure a refusal (e.g. the per-caller rate limit), not the gateway.
if (warm.statuses[429]) {
  throw new Error(
    `the gateway answered 429 to ${warm.statuses[429]} of ${warm.ok + warm.errors} requests: its per-caller rate limit (FACTORY_GATEWAY_RATE_LIMIT) caps this run, so the ratio would measure the limit. Restart the gateway with a higher limit (factory dev down, then FACTORY_GATEWAY_RATE_LIMIT=100000000 npm run bench:gateway) — bench --all does this itself`,
  );
}
const runs = { direct: [] as Awaited<ReturnType<typeof load>>[], gateway: [] as Awaited<ReturnType<typeof load>>[] };
for (let i = 0; i < 2; i++) {
  runs.direct.push(await load(direct, {}));
  runs.gateway.push(await load(viaGateway, auth));
}
const best = (xs: Awaited<ReturnType<typeof load>>[]) => xs.reduce((a, b) => (b.rps > a.rps ? b : a));
const d = best(runs.direct);
const g = best(runs.gateway);
console.log(`concurrency ${C}, ${SECONDS}s per run, best of 2 (alternating)`);
console.log(`direct Triton : ${d.rps.toFixed(1)} req/s  p50 ${d.p50.toFixed(1)} ms  p99 ${d.p99.toFixed(1)} ms  (${d.ok} ok, ${d.errors} errors)`);
console.log(`gateway       : ${g.rps.toFixed(1)} req/s  p50 ${g.p50.toFixed(1)} ms  p99 ${g.p99.toFixed(1)} ms  (${g.ok} ok, ${g.errors} errors)`);
console.log(`ratio ${(g.rps / d.rps).toFixed(2)}; added latency p50 ${(g.p50 - d.p50).toFixed(1)} ms, p99 ${(g.p99 - d.p99).toFixed(1)} ms`);

const refused = Object.entries(g.statuses).map(([status, n]) => `${n}×${status}`);
if (refused.length) console.log(`gateway answers other than 200 in the best run: ${refused.join(', ')} (the ratio counts only 200s)`);
figure(`gateway / direct Triton throughput, concurrency ${C}`, g.rps / d.rps, '×', '≥ 0.8', g.rps / d.rps >= 0.8 && g.errors === 0);
figure(`gateway added latency p50, concurrency ${C}`, g.p50 - d.p50, 'ms');
// Trace from a request at scale: synthetic rows (UUID v7 ids over the past 30 days) up to --requests.
const target = Number(values.requests);
const have = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM gateway_requests`.execute(db)).rows[0]!.n);
if (have < target) {
  const t0 = Date.now();
  const chunk = 100_000;
  for (let done = have; done < target; done += chunk) {
    const n = Math.min(chunk, target - done);
    await sql`
      INSERT INTO gateway_requests (request_id, received_at, principal, use_case, key_id, method, route, model_name, model_version, model_version_id,
        artifact_digest, input_digest, output_digest, status, outcome, latency_ms)
      SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid, to_timestamp(ms / 1000.0),
        'bench@hospital.example', 'bench', 'bench', 'POST', ${`/v2/models/${route.modelName}/infer`}, ${route.modelName}, ${route.version},
        ${route.modelVersionId}, ${route.artifactDigest}, 'sha256:' || h || h, 'sha256:' || h || h, 200, 'served', 5
      FROM (SELECT (extract(epoch FROM now()) * 1000)::bigint - (random() * 30 * 86400000)::bigint AS ms, md5(${String(done)} || ':' || i) AS h
            FROM generate_series(1, ${n}) AS i) s`.execute(db);
  }
  await sql`ANALYZE gateway_requests`.execute(db);
  console.log(`filled ${target - have} synthetic request rows in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const total = Number((await sql<{ n: string }>`SELECT count(*) AS n FROM gateway_requests`.execute(db)).rows[0]!.n);
const ids = (
  await sql<{ request_id: string }>`SELECT request_id FROM gateway_requests TABLESAMPLE SYSTEM (1) LIMIT ${Number(values['trace-samples'])}`.execute(db)
).rows.map((r) => r.request_id);
const reader = createEnvDb(env, 2, 'reader');
const times: number[] = [];
for (const id of ids) {
  const t = performance.now();
  await traceRequest(reader, id);
  times.push(performance.now() - t);
}
console.log(
  `trace --request at ${total} logged requests: p50 ${pct(times, 50).toFixed(1)} ms, p99 ${pct(times, 99).toFixed(1)} ms (library call, ${ids.length} random ids)`,
);
figure(`trace --request p99 at ${total} logged requests`, pct(times, 99), 'ms');
const t = performance.now();
execFileSync(process.execPath, [path.join(projectRoot, 'bin', 'factory.mjs'), 'trace', '--request', ids[0]!, '--json'], { stdio: 'ignore' });
console.log(`one \`factory trace --request\` process: ${(performance.now() - t).toFixed(0)} ms wall`);
await reader.destroy();
await db.destroy();
