/**
 * The one place tests sign decisions: keys made with ssh-keygen, statements signed by the same code
 * `factory approve` uses (src/signing/approval-sign.ts → `ssh-keygen -Y sign`). Unit tests use their own
 * keys (keyedTestPack); integration tests sign with the dev stack's keys (test/integration/harness.ts).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import type { Decision } from '../src/domain/approval.ts';
import { DEFAULT_POLICY_PACK, type LoadedPolicyPack, parsePolicyPack, withPrincipalKeys } from '../src/policy/pack.ts';
import { type StatementInput, signDecision } from '../src/signing/approval-sign.ts';

export interface TestKey {
  file: string;
  line: string;
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-sig-'));
let n = 0;

/** A fresh SSH key pair (ssh-keygen), unencrypted, in a scratch directory. */
export function makeSshKey(type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519', comment = 'test'): TestKey {
  const file = path.join(scratch, `key-${++n}`);
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    type,
    ...(type === 'ecdsa' ? ['-b', '256'] : type === 'rsa' ? ['-b', '2048'] : []),
    '-N',
    '',
    '-C',
    comment,
    '-f',
    file,
  ]);
  return { file, line: fs.readFileSync(`${file}.pub`, 'utf8').trim() };
}

let cached: { text: string; loaded: LoadedPolicyPack; keys: Record<string, TestKey> } | undefined;

/** policies/default.yaml with a fresh key for each principal (made once per test process). */
export function keyedTestPack(): { text: string; loaded: LoadedPolicyPack; keys: Record<string, TestKey> } {
  if (cached) return cached;
  const base = fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8');
  const ids = (parse(base) as { principals: Array<{ id: string }> }).principals.map((p) => p.id.toLowerCase());
  const keys = Object.fromEntries(ids.map((id) => [id, makeSshKey('ed25519', id)]));
  const text = withPrincipalKeys(base, Object.fromEntries(Object.entries(keys).map(([id, k]) => [id, [k.line]])));
  cached = { text, loaded: parsePolicyPack(text, 'keyed test pack'), keys };
  return cached;
}

export interface DecisionToSign {
  workflowId: string;
  model: string;
  version: number;
  modelDigest: string;
  approver: string;
  role: string;
  meaning?: 'review' | 'approval' | 'responsibility';
  decision?: Decision;
  comment?: string;
  signedAt?: string;
  /** Fields of the statement to sign differently from the payload (a forged or replayed statement). */
  statement?: Partial<StatementInput>;
}

/** The payload of a signed decision: what the CLI sends and what a person pastes into the Web UI. */
export async function signedPayload(keyFile: string, d: DecisionToSign) {
  const meaning = d.meaning ?? 'approval';
  const { statement, signature } = await signDecision(keyFile, {
    workflowId: d.workflowId,
    model: d.model,
    version: d.version,
    artifactDigest: d.modelDigest,
    role: d.role,
    meaning,
    decision: d.decision ?? 'approve',
    approver: d.approver,
    comment: d.comment,
    signedAt: d.signedAt,
    ...d.statement,
  });
  return {
    approver: d.approver,
    role: d.role,
    meaning,
    modelDigest: d.modelDigest,
    ...(d.comment !== undefined ? { comment: d.comment } : {}),
    statement,
    signature,
  };
}
