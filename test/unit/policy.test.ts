import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { AcceptedDecision } from '../../src/domain/approval.ts';
import { judgeDecision } from '../../src/policy/approval.ts';
import { DEFAULT_POLICY_PACK, PolicyPackError, allowedSigners, parsePolicyPack } from '../../src/policy/pack.ts';
import { EVIDENCE_KINDS, durationMs, evidenceRetainUntil } from '../../src/policy/schema.ts';
import { keyedTestPack, makeSshKey } from '../signing.ts';

// policies/default.yaml lists no keys (`factory dev up` adds the dev principals'); its signing tiers need them.
const keyed = keyedTestPack();
const { pack, digest } = keyed.loaded;
const digestOf = (c: string) => `sha256:${c.repeat(64)}`;
const candidate = {
  modelDigest: digestOf('a'),
  requester: 'ci@hospital.example',
  developer: 'omar@hospital.example',
  requiredRoles: ['business', 'security', 'compliance'],
};
const payload = (over: Record<string, unknown> = {}) => ({
  approver: 'dana@hospital.example',
  role: 'compliance',
  meaning: 'approval',
  modelDigest: digestOf('a'),
  ...over,
});
const accepted = (approver: string, role: string): AcceptedDecision => ({
  approver,
  role,
  meaning: 'approval',
  modelDigest: digestOf('a'),
  decision: 'approve',
  principalName: approver,
  at: '2026-01-01T00:00:00.000Z',
  via: 'signal',
});

describe('policy pack', () => {
  it('loads the default pack with a digest of its bytes', () => {
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(pack.riskTiers.high.approverRoles).toEqual(['business', 'security', 'compliance']);
    expect(durationMs(pack.riskTiers.low.approvalTimeout)).toBe(7 * 86_400_000);
  });

  it('fails fast with the path of the bad field', () => {
    const text = keyed.text;
    expect(() => parsePolicyPack(text.replace('accuracy: 0.93', 'accuracy: high'), 'bad.yaml')).toThrow(
      /bad.yaml: invalid policy pack\n {2}riskTiers\.high\.thresholds\.accuracy/,
    );
    expect(() => parsePolicyPack(text.replace('approvalTimeout: 7d', 'approvalTimeout: soon'), 'bad.yaml')).toThrow(/riskTiers\.low\.approvalTimeout/);
    expect(() => parsePolicyPack(text.replace('roles: [security]', 'roles: []'), 'bad.yaml')).toThrow(/principals\.\d+\.roles/);
    expect(() => parsePolicyPack('riskTiers: [', 'bad.yaml')).toThrow(PolicyPackError);
  });

  it('refuses a pack whose required role nobody holds', () => {
    const text = keyed.text.replace('approverRoles: [business, security, compliance]', 'approverRoles: [business, auditor]');
    expect(() => parsePolicyPack(text)).toThrow(/riskTiers\.high\.approverRoles: no principal holds the role "auditor"/);
  });
});

describe('public keys in the pack', () => {
  it('refuses a tier that requires signatures where a required role has no holder with a key', () => {
    expect(() => parsePolicyPack(fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8'), 'default.yaml')).toThrow(
      /riskTiers\.medium\.requireSignature: no principal holding the role "model-owner" has a public key/,
    );
  });

  it('refuses key types other than ssh-ed25519 and ecdsa-sha2-nistp256, naming the principal', () => {
    const rsa = makeSshKey('rsa');
    const text = keyed.text.replace(/(id: sam@hospital\.example.*?keys: \[)/, `$1"${rsa.line}", `);
    expect(() => parsePolicyPack(text, 'p.yaml')).toThrow(/principals\.5\.keys\.0: key type "ssh-rsa" is not accepted/);
    const ec = makeSshKey('ecdsa');
    expect(() => parsePolicyPack(keyed.text.replace(/(id: sam@hospital\.example.*?keys: \[)/, `$1"${ec.line}", `))).not.toThrow();
  });

  it('prints the allowed_signers view: one line per key, in the approval namespace', () => {
    const lines = allowedSigners(pack).trimEnd().split('\n');
    expect(lines).toHaveLength(pack.principals.length);
    expect(lines[0]).toBe(
      `alice@hospital.example namespaces="factory-approval" ${keyed.keys['alice@hospital.example']!.line.split(' ').slice(0, 2).join(' ')}`,
    );
  });
});

describe('judging an approval', () => {
  const judge = (raw: unknown, done: AcceptedDecision[] = []) => judgeDecision(raw, 'approve', candidate, done, pack);

  it('accepts a required role held by an independent principal, bound to the digest', () => {
    expect(judge(payload())).toMatchObject({ accepted: true, principalName: 'Dana Whitfield' });
  });

  it.each([
    ['an unknown principal', payload({ approver: 'eve@evil.example' }), /not a known principal/],
    ['a role the approver does not hold', payload({ approver: 'vera@hospital.example' }), /does not hold the role "compliance"/],
    ['a role this tier does not require', payload({ approver: 'vera@hospital.example', role: 'validator' }), /not required for this risk tier/],
    ['the developer', payload({ approver: 'omar@hospital.example', role: 'business' }), /developed this model/],
    ['a wrong digest', payload({ modelDigest: digestOf('b') }), /is not this candidate's/],
    ['a missing field', { approver: 'dana@hospital.example' }, /malformed payload: role/],
    ['a wrong type', payload({ meaning: 42 }), /malformed payload: meaning/],
    ['an extra field', payload({ admin: true }), /malformed payload/],
  ])('refuses %s', (_what, raw, reason) => {
    const v = judge(raw);
    expect(v.accepted).toBe(false);
    expect(v.accepted ? '' : v.reason).toMatch(reason);
  });

  it('refuses the requester', () => {
    const v = judgeDecision(payload({ approver: 'dana@hospital.example' }), 'approve', { ...candidate, requester: 'dana@hospital.example' }, [], pack);
    expect(v).toMatchObject({ accepted: false, reason: expect.stringMatching(/requested this lifecycle/) });
  });

  it('lets one person fill one role only, and each role once', () => {
    expect(judge(payload({ approver: 'max@hospital.example', role: 'security' }), [accepted('max@hospital.example', 'compliance')])).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/one person fills one role/),
    });
    expect(judge(payload(), [accepted('max@hospital.example', 'compliance')])).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/already filled/),
    });
  });
});

