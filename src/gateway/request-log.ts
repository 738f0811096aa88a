import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Insertable, Kysely } from 'kysely';
import type { Database, GatewayRequestsTable } from '../db/schema.ts';
import type { PayloadJournal } from './payload-journal.ts';

/** One request's metadata row as the gateway writes it (see migration 0010). */
export type RequestRow = Insertable<GatewayRequestsTable> & { received_at: Date; payload_uri: string | null };

/** What goes to the restricted bucket for a served request: the inputs and the outputs, whole. */
export interface Payload {
  request_id: string;
  request: unknown;
  response: unknown;
}

interface Pending {
  row: RequestRow;
  payload?: Payload;
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface RequestLogOptions {
  /** Most rows in one INSERT (and payloads in one object). */
  maxBatch?: number;
  /** Called after each batch commits (figures for the benchmark). */
  onBatch?: (rows: number, millis: number) => void;
}

/**
 * Group commit: `record` resolves only once its row is committed in PostgreSQL (and its payload is
 * fsynced in the payload journal, on its way to the restricted bucket: src/gateway/payload-journal.ts),
 * and the gateway answers only then, so a crash can lose no request it acknowledged. Rows arriving
 * while a batch is being written wait for the next one: under load one INSERT (and one fdatasync)
 * carries many concurrent requests; an idle gateway writes each at once (no timer, no added wait).
 */
export class RequestLog {
  private queue: Pending[] = [];
  private flushing = false;
  private readonly maxBatch: number;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly payloads: PayloadJournal,
    private readonly opts: RequestLogOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 500;
  }

  record(row: RequestRow, payload?: Payload): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ row, payload, resolve, reject });
      if (!this.flushing) void this.flush();
    });
  }

  /** Waits for everything queued (a graceful stop). */
  async drain(): Promise<void> {
    while (this.flushing || this.queue.length) await new Promise((r) => setTimeout(r, 5));
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length) {
        const batch = this.queue.splice(0, this.maxBatch);
        const t0 = performance.now();
        try {
          await this.write(batch);
          for (const p of batch) p.resolve();
          this.opts.onBatch?.(batch.length, performance.now() - t0);
        } catch (err) {
          for (const p of batch) p.reject(err as Error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async write(batch: Pending[]): Promise<void> {
    const withPayload = batch.filter((p) => p.payload);
    let durable: Promise<void> = Promise.resolve();
    if (withPayload.length) {
      const first = withPayload[0]!.row;
      const appended = this.payloads.append(
        withPayload.map((p) => p.payload),
        first.request_id,
        first.received_at,
      );
      withPayload.forEach((p, i) => (p.row.payload_uri = appended.uris[i]!));
      durable = appended.durable;
    }
    // The rows and the payloads are made durable at the same time; both before anyone is answered.
    await Promise.all([
      this.db
        .insertInto('gateway_requests')
        .values(batch.map((p) => p.row))
        .execute(),
      durable,
    ]);
  }
}

export class PayloadNotYetShipped extends Error {
  override name = 'PayloadNotYetShipped';
}

/** Reads one payload from its batch object (`s3://bucket/key#line`); checks it is the request's. */
export async function readPayload(s3: S3Client, uri: string, requestId: string): Promise<Payload> {
  const m = /^s3:\/\/([^/]+)\/(.+)#(\d+)$/.exec(uri);
  if (!m) throw new Error(`not a payload address: ${uri}`);
  const res = await s3.send(new GetObjectCommand({ Bucket: m[1], Key: m[2] })).catch((err: Error) => {
    if (err.name === 'NoSuchKey')
      throw new PayloadNotYetShipped(`the payload of ${requestId} is not in the bucket yet (the gateway ships its journal every second): retry`);
    throw err;
  });
  const lines = (await res.Body!.transformToString()).split('\n');
  const line = lines[Number(m[3])];
  const payload = line ? (JSON.parse(line) as Payload) : undefined;
  if (!payload || payload.request_id !== requestId) throw new Error(`the payload object ${uri} does not hold request ${requestId}`);
  return payload;
}
