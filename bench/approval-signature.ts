/**
 * What verifying one signed approval costs in the gate (pure code, as the workflow runs it), against
 * node:crypto's native Ed25519 verify of the same signed bytes in the same run:
 *
 *   node --import tsx bench/approval-signature.ts [--n 500]
 *
 * Signatures are made by `ssh-keygen -Y sign` with fresh keys (Ed25519, ECDSA P-256).
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, verify } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { buildStatement } from '../src/domain/approval-statement.ts';
import { parseSshSig, signedData, verifySshSig } from '../src/signing/sshsig.ts';

const { values } = parseArgs({ options: { n: { type: 'string', default: '500' } } });
const n = Number(values.n);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-sig-'));
const statement = buildStatement({
  workflowId: 'lifecycle-bench-0000000',
  model: 'bench',
  version: 1,
  artifactDigest: `sha256:${'a'.repeat(64)}`,
  role: 'compliance',
  meaning: 'approval',
  decision: 'approve',
  approver: 'dana@hospital.example',
  signedAt: new Date().toISOString(),
});

function sign(type: 'ed25519' | 'ecdsa'): string {
  const key = path.join(dir, type);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', key]);
  return execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', key, '-n', 'factory-approval'], { input: statement }).toString();
}

function perOp(fn: () => unknown): number {
  for (let i = 0; i < Math.min(50, n); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - t0) / 1_000 / n;
}

const ed = sign('ed25519');
const ec = sign('ecdsa');
const parsed = parseSshSig(ed);
if (!parsed.ok) throw new Error(parsed.reason);
// The native baseline: the same signed bytes, Ed25519 verify in OpenSSL.
const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), parsed.value.publicKey.raw]);
const nativeKey = createPublicKey({ key: spki, format: 'der', type: 'spki' });
const data = signedData('factory-approval', parsed.value.hashAlgorithm, new TextEncoder().encode(statement));

const rows: Array<[string, number]> = [
  ['parse the armored SSHSIG only', perOp(() => parseSshSig(ed))],
  [
    'verify Ed25519 (parse + SHA-512 + @noble/curves)',
    perOp(
      () =>
        verifySshSig(ed, statement).ok ||
        (() => {
          throw new Error('bad');
        })(),
    ),
  ],
  [
    'verify ECDSA P-256 (parse + SHA-512 + @noble/curves)',
    perOp(
      () =>
        verifySshSig(ec, statement).ok ||
        (() => {
          throw new Error('bad');
        })(),
    ),
  ],
  ['baseline: node:crypto Ed25519 verify of the same bytes', perOp(() => verify(null, data, nativeKey, parsed.value.signature))],
];
console.log(
  `machine: ${os.cpus().length} × ${os.cpus()[0]?.model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, load ${os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ')}`,
);
for (const [what, us] of rows) console.log(`${what.padEnd(58)} ${us.toFixed(0).padStart(6)} µs`);
