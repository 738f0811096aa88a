import { type KeyObject, createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import { type PublicFactoryKey, type SigningKeySource, SigningKeyError, keyIdOf, loadFactoryKey } from './factory-key.ts';
import { parseEd25519PublicKeyLine } from './ssh-key.ts';

/** A trusted-keys file is a short list; anything larger is not one. */
const MAX_TRUSTED_BYTES = 256 * 1024;

export interface TrustedKeysSource extends SigningKeySource {
  /** Public keys still trusted for verification (rotated-out factory keys): PEM blocks and/or `ssh-ed25519 …` lines. */
  FACTORY_TRUSTED_KEYS_FILE?: string;
}

export function publicKeyFromRawEd25519(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

/**
 * Parses a trusted-keys file: SubjectPublicKeyInfo PEM blocks (`-----BEGIN PUBLIC KEY-----`) and
 * OpenSSH `ssh-ed25519 AAAA…` lines, `#` comments and blank lines ignored. Only Ed25519 keys are
 * accepted. Errors name the line, never echo it.
 */
export function parseTrustedKeys(text: string, source: string): PublicFactoryKey[] {
  const keys: PublicFactoryKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    if (line === '-----BEGIN PUBLIC KEY-----') {
      const end = lines.findIndex((l, j) => j > i && l.trim() === '-----END PUBLIC KEY-----');
      if (end < 0) throw new SigningKeyError(`${source} line ${i + 1}: a PEM block without its END line`);
      let key: KeyObject;
      try {
        key = createPublicKey({ key: lines.slice(i, end + 1).join('\n'), format: 'pem' });
      } catch {
        throw new SigningKeyError(`${source} line ${i + 1}: not a PEM public key`);
      }
      if (key.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`${source} line ${i + 1}: a ${key.asymmetricKeyType} key; factory keys are Ed25519`);
      keys.push({ publicKey: key, keyId: keyIdOf(key) });
      i = end;
      continue;
    }
    const raw = parseEd25519PublicKeyLine(line);
    if (!raw) throw new SigningKeyError(`${source} line ${i + 1}: neither a PEM public key nor an ssh-ed25519 line`);
    const key = publicKeyFromRawEd25519(raw);
    keys.push({ publicKey: key, keyId: keyIdOf(key) });
  }
  return keys;
}

/**
 * The keys a verifier trusts: the current factory key's public half (when this machine has it) and
 * every key in FACTORY_TRUSTED_KEYS_FILE (earlier keys after a rotation, or the published key an
 * examiner holds without the private one). Throws when that leaves none.
 */
export function loadTrustedKeys(env: TrustedKeysSource): PublicFactoryKey[] {
  const keys: PublicFactoryKey[] = [];
  let currentError: Error | undefined;
  try {
    const k = loadFactoryKey(env);
    keys.push({ publicKey: k.publicKey, keyId: k.keyId });
  } catch (err) {
    currentError = err as Error;
  }
  const file = env.FACTORY_TRUSTED_KEYS_FILE;
  if (file) {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch {
      throw new SigningKeyError(`FACTORY_TRUSTED_KEYS_FILE=${file}: no such file`);
    }
    if (!stat.isFile() || stat.size > MAX_TRUSTED_BYTES) throw new SigningKeyError(`FACTORY_TRUSTED_KEYS_FILE=${file} is not a key list`);
    for (const k of parseTrustedKeys(fs.readFileSync(file, 'utf8'), `FACTORY_TRUSTED_KEYS_FILE=${file}`)) {
      if (!keys.some((have) => have.keyId === k.keyId)) keys.push(k);
    }
  }
  if (keys.length === 0) {
    throw new SigningKeyError(`no trusted factory key: ${currentError?.message ?? 'none configured'}; or list public keys in FACTORY_TRUSTED_KEYS_FILE`);
  }
  return keys;
}
