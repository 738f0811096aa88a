import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  PutObjectCommand,
  PutObjectLegalHoldCommand,
  PutObjectRetentionCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEnv } from '../../src/config/env.ts';
import { StackRefusal } from '../../src/dev/component.ts';
import { s3, s3JournalPath, s3JournalStatus } from '../../src/dev/components/s3.ts';
import { isAlive, processFiles, readPid } from '../../src/dev/process.ts';
import { stackDown, stackStatus, stackUp } from '../../src/dev/stack.ts';
import { createLogger } from '../../src/log.ts';
import { bucket, createS3 } from '../../src/storage/s3.ts';
import { factoryCli } from './harness.ts';

/** A port nothing listens on now (the kernel picks it, we let it go). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function isolated(port: number, host = '127.0.0.1') {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'factory-dev-s3-'));
  const overrides = { FACTORY_HOME: home, S3_ENDPOINT: `http://${host}:${port}` };
  return { home, overrides, ctx: { env: loadEnv({ ...process.env, ...overrides }), log: createLogger('test', 'silent') } };
}

/** Everything a restart must bring back: every version with its body, retention, legal hold; delete markers. */
async function snapshot(client: S3Client, buckets: string[]) {
  const out: unknown[] = [];
  for (const Bucket of buckets) {
    const listed = await client.send(new ListObjectVersionsCommand({ Bucket }));
    for (const v of listed.Versions ?? []) {
      const head = await client.send(new HeadObjectCommand({ Bucket, Key: v.Key, VersionId: v.VersionId }));
      const body = await client.send(new GetObjectCommand({ Bucket, Key: v.Key, VersionId: v.VersionId }));
      out.push({
        Bucket,
        Key: v.Key,
        VersionId: v.VersionId,
        IsLatest: v.IsLatest,
        LastModified: v.LastModified?.toISOString(),
        mode: head.ObjectLockMode,
        until: head.ObjectLockRetainUntilDate?.toISOString(),
        hold: head.ObjectLockLegalHoldStatus,
        metadata: head.Metadata,
        body: Buffer.from(await body.Body!.transformToByteArray()).toString('base64'),
      });
    }
    for (const m of listed.DeleteMarkers ?? [])
      out.push({ Bucket, marker: m.Key, VersionId: m.VersionId, IsLatest: m.IsLatest, LastModified: m.LastModified?.toISOString() });
  }
  return out;
}

async function killHard(home: string): Promise<void> {
  const pid = readPid(processFiles(home, 's3'))!;
  process.kill(-pid, 'SIGKILL');
  while (isAlive(pid)) await sleep(20);
}

