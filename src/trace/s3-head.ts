import { createHash, createHmac } from 'node:crypto';
import type { Env } from '../config/env.ts';

/**
 * A HeadObject signed with AWS Signature V4 by hand, for `trace`: loading the S3 SDK costs a few
 * hundred milliseconds of start-up (more than the whole trace otherwise takes), and a HEAD needs
 * only the signature. Path-style like our S3 client (src/storage/s3.ts); a unit test checks the
 * Authorization header against the SDK's own signer.
 */

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** RFC 3986 encoding of each path segment, '/' kept (S3 does not double-encode). */
export function encodeS3Path(bucket: string, key: string): string {
  const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `/${enc(bucket)}/${key.split('/').map(enc).join('/')}`;
}

const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
const sha256Hex = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');

/** The headers of a signed HEAD request for `url` (host taken from it), at `now`. */
export function signHead(url: URL, creds: { accessKeyId: string; secretAccessKey: string; region: string }, now = new Date()): Record<string, string> {
  return signBodiless('HEAD', url, creds, now);
}

/** The headers of a signed request without a body (HEAD, GET) for `url`, at `now`. */
export function signBodiless(
  method: 'HEAD' | 'GET',
  url: URL,
  creds: { accessKeyId: string; secretAccessKey: string; region: string },
  now = new Date(),
): Record<string, string> {
  const amzDate = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
  const day = amzDate.slice(0, 8);
  const signedHeaders = 'host;x-amz-content-sha256;x-amz-date';
  const canonical = [
    method,
    url.pathname,
    '',
    `host:${url.host}`,
    `x-amz-content-sha256:${EMPTY_SHA256}`,
    `x-amz-date:${amzDate}`,
    '',
    signedHeaders,
    EMPTY_SHA256,
  ].join('\n');
  const scope = `${day}/${creds.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${creds.secretAccessKey}`, day), creds.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', key).update(toSign, 'utf8').digest('hex');
  return {
    'x-amz-content-sha256': EMPTY_SHA256,
    'x-amz-date': amzDate,
    authorization: `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}

export interface HeadResult {
  /** 200 present, 404 missing (a delete marker too), anything else the store's answer. */
  status: number;
  /** The sha256 our writers store in the object's metadata, when present. */
  sha256?: string;
}

export async function headObjectSigned(env: Env, loc: { bucket: string; key: string }, timeoutMs: number): Promise<HeadResult> {
  const base = new URL(env.S3_ENDPOINT);
  const url = new URL(`${base.origin}${base.pathname.replace(/\/$/, '')}${encodeS3Path(loc.bucket, loc.key)}`);
  const headers = signHead(url, { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, region: env.S3_REGION });
  const res = await fetch(url, { method: 'HEAD', headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, sha256: res.headers.get('x-amz-meta-sha256') ?? undefined };
}

/**
 * A small object's bytes (a provenance envelope), signed like the HEAD: 404 gives `status` 404 and no
 * bytes; a body longer than `maxBytes` is cut off there and `truncated` set.
 */
export async function getObjectSigned(
  env: Env,
  loc: { bucket: string; key: string },
  timeoutMs: number,
  maxBytes: number,
): Promise<{ status: number; bytes?: Buffer; truncated?: boolean }> {
  const base = new URL(env.S3_ENDPOINT);
  const url = new URL(`${base.origin}${base.pathname.replace(/\/$/, '')}${encodeS3Path(loc.bucket, loc.key)}`);
  const headers = signBodiless('GET', url, { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, region: env.S3_REGION });
  const res = await fetch(url, { method: 'GET', headers, signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    return { status: res.status };
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body) {
    chunks.push(Buffer.from(chunk as Uint8Array));
    size += (chunk as Uint8Array).length;
    if (size > maxBytes) return { status: 200, bytes: Buffer.concat(chunks).subarray(0, maxBytes), truncated: true };
  }
  return { status: 200, bytes: Buffer.concat(chunks) };
}
