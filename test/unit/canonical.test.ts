import { describe, expect, it } from 'vitest';
import { canonicalEvent, hashOf } from '../../src/audit/chain.ts';
import { canonicalJson, canonicalJsonReference, sha256Hex } from '../../src/audit/canonical.ts';
import { prevHashInText } from '../../src/audit/verify.ts';

/** A deterministic pseudo-random value generator (no dependency): JSON-like values of every shape. */
function* values(seed = 42, n = 3_000): Generator<unknown> {
  let x = seed;
  const rnd = () => (x = (x * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
  const str = () => {
    const alphabet = ['a', 'B', 'é', '\u0000', '"', '\\', '\n', '😀', '\ud800', '\u2028', 'z', '_', '1', ' '];
    return Array.from({ length: Math.floor(rnd() * 6) }, () => alphabet[Math.floor(rnd() * alphabet.length)]).join('');
  };
  const gen = (depth: number): unknown => {
    const k = Math.floor(rnd() * (depth > 3 ? 5 : 8));
    if (k === 0) return null;
    if (k === 1) return rnd() < 0.5;
    if (k === 2) return [0, -0, 1e21, 1e-7, 3.14159, -42, 2 ** 53, Number.MIN_VALUE][Math.floor(rnd() * 8)];
    if (k === 3) return str();
    if (k === 4) return Math.floor(rnd() * 1000) - 500;
    if (k === 5) return Array.from({ length: Math.floor(rnd() * 4) }, () => (rnd() < 0.1 ? undefined : gen(depth + 1)));
    return Object.fromEntries(Array.from({ length: Math.floor(rnd() * 5) }, () => [str(), rnd() < 0.1 ? undefined : gen(depth + 1)]));
  };
  for (let i = 0; i < n; i++) yield gen(0);
}

describe('canonical JSON', () => {
  it('the fast form gives the same bytes as the reference definition, for every shape', () => {
    for (const v of values()) expect(canonicalJson(v)).toBe(canonicalJsonReference(v));
    const d = new Date(Date.UTC(2026, 0, 1));
    expect(canonicalJson({ b: [d, undefined], a: { '10': 1, '9': 2, é: 3, Z: 4 } })).toBe(
      canonicalJsonReference({ b: [d, undefined], a: { '10': 1, '9': 2, é: 3, Z: 4 } }),
    );
    expect(() => canonicalJson({ a: Number.NaN })).toThrow(TypeError);
    expect(() => canonicalJson(undefined)).toThrow(TypeError);
  });

  it("a row's canonical bytes are the canonical JSON of its fields, so existing hashes still verify", () => {
    let i = 0;
    for (const payload of values(7, 500)) {
      if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) continue;
      const row = {
        event_id: `wf/run/step.${i}`,
        workflow_id: 'wf-é"\\',
        run_id: 'run',
        step: `step.${i++}`,
        kind: 'test.event',
        actor: 'dana@hospital.example',
        payload: payload as Record<string, unknown>,
        occurred_at: '2026-11-27T00:00:00.000Z',
        prev_hash: '0'.repeat(64),
      };
      const reference = canonicalJsonReference({
        eventId: row.event_id,
        workflowId: row.workflow_id,
        runId: row.run_id,
        step: row.step,
        kind: row.kind,
        actor: row.actor,
        payload: row.payload,
        occurredAt: row.occurred_at,
        prevHash: row.prev_hash,
      });
      expect(canonicalEvent(row)).toBe(reference);
      expect(hashOf(row)).toBe(sha256Hex(reference));
    }
  });
});

describe('prevHashInText: the link audit verify reads from the stored hashed text', () => {
  const prev = 'a'.repeat(64);
  const row = (payload: Record<string, unknown>, extra: Partial<Record<'step' | 'run_id' | 'workflow_id', string>> = {}) => ({
    event_id: 'wf/run/s',
    workflow_id: 'wf',
    run_id: 'run',
    step: 's',
    kind: 'k',
    actor: 'a',
    payload,
    occurred_at: '2026-11-27T00:00:00.000Z',
    prev_hash: prev,
    ...extra,
  });

  it("is the outer object's prevHash, whatever the payload or the later strings hold", () => {
    const decoy = 'f'.repeat(64);
    for (const r of [
      row({}),
      row({ prevHash: decoy }),
      row({ nested: { prevHash: decoy, z: [{ prevHash: decoy }] } }),
      row({ s: `","prevHash":"${decoy}"` }),
      row({}, { step: `x","prevHash":"${decoy}`, run_id: `"prevHash":"${decoy}"`, workflow_id: `\\","prevHash":"${decoy}` }),
    ]) {
      expect(prevHashInText(canonicalEvent(r))).toBe(prev);
    }
  });

  it('is undefined for a text without one of 64 characters', () => {
    expect(prevHashInText('not json')).toBeUndefined();
    expect(prevHashInText('{"prevHash":"abc"}')).toBeUndefined();
    expect(prevHashInText(`{"prevHash":"${prev}x"}`)).toBeUndefined();
  });
});
