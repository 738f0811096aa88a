import { describe, expect, it } from 'vitest';
import { INVENTORY_STATE, revalidationOf } from '../../src/inventory/inventory.ts';
import { parsePolicyPack, DEFAULT_POLICY_PACK } from '../../src/policy/pack.ts';
import fs from 'node:fs';

// The default pack's signing tiers need keys (dev up adds them); revalidation reads only the tiers.
const pack = parsePolicyPack(fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8').replace(/requireSignature: true/g, 'requireSignature: false')).pack;
const validated = new Date('2026-01-10T09:00:00.000Z');

describe('model inventory: revalidation from the policy pack (SR 11-7)', () => {
  it('the default pack revalidates high risk yearly, medium every two years, low every three', () => {
    expect(pack.riskTiers.high.revalidateEvery).toBe('365d');
    expect(revalidationOf({ state: 'deployed', riskTier: 'high', lastValidatedAt: validated }, pack, new Date('2026-06-01T00:00:00Z'))).toEqual({
      revalidateEvery: '365d',
      revalidationDueAt: '2027-01-10T09:00:00.000Z',
      overdue: false,
      overdueDays: null,
    });
    expect(revalidationOf({ state: 'approved', riskTier: 'medium', lastValidatedAt: validated }, pack, validated).revalidationDueAt).toBe(
      '2028-01-10T09:00:00.000Z',
    );
    expect(revalidationOf({ state: 'validated', riskTier: 'low', lastValidatedAt: validated }, pack, validated).revalidationDueAt).toBe(
      '2029-01-09T09:00:00.000Z',
    );
  });

  it('flags a version in use past its due date, with the days overdue', () => {
    expect(revalidationOf({ state: 'deployed', riskTier: 'high', lastValidatedAt: validated }, pack, new Date('2027-01-20T10:00:00Z'))).toMatchObject({
      overdue: true,
      overdueDays: 10,
    });
    expect(revalidationOf({ state: 'rolled-back', riskTier: 'high', lastValidatedAt: validated }, pack, new Date('2027-01-20T10:00:00Z')).overdue).toBe(true);
  });

  it('gives no due date to versions out of use, never validated, or under a pack without revalidateEvery', () => {
    const late = new Date('2030-01-01T00:00:00Z');
    for (const state of ['retired', 'rejected', 'failed', 'cancelled', 'registered'] as const) {
      expect(revalidationOf({ state, riskTier: 'high', lastValidatedAt: validated }, pack, late), state).toMatchObject({
        revalidationDueAt: null,
        overdue: false,
      });
    }
    expect(revalidationOf({ state: 'deployed', riskTier: 'high', lastValidatedAt: null }, pack, late).overdue).toBe(false);
    const older = { riskTiers: { ...pack.riskTiers, high: { ...pack.riskTiers.high, revalidateEvery: undefined } } };
    expect(revalidationOf({ state: 'deployed', riskTier: 'high', lastValidatedAt: validated }, older, late)).toMatchObject({
      revalidateEvery: null,
      overdue: false,
    });
  });

  it('names the registry states as an inventory does', () => {
    expect(INVENTORY_STATE.registered).toBe('development');
    expect(INVENTORY_STATE['rolled-back']).toBe('rolled back');
  });
});
