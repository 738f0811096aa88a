import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { parse, parseDocument } from 'yaml';
import { APPROVAL_NAMESPACE, parsePublicKeyLine } from '../signing/sshsig.ts';
import { policyPackPath } from './pack-path.ts';

import { type EvidenceKind, RISK_TIERS, evidenceRetainUntil, policyPackSchema, type GatewayKey, type PolicyPack } from './schema.ts';

// Where the pack is: its own module, so that finding it does not load the parser (pack-path.ts).
export { DEFAULT_POLICY_PACK, effectivePackPath, policyPackPath } from './pack-path.ts';

export class PolicyPackError extends Error {
  override name = 'PolicyPackError';
}

/** A loaded pack with the digest of the exact bytes it came from. */
export interface LoadedPolicyPack {
  pack: PolicyPack;
  digest: string;
  source: string;
}

export function parsePolicyPack(text: string, source = '<inline>'): LoadedPolicyPack {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (err) {
    throw new PolicyPackError(`${source}: not valid YAML: ${(err as Error).message}`);
  }
  const parsed = policyPackSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new PolicyPackError(`${source}: invalid policy pack\n${lines.join('\n')}`);
  }
  for (const tier of RISK_TIERS) {
    for (const role of parsed.data.riskTiers[tier].approverRoles) {
      if (!parsed.data.principals.some((p) => p.roles.includes(role))) {
        throw new PolicyPackError(`${source}: invalid policy pack\n  riskTiers.${tier}.approverRoles: no principal holds the role "${role}"`);
      }
      if (parsed.data.riskTiers[tier].requireSignature && !parsed.data.principals.some((p) => p.roles.includes(role) && p.keys.length > 0)) {
        throw new PolicyPackError(
          `${source}: invalid policy pack\n  riskTiers.${tier}.requireSignature: no principal holding the role "${role}" has a public key (add keys: ["ssh-ed25519 AAAA…"] to one)`,
        );
      }
    }
  }
  const useCases = new Set((parsed.data.useCases ?? []).map((u) => u.name));
  if (useCases.size !== (parsed.data.useCases ?? []).length) throw new PolicyPackError(`${source}: invalid policy pack\n  useCases: a name appears twice`);
  for (const k of parsed.data.gatewayKeys ?? []) {
    const why = gatewayKeyProblem(parsed.data, k);
    if (why) throw new PolicyPackError(`${source}: invalid policy pack\n  gatewayKeys.${k.id}: ${why}`);
  }
  return { pack: parsed.data, digest: `sha256:${createHash('sha256').update(text).digest('hex')}`, source };
}

/** Why a gateway key cannot stand in this pack (its principal or use case unknown); undefined when it can. */
export function gatewayKeyProblem(pack: PolicyPack, k: GatewayKey): string | undefined {
  if (!pack.principals.some((p) => p.id.toLowerCase() === k.principal.toLowerCase())) return `no principal ${k.principal} in the pack`;
  if (!(pack.useCases ?? []).some((u) => u.name === k.useCase)) return `no use case ${k.useCase} in the pack`;
  return undefined;
}

export function loadPolicyPack(file: string): LoadedPolicyPack {
  return parsePolicyPack(fs.readFileSync(file, 'utf8'), file);
}

/**
 * A pack's text with public keys added to principals (comments and layout kept): how the dev stack
 * gives its principals keys, and how tests make packs of their own.
 */
export function withPrincipalKeys(text: string, keys: Record<string, string[]>): string {
  const doc = parseDocument(text);
  const principals = doc.get('principals') as { items: Array<{ get(k: string): unknown; set(k: string, v: unknown): void }> } | undefined;
  for (const p of principals?.items ?? []) {
    const id = String(p.get('id')).toLowerCase();
    const lines = keys[id];
    if (lines?.length) p.set('keys', doc.createNode(lines, { flow: true }));
  }
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/**
 * The allowed_signers view of a pack (ssh-keygen(1) ALLOWED SIGNERS), one line per key:
 * `<principal-id> namespaces="factory-approval" <type> <base64>`: what `ssh-keygen -Y verify -f` reads.
 */
export function allowedSigners(pack: PolicyPack): string {
  const lines: string[] = [];
  for (const p of pack.principals) {
    for (const k of p.keys) {
      const key = parsePublicKeyLine(k);
      if (key.ok) lines.push(`${p.id} namespaces="${APPROVAL_NAMESPACE}" ${key.value.line}`);
    }
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The retain-until of an evidence object of `kind` written at `from` under the pack in force: what
 * every writer of evidence passes as putOnce/putFileOnce's `retainUntil` (see evidenceRetainUntil).
 */
export function retainUntilInForce(kind: EvidenceKind, from: Date = new Date()): Date {
  return evidenceRetainUntil(loadPolicyPack(policyPackPath()).pack, kind, from);
}
