import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { tritonUrl } from '../../src/dev/components/triton.ts';
import { isAlive, processFiles, readPid } from '../../src/dev/process.ts';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { TritonClient } from '../../src/serving/triton.ts';
import type { ModelTrace } from '../../src/trace/trace.ts';
import { env } from '../helpers.ts';
import { factoryCli, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
const { workers } = suite;
// The first WDBC sample (malignant).
const SAMPLE = [
  17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
  0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
];

async function traceJson(ref: string): Promise<ModelTrace> {
  const res = await factoryCli(['trace', ref, '--json']);
  expect(res.code, res.stderr).toBe(0);
  return JSON.parse(res.stdout) as ModelTrace;
}

describe('serving reconciles after a Triton restart (real Triton, registry, S3)', () => {
  it('a deployed model killed with Triton (kill -9) answers again after `factory dev up`; trace reports what Triton says', async () => {
    const { workflowId, input } = await startTestLifecycle(suite.client, workers);
    const status = await waitForStatus(suite.client, workflowId, (s) => s.stage === 'approval');
    const handle = suite.client.workflow.getHandle(workflowId);
    await handle.signal('approve', { approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest: status.modelDigest });
    const outcome = (await handle.result()) as LifecycleOutcome;
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    const ref = `${input.modelName}@${outcome.version}`;
    const triton = new TritonClient(tritonUrl(env));

    const before = await traceJson(ref);
    expect(before.deployment?.serving).toBe('ready');
    expect(before.objects?.map((o) => [o.role, o.state])).toEqual([
      ['artifact', 'ok'],
      ['raw', 'ok'],
      ['certified', 'ok'],
      ['manifest', 'ok'],
    ]);

    // Triton dies the hard way: no unload, no goodbye.
    const files = processFiles(env.FACTORY_HOME, 'triton');
    const pid = readPid(files);
    expect(pid, 'the test stack runs its own Triton').toBeDefined();
    process.kill(pid!, 'SIGKILL');
    for (let i = 0; i < 100 && isAlive(pid!); i++) await sleep(100);
    expect(isAlive(pid!)).toBe(false);

    // The registry still says deployed; trace asks Triton and says it is not served.
    const down = await traceJson(ref);
    expect(down.model.state).toBe('deployed');
    expect(down.deployment?.serving).toBe('unreachable');
    const human = await factoryCli(['trace', ref]);
    expect(human.stdout).toMatch(/serving: unreachable/);

    // `dev up` starts Triton again (explicit mode: nothing loaded) and reconciles serving.
    const t0 = Date.now();
    const up = await factoryCli(['dev', 'up']);
    expect(up.code, up.stderr).toBe(0);
    expect(readPid(files)).not.toBe(pid);
    // Bounded: the model answers within a minute of `dev up` returning (in practice, when it returns).
    let answered: number[][] | undefined;
    for (let i = 0; i < 120 && !answered; i++) {
      answered = await triton.infer(input.modelName, [SAMPLE], outcome.version, { timeoutMs: 5_000 }).then(
        (r) => r.outputs,
        () => undefined,
      );
      if (!answered) await sleep(500);
    }
    expect(answered?.[0]?.[0], `no inference within ${(Date.now() - t0) / 1000}s of dev up`).toBeGreaterThan(0.5);
    const after = await traceJson(ref);
    expect(after.deployment?.serving).toBe('ready');

    // Reloading is idempotent: Triton loses only the model, the serving worker's loop (every 10 s)
    // puts it back without a `dev up`.
    await triton.unload(input.modelName);
    for (let i = 0; i < 50 && (await triton.versionReady(input.modelName, outcome.version)); i++) await sleep(100);
    const unloaded = await traceJson(ref);
    // The loop may already have reloaded it between the unload and this trace; never "unreachable".
    expect(['not loaded', 'ready']).toContain(unloaded.deployment?.serving);
    let back = false;
    for (let i = 0; i < 60 && !back; i++) {
      back = await triton.versionReady(input.modelName, outcome.version);
      if (!back) await sleep(500);
    }
    expect(back, 'the serving worker reloads an unloaded deployed model within 30 s').toBe(true);
  });
});
