import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { parse, stringify } from 'yaml';
import * as z from 'zod';
import { gatewayKeyProblem } from '../policy/pack.ts';
import { gatewayKeySchema, type GatewayKey, type PolicyPack, type UseCase } from '../policy/schema.ts';

/**
 * Gateway API keys: `fgk_<id>_<secret>`, 32 random bytes of secret. The pack (or the keys file
 * beside it) holds only the id and sha256(key): a leaked pack lets nobody call. A key of 256 random
 * bits needs no slow hash (scrypt protects guessable passwords; this is not guessable), and sha256
 * keeps each request's check to microseconds.
 */
const KEY_PATTERN = /^fgk_([a-z0-9]{8,32})_([A-Za-z0-9_-]{43})$/;

export function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export interface NewKey {
  key: string;
  entry: GatewayKey;
  /** The line to add under `gatewayKeys:` in the policy pack. */
  packLine: string;
}

export function createKey(principal: string, useCase: string): NewKey {
  const id = randomBytes(6).toString('hex');
  const key = `fgk_${id}_${randomBytes(32).toString('base64url')}`;
  const entry = gatewayKeySchema.parse({ id, sha256: keyHash(key), principal, useCase });
  return { key, entry, packLine: `  - { id: ${id}, sha256: ${entry.sha256}, principal: ${principal}, useCase: ${useCase} }` };
}

const keysFileSchema = z.object({ gatewayKeys: z.array(gatewayKeySchema).default([]) });

/** The keys file beside the pack (FACTORY_GATEWAY_KEYS_FILE): the same entries, e.g. the local stack's dev key. */
export function readKeysFile(file: string): GatewayKey[] {
  return keysFileSchema.parse(parse(fs.readFileSync(file, 'utf8')) ?? {}).gatewayKeys;
}

export function writeKeysFile(file: string, keys: GatewayKey[]): void {
  fs.writeFileSync(file, stringify({ gatewayKeys: keys }), { mode: 0o600 });
}

export interface Caller {
  keyId: string;
  principal: string;
  useCase: UseCase;
}

export type Authentication = { ok: true; caller: Caller } | { ok: false; reason: string };

/** Resolves an API key to its caller; every key checked against the pack (its principal and use case must exist). */
export class KeyRing {
  private readonly byId = new Map<string, { entry: GatewayKey; hash: Buffer }>();

  constructor(
    private readonly pack: PolicyPack,
    keys: GatewayKey[],
  ) {
    for (const k of keys) {
      const why = gatewayKeyProblem(pack, k);
      if (why) throw new Error(`gateway key ${k.id}: ${why}`);
      if (this.byId.has(k.id)) throw new Error(`gateway key ${k.id} is listed twice`);
      this.byId.set(k.id, { entry: k, hash: Buffer.from(k.sha256, 'hex') });
    }
  }

  get size(): number {
    return this.byId.size;
  }

  authenticate(header: string | undefined): Authentication {
    if (!header) return { ok: false, reason: 'no API key: send `Authorization: Bearer <key>`' };
    const m = /^Bearer ([^\s]{1,200})$/.exec(header);
    if (!m) return { ok: false, reason: 'the Authorization header is not `Bearer <key>`' };
    const parts = KEY_PATTERN.exec(m[1]!);
    const known = parts ? this.byId.get(parts[1]!) : undefined;
    if (!parts || !known) return { ok: false, reason: 'invalid API key' };
    if (!timingSafeEqual(createHash('sha256').update(m[1]!).digest(), known.hash)) return { ok: false, reason: 'invalid API key' };
    const useCase = (this.pack.useCases ?? []).find((u) => u.name === known.entry.useCase)!;
    return { ok: true, caller: { keyId: known.entry.id, principal: known.entry.principal, useCase } };
  }
}
