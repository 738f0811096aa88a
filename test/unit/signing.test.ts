import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { pae, signEnvelope, verifyEnvelope } from '../../src/signing/dsse.ts';
import { devSigningKeyEnv } from '../../src/dev/components/workers.ts';
import {
  SigningKeyError,
  devSigningKeyFile,
  ensureFactoryKeyFile,
  factoryKeyFromPem,
  generateFactoryKeyPem,
  loadFactoryKey,
  writeNewFactoryKey,
} from '../../src/signing/factory-key.ts';
import { loadTrustedKeys, parseTrustedKeys } from '../../src/signing/trusted-keys.ts';

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

describe('the local stack key and the trusted keys', () => {
  it('dev up makes $FACTORY_HOME/keys/factory-signing.pem 0600 once, hands it to the workers, and the CLI finds it', () => {
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-home-'));
    expect(() => loadFactoryKey({ FACTORY_HOME: home })).toThrow(/factory dev up/);
    const env = devSigningKeyEnv({ FACTORY_HOME: home });
    const file = devSigningKeyFile(home);
    expect(env).toEqual({ FACTORY_SIGNING_KEY_FILE: file });
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const first = loadFactoryKey({ FACTORY_HOME: home }).keyId;
    devSigningKeyEnv({ FACTORY_HOME: home });
    expect(ensureFactoryKeyFile(file)).toEqual({ created: false });
    expect(loadFactoryKey({ FACTORY_HOME: home }).keyId).toBe(first);
    // A key the environment names is used as it is, never made.
    expect(devSigningKeyEnv({ FACTORY_HOME: home, FACTORY_SIGNING_KEY: generateFactoryKeyPem() })).toEqual({});
    expect(devSigningKeyEnv({ FACTORY_HOME: home, FACTORY_SIGNING_KEY_FILE: '/nonexistent/k.pem' })).toEqual({
      FACTORY_SIGNING_KEY_FILE: '/nonexistent/k.pem',
    });
    expect(fs.existsSync('/nonexistent/k.pem')).toBe(false);
  });

  it('trusts the current key and rotated-out keys listed as PEM or ssh-ed25519 lines (as `factory keys show` prints them)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-trust-'));
    const current = writeNewFactoryKey(path.join(dir, 'current.pem'));
    const old1 = writeNewFactoryKey(path.join(dir, 'old1.pem'));
    const sshLine = old1.sshPublicKey.replace(/ factory$/, '');
    const old2 = factoryKeyFromPem(generateFactoryKeyPem(), 'old2');
    const list = path.join(dir, 'trusted');
    fs.writeFileSync(list, `# rotated out 2026-01\n${sshLine} old-one\n\n${old2.publicKeyPem}`);
    const keys = loadTrustedKeys({ FACTORY_SIGNING_KEY_FILE: path.join(dir, 'current.pem'), FACTORY_TRUSTED_KEYS_FILE: list });
    expect(keys.map((k) => k.keyId)).toEqual([current.keyId, old1.keyId, old2.keyId]);
    // An examiner without the private key: the list alone.
    expect(loadTrustedKeys({ FACTORY_TRUSTED_KEYS_FILE: list }).map((k) => k.keyId)).toEqual([old1.keyId, old2.keyId]);
    expect(() => loadTrustedKeys({})).toThrow(/no trusted factory key/);
    expect(() => parseTrustedKeys('ssh-rsa AAAAB3NzaC1yc2E secret-stuff', 'f')).toThrow(/f line 1: neither/);
    expect(() => parseTrustedKeys('ssh-rsa AAAAB3NzaC1yc2E secret-stuff', 'f')).not.toThrow(/secret-stuff/);
    expect(() => parseTrustedKeys('-----BEGIN PUBLIC KEY-----\nAAAA\n', 'f')).toThrow(/without its END/);
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
