import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Kysely } from 'kysely';
import { appendAuditEvent } from '../audit/append.ts';
import type { Database } from '../db/schema.ts';
import { certifiedDigest } from '../audit/objects.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';
import { getBytes } from '../storage/objects.ts';
import { DigestCounter, objectStream } from '../storage/stream.ts';

/** Who reads and why: 3 to 500 printable characters each (recorded as typed). */
export const READ_PURPOSE = /^[^\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]{3,500}$/u;

export class DatasetReadRefused extends Error {
  override name = 'DatasetReadRefused';
  constructor(
    message: string,
    readonly kind: 'not-found' | 'integrity' | 'exists',
  ) {
    super(message);
  }
}

export interface DatasetRead {
  read: { eventId: string; reader: string; purpose: string; at: string };
  dataset: string;
  manifestDigest: string;
  classification: string;
  object: string;
  out: string;
  bytes: number;
  sha256: string;
}

/**
 * Reads a certified dataset out of the factory, outside any lifecycle, into a new file (mode 0600): the
 * read is recorded FIRST as a `dataset.read` event in the hash-chained audit trail (who, why, which
 * version, its classification), so a read nobody recorded never happens (HIPAA 45 CFR 164.312(b)
 * audit controls for PHI; every classification is recorded the same way). The bytes written are
 * checked against the digest the certified key names; a mismatch removes the file.
 */
export async function readCertifiedDataset(
  db: Kysely<Database>,
  s3: S3Client,
  opts: { name: string; manifestDigest?: string; reader: string; purpose: string; out: string },
): Promise<DatasetRead> {
  let q = db.selectFrom('dataset_versions').selectAll().where('name', '=', opts.name);
  if (opts.manifestDigest) q = q.where('manifest_digest', '=', opts.manifestDigest);
  const row = await q.orderBy('created_at', 'desc').limit(1).executeTakeFirst();
  if (!row) throw new DatasetReadRefused(`no certified version of dataset ${opts.name}${opts.manifestDigest ? ` with manifest ${opts.manifestDigest}` : ''}`, 'not-found');
  if (fs.existsSync(opts.out)) throw new DatasetReadRefused(`${opts.out} exists: name a new file`, 'exists');
  const manifestLoc = parseS3Uri(row.manifest_uri);
  const certifiedLoc = parseS3Uri(row.certified_uri);
  if (!manifestLoc || !certifiedLoc) throw new DatasetReadRefused(`dataset version ${row.manifest_digest} has no readable object URIs`, 'integrity');
  let classification = 'unknown';
  try {
    classification = (JSON.parse((await getBytes(s3, manifestLoc.bucket, manifestLoc.key)).toString('utf8')) as { classification?: string }).classification ?? 'unknown';
  } catch {
    // Unknown is recorded as such: the read is still logged before it happens.
  }
  const at = new Date().toISOString();
  const event = await appendAuditEvent(db, {
    workflowId: `dataset-read/${row.name}`,
    runId: randomUUID(),
    step: 'dataset.read',
    kind: 'dataset.read',
    actor: opts.reader,
    payload: { dataset: row.name, manifestDigest: row.manifest_digest, classification, purpose: opts.purpose, object: row.certified_uri },
    occurredAt: at,
  });
  const { body } = await objectStream(s3, certifiedLoc.bucket, certifiedLoc.key);
  const counter = new DigestCounter();
  await pipeline(body, counter, fs.createWriteStream(opts.out, { flags: 'wx', mode: 0o600 }));
  const sha256 = counter.digest();
  if (sha256 !== certifiedDigest(row.certified_uri)) {
    fs.rmSync(opts.out, { force: true });
    throw new DatasetReadRefused(`the certified object ${row.certified_uri} does not match its digest (${sha256}): nothing written`, 'integrity');
  }
  return {
    read: { eventId: event.eventId, reader: opts.reader, purpose: opts.purpose, at },
    dataset: row.name,
    manifestDigest: row.manifest_digest,
    classification,
    object: row.certified_uri,
    out: opts.out,
    bytes: counter.bytes,
    sha256,
  };
}
