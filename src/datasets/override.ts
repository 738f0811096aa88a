import * as z from 'zod';
import { digestSchema } from '../domain/lifecycle.ts';
import type { PolicyPack } from '../policy/schema.ts';
import { parsePublicKeyLine, verifySshSig } from '../signing/sshsig.ts';
import { sha256Digest } from '../storage/objects.ts';
import { purposeSchema } from './schema.ts';

/** The namespace of an override's signature (`ssh-keygen -Y sign -n factory-override`): an approval signature cannot be replayed as one. */
export const OVERRIDE_NAMESPACE = 'factory-override';
/** The roles of the policy pack whose holders may approve a manual override of certification. */
export const OVERRIDE_ROLES = ['compliance'] as const;
/** An override statement is a short JSON document: past this it is not one. */
export const MAX_OVERRIDE_BYTES = 256 * 1024;

const text = (max: number) =>
  z
    .string()
    .min(3)
    .max(max)
    .regex(/^[^\p{Cc}]*$/u, 'no control characters');

/**
 * A manual override: a decision, signed by a principal of the policy pack, to re-include rows that
 * certification excluded for lack of consent. Bound to one raw file (by digest), one dataset and one
 * purpose, so it cannot be reused for another file or another use of the data.
 */
export const overrideStatementSchema = z
  .object({
    type: z.literal('factory-override/v1'),
    dataset: z.string().min(1).max(128),
    rawSha256: digestSchema,
    purpose: purposeSchema,
    principal: z.string().email(),
    role: z.string().min(1).max(100),
    reason: text(2_000),
    reinclude: z
      .array(z.object({ line: z.number().int().min(2), justification: text(500) }))
      .min(1)
      .max(10_000),
  })
  .strict();
export type OverrideStatement = z.infer<typeof overrideStatementSchema>;

/** What the manifest and the audit trail keep of an approved override. */
export interface ApprovedOverride {
  statementSha256: string;
  signatureSha256: string;
  principal: string;
  role: string;
  keyFingerprint: string;
  reason: string;
  lines: number[];
}

export class OverrideRefused extends Error {
  override name = 'OverrideRefused';
}

/**
 * Judges an override against the pack and the file it names: a well-formed statement, signed in the
 * override namespace by one of the named principal's keys in the pack, a principal who holds the role
 * it claims, a role allowed to approve overrides, and the same dataset, raw file and purpose as this
 * certification. Anything else is refused with the reason (never applied in part).
 */
export function judgeOverride(
  statementBytes: Buffer,
  signature: string | undefined,
  pack: PolicyPack,
  expected: { dataset: string; rawSha256: string; purpose: string | undefined },
): { statement: OverrideStatement; approved: ApprovedOverride } {
  let json: unknown;
  try {
    json = JSON.parse(statementBytes.toString('utf8'));
  } catch {
    throw new OverrideRefused('the override statement is not valid JSON');
  }
  const parsed = overrideStatementSchema.safeParse(json);
  if (!parsed.success) {
    throw new OverrideRefused(`the override statement is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'statement'}: ${i.message}`).join('; ')}`);
  }
  const s = parsed.data;
  if (!signature) throw new OverrideRefused(`the override by ${s.principal} is not signed: a manual override is an approved decision (sign it with ssh-keygen -Y sign -n ${OVERRIDE_NAMESPACE})`);
  if (s.dataset !== expected.dataset) throw new OverrideRefused(`the override is for dataset "${s.dataset}", not "${expected.dataset}"`);
  if (s.rawSha256 !== expected.rawSha256) throw new OverrideRefused(`the override is for the raw file ${s.rawSha256}, not ${expected.rawSha256}`);
  if (s.purpose !== expected.purpose) throw new OverrideRefused(`the override is for purpose "${s.purpose}", not the lifecycle's "${expected.purpose ?? '(none)'}"`);
  const principal = pack.principals.find((p) => p.id.toLowerCase() === s.principal.toLowerCase());
  if (!principal) throw new OverrideRefused(`${s.principal} is not a principal of the policy pack`);
  if (!principal.roles.includes(s.role)) throw new OverrideRefused(`${s.principal} does not hold the role ${s.role}`);
  if (!(OVERRIDE_ROLES as readonly string[]).includes(s.role)) throw new OverrideRefused(`the role ${s.role} may not approve overrides (${OVERRIDE_ROLES.join(', ')} may)`);
  const verified = verifySshSig(signature, statementBytes, OVERRIDE_NAMESPACE);
  if (!verified.ok) throw new OverrideRefused(`the override's signature is refused: ${verified.reason}`);
  const key = verified.value.publicKey;
  const own = principal.keys.some((line) => {
    const k = parsePublicKeyLine(line);
    return k.ok && k.value.line === key.line;
  });
  if (!own) throw new OverrideRefused(`the override is signed by ${key.fingerprint}, which is not one of ${s.principal}'s keys in the policy pack`);
  const lines = [...new Set(s.reinclude.map((r) => r.line))].sort((a, b) => a - b);
  return {
    statement: s,
    approved: {
      statementSha256: sha256Digest(statementBytes),
      signatureSha256: sha256Digest(verified.value.blob),
      principal: principal.id,
      role: s.role,
      keyFingerprint: key.fingerprint,
      reason: s.reason,
      lines,
    },
  };
}
