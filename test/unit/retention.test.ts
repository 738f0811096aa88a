import { describe, expect, it } from 'vitest';
import { legalHoldInputSchema, retentionSweepInputSchema } from '../../src/domain/governance.ts';
import { ownerOf, recordTypeOf, retentionVerdict } from '../../src/retention/classify.ts';

const now = new Date('2030-01-01T00:00:00Z');
const past = new Date('2029-12-31T23:59:59Z');
const future = new Date('2030-01-01T00:00:01Z');

describe('retention verdicts', () => {
  it('due only when the retain-until has passed and no legal hold is on', () => {
    expect(retentionVerdict({ retainUntil: past, legalHold: false }, now)).toBe('due');
    expect(retentionVerdict({ retainUntil: past, legalHold: true }, now)).toBe('held');
    expect(retentionVerdict({ retainUntil: future, legalHold: false }, now)).toBe('kept');
    expect(retentionVerdict({ retainUntil: future, legalHold: true }, now)).toBe('held');
  });
  it("an unlocked version is judged by the pack's retention from its write time; one of no known type is kept", () => {
    expect(retentionVerdict({ policyRetainUntil: past, legalHold: false }, now)).toBe('due');
    expect(retentionVerdict({ policyRetainUntil: future, legalHold: false }, now)).toBe('kept');
    expect(retentionVerdict({ legalHold: false }, now)).toBe('kept');
  });
  it("the object's own lock wins over the pack's computed date (the store enforces it anyway)", () => {
    expect(retentionVerdict({ retainUntil: future, policyRetainUntil: past, legalHold: false }, now)).toBe('kept');
  });
});

describe('record types and owners from where objects are kept', () => {
  it.each([
    ['quarantine', 'wdbc/abc/wdbc.csv', 'raw', { dataset: 'wdbc' }],
    ['certified', 'wdbc/def/data.csv', 'certified', { dataset: 'wdbc' }],
    ['evidence', 'datasets/wdbc/123.manifest.json', 'certified', { dataset: 'wdbc' }],
    ['artifacts', 'models/bc/9/model.onnx', 'artifacts', { model: 'bc' }],
    ['evidence', 'models/bc/9/model.onnx.evaluation.json', 'evaluations', { model: 'bc' }],
    ['evidence', 'models/bc/9/model.onnx.environment.json', 'artifacts', { model: 'bc' }],
    ['evidence', 'provenance/w/r/model.onnx.intoto.json', 'provenance', {}],
    ['evidence', 'checkpoints/main/0001.dsse.json', 'checkpoints', {}],
    ['evidence', 'histories/w/r.json', 'histories', {}],
    ['evidence', 'elsewhere/x', 'other', {}],
  ] as const)('%s %s → %s', (b, key, type, owner) => {
    expect(recordTypeOf(b, key)).toBe(type);
    expect(ownerOf(b, key)).toEqual(owner);
  });
});

describe('hold and sweep inputs (hostile)', () => {
  const ok = { action: 'place', caseId: 'CASE-2026/17', scope: { model: 'bc' }, by: 'dana@hospital.example', reason: 'litigation' };
  it('accepts a well-formed hold and refuses control characters, oversize text, odd case ids and two scopes', () => {
    expect(legalHoldInputSchema.safeParse(ok).success).toBe(true);
    for (const bad of [
      { ...ok, reason: 'a\u001b[2Jb' },
      { ...ok, reason: 'x'.repeat(1001) },
      { ...ok, caseId: '../etc' },
      { ...ok, caseId: 'a'.repeat(129) },
      { ...ok, scope: { model: 'bc', dataset: 'd' } },
      { ...ok, scope: { model: 'b c' } },
      { ...ok, by: 'not-an-email' },
      { action: 'release', caseId: 'C1', by: 'max@hospital.example', reason: 'x', scope: { model: 'bc' } },
    ]) {
      expect(legalHoldInputSchema.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
  it('a sweep is report or delete, with an optional printable prefix', () => {
    expect(retentionSweepInputSchema.safeParse({ mode: 'delete', keyPrefix: 'wdbc/' }).success).toBe(true);
    expect(retentionSweepInputSchema.safeParse({ mode: 'purge' }).success).toBe(false);
    expect(retentionSweepInputSchema.safeParse({ mode: 'report', keyPrefix: 'a\u0000' }).success).toBe(false);
  });
});
