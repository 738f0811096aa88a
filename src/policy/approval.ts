import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import * as z from 'zod';
import {
  MEANINGS,
  approvalPayloadSchema,
  signedPayloadSchema,
  type AcceptedDecision,
  type ApprovalPayload,
  type Decision,
  type SignatureEvidence,
  type SignedPayload,
} from '../domain/approval.ts';
import { STATEMENT_FIELD_NAMES, commentDigest, parseStatement, type StatementFields } from '../domain/approval-statement.ts';
import { digestSchema } from '../domain/lifecycle.ts';
import { APPROVAL_NAMESPACE, parsePublicKeyLine, parseSshSig, verifySshSig } from '../signing/sshsig.ts';
import type { PolicyPack } from './schema.ts';

export interface Candidate {
  modelDigest: string;
  requester: string;
  developer: string;
  requiredRoles: string[];
  /** The tier's requireSignature (judged under the signed-approvals rules only). */
  requireSignature?: boolean;
}

export type Verdict =
  | { accepted: true; payload: ApprovalPayload; principalName: string; signature?: SignatureEvidence; signatureDigest?: string }
  | { accepted: false; reason: string };

/**
 * `signed-approvals` (the current rules): the bounded gate's, and a decision may carry (where its tier
 * requires: must carry) an OpenSSH signature by one of the approver's keys over the decision's statement.
 * `bounded-gate`: a holder of a required role may reject while the gate is open even when the role is
 * filled, and an approver may withdraw their own approval. `legacy` keeps the rules lifecycles started
 * before that change were judged by, so their histories replay unchanged.
 */
export type JudgeRules = 'signed-approvals' | 'bounded-gate' | 'legacy';

/** How far a signer's clock may run ahead of (or behind) the workflow's. */
export const SIGNATURE_SKEW_MS = 5 * 60_000;

/** What judging a signature needs beyond the candidate: the lifecycle, the tier's rule, the gate's clock. */
export interface SignatureContext {
  workflowId: string;
  modelName: string;
  version: number;
  requireSignature: boolean;
  /** The workflow's time now (UTC ISO). */
  now: string;
  /** When this lifecycle's gate opened (UTC ISO). */
  openedAt: string;
  /** Digests (signatureDigest) of the signatures accepted so far in this lifecycle. */
  usedSignatures: readonly string[];
}

/** One signature, one digest, however its armor is wrapped: sha256 of the SSHSIG blob. */
export function signatureDigest(armored: string): string | undefined {
  const sig = parseSshSig(armored);
  return sig.ok ? `sha256:${bytesToHex(sha256(sig.value.blob))}` : undefined;
}

/** The payload as lifecycles started before the bounded gate judged it (kept for their replay). */
const legacyPayloadSchema = z
  .object({ approver: z.email(), role: z.string().min(1), meaning: z.enum(MEANINGS), modelDigest: digestSchema, comment: z.string().max(2_000).optional() })
  .strict();

/**
 * Separation of duties and binding to the candidate, as the policy pack states them. Pure: the
 * workflow runs it on every signal and update, and so do the CLI and the tests.
 */
export function judgeDecision(
  raw: unknown,
  decision: Decision,
  candidate: Candidate,
  accepted: readonly AcceptedDecision[],
  pack: PolicyPack,
  rules: JudgeRules = 'bounded-gate',
  sig?: SignatureContext,
): Verdict {
  const v = judgePolicy(raw, decision, candidate, accepted, pack, rules);
  if (rules !== 'signed-approvals' || !v.accepted) return v;
  if (!sig) return { accepted: false, reason: 'no signature context (internal)' };
  return judgeSignature(v.payload as SignedPayload, decision, candidate, pack, sig, v);
}

/**
 * The signature rules (21 CFR 11.50, 11.70, 11.200), pure: the statement must name this decision
 * exactly (the field that differs is named: a signature made for another lifecycle, version, digest,
 * role, meaning or decision is refused as a replay), be signed within the gate's window, by one of the
 * approver's keys in the pack, not used before in this lifecycle, and verify.
 */
