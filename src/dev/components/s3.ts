import path from 'node:path';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { projectRoot } from '../../config/env.ts';
import { createS3, ensureBuckets } from '../../storage/s3.ts';
import type { Component, StackContext } from '../component.ts';
import { processFiles, startDetached } from '../process.ts';
import { requireFile, venvPaths } from '../venv.ts';

/** The journal that makes the embedded S3 server durable (scripts/s3_server.py). */
export function s3JournalPath(home: string): string {
  return path.join(home, 's3', 'journal');
}

/** What our durable server says about itself at /_factory/journal. */
export interface S3JournalStatus {
  journal: string;
  entries: number;
  bytes: number;
  replaySeconds: number;
  truncatedBytes: number;
  enforcesComplianceWorm: boolean;
}

export const WORM_WARNING =
  'does NOT enforce compliance-mode WORM (moto lets a COMPLIANCE retention be shortened); production uses MinIO or Ceph RGW with Object Lock';

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url, { signal: AbortSignal.timeout(1_000) });
  if (!res.ok) throw new Error(String(res.status));
  return res.json();
}

/** Our durable server answers /_factory/journal; MinIO, Ceph and plain moto do not. */
export async function s3JournalStatus(ctx: StackContext): Promise<S3JournalStatus | undefined> {
  try {
    const body = (await getJson(new URL('/_factory/journal', ctx.env.S3_ENDPOINT).toString())) as Partial<S3JournalStatus>;
    return typeof body.entries === 'number' ? (body as S3JournalStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** A plain moto server (started by an older factory, or by hand) keeps everything in memory. */
async function isPlainMoto(ctx: StackContext): Promise<boolean> {
  try {
    await getJson(new URL('/moto-api/data.json', ctx.env.S3_ENDPOINT).toString());
    return true;
  } catch {
    return false;
  }
}

/**
 * Object storage: moto's S3 server on loopback (MinIO is not installable here), made durable by
 * scripts/s3_server.py: every acknowledged write is in a journal under FACTORY_HOME, replayed on
 * start. moto does not enforce compliance-mode WORM; production points S3_ENDPOINT at MinIO or
 * Ceph RGW with Object Lock.
 */
export const s3: Component = {
  name: 's3',
  // A long journal takes a while to replay; the port opens only once it is done.
  startTimeoutMs: 120_000,
  hint: 'check that the port in S3_ENDPOINT is free and that .venv has moto[server] (npm run setup)',
  endpoint: (ctx) => ctx.env.S3_ENDPOINT,
  async healthy(ctx) {
    const client = createS3(ctx.env);
    try {
      await client.send(new ListBucketsCommand({}), { abortSignal: AbortSignal.timeout(1_000) });
      return true;
    } catch {
      return false;
    } finally {
      client.destroy();
    }
  },
  binds(ctx) {
    const url = new URL(ctx.env.S3_ENDPOINT);
    return [{ host: url.hostname, port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)), variable: 'S3_ENDPOINT' }];
  },
  async start(ctx) {
    const url = new URL(ctx.env.S3_ENDPOINT);
    const python = requireFile(venvPaths(ctx.env).python, 'the venv Python');
    requireFile(path.join(venvPaths(ctx.env).sitePackages, 'moto'), 'moto[server]');
    startDetached(processFiles(ctx.env.FACTORY_HOME, 's3'), python, [
      path.join(projectRoot, 'scripts', 's3_server.py'),
      '--host',
      url.hostname.replace(/^\[|\]$/g, ''),
      '--port',
      url.port || '80',
      '--journal',
      s3JournalPath(ctx.env.FACTORY_HOME),
    ]);
  },
  async prepare(ctx) {
    const client = createS3(ctx.env);
    try {
      await ensureBuckets(client, ctx.env);
    } finally {
      client.destroy();
    }
  },
  async describe(ctx) {
    const journal = await s3JournalStatus(ctx);
    if (journal) return `embedded moto, durable: journal of ${journal.entries} writes (${(journal.bytes / 1e6).toFixed(1)} MB); ${WORM_WARNING}`;
    if (await isPlainMoto(ctx))
      return `moto WITHOUT a journal: its contents are lost when it stops (\`factory dev down\` then \`dev up\` restarts it durable); ${WORM_WARNING}`;
    return undefined;
  },
  async facts(ctx) {
    const journal = await s3JournalStatus(ctx);
    if (journal) return { server: 'moto (embedded, journaled)', durable: true, enforcesComplianceWorm: false, journal };
    if (await isPlainMoto(ctx)) return { server: 'moto (in memory)', durable: false, enforcesComplianceWorm: false };
    return undefined;
  },
};
