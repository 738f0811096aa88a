/**
 * Peak memory of certifying and evaluating a large dataset (issue 6: a 200 MB CSV in under 2 GB).
 *
 *   npm run bench:large -- [--mb 200]
 *
 * Generates a CSV of the WDBC schema (real rows cycled, one row in 1,000 with radius_mean=0x1A) under
 * $FACTORY_HOME/landing, then measures, each in its own process so the peak is the step's own:
 *  - certify: the real quarantineRaw + certifyDataset activities (lane check, streaming copy to the
 *    quarantine bucket, streaming validation, certified upload, registry row), peak RSS of that Node
 *    process (getrusage maxrss);
 *  - evaluate: trainers/evaluate.py, as the gpu activity runs it, on the certified file with a model
 *    trained on the real dataset, peak RSS from getrusage(RUSAGE_CHILDREN).
 * Throughput (issue 10's benchmark, `--mb 1024` for its 1 GB): ingest (quarantineRaw: stream, hash
 * and copy to the quarantine bucket) in MB/s against `sha256sum` over the same file in the same run
 * (goal ≥ 0.7×), and the certification rate (MB/s and rows/s). `--skip-evaluate` leaves the evaluator out.
 * Exits 1 if either peak reaches 2 GiB. Needs the stack (`factory dev up`, brought up if not running).
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadEnv, projectRoot } from '../src/config/env.ts';
import { venvPaths } from '../src/dev/venv.ts';
import { stackUp } from '../src/dev/stack.ts';
import { createLogger } from '../src/log.ts';
import { WDBC_DIR, writeSyntheticWdbc } from './synthetic.ts';
import { figure } from './summary.ts';

const run = promisify(execFile);
const LIMIT_MIB = 2048;
const env = loadEnv();
const self = fileURLToPath(import.meta.url);

/** The certify step, run in a child process: `--certify <dataset> <schema>` prints one JSON line. */
async function certifyStep(dataset: string, schema: string): Promise<void> {
  const { MockActivityEnvironment } = await import('@temporalio/testing');
  const { quarantineRaw, certifyDataset } = await import('../activities/datasets.ts');
  const { closeActivityDeps } = await import('../activities/deps.ts');
  const baseline = process.resourceUsage().maxRSS;
  // Ingest's hashing stage alone, the same code quarantineRaw streams the file through (DigestCounter
  // into the staging file); the upload to the quarantine bucket follows it there.
  const { DigestCounter } = await import('../src/storage/stream.ts');
  const { pipeline } = await import('node:stream/promises');
  const staging = `${dataset}.hash-stage`;
  const th = performance.now();
  await pipeline(fs.createReadStream(dataset), new DigestCounter(), fs.createWriteStream(staging));
  const hashStageMs = performance.now() - th;
  fs.rmSync(staging, { force: true });
  const t0 = performance.now();
  const mock = new MockActivityEnvironment();
  const quarantined = (await mock.run(quarantineRaw, { datasetPath: dataset, schemaPath: schema })) as Awaited<ReturnType<typeof quarantineRaw>>;
  const t1 = performance.now();
  const certified = (await mock.run(certifyDataset, {
    workflowId: `bench-large-${Date.now()}`,
    quarantined,
    schemaPath: schema,
    maxExcludedFraction: 0.1,
  })) as Awaited<ReturnType<typeof certifyDataset>>;
  const t2 = performance.now();
  await closeActivityDeps();
  console.log(
    JSON.stringify({
      baselineMiB: baseline / 1024,
      peakMiB: process.resourceUsage().maxRSS / 1024,
      quarantineMs: t1 - t0,
      hashStageMs,
      certifyMs: t2 - t1,
      certifiedKey: certified.certifiedKey,
      rowsTotal: certified.rowsTotal,
      rowsExcluded: certified.rowsExcluded,
    }),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mb: { type: 'string', default: '200' }, 'skip-evaluate': { type: 'boolean', default: false } } });
  const mb = Number(values.mb);
  await stackUp({ env, log: createLogger('bench', 'warn') }, {});
  const dir = path.join(env.FACTORY_HOME, 'landing', 'bench-large');
  fs.mkdirSync(dir, { recursive: true });
  const dataset = path.join(dir, `wdbc-${mb}mb.csv`);
  const schema = path.join(dir, 'schema.json');
  fs.copyFileSync(path.join(WDBC_DIR, 'schema.json'), schema);
  let t = performance.now();
  // A random start: each run uploads a file no earlier run stored (keys are content digests).
  const gen = await writeSyntheticWdbc(dataset, mb * 1024 * 1024, { badEvery: 1000, startAt: Math.floor(Math.random() * 10_000) });
  console.log(
    `generated ${dataset}: ${(gen.bytes / 1024 / 1024).toFixed(1)} MiB, ${gen.rows} rows (${gen.bad} with 0x1A) in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );

  // The baseline: the system's sha256sum over the same file, from the page cache as ingest reads it
  // (one warm-up read first, so neither side pays for the disk alone).
  execFileSync('cat', [dataset], { stdio: ['ignore', 'ignore', 'ignore'] });
  t = performance.now();
  execFileSync('sha256sum', [dataset], { stdio: ['ignore', 'ignore', 'inherit'] });
  const sha256sumMs = performance.now() - t;

  const { stdout } = await run(process.execPath, ['--import', 'tsx', self, '--certify', dataset, schema], { maxBuffer: 1 << 20, env: process.env });
  const cert = JSON.parse(stdout.trim().split('\n').pop()!) as {
    baselineMiB: number;
    peakMiB: number;
    quarantineMs: number;
    hashStageMs: number;
    certifyMs: number;
    certifiedKey: string;
    rowsTotal: number;
    rowsExcluded: number;
  };

  const evaluated = values['skip-evaluate'] ? undefined : await evaluateLarge(cert.certifiedKey, schema);

  const cpu = os.cpus();
  console.log(`machine: ${cpu.length} × ${cpu[0]?.model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${os.release()}, Node ${process.version}`);
  console.log(`dataset: ${(gen.bytes / 1024 / 1024).toFixed(1)} MiB, ${cert.rowsTotal} rows, ${cert.rowsExcluded} excluded`);
  console.log(`certify (quarantineRaw + certifyDataset, one Node process):`);
  console.log(`  time       quarantine ${(cert.quarantineMs / 1000).toFixed(1)} s, certify ${(cert.certifyMs / 1000).toFixed(1)} s`);
  console.log(`  peak RSS   ${cert.peakMiB.toFixed(0)} MiB (process after loading modules: ${cert.baselineMiB.toFixed(0)} MiB)`);
  const mib = gen.bytes / 1024 / 1024;
  const ingestMBs = mib / (cert.quarantineMs / 1000);
  const hashMBs = mib / (sha256sumMs / 1000);
  const hashStageMBs = mib / (cert.hashStageMs / 1000);
  console.log(`throughput (same file, same run):`);
  console.log(`  sha256sum            ${hashMBs.toFixed(1)} MiB/s (${(sha256sumMs / 1000).toFixed(1)} s)`);
  console.log(
    `  ingest's hashing     ${hashStageMBs.toFixed(1)} MiB/s: read, SHA-256 and write the staging copy (DigestCounter); ratio ${(hashStageMBs / hashMBs).toFixed(2)}×  goal ≥ 0.7× ${hashStageMBs / hashMBs >= 0.7 ? 'OK' : 'MISSED'}`,
  );
  figure(`ingest's hashing / sha256sum (${mib.toFixed(0)} MiB)`, hashStageMBs / hashMBs, '×', '≥ 0.7', hashStageMBs / hashMBs >= 0.7);
  figure(`ingest with upload (moto) / sha256sum`, ingestMBs / hashMBs, '×');
  figure(`certify rate`, cert.rowsTotal / (cert.certifyMs / 1000), 'rows/s');
  console.log(
    `  ingest (quarantine)  ${ingestMBs.toFixed(1)} MiB/s: stream, SHA-256 and upload to the quarantine bucket (moto); ratio ${(ingestMBs / hashMBs).toFixed(2)}×`,
  );
  console.log(
    `  certify              ${(mib / (cert.certifyMs / 1000)).toFixed(1)} MiB/s, ${Math.round(cert.rowsTotal / (cert.certifyMs / 1000))} rows/s (parse, validate, certified upload, manifest)`,
  );
  if (evaluated) {
    const { ev, metrics } = evaluated;
    console.log(`evaluate (trainers/evaluate.py on the certified file, ${metrics.n} held-out rows):`);
    console.log(`  time       ${ev.seconds.toFixed(1)} s, exit ${ev.rc}, auc ${metrics.auc?.toFixed(4)}`);
    console.log(`  peak RSS   ${ev.peakMiB.toFixed(0)} MiB`);
  }
  fs.rmSync(dataset, { force: true });
  if ((evaluated && evaluated.ev.rc !== 0) || cert.peakMiB >= LIMIT_MIB || (evaluated?.ev.peakMiB ?? 0) >= LIMIT_MIB) {
    console.error(`FAIL: a peak reached ${LIMIT_MIB} MiB or the evaluator failed`);
    process.exit(1);
  }
  console.log(`OK: both peaks under ${LIMIT_MIB} MiB`);
}

