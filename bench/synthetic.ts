import fs from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { projectRoot } from '../src/config/env.ts';

export const WDBC_DIR = path.join(projectRoot, 'datasets', 'breast-cancer-wisconsin');

/**
 * Writes a CSV of the WDBC schema of about `bytes` bytes by cycling through the real rows (so a model
 * trained on the real file scores sensibly on it), streamed: the generator itself stays small.
 * Every `badEvery`-th row (when set) gets radius_mean=0x1A, which the certifier must exclude.
 * `startAt` starts the cycle at another real row: the same size and shape with other bytes (a bench
 * run that must not find its upload already stored, content-addressed, by an earlier run).
 * Returns the rows written and the bad rows among them.
 */
export async function writeSyntheticWdbc(
  file: string,
  bytes: number,
  opts: { badEvery?: number; startAt?: number } = {},
): Promise<{ rows: number; bad: number; bytes: number }> {
  const [header, ...rows] = fs.readFileSync(path.join(WDBC_DIR, 'wdbc.csv'), 'utf8').trimEnd().split(/\r?\n/);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const out = fs.createWriteStream(file);
  let written = Buffer.byteLength(`${header}\n`);
  out.write(`${header}\n`);
  let n = 0;
  let bad = 0;
  let batch: string[] = [];
  while (written < bytes) {
    let row = rows[(n + (opts.startAt ?? 0)) % rows.length]!;
    n += 1;
    if (opts.badEvery && n % opts.badEvery === 0) {
      row = `0x1A${row.slice(row.indexOf(','))}`;
      bad += 1;
    }
    batch.push(row);
    written += row.length + 1;
    if (batch.length === 5_000) {
      if (!out.write(`${batch.join('\n')}\n`)) await once(out, 'drain');
      batch = [];
    }
  }
  if (batch.length) out.write(`${batch.join('\n')}\n`);
  out.end();
  await once(out, 'finish');
  return { rows: n, bad, bytes: written };
}
