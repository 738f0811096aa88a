/**
 * What judging consent per row costs certification: one generated WDBC-shaped file (real rows cycled,
 * ~100 MB by default; FACTORY_BENCH_MB to change) certified by the streaming certifier (the same code
 * as the activity, without S3) twice, as it is and with a consent column judged against a purpose
 * (one row in 7 without consent), beside `sha256sum` over the same files in the same run.
 *   node --import tsx bench/consent-certify.ts
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../src/config/env.ts';
import { certifyStream } from '../src/datasets/certify.ts';
import { datasetSchemaSchema } from '../src/datasets/schema.ts';

const mb = Number(process.env.FACTORY_BENCH_MB ?? 100);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'consent-bench-'));
const wdbc = path.join(projectRoot, 'datasets', 'breast-cancer-wisconsin');
const [header, ...rows] = fs.readFileSync(path.join(wdbc, 'wdbc.csv'), 'utf8').trimEnd().split(/\r?\n/);
const schema = datasetSchemaSchema.parse(JSON.parse(fs.readFileSync(path.join(wdbc, 'schema.json'), 'utf8')));
const consented = datasetSchemaSchema.parse({
  ...schema,
  consent: { column: 'consent' },
  governance: { ...schema.governance, purposes: ['diagnosis-research', 'teaching'] },
});

function generate(file: string, consent: boolean): number {
  const fd = fs.openSync(file, 'w');
  fs.writeSync(fd, `${header}${consent ? ',consent' : ''}\n`);
  let bytes = 0;
  for (let i = 0; bytes < mb * 1024 * 1024; i++) {
    const chunk = rows.map((r, j) => `${r}${consent ? ((i + j) % 7 === 3 ? ',teaching' : ',diagnosis-research;teaching') : ''}\n`).join('');
    fs.writeSync(fd, chunk);
    bytes += Buffer.byteLength(chunk);
  }
  fs.closeSync(fd);
  return fs.statSync(file).size;
}

async function measure(name: string, file: string, s: typeof schema, purpose?: string) {
  const size = fs.statSync(file).size;
  let t = process.hrtime.bigint();
  execFileSync('sha256sum', [file]);
  const hashS = Number(process.hrtime.bigint() - t) / 1e9;
  t = process.hrtime.bigint();
  const r = await certifyStream({
    source: fs.createReadStream(file),
    schema: s,
    outFile: path.join(dir, 'out.csv'),
    maxRecordedExclusions: 1_000_000,
    ...(purpose ? { purpose } : {}),
  });
  const certS = Number(process.hrtime.bigint() - t) / 1e9;
  const mbps = (secs: number) => (size / 1024 / 1024 / secs).toFixed(1);
  console.log(
    JSON.stringify({
      name,
      mb: +(size / 1024 / 1024).toFixed(1),
      rows: r.rowsTotal,
      excludedForConsent: r.rowsExcludedForConsent,
      sha256sumMBs: +mbps(hashS),
      certifyMBs: +mbps(certS),
      certifyRowsPerS: Math.round(r.rowsTotal / certS),
    }),
  );
}

try {
  const plain = path.join(dir, 'plain.csv');
  const withConsent = path.join(dir, 'consent.csv');
  generate(plain, false);
  generate(withConsent, true);
  console.log(JSON.stringify({ load: os.loadavg().map((l) => +l.toFixed(1)), cpus: os.cpus().length }));
  await measure('no consent column', plain, schema);
  await measure('consent judged per row', withConsent, consented, 'diagnosis-research');
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