describe('dev S3 keeps its contents (journaled moto, real server, isolated home and port)', () => {
  let stack: ReturnType<typeof isolated>;
  let client: S3Client;
  let buckets: string[];
  let before: unknown[];

  beforeAll(async () => {
    stack = isolated(await freePort());
    expect((await stackUp(stack.ctx, { components: [s3] })).started).toEqual(['s3']);
    client = createS3(stack.ctx.env);
    const env = stack.ctx.env;
    buckets = [bucket(env, 'artifacts'), bucket(env, 'evidence'), bucket(env, 'quarantine')];
    const [artifacts, evidence, quarantine] = buckets as [string, string, string];
    // Two versions of one key; the first under an explicit COMPLIANCE retention and a legal hold.
    const v1 = await client.send(
      new PutObjectCommand({
        Bucket: artifacts,
        Key: 'm/model.onnx',
        Body: Buffer.from([0, 1, 2, 10, 13, 255, 10]),
        Metadata: { sha256: 'sha256:abc', under_score: 'kept' },
        ObjectLockMode: 'COMPLIANCE',
        ObjectLockRetainUntilDate: new Date(Date.now() + 86_400_000),
      }),
    );
    await client.send(new PutObjectCommand({ Bucket: artifacts, Key: 'm/model.onnx', Body: 'second version' }));
    await client.send(new PutObjectLegalHoldCommand({ Bucket: artifacts, Key: 'm/model.onnx', VersionId: v1.VersionId, LegalHold: { Status: 'ON' } }));
    // The evidence bucket's default retention (COMPLIANCE, 30 days from the write): a replay must not restart its clock.
    await client.send(new PutObjectCommand({ Bucket: evidence, Key: 'datasets/ü manifest.json', Body: '{"rows":569}' }));
    // A delete marker hides a key; the version under it stays.
    await client.send(new PutObjectCommand({ Bucket: quarantine, Key: 'raw/gone.csv', Body: 'a,b\n1,2\n' }));
    await client.send(new DeleteObjectCommand({ Bucket: quarantine, Key: 'raw/gone.csv' }));
    before = await snapshot(client, buckets);
    expect(before).toHaveLength(5);
    // A second apart, so a LastModified minted by the replay would differ.
    await sleep(1_100);
  });

  afterAll(async () => {
    client?.destroy();
    if (stack) await stackDown(stack.ctx, { components: [s3] });
  });

  it('every version, retention and legal hold survives `dev down` / `dev up`', async () => {
    expect(await stackDown(stack.ctx, { components: [s3] })).toEqual(['s3']);
    expect(await s3.healthy(stack.ctx)).toBe(false);
    expect((await stackUp(stack.ctx, { components: [s3] })).started).toEqual(['s3']);
    expect(await snapshot(client, buckets)).toEqual(before);
  });

  it('survives a kill -9 of the server: a write acknowledged just before the kill is there after `dev up`', async () => {
    const acked = await client.send(new PutObjectCommand({ Bucket: buckets[0], Key: 'm/last-word.txt', Body: 'acknowledged' }));
    await killHard(stack.home);
    expect((await stackUp(stack.ctx, { components: [s3] })).started).toEqual(['s3']);
    const got = await client.send(new GetObjectCommand({ Bucket: buckets[0], Key: 'm/last-word.txt', VersionId: acked.VersionId }));
    expect(await got.Body!.transformToString()).toBe('acknowledged');
    before = await snapshot(client, buckets);
    expect(before).toHaveLength(6);
  });

  it('cuts off a torn last journal entry (never acknowledged) and serves everything before it', async () => {
    await killHard(stack.home);
    const journal = s3JournalPath(stack.home);
    const whole = fs.statSync(journal).size;
    // A crash in the middle of an append: half a header, no body.
    fs.appendFileSync(journal, fs.readFileSync(journal).subarray(0, 80));
    expect((await stackUp(stack.ctx, { components: [s3] })).started).toEqual(['s3']);
    expect(await snapshot(client, buckets)).toEqual(before);
    // Cut back to the last whole entry (`up` writes nothing when the buckets are already set up).
    expect(await s3JournalStatus(stack.ctx)).toMatchObject({ truncatedBytes: 80, bytes: whole });
  });

  it('a retention change is journaled too (here a shortening, which moto allows: see the lock contract)', async () => {
    const Bucket = buckets[1]!;
    const Key = 'datasets/ü manifest.json';
    const shorter = new Date(Math.ceil((Date.now() + 3_600_000) / 1000) * 1000);
    await client.send(new PutObjectRetentionCommand({ Bucket, Key, Retention: { Mode: 'COMPLIANCE', RetainUntilDate: shorter } }));
    const changed = await snapshot(client, buckets);
    await killHard(stack.home);
    await stackUp(stack.ctx, { components: [s3] });
    const after = await snapshot(client, buckets);
    expect(after).toEqual(changed);
    expect(after).toContainEqual(expect.objectContaining({ Key, until: shorter.toISOString() }));
    before = after;
  });

  it('a typo in S3_ENDPOINT is refused with the reason; the running server keeps serving its objects', async () => {
    const pid = readPid(processFiles(stack.home, 's3'))!;
    const typo = { ...stack.overrides, S3_ENDPOINT: `http://127.0.0.1:${await freePort()}` };
    const ctx = { env: loadEnv({ ...process.env, ...typo }), log: stack.ctx.log };
    const err = await stackUp(ctx, { components: [s3] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackRefusal);
    expect((err as Error).message).toMatch(/S3_ENDPOINT names another endpoint than the one it was started on.*left running/s);

    // The CLI, as a person would run it: exit 4 (refused), nothing stopped.
    const cli = await factoryCli(['dev', 'up'], typo);
    expect(cli.code).toBe(4);
    expect(cli.stderr).toContain(`our s3 (pid ${pid}) runs at ${stack.ctx.env.S3_ENDPOINT}`);
    expect(cli.stderr).not.toMatch(/\n\s+at /);

    expect(isAlive(pid)).toBe(true);
    expect(readPid(processFiles(stack.home, 's3'))).toBe(pid);
    expect(await snapshot(client, buckets)).toEqual(before);
  });

  it('`dev status` says the store is durable and does NOT enforce compliance-mode WORM', async () => {
    const status = await stackStatus(stack.ctx, [s3]);
    expect(status.s3).toMatchObject({ healthy: true, managed: true, facts: { durable: true, enforcesComplianceWorm: false } });
    const text = await factoryCli(['dev', 'status'], stack.overrides);
    expect(text.stdout).toContain('does NOT enforce compliance-mode WORM');
    expect(text.stdout).toContain('MinIO or Ceph RGW with Object Lock');
  });
});

describe('dev up refuses an S3 endpoint it cannot serve (nothing of ours runs there)', () => {
  it('a host that is not this machine', async () => {
    // 192.0.2.0/24 is TEST-NET-1: never routed, so nothing answers there.
    const { ctx } = isolated(await freePort(), '192.0.2.10');
    const err = await stackUp(ctx, { components: [s3] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StackRefusal);
    expect((err as Error).message).toMatch(/starts servers only on this machine's loopback.*not on 192\.0\.2\.10 \(S3_ENDPOINT\)/);
    expect(readPid(processFiles(ctx.env.FACTORY_HOME, 's3'))).toBeUndefined();
  });

  it('a port held by a process that is not our server', async () => {
    // A stranger that accepts connections and never answers.
    const stranger = net.createServer((socket) => socket.on('error', () => {}));
    await new Promise<void>((resolve) => stranger.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = stranger.address() as net.AddressInfo;
      const { ctx } = isolated(port);
      const err = await stackUp(ctx, { components: [s3] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StackRefusal);
      expect((err as Error).message).toContain(`port ${port} on 127.0.0.1 (S3_ENDPOINT) is held by a process that is not our s3`);
      expect(stranger.listening).toBe(true);
      expect(readPid(processFiles(ctx.env.FACTORY_HOME, 's3'))).toBeUndefined();
    } finally {
      stranger.close();
    }
  });
});