describe('rejecting and withdrawing while the gate is open', () => {
  const omarApproved = [accepted('omar@hospital.example', 'business')];
  const lena = payload({ approver: 'lena@hospital.example', role: 'business' });
  const devFree = { ...candidate, developer: 'alice@hospital.example' };

  it('hears a rejection from a holder of a filled role, the approver included', () => {
    expect(judgeDecision(lena, 'reject', devFree, omarApproved, pack)).toMatchObject({ accepted: true, principalName: 'Lena Vogel' });
    expect(judgeDecision(payload({ approver: 'omar@hospital.example', role: 'business' }), 'reject', devFree, omarApproved, pack)).toMatchObject({
      accepted: true,
    });
  });

  it('still refuses a rejection from someone outside the required roles', () => {
    expect(judgeDecision(payload({ approver: 'vera@hospital.example', role: 'validator' }), 'reject', devFree, omarApproved, pack)).toMatchObject({
      accepted: false,
    });
  });

  it('lets an approver withdraw only their own approval in force, with a reason', () => {
    const omar = payload({ approver: 'omar@hospital.example', role: 'business', comment: 'found a data issue' });
    expect(judgeDecision(omar, 'withdraw', devFree, omarApproved, pack)).toMatchObject({ accepted: true });
    expect(judgeDecision({ ...omar, comment: undefined }, 'withdraw', devFree, omarApproved, pack)).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/reason/),
    });
    expect(judgeDecision({ ...lena, comment: 'not mine' }, 'withdraw', devFree, omarApproved, pack)).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/no approval as "business" in force/),
    });
    expect(judgeDecision(omar, 'withdraw', devFree, [], pack)).toMatchObject({ accepted: false });
  });

  it('keeps the legacy rules for lifecycles that reached their gate before (their histories replay)', () => {
    expect(judgeDecision(lena, 'reject', devFree, omarApproved, pack, 'legacy')).toMatchObject({
      accepted: false,
      reason: expect.stringMatching(/already filled/),
    });
    expect(
      judgeDecision(payload({ approver: 'omar@hospital.example', role: 'business', comment: 'x' }), 'withdraw', devFree, omarApproved, pack, 'legacy'),
    ).toMatchObject({ accepted: false });
  });
});

describe('evidence retention from the pack', () => {
  const from = new Date('2026-11-27T12:00:00.000Z');
  it('the default pack keeps every kind of evidence 7 calendar years', () => {
    expect(pack.evidenceRetention).toEqual({ default: '7y' });
    for (const kind of EVIDENCE_KINDS) expect(evidenceRetainUntil(pack, kind, from).toISOString()).toBe('2033-11-27T12:00:00.000Z');
  });

  it('a kind named in the pack overrides the default; days are days', () => {
    const text = keyed.text.replace('  default: 7y', '  default: 2190d\n  histories: 10y');
    const custom = parsePolicyPack(text).pack;
    expect(evidenceRetainUntil(custom, 'artifacts', from).toISOString()).toBe(new Date(from.getTime() + 2190 * 86_400_000).toISOString());
    expect(evidenceRetainUntil(custom, 'histories', from).toISOString()).toBe('2036-11-27T12:00:00.000Z');
    // 29 February plus a year is 1 March: never less than the retention.
    expect(
      evidenceRetainUntil(parsePolicyPack(text.replace('default: 2190d', 'default: 1y')).pack, 'raw', new Date('2028-02-29T00:00:00Z')).toISOString(),
    ).toBe('2029-03-01T00:00:00.000Z');
  });

  it('a pack without evidenceRetention keeps evidence 7 years; a malformed retention or an unknown kind is refused, named', () => {
    const without = keyed.text.replace(/evidenceRetention:\n  default: 7y\n/, '');
    expect(parsePolicyPack(without).pack.evidenceRetention).toEqual({ default: '7y' });
    const bad = (r: string) => () => parsePolicyPack(keyed.text.replace('  default: 7y', r));
    expect(bad('  default: 7 years')).toThrow(/evidenceRetention\.default: a retention like 6y, 7y or 2190d/);
    expect(bad('  default: 0d')).toThrow(/evidenceRetention\.default/);
    expect(bad('  default: 101y')).toThrow(/evidenceRetention\.default: at most 100 years/);
    expect(bad('  default: 7y\n  logs: 1d')).toThrow(/evidenceRetention: Unrecognized key: "logs"/);
  });
});
