import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LifecycleOutcome } from '../../src/domain/lifecycle.ts';
import { createKey, writeKeysFile } from '../../src/gateway/keys.ts';
import { readPayload } from '../../src/gateway/request-log.ts';
import { policyPackPath } from '../../src/policy/pack.ts';
import { createS3 } from '../../src/storage/s3.ts';
import type { RequestTrace } from '../../src/trace/request.ts';
import { env } from '../helpers.ts';
import { GatewayProcess, factoryCli, gatewayCall, lifecycleSuite, startTestLifecycle, waitForStatus } from './harness.ts';

const suite = lifecycleSuite();
// The first WDBC sample (malignant).
const SAMPLE = [
  17.99, 10.38, 122.8, 1001, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871, 1.095, 0.9053, 8.589, 153.4, 0.006399, 0.04904, 0.05373, 0.01587, 0.03003,
  0.006193, 25.38, 17.33, 184.6, 2019, 0.1622, 0.6656, 0.7119, 0.2654, 0.4601, 0.1189,
];
const BODY = JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: SAMPLE }] });
// A port of this stack's block not taken by the dev gateway (FACTORY_GATEWAY_PORT).
const PORT = env.FACTORY_GATEWAY_PORT + 1;
const BASE = `http://127.0.0.1:${PORT}`;

const call = (model: string, key: string | undefined, init: { body?: string; contentType?: string; version?: number } = {}) =>
  gatewayCall(BASE, model, key, { body: BODY, ...init });

/** The payload once the gateway has shipped its journal segment (every second). */
async function payloadOf(id: string, uri: string) {
  const s3 = createS3(env);
  try {
    for (let i = 0; ; i++) {
      try {
        return await readPayload(s3, uri, id);
      } catch (err) {
        if ((err as Error).name !== 'PayloadNotYetShipped' || i > 100) throw err;
        await sleep(100);
      }
    }
  } finally {
    s3.destroy();
  }
}

async function row(requestId: string) {
  return suite.db.selectFrom('gateway_requests').selectAll().where('request_id', '=', requestId).executeTakeFirst();
}

