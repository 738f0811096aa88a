/**
 * Rollback RTO (issue 9 benchmark): p50/p95 of `modelRollback`'s RTO (the workflow's start → the
 * first correct inference through the gateway on the version rolled back to) over N rollbacks.
 *
 *   npm run bench:rollback -- [--rollbacks 20] [--epochs 100]
 *
 * Brings the local stack up, runs its own workers (on a prefixed queue, with a service key) and its
 * own gateway (on a pack naming the bench model), makes two deployed versions of one model through
 * two real lifecycles, then alternates `modelRollback` to the older and back to the newer version
 * (`toVersion`), one at a time. Prints each RTO, p50/p95, and the CLI-side wall time (start → result).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { DefaultLogger, NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { parse, stringify } from 'yaml';
import { closeActivityDeps } from '../activities/deps.ts';
import { loadEnv, projectRoot } from '../src/config/env.ts';
import { devSigningKeyEnv } from '../src/dev/components/workers.ts';
import { stackUp } from '../src/dev/stack.ts';
import type { LifecycleOutcome } from '../src/domain/lifecycle.ts';
import { ROLLBACK_WORKFLOW, type RollbackInput, type RollbackOutcome } from '../src/domain/rollback.ts';
import { createKey, writeKeysFile } from '../src/gateway/keys.ts';
import { approvalStatus, decide, startLifecycle } from '../src/lifecycle/client.ts';
import { createLogger } from '../src/log.ts';
import { policyPackPath } from '../src/policy/pack.ts';
import { connectClient } from '../src/temporal.ts';
import { createWorker } from '../workers/worker.ts';
import { benchLifecycleInput } from './lifecycle-input.ts';
import { figure } from './summary.ts';

const { values } = parseArgs({ options: { rollbacks: { type: 'string', default: '20' }, epochs: { type: 'string', default: '100' } } });
const N = Number(values.rollbacks);
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

const base = loadEnv();
await stackUp({ env: base, log: createLogger('bench', 'warn') }, { onProgress: (m) => process.stderr.write(`[stack] ${m}\n`) });
Runtime.install({ logger: new DefaultLogger('WARN'), telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'ERROR' }) } } });

const prefix = `rb${randomBytes(3).toString('hex')}-`;
const model = `rollback-bench-${prefix.slice(2, -1)}`;
const port = base.FACTORY_GATEWAY_PORT + 4;
const service = createKey('sam@hospital.example', 'operations');
// The activities read their environment on first use: the service key and this bench's gateway.
Object.assign(process.env, devSigningKeyEnv(base), {
  FACTORY_GATEWAY_SERVICE_KEY: service.key,
  FACTORY_GATEWAY_URL: `http://127.0.0.1:${port}`,
  FACTORY_TASK_QUEUE_PREFIX: prefix,
});
const env = loadEnv();

// The gateway: the pack in force plus a use case for the bench model, the service key in a keys file.
const dir = path.join(env.FACTORY_HOME, 'bench', `rollback-${prefix}`);
fs.mkdirSync(dir, { recursive: true });
const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as Record<string, unknown>;
pack.useCases = [...((pack.useCases as unknown[]) ?? []), { name: 'operations', models: [model], riskTiers: ['low', 'medium', 'high'] }];
fs.writeFileSync(path.join(dir, 'pack.yaml'), stringify(pack));
writeKeysFile(path.join(dir, 'keys.yaml'), [service.entry]);
const gatewayLog = fs.openSync(path.join(dir, 'gateway.log'), 'a');
const gateway: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(projectRoot, 'src', 'gateway', 'run.ts')], {
  stdio: ['ignore', gatewayLog, gatewayLog],
  env: {
    ...process.env,
    FACTORY_POLICY_PACK: path.join(dir, 'pack.yaml'),
    FACTORY_GATEWAY_KEYS_FILE: path.join(dir, 'keys.yaml'),
    FACTORY_GATEWAY_PORT: String(port),
  },
});
for (let ok = false; !ok; await sleep(100)) {
  if (gateway.exitCode !== null) throw new Error(`the bench gateway exited: see ${dir}/gateway.log`);
  ok = await fetch(`http://127.0.0.1:${port}/v2/health/live`).then(
    (r) => r.ok,
    () => false,
  );
}

const connection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS });
const workers = await Promise.all((['control', 'serving', 'gpu-onprem'] as const).map((q) => createWorker(env, q, connection)));
const running = workers.map((w) => w.run());
const client = await connectClient(env);

try {
  // Two deployed versions, the newer one live.
  process.stderr.write(`two lifecycles of ${model}…\n`);
  const started = await Promise.all([0, 1].map(() => startLifecycle(client, benchLifecycleInput(model, Number(values.epochs)), { taskQueuePrefix: prefix })));
  const atGate = await Promise.all(
    started.map(async ({ workflowId }) => {
      for (;;) {
        const s = await approvalStatus(client, workflowId).catch(() => undefined);
        if (s?.stage === 'approval') return { workflowId, s };
        if (s && ['rejected', 'failed'].includes(s.stage)) throw new Error(`${workflowId} ended ${s.stage}`);
        await sleep(500);
      }
    }),
  );
  atGate.sort((a, b) => a.s.version! - b.s.version!);
  for (const { workflowId, s } of atGate) {
    await decide(client, workflowId, {
      decision: 'approve',
      approver: 'omar@hospital.example',
      role: 'model-owner',
      meaning: 'approval',
      modelDigest: s.modelDigest!,
    });
    const out = (await client.workflow.getHandle(workflowId).result()) as LifecycleOutcome;
    if (out.outcome !== 'deployed') throw new Error(`${workflowId}: ${JSON.stringify(out)}`);
  }
  const [older, newer] = atGate.map((g) => g.s.version!) as [number, number];

  const rto: number[] = [];
  const wall: number[] = [];
  for (let i = 0; i < N; i++) {
    const toVersion = i % 2 === 0 ? older : newer;
    const input: RollbackInput = { modelName: model, toVersion, reason: `bench rollback ${i + 1} of ${N}`, requestedBy: 'bench', trigger: 'manual' };
    const t0 = performance.now();
    const out = (await client.workflow.execute(ROLLBACK_WORKFLOW, {
      workflowId: `rollback-${model}-bench-${i}`,
      taskQueue: `${prefix}control`,
      args: [input],
    })) as RollbackOutcome;
    wall.push(performance.now() - t0);
    rto.push(out.rtoMs);
    if (out.verifiedVia !== 'gateway') throw new Error(`rollback ${i} was verified via ${out.verifiedVia}, not the gateway`);
    process.stderr.write(`  ${i + 1}/${N}: v${out.fromVersion} → v${out.toVersion}  RTO ${out.rtoMs} ms  (start → result ${wall.at(-1)!.toFixed(0)} ms)\n`);
  }
  const s = (xs: number[]) => ({
    p50: Math.round(pct(xs, 50)),
    p95: Math.round(pct(xs, 95)),
    min: Math.round(Math.min(...xs)),
    max: Math.round(Math.max(...xs)),
  });
  const result = { rollbacks: N, rtoMs: s(rto), wallMs: s(wall), goalMs: 10_000, met: pct(rto, 95) < 10_000 };
  console.log(
    `rollback RTO over ${N}: p50 ${result.rtoMs.p50} ms, p95 ${result.rtoMs.p95} ms (min ${result.rtoMs.min}, max ${result.rtoMs.max}); goal < 10 s: ${result.met ? 'met' : 'NOT met'}`,
  );
  figure(`rollback RTO p95 (${N} rollbacks)`, result.rtoMs.p95, 'ms', '< 10000 ms', result.met);
  console.log(`start → result (client side): p50 ${result.wallMs.p50} ms, p95 ${result.wallMs.p95} ms`);
  console.log(JSON.stringify(result));
} finally {
  for (const w of workers) w.shutdown();
  await Promise.all(running);
  await connection.close();
  await client.connection.close();
  await closeActivityDeps();
  gateway.kill('SIGTERM');
}
