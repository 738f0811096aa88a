import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { KeyRing, createKey, keyHash } from '../../src/gateway/keys.ts';
import { inferRequestSchema, outputSummary } from '../../src/gateway/server.ts';
import { DEFAULT_POLICY_PACK, parsePolicyPack } from '../../src/policy/pack.ts';
import { uuidV7Time } from '../../src/trace/request.ts';

// The repository's pack without the approvers' keys (dev up adds them): signatures are not this test's subject.
const unsigned = parse(fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8')) as { riskTiers: Record<string, { requireSignature?: boolean }> };
for (const tier of Object.values(unsigned.riskTiers)) tier.requireSignature = false;
const text = stringify(unsigned);
const pack = parsePolicyPack(text).pack;

describe('gateway API keys', () => {
  it('stores only a hash; the key resolves to its principal and use case; anything else is refused', () => {
    const k = createKey('vera@hospital.example', 'demo-screening');
    expect(k.entry.sha256).toBe(keyHash(k.key));
    expect(k.packLine).not.toContain(k.key);
    // The secret is everything after `fgk_<id>_` (base64url may itself contain '_').
    const secret = k.key.slice(`fgk_${k.entry.id}_`.length);
    expect(secret).toHaveLength(43);
    expect(JSON.stringify(k.entry)).not.toContain(secret);
    const ring = new KeyRing(pack, [k.entry]);
    const ok = ring.authenticate(`Bearer ${k.key}`);
    expect(ok).toMatchObject({ ok: true, caller: { principal: 'vera@hospital.example', useCase: { name: 'demo-screening' } } });
    for (const header of [
      undefined,
      k.key,
      `Bearer ${k.key.slice(0, -1)}${k.key.endsWith('A') ? 'B' : 'A'}`, // one character changed
      `Bearer ${createKey('vera@hospital.example', 'demo-screening').key}`,
      `Bearer ${'x'.repeat(5000)}`,
    ]) {
      expect(ring.authenticate(header).ok).toBe(false);
    }
  });

  it('refuses a pack whose key names an unknown principal or use case', () => {
    const doc = parse(text) as Record<string, unknown>;
    doc.gatewayKeys = [createKey('nobody@hospital.example', 'demo-screening').entry];
    expect(() => parsePolicyPack(stringify(doc))).toThrow(/no principal nobody@hospital.example/);
    doc.gatewayKeys = [createKey('vera@hospital.example', 'nope').entry];
    expect(() => parsePolicyPack(stringify(doc))).toThrow(/no use case nope/);
  });
});

describe('the v2 inference request (hostile input)', () => {
  const good = { inputs: [{ name: 'input', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] };
  it('accepts a flat numeric tensor whose data matches its shape', () => {
    expect(inferRequestSchema.safeParse(good).success).toBe(true);
  });
  it.each([
    ['data not as the shape says', { inputs: [{ ...good.inputs[0], data: [1] }] }],
    ['unknown field', { ...good, extra: 1 }],
    ['no inputs', { inputs: [] }],
    ['control characters in a name', { inputs: [{ ...good.inputs[0], name: 'in\u0000put' }] }],
    ['a string in the data', { inputs: [{ ...good.inputs[0], data: [1, 2, '3'] }] }],
    ['an id too long', { ...good, id: 'x'.repeat(129) }],
    ['an input twice', { inputs: [good.inputs[0], good.inputs[0]] }],
  ])('refuses %s', (_what, body) => {
    expect(inferRequestSchema.safeParse(body).success).toBe(false);
  });
  it('summarises outputs in bounded space', () => {
    const s = outputSummary([{ name: 'output', datatype: 'FP32', shape: [1000, 1], data: Array.from({ length: 1000 }, (_, i) => i) }]);
    expect(JSON.stringify(s).length).toBeLessThan(300);
  });
  it('reads the time a UUID v7 request id carries', () => {
    expect(uuidV7Time('01a21cfb-e6fb-75ff-90bb-9fbbee8f79ac')?.getTime()).toBe(0x01a21cfbe6fb);
    expect(uuidV7Time('01a21cfb-e6fb-45ff-90bb-9fbbee8f79ac')).toBeUndefined();
  });
});
