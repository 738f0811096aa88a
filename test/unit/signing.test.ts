import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pae, signEnvelope, verifyEnvelope } from '../../src/signing/dsse.ts';
import { SigningKeyError, factoryKeyFromPem, generateFactoryKeyPem, loadFactoryKey, writeNewFactoryKey } from '../../src/signing/factory-key.ts';

describe('the factory signing key', () => {
  it('prints the fingerprint ssh-keygen prints for the same public key', () => {
    const key = factoryKeyFromPem(generateFactoryKeyPem(), 'test');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-key-'));
    fs.writeFileSync(path.join(dir, 'key.pub'), `${key.sshPublicKey}\n`);
    const printed = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', path.join(dir, 'key.pub')], { encoding: 'utf8' });
    expect(printed.split(' ')[1]).toBe(key.keyId);
  });

  it('refuses a key file others can read, a missing one, and a non-key without echoing it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-key-'));
    const file = path.join(dir, 'k.pem');
    writeNewFactoryKey(file);
    expect(loadFactoryKey({ FACTORY_SIGNING_KEY_FILE: file }).keyId).toMatch(/^SHA256:/);
    fs.chmodSync(file, 0o644);
    expect(() => loadFactoryKey({ FACTORY_SIGNING_KEY_FILE: file })).toThrow(/chmod 600/);
    expect(() => loadFactoryKey({ FACTORY_SIGNING_KEY_FILE: path.join(dir, 'none') })).toThrow(/no such file/);
    expect(() => loadFactoryKey({})).toThrow(SigningKeyError);
    const secret = 'top-secret-material';
    expect(() => factoryKeyFromPem(secret, 'FACTORY_SIGNING_KEY')).toThrow(/not a PEM private key/);
    expect(() => factoryKeyFromPem(secret, 'FACTORY_SIGNING_KEY')).not.toThrow(new RegExp(secret));
  });
});

describe('DSSE envelopes', () => {
  const key = factoryKeyFromPem(generateFactoryKeyPem(), 'test');
  const other = factoryKeyFromPem(generateFactoryKeyPem(), 'other');

  it('encodes PAE as the DSSE v1 spec gives it', () => {
    expect(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString()).toBe('DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it('verifies its own signature and refuses a changed payload, type or key', () => {
    const env = signEnvelope(key, 'application/vnd.in-toto+json', '{"a":1}');
    expect(verifyEnvelope(env, [key.publicKey], 'application/vnd.in-toto+json')).toMatchObject({ ok: true, keyId: key.keyId });
    const changed = { ...env, payload: Buffer.from('{"a":2}').toString('base64') };
    expect(verifyEnvelope(changed, [key.publicKey], 'application/vnd.in-toto+json').ok).toBe(false);
    expect(verifyEnvelope({ ...env, payloadType: 'text/plain' }, [key.publicKey], 'text/plain').ok).toBe(false);
    expect(verifyEnvelope(env, [other.publicKey], 'application/vnd.in-toto+json').ok).toBe(false);
    expect(verifyEnvelope({ nonsense: true }, [key.publicKey], 'x').ok).toBe(false);
  });
});
