import { z } from 'zod';
import { MEANINGS, approvalPayloadSchema, type AcceptedDecision, type ApprovalPayload, type Decision } from '../domain/approval.ts';
import { digestSchema } from '../domain/lifecycle.ts';
import type { PolicyPack } from './schema.ts';

export interface Candidate {
  modelDigest: string;
  requester: string;
  developer: string;
  requiredRoles: string[];
}

export type Verdict = { accepted: true; payload: ApprovalPayload; principalName: string } | { accepted: false; reason: string };

/**
 * `bounded-gate` (the current rules): a holder of a required role may reject while the gate is open
 * even when the role is filled, and an approver may withdraw their own approval. `legacy` keeps the
 * rules lifecycles started before that change were judged by, so their histories replay unchanged.
 */
export type JudgeRules = 'bounded-gate' | 'legacy';

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
): Verdict {
  const parsed = (rules === 'legacy' ? legacyPayloadSchema : approvalPayloadSchema).safeParse(raw);
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
  if (decision === 'reject' && rules === 'bounded-gate') return ok;
  const filled = accepted.find((a) => a.role === p.role);
  if (filled) return { accepted: false, reason: `the role "${p.role}" is already filled by ${filled.approver}` };
  const sameP = accepted.find((a) => a.approver.toLowerCase() === who);
  if (sameP) return { accepted: false, reason: `${p.approver} already signed as "${sameP.role}": one person fills one role` };
  return ok;
}
