import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/audit/canonical.ts';
import { GENESIS_HASH, auditEventId, hashOf } from '../../src/audit/chain.ts';
import { decideUpdateSchema, readPayload, summariseReceived } from '../../src/domain/approval.ts';
import { lifecycleInputSchema, lifecycleWorkflowId } from '../../src/domain/lifecycle.ts';
import { queuesFor } from '../../src/domain/task-queues.ts';
import { type DatasetSchema, SchemaMismatchError, validateRows } from '../../src/datasets/schema.ts';

describe('canonical JSON', () => {
  it('sorts keys at every depth and drops undefined', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 'x' }, u: undefined })).toBe('{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}');
  });
  it('refuses values JSON cannot carry', () => {
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/non-finite/);
  });
});

describe('audit chain hashing', () => {
  const row = {
    event_id: 'w/r/s',
    workflow_id: 'w',
    run_id: 'r',
    step: 's',
    kind: 'k',
    actor: 'a',
    payload: { b: 2, a: 1 },
    occurred_at: '2026-01-01T00:00:00.000Z',
    prev_hash: GENESIS_HASH,
  };
  it('is independent of key order and changes with any field', () => {
    expect(hashOf({ ...row, payload: { a: 1, b: 2 } })).toBe(hashOf(row));
    expect(hashOf({ ...row, actor: 'b' })).not.toBe(hashOf(row));
    expect(hashOf({ ...row, prev_hash: 'f'.repeat(64) })).not.toBe(hashOf(row));
  });
  it('derives event ids from workflow, run and step', () => {
    expect(auditEventId({ workflowId: 'w', runId: 'r', step: 'dataset.certified' })).toBe('w/r/dataset.certified');
  });
});

describe('signal payloads', () => {
  it('reads objects, JSON text and bytes; refuses anything else with a reason', () => {
    expect(readPayload({ a: 1 })).toEqual({ ok: true, value: { a: 1 } });
    expect(readPayload('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(readPayload(new TextEncoder().encode('{"a":1}'))).toEqual({ ok: true, value: { a: 1 } });
    expect(readPayload('approve please')).toMatchObject({ ok: false, reason: expect.stringMatching(/not JSON/) });
    expect(readPayload([1])).toMatchObject({ ok: false, reason: expect.stringMatching(/not a JSON object/) });
    expect(readPayload(null)).toMatchObject({ ok: false });
  });
});

describe('lifecycle input', () => {
  const good = {
    modelName: 'bc',
    datasetPath: 'd.csv',
    commitSha: 'abcdef1',
    imageDigest: `sha256:${'0'.repeat(64)}`,
    riskTier: 'low',
    requester: 'ci@x.org',
    developer: 'dev@x.org',
  };
  it('validates and fills defaults', () => {
    expect(lifecycleInputSchema.parse(good).training).toEqual({ epochs: 300, seed: 7 });
    expect(lifecycleInputSchema.safeParse({ ...good, riskTier: 'extreme' }).success).toBe(false);
    expect(lifecycleInputSchema.safeParse({ ...good, imageDigest: 'latest' }).success).toBe(false);
  });
  it('derives one workflow id per model and commit', () => {
    expect(lifecycleWorkflowId('bc', 'abcdef1')).toBe('lifecycle-bc-abcdef1');
  });
});

describe('task queues', () => {
  it('follow the control queue a workflow runs on', () => {
    expect(queuesFor('control')).toEqual({ control: 'control', gpuOnprem: 'gpu-onprem', serving: 'serving' });
    expect(queuesFor('t1-control')).toEqual({ control: 't1-control', gpuOnprem: 't1-gpu-onprem', serving: 't1-serving' });
  });
});

describe('row validation', () => {
  const schema: DatasetSchema = {
    name: 't',
    classification: 'public',
    label: { column: 'y', positive: 'M', values: ['M', 'B'] },
    features: [
      { name: 'a', type: 'number', min: 0 },
      { name: 'b', type: 'number' },
    ],
  };
  it('excludes each bad row with its line and reason, keeps the rest', () => {
    const r = validateRows('a,b,y\n1,2,M\n-1,2,B\nx,2,B\n1,2\n1,2,Q\n,2,M\n3,4,B\n', schema);
    expect(r.rowsTotal).toBe(7);
    expect(r.accepted).toEqual(['1,2,M', '3,4,B']);
    expect(r.exclusions).toEqual([
      { line: 3, reason: 'a=-1 is below the minimum 0' },
      { line: 4, reason: 'a="x" is not a number' },
      { line: 5, reason: 'expected 3 fields, found 2' },
      { line: 6, reason: 'y="Q" is not one of M, B' },
      { line: 7, reason: 'a is empty' },
    ]);
  });
  it('refuses a file whose header does not match the schema', () => {
    expect(() => validateRows('a,c,y\n1,2,M\n', schema)).toThrow(SchemaMismatchError);
    expect(() => validateRows('a,c,y\n1,2,M\n', schema)).toThrow(/missing b; 1 unexpected column \(the file has 3 columns; the schema expects 3\)$/);
  });
});

describe('decision payloads are judged, never trusted', () => {
  const ok = { decision: 'approve', approver: 'dana@hospital.example', role: 'compliance', meaning: 'approval', modelDigest: `sha256:${'a'.repeat(64)}` };
  it('refuses any decision but approve, reject and withdraw (no "Approve")', () => {
    expect(decideUpdateSchema.safeParse(ok).success).toBe(true);
    expect(decideUpdateSchema.safeParse({ ...ok, decision: 'Approve' }).success).toBe(false);
    expect(decideUpdateSchema.safeParse({ ...ok, decision: 'withdraw' }).success).toBe(false); // needs a reason
    expect(decideUpdateSchema.safeParse({ ...ok, decision: 'withdraw', comment: 'data issue' }).success).toBe(true);
  });
  it.each([
    ['NUL', 'a\u0000b'],
    ['a lone surrogate', 'a\ud800b'],
    ['an escape sequence', '\u001b[31mred'],
    ['a comment over 2000 characters', 'x'.repeat(2_001)],
  ])('refuses a comment with %s', (_what, comment) => {
    expect(decideUpdateSchema.safeParse({ ...ok, comment }).success).toBe(false);
  });
  it('keeps line breaks and normalises to NFC', () => {
    const parsed = decideUpdateSchema.parse({ ...ok, comment: 'line one\nCafe\u0301' });
    expect(parsed.comment).toBe('line one\nCaf\u00e9');
  });
  it('summarises what it refuses: digest, size, bounded escaped excerpt', () => {
    const big = `\u001b]0;owned\u0007${'x'.repeat(1_000_000)}`;
    const s = summariseReceived({ comment: big });
    expect(s.bytes).toBeGreaterThan(1_000_000);
    expect(s.sha256).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(s.excerpt.length).toBeLessThan(250);
    expect(s.excerpt).not.toMatch(/[\u0000-\u001f]/);
    expect(s.excerpt).toContain('\\u001b');
    expect(s.truncated).toBe(true);
    expect(summariseReceived('a\u0000\ud800').excerpt).toBe('a\\u0000\\ud800');
  });
});
