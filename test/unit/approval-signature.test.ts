import { describe, expect, it } from 'vitest';
import type { Decision } from '../../src/domain/approval.ts';
import { type SignatureContext, judgeDecision, signatureDigest } from '../../src/policy/approval.ts';
import { keyedTestPack, makeSshKey, signedPayload, type DecisionToSign } from '../signing.ts';

const { loaded, keys } = keyedTestPack();
const pack = loaded.pack;
const digest = `sha256:${'a'.repeat(64)}`;
const candidate = {
  modelDigest: digest,
  requester: 'ci@hospital.example',
  developer: 'alice@hospital.example',
  requiredRoles: ['business', 'security', 'compliance'],
  requireSignature: true,
};
const openedAt = '2026-11-27T12:00:00.000Z';
const ctx = (over: Partial<SignatureContext> = {}): SignatureContext => ({
  workflowId: 'lifecycle-bc-1',
  modelName: 'bc',
  version: 3,
  requireSignature: true,
  now: '2026-11-27T12:10:00.000Z',
  openedAt,
  usedSignatures: [],
  ...over,
});
const dana: DecisionToSign = {
  workflowId: 'lifecycle-bc-1',
  model: 'bc',
  version: 3,
  modelDigest: digest,
  approver: 'dana@hospital.example',
  role: 'compliance',
  signedAt: '2026-11-27T12:05:00.000Z',
};
const danaKey = keys['dana@hospital.example']!.file;
const judge = (raw: unknown, c: SignatureContext = ctx(), decision: Decision = 'approve') =>
  judgeDecision(raw, decision, candidate, [], pack, 'signed-approvals', c);
const reasonOf = (v: ReturnType<typeof judge>) => (v.accepted ? 'accepted' : v.reason);

describe('signed decisions (the signed-approvals rules)', () => {
  it('accepts a statement for this decision signed by one of the approver keys, keeping the evidence', async () => {
    const p = await signedPayload(danaKey, dana);
    const v = judge(p);
    expect(v).toMatchObject({
      accepted: true,
      principalName: 'Dana Whitfield',
      signature: { keyFingerprint: expect.stringMatching(/^SHA256:/), statement: p.statement, signature: p.signature, signedAt: dana.signedAt, verified: true },
      signatureDigest: signatureDigest(p.signature),
    });
  });

  it('refuses an unsigned decision where the tier requires one, and accepts it where it does not', () => {
    const unsigned = { approver: 'dana@hospital.example', role: 'compliance', meaning: 'approval', modelDigest: digest };
    expect(reasonOf(judge(unsigned))).toMatch(/^unsigned: this risk tier requires a signed approve/);
    expect(reasonOf(judge(unsigned, ctx(), 'reject'))).toMatch(/^unsigned: this risk tier requires a signed reject/);
    expect(judge(unsigned, ctx({ requireSignature: false }))).toMatchObject({ accepted: true });
    expect(reasonOf(judge({ ...unsigned, statement: 'x' }))).toMatch(/statement and signature come together/);
  });

  it("refuses a signature by a key that is not one of the approver's (another principal's, or nobody's)", async () => {
    for (const key of [keys['max@hospital.example']!.file, makeSshKey().file]) {
      expect(reasonOf(judge(await signedPayload(key, dana)))).toMatch(
        /^signed by the key SHA256:\S+, which is not one of dana@hospital\.example's keys in the policy pack$/,
      );
    }
  });

  it('names the field when the statement was signed for another lifecycle, version, digest, role, meaning or decision', async () => {
    const cases: Array<[Partial<DecisionToSign['statement']>, RegExp]> = [
      [{ workflowId: 'lifecycle-bc-0' }, /signed for workflow-id "lifecycle-bc-0", this decision's is "lifecycle-bc-1"/],
      [{ version: 2 }, /signed for version "2", this decision's is "3"/],
      [{ artifactDigest: `sha256:${'b'.repeat(64)}` }, /signed for artifact-digest "sha256:b+"/],
      [{ role: 'security' }, /signed for role "security", this decision's is "compliance"/],
      [{ meaning: 'review' }, /signed for meaning "review"/],
      [{ decision: 'reject' }, /signed for decision "reject", this decision's is "approve"/],
      [{ approver: 'max@hospital.example' }, /signed for approver "max@hospital\.example"/],
      [{ comment: 'another reason' }, /signed for comment-sha256 "[0-9a-f]{64}", this decision's is "none"/],
    ];
    for (const [statement, reason] of cases) expect(reasonOf(judge(await signedPayload(danaKey, { ...dana, statement })))).toMatch(reason);
  });

  it('refuses a signature used once already in this lifecycle, one signed in the future, or before the gate opened', async () => {
    const p = await signedPayload(danaKey, dana);
    expect(reasonOf(judge(p, ctx({ usedSignatures: [signatureDigest(p.signature)!] })))).toBe(
      'replayed signature: this signature was already used once in this lifecycle',
    );
    expect(reasonOf(judge(await signedPayload(danaKey, { ...dana, signedAt: '2026-11-27T12:16:00.000Z' })))).toMatch(/is in the future/);
    expect(reasonOf(judge(await signedPayload(danaKey, { ...dana, signedAt: '2026-11-27T11:54:00.000Z' })))).toMatch(
      /before this lifecycle's approval gate opened/,
    );
    // Within the skew (5 minutes) either way: accepted.
    expect(judge(await signedPayload(danaKey, { ...dana, signedAt: '2026-11-27T11:56:00.000Z' }))).toMatchObject({ accepted: true });
  });

  it('refuses a statement edited after signing, and a signature in another namespace', async () => {
    const p = await signedPayload(danaKey, dana);
    const edited = { ...p, comment: 'added later' };
    expect(reasonOf(judge(edited))).toMatch(/comment-sha256/);
    const forged = { ...p, statement: p.statement.replace('2026-11-27T12:05:00.000Z', '2026-11-27T12:06:00.000Z') };
    expect(reasonOf(judge(forged))).toMatch(/^signature does not verify/);
  });

  it('keeps the bounded-gate rules (no signature fields) for lifecycles whose gate opened before', async () => {
    const p = await signedPayload(danaKey, dana);
    expect(reasonOf(judgeDecision(p, 'approve', candidate, [], pack, 'bounded-gate'))).toMatch(/malformed payload/);
  });
});
