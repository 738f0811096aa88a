import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY_PACK, PolicyPackError, parsePolicyPack } from '../../src/policy/pack.ts';
import { chooseZone, placeJob, waitingReason, zoneMayRun } from '../../src/placement/place.ts';
import { DEFAULT_ZONES } from '../../src/policy/schema.ts';

// policies/default.yaml lists no keys (`factory dev up` adds them); its zones are what is tested here.
const text = fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8').replaceAll('requireSignature: true', 'requireSignature: false');
const zones = parsePolicyPack(text).pack.zones;

describe('placement by policy (placeJob)', () => {
  it('the default pack has an on-prem zone for everything and a burst zone for public and financial data only', () => {
    expect(zones.map((z) => [z.name, z.location])).toEqual([
      ['gpu-onprem', 'on-prem'],
      ['gpu-burst', 'burst'],
    ]);
  });

  it('PHI and PII may run on-prem only, with the reason for each zone', () => {
    for (const classification of ['phi', 'pii'] as const) {
      const d = placeJob({ classification }, zones);
      expect(d.allowed.map((z) => z.zone)).toEqual(['gpu-onprem']);
      expect(d.refused).toEqual([
        { zone: 'gpu-burst', location: 'burst', reason: `burst zone gpu-burst may hold only public, financial data, not ${classification}` },
      ]);
    }
  });

  it('public and financial data may run on either zone', () => {
    for (const classification of ['public', 'financial'] as const)
      expect(placeJob({ classification }, zones).allowed.map((z) => z.zone)).toEqual(['gpu-onprem', 'gpu-burst']);
  });

  it('a GPU type narrows the zones to those it is attested for', () => {
    const d = placeJob({ classification: 'public', gpuType: 'h200' }, zones);
    expect(d.allowed.map((z) => z.zone)).toEqual(['gpu-onprem']);
    expect(d.refused[0]?.reason).toBe('gpu-burst has no attested h200 GPUs (attested: H100)');
  });

  it('a PHI job waits while only the burst zone has workers, and says why; it goes on-prem once a worker polls there', () => {
    const job = { classification: 'phi' as const };
    const d = placeJob(job, zones);
    const burstOnly = { 'gpu-onprem': 0, 'gpu-burst': 3 };
    expect(chooseZone(d, burstOnly)).toBeUndefined();
    expect(waitingReason(job, d, burstOnly)).toBe(
      'waiting for a worker on gpu-onprem (the zone allowed for phi data): none is polling; gpu-burst has workers but may not run it (burst zone gpu-burst may hold only public, financial data, not phi)',
    );
    expect(chooseZone(d, { ...burstOnly, 'gpu-onprem': 1 })?.zone).toBe('gpu-onprem');
  });

  it('a public job goes to the first allowed zone with a worker', () => {
    const d = placeJob({ classification: 'public' }, zones);
    expect(chooseZone(d, { 'gpu-onprem': 0, 'gpu-burst': 1 })?.zone).toBe('gpu-burst');
    expect(chooseZone(d, { 'gpu-onprem': 1, 'gpu-burst': 1 })?.zone).toBe('gpu-onprem');
  });

  it('no zone allowed: the reason says so', () => {
    const onlyBurst = zones.filter((z) => z.location === 'burst');
    const job = { classification: 'phi' as const };
    expect(placeJob(job, onlyBurst).allowed).toEqual([]);
    expect(waitingReason(job, placeJob(job, onlyBurst), {})).toBe('no zone may run phi data');
  });
});

describe("a zone's own check (defence in depth)", () => {
  it('the burst zone refuses PHI, the on-prem zone takes it, an unlisted zone takes nothing', () => {
    expect(zoneMayRun('gpu-burst', { classification: 'phi' }, zones)).toEqual({
      ok: false,
      reason: 'burst zone gpu-burst may hold only public, financial data, not phi',
    });
    expect(zoneMayRun('gpu-onprem', { classification: 'phi' }, zones)).toEqual({ ok: true });
    expect(zoneMayRun('gpu-elsewhere', { classification: 'public' }, zones)).toMatchObject({
      ok: false,
      reason: expect.stringContaining('not in the policy pack'),
    });
  });
});

describe('zones in the policy pack', () => {
  it('a pack without zones has gpu-onprem alone, holding every classification (what ran before zones)', () => {
    const without = text.replace(/^zones:\n(  - .*\n)+/m, '');
    expect(without).not.toContain('gpu-burst');
    expect(parsePolicyPack(without).pack.zones).toEqual(DEFAULT_ZONES);
  });
  it('refuses a zone named twice, an unknown classification or location, and a name that is not gpu-…', () => {
    for (const [from, to] of [
      ['name: gpu-burst', 'name: gpu-onprem'],
      ['classifications: [public, financial]', 'classifications: [public, secret]'],
      ['location: burst', 'location: moon'],
      ['name: gpu-burst', 'name: "burst\\u0000"'],
    ]) {
      expect(() => parsePolicyPack(text.replace(from!, to!))).toThrow(PolicyPackError);
    }
  });
});
