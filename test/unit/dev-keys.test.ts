import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureDevPolicyPack } from '../../src/dev/dev-keys.ts';
import { allowedSigners, effectivePackPath, loadPolicyPack } from '../../src/policy/pack.ts';
import { principalKeyFile } from '../../src/signing/ssh-keygen.ts';

describe('the dev stack signs with keys it makes, never committed', () => {
  it('makes one Ed25519 key per principal and an effective pack with their public keys; rerun changes nothing', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-devkeys-'));
    const file = ensureDevPolicyPack({ FACTORY_HOME: home }, {})!;
    expect(file).toBe(effectivePackPath(home));
    const { pack } = loadPolicyPack(file);
    for (const p of pack.principals) {
      const key = principalKeyFile(home, p.id);
      expect(fs.statSync(key).mode & 0o077).toBe(0); // ssh-keygen writes the private key 0600
      expect(p.keys).toEqual([fs.readFileSync(`${key}.pub`, 'utf8').trim()]);
    }
    const before = fs.readFileSync(file, 'utf8');
    const mtime = fs.statSync(file).mtimeMs;
    ensureDevPolicyPack({ FACTORY_HOME: home }, {});
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    expect(fs.statSync(file).mtimeMs).toBe(mtime);
    // ssh-keygen reads the allowed_signers view of it.
    const signers = path.join(home, 'allowed_signers');
    fs.writeFileSync(signers, allowedSigners(pack));
    const msg = path.join(home, 'msg');
    fs.writeFileSync(msg, 'hello\n');
    execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', principalKeyFile(home, 'dana@hospital.example'), '-n', 'factory-approval', msg]);
    const out = execFileSync('ssh-keygen', ['-Y', 'verify', '-f', signers, '-I', 'dana@hospital.example', '-n', 'factory-approval', '-s', `${msg}.sig`], {
      input: 'hello\n',
      encoding: 'utf8',
    });
    expect(out).toMatch(/Good "factory-approval" signature for dana@hospital\.example/);
  });

  it('leaves a FACTORY_POLICY_PACK of the user alone', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-devkeys-'));
    expect(ensureDevPolicyPack({ FACTORY_HOME: home }, { FACTORY_POLICY_PACK: '/elsewhere.yaml' })).toBeUndefined();
    expect(fs.existsSync(effectivePackPath(home))).toBe(false);
  });
});
