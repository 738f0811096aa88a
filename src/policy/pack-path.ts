import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/env.ts';

// Where the pack in force is, apart from reading it (pack.ts): a caller that only needs the path,
// such as `trace`'s cached approvers' names, does not load the YAML parser and the pack's schema.

export const DEFAULT_POLICY_PACK = path.join(projectRoot, 'policies', 'default.yaml');

/**
 * The pack in force: FACTORY_POLICY_PACK, else the effective pack `factory dev up` wrote under
 * $FACTORY_HOME/policy/ (policies/default.yaml with the dev principals' public keys), else
 * policies/default.yaml. A deployment lists its principals' real public keys in its own pack.
 */
export function policyPackPath(): string {
  if (process.env.FACTORY_POLICY_PACK) return process.env.FACTORY_POLICY_PACK;
  const effective = effectivePackPath(factoryHome());
  return fs.existsSync(effective) ? effective : DEFAULT_POLICY_PACK;
}

/** $FACTORY_HOME as the pack's lookup reads it (the environment's, else the project's .factory). */
export function factoryHome(): string {
  return process.env.FACTORY_HOME ?? path.join(projectRoot, '.factory');
}

/** Where `factory dev up` writes the pack it runs with (src/dev/dev-keys.ts). */
export function effectivePackPath(home: string): string {
  return path.join(home, 'policy', 'effective.yaml');
}
