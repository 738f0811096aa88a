import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { createS3, ensureBuckets } from '../../storage/s3.ts';
import type { Component } from '../component.ts';
import { processFiles, startDetached } from '../process.ts';
import { requireFile, venvPaths } from '../venv.ts';

/**
 * Object storage: moto's standalone S3 server on loopback (MinIO is not installable here). It keeps
 * objects in memory only; production points S3_ENDPOINT at MinIO or Ceph RGW with Object Lock.
 */
export const s3: Component = {
  name: 's3',
  startTimeoutMs: 30_000,
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
  async start(ctx) {
    const url = new URL(ctx.env.S3_ENDPOINT);
    const binary = requireFile(venvPaths(ctx.env).motoServer, 'moto_server');
    startDetached(processFiles(ctx.env.FACTORY_HOME, 's3'), binary, ['-H', url.hostname, '-p', url.port || '80']);
  },
  async prepare(ctx) {
    const client = createS3(ctx.env);
    try {
      await ensureBuckets(client, ctx.env);
    } finally {
      client.destroy();
    }
  },
};
