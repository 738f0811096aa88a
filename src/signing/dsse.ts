import type { KeyObject } from 'node:crypto';
import * as z from 'zod';
import { type FactoryKey, keyIdOf, signBytes, verifyBytes } from './factory-key.ts';

/**
 * DSSE (Dead Simple Signing Envelope, https://github.com/secure-systems-lab/dsse, v1): what in-toto
 * attestations are wrapped in. The signature covers PAE(payloadType, payload), so the type cannot be
 * swapped. Verifiable by the in-toto / securesystemslib Python packages, which we did not write.
 */
export const dsseEnvelopeSchema = z
  .object({
    payload: z.base64(),
    payloadType: z.string().min(1).max(256),
    signatures: z
      .array(z.object({ keyid: z.string().max(256).optional(), sig: z.base64() }).strict())
      .min(1)
      .max(16),
  })
  .strict();
export type DsseEnvelope = z.infer<typeof dsseEnvelopeSchema>;

/** Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body (lengths in bytes, ASCII decimal). */
export function pae(payloadType: string, payload: Uint8Array): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), Buffer.from(payload)]);
}

export function signEnvelope(key: Pick<FactoryKey, 'privateKey' | 'keyId'>, payloadType: string, payload: Uint8Array | string): DsseEnvelope {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : Buffer.from(payload);
  return {
    payload: body.toString('base64'),
    payloadType,
    signatures: [{ keyid: key.keyId, sig: signBytes(key, pae(payloadType, body)).toString('base64') }],
  };
}

export type EnvelopeVerdict = { ok: true; payload: Buffer; keyId: string } | { ok: false; reason: string };

/**
 * Verifies an envelope against trusted public keys and an expected payload type. One good signature
 * by a trusted key suffices; a signature by an unknown key is not trusted, whatever its keyid says.
 */
export function verifyEnvelope(raw: unknown, trusted: readonly KeyObject[], expectedType: string): EnvelopeVerdict {
  const parsed = dsseEnvelopeSchema.safeParse(raw);
  if (!parsed.success) return { ok: false, reason: `not a DSSE envelope: ${parsed.error.issues[0]?.message ?? 'invalid'}` };
  const env = parsed.data;
  if (env.payloadType !== expectedType) return { ok: false, reason: `payloadType is ${JSON.stringify(env.payloadType)}, expected ${expectedType}` };
  const payload = Buffer.from(env.payload, 'base64');
  const signed = pae(env.payloadType, payload);
  for (const s of env.signatures) {
    for (const key of trusted) {
      if (verifyBytes(key, signed, Buffer.from(s.sig, 'base64'))) return { ok: true, payload, keyId: keyIdOf(key) };
    }
  }
  return { ok: false, reason: 'no signature verifies with a trusted factory key (tampered, or signed by another key)' };
}
