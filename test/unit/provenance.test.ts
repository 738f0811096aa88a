import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ProvenanceFacts,
  IN_TOTO_PAYLOAD_TYPE,
  buildProvenanceStatement,
  checkProvenance,
  signProvenanceStatement,
} from '../../src/provenance/statement.ts';
import { signEnvelope } from '../../src/signing/dsse.ts';
import { factoryKeyFromPem, generateFactoryKeyPem } from '../../src/signing/factory-key.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const facts: ProvenanceFacts = {
  artifact: { name: 'models/bc/aa/model.onnx', uri: 's3://factory-artifacts/models/bc/aa/model.onnx', digest: d('a') },
  dataset: {
    name: 'wdbc',
    rawUri: 's3://factory-quarantine/raw',
    rawSha256: d('b'),
    manifestUri: 's3://factory-certified/m.json',
    manifestDigest: d('c'),
    certifiedUri: 's3://factory-certified/x/data.csv',
    certifiedSha256: d('d'),
  },
  commitSha: 'abc1234',
  imageDigest: d('e'),
  modelName: 'bc',
  riskTier: 'low',
  training: { epochs: 10, seed: 7 },
  trainerCode: { digest: d('f'), files: [{ path: 'trainers/train.py', sha256: '1'.repeat(64) }] },
  trainingEnvironment: { uri: 's3://factory-evidence/env.json', digest: d('0'), python: 'CPython 3.11.2', packages: 120 },
  policy: { digest: d('9'), source: 'policies/default.yaml', version: '1' },
  evaluator: { id: 'urn:ai-factory:evaluator:trainers/evaluate.py', codeDigest: d('8'), files: [], taskQueue: 'gpu-onprem' },
  builder: { id: 'urn:ai-factory:builder:temporal:default:gpu-onprem', taskQueue: 'gpu-onprem', namespace: 'default' },
  workflow: { id: 'lifecycle-bc-abc1234', runId: 'r1' },
  startedOn: '2026-11-27T10:00:00.000Z',
  finishedOn: '2026-11-27T10:01:00.000Z',
};
const registry = { artifactDigest: d('a'), datasetManifestDigest: d('c'), commitSha: 'abc1234', policyDigest: d('9'), imageDigest: d('e') };
const key = factoryKeyFromPem(generateFactoryKeyPem(), 'test');
const bytes = (o: unknown) => Buffer.from(JSON.stringify(o));

