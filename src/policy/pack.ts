import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/env.ts';
import { parse } from 'yaml';

import { RISK_TIERS, policyPackSchema, type PolicyPack } from './schema.ts';

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
    }
  }
  return { pack: parsed.data, digest: `sha256:${createHash('sha256').update(text).digest('hex')}`, source };
}

export function loadPolicyPack(file: string): LoadedPolicyPack {
  return parsePolicyPack(fs.readFileSync(file, 'utf8'), file);
}

export const DEFAULT_POLICY_PACK = path.join(projectRoot, 'policies', 'default.yaml');

/** The pack in force: FACTORY_POLICY_PACK, else policies/default.yaml. */
export function policyPackPath(): string {
  return process.env.FACTORY_POLICY_PACK ?? DEFAULT_POLICY_PACK;
}
