import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { createLogger } from '../../src/log.ts';
import { KeyRing, createKey } from '../../src/gateway/keys.ts';
import type { RequestLog, RequestRow } from '../../src/gateway/request-log.ts';
import type { NamedVersion, RouteLookup, RouteTable, ServedRoute } from '../../src/gateway/routes.ts';
import { buildGateway } from '../../src/gateway/server.ts';
import { DEFAULT_POLICY_PACK, parsePolicyPack } from '../../src/policy/pack.ts';

// The refusal logic of the gateway, with the registry's answers given (the integration test runs it on the real stack).
const doc = parse(fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8')) as { riskTiers: Record<string, { requireSignature?: boolean }> } & Record<string, unknown>;
// The repository's pack without the approvers' keys (dev up adds them): signatures are not this test's subject.
for (const tier of Object.values(doc.riskTiers)) tier.requireSignature = false;
doc.useCases = [
  { name: 'triage', models: ['credit', 'old'], riskTiers: ['low'] },
  { name: 'elsewhere', models: ['other'], riskTiers: ['low'] },
];
const pack = parsePolicyPack(stringify(doc)).pack;
const triage = createKey('lena@hospital.example', 'triage');
const elsewhere = createKey('sam@hospital.example', 'elsewhere');

const route = (over: Partial<ServedRoute> = {}): ServedRoute => ({
  modelName: 'credit',
  modelVersionId: 12,
  version: 3,
  registryState: 'deployed',
  riskTier: 'low',
  tritonModel: 'credit',
  tritonVersion: 3,
  artifactDigest: `sha256:${'c'.repeat(64)}`,
  routeState: 'live',
  switchedAt: '2026-11-27T12:00:00.000Z',
  switchedBy: 'deployment x',
  reason: 'deployed',
  ...over,
});
const versions: Record<number, NamedVersion> = {
  1: {
    modelVersionId: 10,
    version: 1,
    registryState: 'retired',
    artifactDigest: `sha256:${'a'.repeat(64)}`,
    retiredReason: 'superseded by v3, bias finding F-12',
  },
  2: { modelVersionId: 11, version: 2, registryState: 'rolled-back', artifactDigest: `sha256:${'b'.repeat(64)}` },
  4: { modelVersionId: 13, version: 4, registryState: 'validated', artifactDigest: `sha256:${'d'.repeat(64)}` },
};

async function gateway(routes: Record<string, RouteLookup>) {
  const rows: RequestRow[] = [];
  const app = await buildGateway({
    keys: new KeyRing(pack, [triage.entry, elsewhere.entry]),
    routes: {
      lookup: async (m: string) => routes[m] ?? { kind: 'unknown-model' },
      version: async (_m: string, v: number) => versions[v],
    } as unknown as RouteTable,
    log: { record: async (row: RequestRow) => void rows.push(row) } as unknown as RequestLog,
    tritonUrl: 'http://127.0.0.1:9',
    logger: createLogger('test', 'silent'),
    maxBodyBytes: 1 << 20,
    ratePerMinute: 1000,
    policyPackDigest: 'sha256:test',
    databaseReady: async () => true,
  });
  return { app, rows };
}

const body = { inputs: [{ name: 'input', shape: [1, 2], datatype: 'FP32', data: [1, 2] }] };

describe('gateway refusals: each a 4xx with a reason code and message, each logged', () => {
  it.each([
    ['no key', undefined, '/v2/models/credit/infer', 401, 'unauthenticated', /API key|Bearer|key/i, { model_version: null }],
    [
      'a use case not naming the model',
      elsewhere.key,
      '/v2/models/credit/infer',
      403,
      'use-case-not-allowed',
      /use case elsewhere may not call model credit/,
      {},
    ],
    [
      'a retired version named',
      triage.key,
      '/v2/models/credit/versions/1/infer',
      410,
      'retired',
      /version 1 is retired: superseded by v3, bias finding F-12/,
      { model_version: 1, model_version_id: 10 },
    ],
    ['a rolled-back version named', triage.key, '/v2/models/credit/versions/2/infer', 409, 'rolled-back', /version 2 was rolled back/, { model_version: 2 }],
    [
      'an unapproved version named',
      triage.key,
      '/v2/models/credit/versions/4/infer',
      409,
      'version-not-served',
      /version 4 is validated in the registry, not approved/,
      { model_version: 4 },
    ],
    ['a version that does not exist', triage.key, '/v2/models/credit/versions/9/infer', 409, 'version-not-served', /has no version 9/, { model_version: null }],
    [
      'a retired model',
      triage.key,
      '/v2/models/old/infer',
      410,
      'retired',
      /model old is retired \(version 5, since .*\): retired: end of the pilot/,
      { model_version: 5 },
    ],
    ['a retired model, a version named', triage.key, '/v2/models/old/versions/5/infer', 410, 'retired', /model old is retired/, {}],
  ])('%s', async (_what, key, url, status, reason, message, logged) => {
    const { app, rows } = await gateway({
      credit: { kind: 'route', route: route() },
      old: {
        kind: 'route',
        route: route({
          modelName: 'old',
          version: 5,
          modelVersionId: 20,
          registryState: 'retired',
          routeState: 'retired',
          reason: 'retired: end of the pilot',
        }),
      },
    });
    const res = await app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      payload: body,
    });
    expect(res.statusCode).toBe(status);
    const answer = res.json() as { error: string; reason: string; request_id: string };
    expect(answer.reason).toBe(reason);
    expect(answer.error).toMatch(message);
    expect(answer.request_id).toBe(res.headers['x-request-id']);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ request_id: answer.request_id, status, outcome: 'refused', ...logged });
    expect(rows[0]!.reason).toContain(`${reason}: `);
    await app.close();
  });
});