describe('signed provenance (in-toto Statement v1, SLSA Provenance v1, DSSE)', () => {
  it('builds a deterministic statement whose envelope verifies against the registry', () => {
    const s = buildProvenanceStatement(facts);
    expect(s).toMatchObject({
      _type: 'https://in-toto.io/Statement/v1',
      predicateType: 'https://slsa.dev/provenance/v1',
      subject: [{ digest: { sha256: 'a'.repeat(64) } }],
    });
    expect(s.predicate.runDetails.metadata).toEqual({ invocationId: 'lifecycle-bc-abc1234/r1', startedOn: facts.startedOn, finishedOn: facts.finishedOn });
    const env = signProvenanceStatement(key, s);
    expect(env.payloadType).toBe(IN_TOTO_PAYLOAD_TYPE);
    expect(signProvenanceStatement(key, buildProvenanceStatement(facts))).toEqual(env);
    expect(checkProvenance(bytes(env), [key.publicKey], registry)).toMatchObject({ ok: true, keyId: key.keyId });
  });

  it('refuses another key, an edited payload, and each registry fact that differs', () => {
    const env = signProvenanceStatement(key, buildProvenanceStatement(facts));
    const other = factoryKeyFromPem(generateFactoryKeyPem(), 'other');
    expect(checkProvenance(bytes(signProvenanceStatement(other, buildProvenanceStatement(facts))), [key.publicKey], registry)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/trusted factory key/),
    });
    const edited = { ...env, payload: Buffer.from(Buffer.from(env.payload, 'base64').toString().replace('abc1234', 'fff1234')).toString('base64') };
    expect(checkProvenance(bytes(edited), [key.publicKey], registry).ok).toBe(false);
    for (const [field, value, what] of [
      ['artifactDigest', d('1'), /subject digest/],
      ['datasetManifestDigest', d('2'), /certified manifest/],
      ['commitSha', 'def5678', /commit/],
      ['policyDigest', d('3'), /policy digest/],
      ['imageDigest', d('4'), /image digest/],
    ] as const) {
      expect(checkProvenance(bytes(env), [key.publicKey], { ...registry, [field]: value })).toMatchObject({ ok: false, reason: expect.stringMatching(what) });
    }
  });

  it('refuses what is not a provenance statement, not JSON, oversized, or unverifiable without a key', () => {
    const notSlsa = signEnvelope(key, IN_TOTO_PAYLOAD_TYPE, JSON.stringify({ ...buildProvenanceStatement(facts), predicateType: 'https://example/other' }));
    expect(checkProvenance(bytes(notSlsa), [key.publicKey], registry)).toMatchObject({ ok: false, reason: expect.stringMatching(/SLSA Provenance v1/) });
    const wrongType = signEnvelope(key, 'application/json', JSON.stringify(buildProvenanceStatement(facts)));
    expect(checkProvenance(bytes(wrongType), [key.publicKey], registry)).toMatchObject({ ok: false, reason: expect.stringMatching(/payloadType/) });
    expect(checkProvenance(Buffer.from('{nope'), [key.publicKey], registry)).toMatchObject({ ok: false, reason: 'the envelope is not JSON' });
    expect(checkProvenance(Buffer.alloc(1024 * 1024 + 1), [key.publicKey], registry).ok).toBe(false);
    const env = signProvenanceStatement(key, buildProvenanceStatement(facts));
    expect(checkProvenance(bytes(env), [], registry)).toMatchObject({ ok: false, reason: expect.stringMatching(/FACTORY_SIGNING_KEY_FILE/) });
    // A key of another algorithm in the trusted list is not a factory key: nothing verifies with it.
    const { publicKey: rsa } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(checkProvenance(bytes(env), [rsa], registry).ok).toBe(false);
  });
});

describe('a worker without a signing key', () => {
  it('fails signProvenance for good (SigningKeyMissing) saying what to set, before touching any store', async () => {
    const { MockActivityEnvironment } = await import('@temporalio/testing');
    const { ApplicationFailure } = await import('@temporalio/activity');
    const saved = { a: process.env.FACTORY_SIGNING_KEY, b: process.env.FACTORY_SIGNING_KEY_FILE, home: process.env.FACTORY_HOME };
    delete process.env.FACTORY_SIGNING_KEY;
    delete process.env.FACTORY_SIGNING_KEY_FILE;
    // No local stack's key either (loadFactoryKey falls back to $FACTORY_HOME/keys/factory-signing.pem).
    process.env.FACTORY_HOME = fs.mkdtempSync(path.join(os.tmpdir(), 'no-key-'));
    try {
      const { signProvenance } = await import('../../activities/provenance.ts');
      const { closeActivityDeps } = await import('../../activities/deps.ts');
      const err = await new MockActivityEnvironment().run(signProvenance, {} as Parameters<typeof signProvenance>[0]).then(
        () => undefined,
        (e: unknown) => e,
      );
      await closeActivityDeps();
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect(err).toMatchObject({ type: 'SigningKeyMissing', nonRetryable: true, message: expect.stringMatching(/FACTORY_SIGNING_KEY_FILE/) });
    } finally {
      if (saved.a !== undefined) process.env.FACTORY_SIGNING_KEY = saved.a;
      if (saved.b !== undefined) process.env.FACTORY_SIGNING_KEY_FILE = saved.b;
      if (saved.home !== undefined) process.env.FACTORY_HOME = saved.home;
      else delete process.env.FACTORY_HOME;
    }
  }, 60_000); // importing @temporalio/testing and the activities takes seconds on a loaded machine
});