export function judgeSignature(
  p: SignedPayload,
  decision: Decision,
  candidate: Candidate,
  pack: PolicyPack,
  sig: SignatureContext,
  ok: Extract<Verdict, { accepted: true }>,
): Verdict {
  const refuse = (reason: string): Verdict => ({ accepted: false, reason });
  if (p.statement === undefined || p.signature === undefined) {
    if (sig.requireSignature && decision !== 'withdraw') {
      return refuse(
        `unsigned: this risk tier requires a signed ${decision}: sign the statement with one of ${p.approver}'s keys (\`factory ${decision} --key\`, or \`factory approval-payload\` for the Web UI)`,
      );
    }
    return ok;
  }
  const st = parseStatement(p.statement);
  if (!st.ok) return refuse(`signed statement malformed: ${st.reason}`);
  const expected: StatementFields = {
    workflowId: sig.workflowId,
    model: sig.modelName,
    version: sig.version,
    artifactDigest: candidate.modelDigest,
    role: p.role,
    meaning: p.meaning,
    decision,
    approver: p.approver,
    commentSha256: commentDigest(p.comment),
    signedAt: st.value.signedAt,
  };
  for (const key of Object.keys(expected) as Array<keyof StatementFields>) {
    const signed = String(st.value[key]);
    const here = String(expected[key]);
    if (key === 'approver' ? signed.toLowerCase() !== here.toLowerCase() : signed !== here) {
      return refuse(`replayed or mismatched statement: it was signed for ${STATEMENT_FIELD_NAMES[key]} "${signed}", this decision's is "${here}"`);
    }
  }
  const signedAt = Date.parse(st.value.signedAt);
  if (signedAt > Date.parse(sig.now) + SIGNATURE_SKEW_MS) return refuse(`signed-at ${st.value.signedAt} is in the future (the gate's time is ${sig.now})`);
  if (signedAt < Date.parse(sig.openedAt) - SIGNATURE_SKEW_MS) {
    return refuse(`signed-at ${st.value.signedAt} is before this lifecycle's approval gate opened (${sig.openedAt})`);
  }
  const parsed = parseSshSig(p.signature);
  if (!parsed.ok) return refuse(`signature unreadable: ${parsed.reason}`);
  if (parsed.value.namespace !== APPROVAL_NAMESPACE) return refuse(`signature is for the namespace "${parsed.value.namespace}", not "${APPROVAL_NAMESPACE}"`);
  const key = parsed.value.publicKey;
  const principal = pack.principals.find((x) => x.id.toLowerCase() === p.approver.toLowerCase());
  const own = (principal?.keys ?? []).map(parsePublicKeyLine).some((k) => k.ok && k.value.fingerprint === key.fingerprint);
  if (!own) return refuse(`signed by the key ${key.fingerprint}, which is not one of ${p.approver}'s keys in the policy pack`);
  const digest = signatureDigest(p.signature)!;
  if (sig.usedSignatures.includes(digest)) return refuse('replayed signature: this signature was already used once in this lifecycle');
  const verified = verifySshSig(p.signature, p.statement, APPROVAL_NAMESPACE);
  if (!verified.ok) return refuse(`signature does not verify: ${verified.reason}`);
  return {
    ...ok,
    signature: {
      keyFingerprint: key.fingerprint,
      publicKey: key.line,
      statement: p.statement,
      signature: p.signature,
      signedAt: st.value.signedAt,
      verified: true,
    },
    signatureDigest: digest,
  };
}

function judgePolicy(
  raw: unknown,
  decision: Decision,
  candidate: Candidate,
  accepted: readonly AcceptedDecision[],
  pack: PolicyPack,
  rules: JudgeRules,
): Verdict {
  const schema = rules === 'legacy' ? legacyPayloadSchema : rules === 'signed-approvals' ? signedPayloadSchema : approvalPayloadSchema;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    return { accepted: false, reason: `malformed payload: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}` };
  }
  const p = parsed.data;
  const principal = pack.principals.find((x) => x.id.toLowerCase() === p.approver.toLowerCase());
  if (!principal) return { accepted: false, reason: `${p.approver} is not a known principal in the policy pack` };
  if (!principal.roles.includes(p.role)) return { accepted: false, reason: `${p.approver} does not hold the role "${p.role}"` };
  if (!candidate.requiredRoles.includes(p.role)) {
    return { accepted: false, reason: `the role "${p.role}" is not required for this risk tier (required: ${candidate.requiredRoles.join(', ')})` };
  }
  const who = p.approver.toLowerCase();
  if (who === candidate.requester.toLowerCase()) return { accepted: false, reason: `${p.approver} requested this lifecycle and cannot ${decision} it` };
  if (who === candidate.developer.toLowerCase()) return { accepted: false, reason: `${p.approver} developed this model and cannot ${decision} it` };
  if (p.modelDigest !== candidate.modelDigest) {
    return { accepted: false, reason: `modelDigest ${p.modelDigest} is not this candidate's (${candidate.modelDigest})` };
  }
  const ok: Verdict = { accepted: true, payload: p, principalName: principal.name };
  if (decision === 'withdraw') {
    if (rules === 'legacy') return { accepted: false, reason: 'unknown decision' };
    const own = accepted.find((a) => a.approver.toLowerCase() === who && a.role === p.role);
    if (!own) return { accepted: false, reason: `${p.approver} has no approval as "${p.role}" in force to withdraw` };
    if (!p.comment?.trim()) return { accepted: false, reason: 'a withdrawal states its reason in comment' };
    return ok;
  }
  // An objection is always heard while the gate is open: a holder of a required role may reject even
  // when the role is filled, including the person who approved it.
  if (decision === 'reject' && rules !== 'legacy') return ok;
  const filled = accepted.find((a) => a.role === p.role);
  if (filled) return { accepted: false, reason: `the role "${p.role}" is already filled by ${filled.approver}` };
  const sameP = accepted.find((a) => a.approver.toLowerCase() === who);
  if (sameP) return { accepted: false, reason: `${p.approver} already signed as "${sameP.role}": one person fills one role` };
  return ok;
}