describe('the inference gateway (real Triton, gateway, Temporal, PostgreSQL, S3)', () => {
  let served: string;
  let pending: string;
  let version: number;
  let key: string;
  let otherKey: string;
  let gateway: GatewayProcess;
  let waiting: string | undefined;

  beforeAll(async () => {
    served = `bc-${suite.workers.prefix.slice(1, -1)}`;
    pending = `${served}-pending`;
    // Two lifecycles at once: one deployed, one left waiting at its approval gate (never deployed).
    const [a, b] = await Promise.all([
      startTestLifecycle(suite.client, suite.workers, { modelName: served }),
      startTestLifecycle(suite.client, suite.workers, { modelName: pending }),
    ]);
    const status = await waitForStatus(suite.client, a.workflowId, (s) => s.stage === 'approval', 240_000);
    const handle = suite.client.workflow.getHandle(a.workflowId);
    await handle.signal('approve', { approver: 'omar@hospital.example', role: 'model-owner', meaning: 'approval', modelDigest: status.modelDigest });
    const outcome = (await handle.result()) as LifecycleOutcome;
    if (outcome.outcome !== 'deployed') throw new Error(`not deployed: ${JSON.stringify(outcome)}`);
    version = outcome.version;
    waiting = b.workflowId;
    await waitForStatus(suite.client, b.workflowId, (s) => s.stage === 'approval', 240_000);

    // The pack in force (the stack's effective pack) plus two use cases; the keys by hash in a keys file beside it.
    const dir = path.join(env.FACTORY_HOME, 'test-data', `gateway-${suite.workers.prefix}`);
    fs.mkdirSync(dir, { recursive: true });
    const pack = parse(fs.readFileSync(policyPackPath(), 'utf8')) as Record<string, unknown>;
    pack.useCases = [
      { name: 'triage', models: [served, pending, `${served}-unknown`], riskTiers: ['low'] },
      { name: 'elsewhere', models: ['some-other-model'], riskTiers: ['low'] },
    ];
    fs.writeFileSync(path.join(dir, 'pack.yaml'), stringify(pack));
    const k1 = createKey('lena@hospital.example', 'triage');
    const k2 = createKey('sam@hospital.example', 'elsewhere');
    key = k1.key;
    otherKey = k2.key;
    writeKeysFile(path.join(dir, 'keys.yaml'), [k1.entry, k2.entry]);
    gateway = new GatewayProcess({ FACTORY_POLICY_PACK: path.join(dir, 'pack.yaml'), FACTORY_GATEWAY_KEYS_FILE: path.join(dir, 'keys.yaml') }, PORT);
    await gateway.start();
  }, 600_000);

  afterAll(async () => {
    await gateway?.kill('SIGTERM');
    if (waiting) await suite.client.workflow.getHandle(waiting).cancel();
  });

  it('serves an authenticated request, returns its id, logs it in PostgreSQL and its payload in the restricted bucket', async () => {
    const res = await call(served, key);
    const body = (await res.json()) as { model_name: string; model_version: string; outputs: Array<{ data: number[] }> };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body).toMatchObject({ model_name: served, model_version: String(version) });
    expect(body.outputs[0]?.data).toHaveLength(1);
    const id = res.headers.get('x-request-id')!;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    const r = await row(id);
    expect(r).toMatchObject({
      status: 200,
      outcome: 'served',
      principal: 'lena@hospital.example',
      use_case: 'triage',
      model_name: served,
      model_version: version,
    });
    expect(r?.artifact_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r?.input_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r?.output_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await payloadOf(id, r!.payload_uri!)).toMatchObject({ response: body.outputs });

    // The payload read through the CLI is recorded (who, purpose) before it is returned.
    const read = await factoryCli(['request', 'payload', id, '--purpose', 'test: incident review', '--as', 'dana@hospital.example', '--json']);
    expect(read.code, read.stderr).toBe(0);
    expect(JSON.parse(read.stdout).payload.response).toEqual(body.outputs);
    const reads = await suite.db.selectFrom('payload_reads').selectAll().where('request_id', '=', id).execute();
    expect(reads).toEqual([expect.objectContaining({ reader: 'dana@hospital.example', purpose: 'test: incident review' })]);

    // From the request id to the version that answered and its lineage.
    const t0 = Date.now();
    const traced = await factoryCli(['trace', '--request', id, '--json']);
    expect(traced.code, traced.stderr).toBe(0);
    const trace = JSON.parse(traced.stdout) as RequestTrace;
    expect(trace.request).toMatchObject({ requestId: id, model: served, version, outcome: 'served' });
    expect(trace.lineage?.model).toMatchObject({ name: served, version, state: 'deployed', artifactDigest: r?.artifact_digest });
    expect(trace.lineage?.approvals.map((a) => a.approver)).toEqual(['omar@hospital.example']);
    expect(trace.servingNow).toMatchObject({ modelName: served, version, routeState: 'live' });
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('refuses, with its 4xx and reason, and logs: no key, a wrong key, a use case not allowed, a model not deployed, an unknown model, a version not served, bad input', async () => {
    const cases: Array<[string, Promise<Response>, number, string]> = [
      ['no key', call(served, undefined), 401, 'unauthenticated'],
      ['a forged key', call(served, `${key.slice(0, -4)}AAAA`), 401, 'unauthenticated'],
      ['another use case', call(served, otherKey), 403, 'use-case-not-allowed'],
      ['not deployed', call(pending, key), 409, 'not-served'],
      ['unknown model', call(`${served}-unknown`, key), 404, 'unknown-model'],
      ['another version', call(served, key, { version: version + 7 }), 409, 'version-not-served'],
      ['not JSON', call(served, key, { body: 'input=1', contentType: 'text/plain' }), 415, 'unsupported-media-type'],
      [
        'not a v2 request',
        call(served, key, { body: JSON.stringify({ inputs: [{ name: 'input', shape: [1, 30], datatype: 'FP32', data: [1] }] }) }),
        400,
        'invalid-request',
      ],
      ['too large', call(served, key, { body: JSON.stringify({ pad: 'x'.repeat(2 * 1024 * 1024) }) }), 413, 'body-too-large'],
    ];
    for (const [what, pending, status, reason] of cases) {
      const res = await pending;
      const body = (await res.json()) as { reason: string; error: string; request_id: string };
      expect([what, res.status, body.reason]).toEqual([what, status, reason]);
      expect(body.error.length).toBeGreaterThan(5);
      const id = res.headers.get('x-request-id')!;
      expect(body.request_id).toBe(id);
      const r = await row(id);
      expect([what, r?.status, r?.outcome, r?.reason?.split(':')[0]]).toEqual([what, status, 'refused', reason]);
      expect(r?.payload_uri).toBeNull();
    }
  });

  it('loses no acknowledged request (served or refused) when the gateway is killed with SIGKILL mid-load', async () => {
    const acknowledged: string[] = [];
    let stop = false;
    // Refusals are answers too: every fourth client calls without a key (401), and its rows must survive as well.
    const client = async (_: unknown, n: number) => {
      while (!stop) {
        try {
          const res = await call(served, n % 4 === 3 ? undefined : key);
          await res.arrayBuffer();
          if (res.status === 200 || res.status === 401) acknowledged.push(res.headers.get('x-request-id')!);
        } catch {
          return; // the connection died with the gateway
        }
      }
    };
    const clients = Array.from({ length: 16 }, client);
    while (acknowledged.length < 150) await sleep(20);
    await gateway.kill('SIGKILL');
    stop = true;
    await Promise.all(clients);
    const rows = await suite.db.selectFrom('gateway_requests').select(['request_id', 'payload_uri']).where('request_id', 'in', acknowledged).execute();
    expect(rows.length).toBe(acknowledged.length);
    // It comes back and serves again; the journal segment the kill left is shipped at start.
    await gateway.start();
    const last = rows.filter((r) => r.payload_uri).at(-1)!;
    expect((await payloadOf(last.request_id, last.payload_uri!)).request_id).toBe(last.request_id);
    expect((await call(served, key)).status).toBe(200);
  });
});
