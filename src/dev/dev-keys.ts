import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import type { Env } from '../config/env.ts';
import { DEFAULT_POLICY_PACK, effectivePackPath, parsePolicyPack, withPrincipalKeys } from '../policy/pack.ts';
import { principalKeyFile, sshKeygenEnv } from '../signing/ssh-keygen.ts';

/**
 * The dev stack's principals sign with keys generated here, never committed: one Ed25519 SSH key per
 * principal of policies/default.yaml under $FACTORY_HOME/keys/principals/<id> (made once, kept), and the
 * effective pack $FACTORY_HOME/policy/effective.yaml = policies/default.yaml + those public keys, which
 * the workers and the CLI load (src/policy/pack.ts policyPackPath). Rewritten only when it changes, so
 * an unchanged stack keeps its workers. A FACTORY_POLICY_PACK set by the user is theirs: left alone.
 */
export function ensureDevPolicyPack(env: Pick<Env, 'FACTORY_HOME'>, source = process.env): string | undefined {
  if (source.FACTORY_POLICY_PACK) return undefined;
  const base = fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8');
  // The base pack may not validate yet (its signing tiers lack the keys this adds): read its ids only.
  const principals = ((parse(base) as { principals?: Array<{ id?: unknown }> })?.principals ?? []).map((p) => String(p.id ?? '').toLowerCase()).filter(Boolean);
  const keys: Record<string, string[]> = {};
  for (const id of principals) keys[id] = [ensureDevKey(env.FACTORY_HOME, id)];
  const text = withPrincipalKeys(base, keys);
  parsePolicyPack(text, 'the effective dev pack');
  const file = effectivePackPath(env.FACTORY_HOME);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
  if (old !== text) {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  }
  return file;
}

/** The principal's dev key (made if missing): returns its public key line. */
export function ensureDevKey(home: string, principalId: string): string {
  const file = principalKeyFile(home, principalId);
  if (!fs.existsSync(`${file}.pub`) || !fs.existsSync(file)) {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.rmSync(file, { force: true });
    fs.rmSync(`${file}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', principalId, '-f', file], { env: sshKeygenEnv(), stdio: 'ignore' });
  }
  return fs.readFileSync(`${file}.pub`, 'utf8').trim();
}
