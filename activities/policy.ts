import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { projectRoot } from '../src/config/env.ts';
import { PolicyPackError, loadPolicyPack, policyPackPath } from '../src/policy/pack.ts';
import type { PolicyPack } from '../src/policy/schema.ts';

/** Reads the policy pack in force (FACTORY_POLICY_PACK, else policies/default.yaml) with its digest. */
export async function loadPolicy(): Promise<{ pack: PolicyPack; digest: string; source: string }> {
  const file = policyPackPath();
  try {
    const loaded = loadPolicyPack(file);
    return { pack: loaded.pack, digest: loaded.digest, source: path.relative(projectRoot, loaded.source) };
  } catch (err) {
    if (err instanceof PolicyPackError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidPolicyPack');
    throw err;
  }
}