/** A model trained on the real dataset, then the evaluator on the certified large file, its peak measured. */
async function evaluateLarge(
  certifiedKey: string,
  schema: string,
): Promise<{ ev: { rc: number; peakMiB: number; seconds: number }; metrics: Record<string, number> }> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-large-'));
  const venv = venvPaths(env);
  execFileSync(
    venv.python,
    [
      '-W',
      'ignore',
      path.join(projectRoot, 'trainers', 'train.py'),
      '--data',
      path.join(WDBC_DIR, 'wdbc.csv'),
      '--schema',
      schema,
      '--out',
      work,
      '--epochs',
      '300',
    ],
    { stdio: 'ignore' },
  );
  const { createS3, bucket } = await import('../src/storage/s3.ts');
  const { downloadToFile } = await import('../src/storage/stream.ts');
  const s3 = createS3(env);
  const certifiedFile = path.join(work, 'data.csv');
  await downloadToFile(s3, bucket(env, 'certified'), certifiedKey, certifiedFile);
  s3.destroy();
  const measure = [
    'import json, resource, subprocess, sys, time',
    't = time.time(); r = subprocess.run(sys.argv[1:]); s = time.time() - t',
    'print(json.dumps({"rc": r.returncode, "peakMiB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "seconds": s}))',
  ].join('\n');
  const evalOut = execFileSync(
    venv.python,
    [
      '-c',
      measure,
      venv.python,
      '-W',
      'ignore',
      path.join(projectRoot, 'trainers', 'evaluate.py'),
      '--model',
      path.join(work, 'model.onnx'),
      '--data',
      certifiedFile,
      '--schema',
      schema,
      '--out',
      work,
    ],
    { encoding: 'utf8' },
  );
  const lines = evalOut.trim().split('\n');
  const ev = JSON.parse(lines.pop()!) as { rc: number; peakMiB: number; seconds: number };
  const metrics = JSON.parse(fs.readFileSync(path.join(work, 'metrics.json'), 'utf8')) as Record<string, number>;
  fs.rmSync(work, { recursive: true, force: true });
  return { ev, metrics };
}

if (process.argv[2] === '--certify') await certifyStep(process.argv[3]!, process.argv[4]!);
else await main();
