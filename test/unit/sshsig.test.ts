import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { buildStatement, parseStatement } from '../../src/domain/approval-statement.ts';
import { base64Decode, base64Encode } from '../../src/signing/base64.ts';
import { sshSign } from '../../src/signing/ssh-keygen.ts';
import { SSHSIG_LIMITS, parsePublicKeyLine, parseSshSig, verifySshSig, wireString } from '../../src/signing/sshsig.ts';
import { makeSshKey } from '../signing.ts';

const statement = buildStatement({
  workflowId: 'lifecycle-bc-0123456',
  model: 'bc',
  version: 3,
  artifactDigest: `sha256:${'a'.repeat(64)}`,
  role: 'compliance',
  meaning: 'approval',
  decision: 'approve',
  approver: 'dana@hospital.example',
  signedAt: '2026-11-27T12:00:00.000Z',
});

const armor = (blob: Uint8Array) => `-----BEGIN SSH SIGNATURE-----\n${base64Encode(blob).replace(/(.{70})/g, '$1\n')}\n-----END SSH SIGNATURE-----\n`;
const cat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => [...p]));
const enc = (s: string) => new TextEncoder().encode(s);

describe('OpenSSH signatures (SSHSIG) read and verified in pure code', () => {
  const ed = makeSshKey('ed25519');
  const ec = makeSshKey('ecdsa');

  it('verifies what ssh-keygen -Y sign made (Ed25519, ECDSA P-256), naming the key as ssh-keygen -l does', async () => {
    for (const key of [ed, ec]) {
      const sig = await sshSign(key.file, statement);
      const v = verifySshSig(sig, statement);
      expect(v.ok, JSON.stringify(v)).toBe(true);
      const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${key.file}.pub`], { encoding: 'utf8' }).split(' ')[1];
      expect(v.ok && v.value.publicKey.fingerprint).toBe(printed);
      expect(parsePublicKeyLine(key.line)).toMatchObject({ ok: true, value: { fingerprint: printed } });
      // One changed byte of the statement, and it no longer verifies.
      expect(verifySshSig(sig, statement.replace('version: 3', 'version: 4'))).toMatchObject({ ok: false, reason: expect.stringMatching(/does not verify/) });
    }
  });

  it('refuses hostile signatures with a reason: truncated, oversize, wrong magic, version, namespace, trailing bytes, not armored', async () => {
    const sig = await sshSign(ed.file, statement);
    const blob = parseSshSig(sig).ok ? (parseSshSig(sig) as { value: { blob: Uint8Array } }).value.blob : new Uint8Array();
    const reason = (armored: string) => {
      const r = verifySshSig(armored, statement);
      expect(r.ok).toBe(false);
      return r.ok ? '' : r.reason;
    };
    for (let cut = 1; cut < blob.length; cut += 7) expect(reason(armor(blob.subarray(0, cut)))).toMatch(/truncated|not "SSHSIG"|not valid base64|bytes/);
    expect(reason('x'.repeat(SSHSIG_LIMITS.armored + 1))).toMatch(/longer than 2048/);
    expect(reason(armor(cat(enc('SSHSIX'), blob.subarray(6))))).toMatch(/magic is not "SSHSIG"/);
    expect(reason(armor(cat(blob.subarray(0, 6), Uint8Array.of(0, 0, 0, 2), blob.subarray(10))))).toMatch(/version 2 is not supported/);
    expect(reason(armor(cat(blob, Uint8Array.of(0))))).toMatch(/1 bytes after the signature/);
    // A length field that claims 4 GiB.
    expect(reason(armor(cat(blob.subarray(0, 10), Uint8Array.of(0xff, 0xff, 0xff, 0xff), blob.subarray(14))))).toMatch(/truncated/);
    expect(reason(sig.replace('BEGIN SSH SIGNATURE', 'BEGIN PGP SIGNATURE'))).toMatch(/not armored/);
    expect(reason(sig.replace(/\n[A-Za-z0-9+/]/, '\n*'))).toMatch(/not base64/);
    const other = execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', ed.file, '-n', 'git'], { input: statement }).toString();
    expect(reason(other)).toBe('the signature is for the namespace "git", not "factory-approval"');
    // The key inside swapped for another: the signature is then not that key's.
    const otherKey = parsePublicKeyLine(makeSshKey('ed25519').line);
    const [, b64] = ed.line.split(' ');
    const own = base64Decode(b64!)!;
    const at = blob.findIndex((_, i) => own.every((b, j) => blob[i + j] === b));
    const swapped = cat(blob.subarray(0, at), otherKey.ok ? otherKey.value.blob : new Uint8Array(), blob.subarray(at + own.length));
    expect(reason(armor(swapped))).toMatch(/does not verify/);
  });

  it('refuses key types other than Ed25519 and ECDSA P-256, and malformed key lines', () => {
    const rsa = makeSshKey('rsa');
    expect(parsePublicKeyLine(rsa.line)).toEqual({ ok: false, reason: 'key type "ssh-rsa" is not accepted (accepted: ssh-ed25519, ecdsa-sha2-nistp256)' });
    expect(parsePublicKeyLine('ssh-ed25519 !!!')).toMatchObject({ ok: false });
    const [, b64] = ed.line.split(' ');
    expect(parsePublicKeyLine(`ecdsa-sha2-nistp256 ${b64}`)).toMatchObject({ ok: false, reason: expect.stringMatching(/the line says ecdsa-sha2-nistp256/) });
    const short = base64Encode(cat(wireString('ssh-ed25519'), wireString(new Uint8Array(31))));
    expect(parsePublicKeyLine(`ssh-ed25519 ${short}`)).toMatchObject({ ok: false, reason: 'an ssh-ed25519 key is 32 bytes, this one 31' });
  });

  it('base64 round-trips and refuses non-canonical text', () => {
    for (let len = 0; len < 40; len++) {
      const b = Uint8Array.from({ length: len }, (_, i) => (i * 37 + len) & 0xff);
      expect(base64Decode(base64Encode(b))).toEqual(b);
      expect(base64Encode(b)).toBe(Buffer.from(b).toString('base64'));
    }
    expect(base64Decode('QQ==')).toEqual(enc('A'));
    expect(base64Decode('QR==')).toBeUndefined();
    expect(base64Decode('Q')).toBeUndefined();
    expect(base64Decode('Q===')).toBeUndefined();
  });

  it('reads only the canonical statement', () => {
    expect(parseStatement(statement)).toMatchObject({ ok: true, value: { version: 3, approver: 'dana@hospital.example' } });
    expect(parseStatement(statement.replace('\n', '\r\n'))).toMatchObject({ ok: false });
    expect(parseStatement(statement.trimEnd())).toMatchObject({ ok: false, reason: 'statement does not end with a line feed' });
    expect(parseStatement(`${statement}extra: 1\n`)).toMatchObject({ ok: false });
    expect(parseStatement(statement.replace('signed-at: 2026-11-27T12:00:00.000Z', 'signed-at: yesterday'))).toMatchObject({ ok: false });
    expect(parseStatement(statement.replace('version: 3', 'version: 03'))).toMatchObject({ ok: false });
    const fields = parseStatement(statement);
    if (!fields.ok) throw new Error(fields.reason);
    expect(() => buildStatement({ ...fields.value, role: 'a\nb' })).toThrow(/control characters/);
  });
});
