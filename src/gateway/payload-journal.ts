import fs from 'node:fs';
import path from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { Logger } from '../log.ts';

/**
 * Payloads reach the restricted bucket through a local journal: each batch is appended to the
 * current segment file and fdatasync'ed (while its rows are inserted) before its requests are answered (a few milliseconds, where
 * one PUT to object storage took 40-50 ms on the loaded dev machine and stalled every batch behind
 * it); a shipper PUTs each closed segment as one object, named before it is written, and deletes it
 * once stored. A segment left by a crash is shipped at the next start. The row names the object and
 * line (`s3://bucket/<segment>.ndjson#<line>`) from the start: its payload is readable once shipped
 * (within `shipEveryMs` while the gateway runs).
 */
export class PayloadJournal {
  private segment?: { name: string; fd: number; lines: number; bytes: number; openedAt: number };
  private timer?: NodeJS.Timeout;
  private shipping: Promise<void> = Promise.resolve();
  /** Batches whose fdatasync has not returned (their segment stays open until then). */
  private inFlight = 0;

  constructor(
    private readonly dir: string,
    private readonly s3: S3Client,
    private readonly bucket: string,
    private readonly log: Logger,
    private readonly opts: { shipEveryMs?: number; maxSegmentBytes?: number } = {},
  ) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Ships what a previous process left, then ships each segment as it closes. */
  async start(): Promise<void> {
    for (const file of fs
      .readdirSync(this.dir)
      .filter((f) => f.endsWith('.ndjson'))
      .sort())
      await this.ship(file);
    this.timer = setInterval(() => this.rotate(), this.opts.shipEveryMs ?? 1_000);
    this.timer.unref();
  }

  /**
   * Reserves each payload's address at once (the row can be written while the payloads are), then
   * appends them durably; `durable` resolves once they are fdatasync'ed.
   */
  append(payloads: unknown[], firstId: string, at: Date): { uris: string[]; durable: Promise<void> } {
    if (!this.segment) {
      const day = at.toISOString().slice(0, 10).replaceAll('-', '');
      const name = `${day}-${firstId}.ndjson`;
      this.segment = { name, fd: fs.openSync(path.join(this.dir, name), 'a', 0o600), lines: 0, bytes: 0, openedAt: Date.now() };
    }
    const seg = this.segment;
    const text = payloads.map((p) => `${JSON.stringify(p)}\n`).join('');
    const first = seg.lines;
    seg.lines += payloads.length;
    seg.bytes += Buffer.byteLength(text);
    const uris = payloads.map((_, i) => `s3://${this.bucket}/${objectKey(seg.name)}#${first + i}`);
    // Written synchronously (the order of lines is their addresses); only the sync is awaited.
    fs.writeSync(seg.fd, text);
    this.inFlight++;
    const durable = new Promise<void>((resolve, reject) =>
      fs.fdatasync(seg.fd, (err) => {
        this.inFlight--;
        if (err) reject(err);
        else resolve();
      }),
    );
    if (seg.bytes >= (this.opts.maxSegmentBytes ?? 16 * 1024 * 1024))
      void durable.then(
        () => this.rotate(),
        () => undefined,
      );
    return { uris, durable };
  }

  /** Closes the current segment and ships it (in the background, one at a time). */
  private rotate(): void {
    const seg = this.segment;
    if (!seg || this.inFlight > 0) return; // a batch is syncing: the next tick closes it
    this.segment = undefined;
    fs.closeSync(seg.fd);
    this.shipping = this.shipping
      .then(() => this.ship(seg.name))
      .catch((err) => this.log.warn({ err: (err as Error).message, segment: seg.name }, 'payload segment not shipped yet'));
  }

  private async ship(file: string): Promise<void> {
    const full = path.join(this.dir, file);
    await this.s3.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey(file), Body: fs.readFileSync(full), ContentType: 'application/x-ndjson' }));
    fs.rmSync(full);
  }

  /** Closes and ships everything (a graceful stop). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    while (this.inFlight > 0) await new Promise((r) => setTimeout(r, 5));
    this.rotate();
    await this.shipping;
  }
}

/** `20261127-<uuid>.ndjson` → `2026/11/27/<uuid>.ndjson` */
function objectKey(segment: string): string {
  return `${segment.slice(0, 4)}/${segment.slice(4, 6)}/${segment.slice(6, 8)}/${segment.slice(9)}`;
}
