import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ed25519PublicKeyLine, ed25519WireBlob, sshFingerprint } from './ssh-key.ts';

export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

/** The most a key file may hold: a PEM Ed25519 key is ~120 bytes; anything large is not one. */
const MAX_KEY_BYTES = 16 * 1024;

/**
 * The factory's signing key: Ed25519, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`). It signs
 * audit checkpoints, provenance and exported histories. It is never in the repository or the
 * database: FACTORY_SIGNING_KEY holds the PEM itself (a secret manager's injection), else
 * FACTORY_SIGNING_KEY_FILE names a file readable only by its owner.
 */
export interface FactoryKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** `SHA256:…`, the OpenSSH fingerprint of the public key: the key id in envelopes and checkpoints. */
  keyId: string;
  /** `ssh-ed25519 AAAA… factory`: for an allowed_signers file (ssh-keygen -Y verify). */
  sshPublicKey: string;
  /** SubjectPublicKeyInfo PEM: for openssl and the Python cryptography/securesystemslib packages. */
  publicKeyPem: string;
  /** Raw 32-byte public key, hex (securesystemslib's ed25519 keyval form). */
  publicKeyHex: string;
}

export interface PublicFactoryKey {
  publicKey: KeyObject;
  keyId: string;
}

export function rawEd25519Public(publicKey: KeyObject): Buffer {
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new SigningKeyError(`the signing key must be Ed25519, not ${publicKey.asymmetricKeyType}`);
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.from(jwk.x!, 'base64url');
}

export function keyIdOf(publicKey: KeyObject): string {
  return sshFingerprint(ed25519WireBlob(rawEd25519Public(publicKey)));
}

export function factoryKeyFromPem(pem: string, source: string): FactoryKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    // Never echo the key material: name the source and what it must be.
    throw new SigningKeyError(`${source} is not a PEM private key; generate one with \`factory keys generate\` or \`openssl genpkey -algorithm ed25519\``);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new SigningKeyError(`${source} holds a ${privateKey.asymmetricKeyType} key; the factory signs with Ed25519`);
  }
  const publicKey = createPublicKey(privateKey);
  const raw = rawEd25519Public(publicKey);
  return {
    privateKey,
    publicKey,
    keyId: sshFingerprint(ed25519WireBlob(raw)),
    sshPublicKey: ed25519PublicKeyLine(raw, 'factory'),
    publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    publicKeyHex: raw.toString('hex'),
  };
}

export interface SigningKeySource {
  FACTORY_SIGNING_KEY?: string;
  FACTORY_SIGNING_KEY_FILE?: string;
  /** When neither variable is set, the key `factory dev up` made under it is used, if there is one. */
  FACTORY_HOME?: string;
}

/** Where `factory dev up` keeps the local stack's key (created 0600 when missing). */
export function devSigningKeyFile(home: string): string {
  return path.join(home, 'keys', 'factory-signing.pem');
}

/** The key file the environment names: FACTORY_SIGNING_KEY_FILE, else the local stack's under FACTORY_HOME. */
export function signingKeyFile(env: SigningKeySource): string | undefined {
  return env.FACTORY_SIGNING_KEY_FILE || (env.FACTORY_HOME ? devSigningKeyFile(env.FACTORY_HOME) : undefined);
}

/** Loads the key named by the environment; throws a SigningKeyError saying what to set when none is. */
export function loadFactoryKey(env: SigningKeySource): FactoryKey {
  if (env.FACTORY_SIGNING_KEY) return factoryKeyFromPem(env.FACTORY_SIGNING_KEY, 'FACTORY_SIGNING_KEY');
  const file = signingKeyFile(env);
  const missing = () =>
    new SigningKeyError(
      'no signing key: set FACTORY_SIGNING_KEY_FILE to an Ed25519 PEM key file (or FACTORY_SIGNING_KEY to its contents); ' +
        `\`factory keys generate <file>\` makes one, and \`factory dev up\` makes ${file ?? '$FACTORY_HOME/keys/factory-signing.pem'} for the local stack`,
    );
  if (!file) throw missing();
  let stat: fs.Stats;
  try {
    stat = fs.statSync(file);
  } catch {
    if (!env.FACTORY_SIGNING_KEY_FILE) throw missing();
    throw new SigningKeyError(`FACTORY_SIGNING_KEY_FILE=${file}: no such file`);
  }
  if (!stat.isFile() || stat.size > MAX_KEY_BYTES) throw new SigningKeyError(`FACTORY_SIGNING_KEY_FILE=${file} is not a key file`);
  if ((stat.mode & 0o077) !== 0) throw new SigningKeyError(`FACTORY_SIGNING_KEY_FILE=${file} is readable by others: chmod 600 it`);
  return factoryKeyFromPem(fs.readFileSync(file, 'utf8'), `FACTORY_SIGNING_KEY_FILE=${file}`);
}

/** A new Ed25519 key as PKCS#8 PEM (for `factory keys generate` and the local stack). */
export function generateFactoryKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ed25519');
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Writes a new key to a file created 0600, refusing to overwrite one. */
export function writeNewFactoryKey(file: string): FactoryKey {
  const pem = generateFactoryKeyPem();
  fs.writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
  return factoryKeyFromPem(pem, file);
}

/** The key file, made (0600, in a 0700 directory) when there is none yet; an existing one is kept. */
export function ensureFactoryKeyFile(file: string): { created: boolean } {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    writeNewFactoryKey(file);
    return { created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { created: false };
    throw err;
  }
}

export function signBytes(key: Pick<FactoryKey, 'privateKey'>, data: Uint8Array): Buffer {
  return sign(null, data, key.privateKey);
}

export function verifyBytes(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return verify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}

/** A public key from SPKI PEM (e.g. a published factory key an examiner was handed). */
export function publicKeyFromPem(pem: string): PublicFactoryKey {
  const publicKey = createPublicKey({ key: pem, format: 'pem' });
  return { publicKey, keyId: keyIdOf(publicKey) };
}
