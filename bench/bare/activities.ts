import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/config/env.ts';
import { venvPaths } from '../../src/config/venv.ts';
import { loadEnv } from '../../src/config/env.ts';
import { jobEnv } from '../../src/jobs/child-env.ts';
import { TritonClient, tritonPaths, tritonUrl, writeRepositoryEntry } from '../../src/serving/triton.ts';

export interface BareInput {
  workDir: string;
  dataPath: string;
  schemaPath: string;
  epochs: number;
  seed: number;
}

/** Runs a trainer script as the governed activities do (the venv's python, -W ignore, the job's scrubbed environment). */
async function run(script: string, args: string[], dir: string, log: string): Promise<void> {
  const python = venvPaths(loadEnv()).python;
  await new Promise<void>((resolve, reject) => {
    const out = fs.openSync(path.join(dir, log), 'w');
    const p = spawn(python, ['-W', 'ignore', path.join(projectRoot, 'trainers', script), ...args], {
      env: jobEnv(process.env, dir),
      stdio: ['ignore', out, out],
    });
    p.on('error', reject);
    p.on('close', (code) => {
      fs.closeSync(out);
      if (code === 0) resolve();
      else reject(new Error(`${script} exited ${code}: ${fs.readFileSync(path.join(dir, log), 'utf8').slice(-500)}`));
    });
  });
}

export async function bareTrain(input: BareInput): Promise<string> {
  const dir = path.join(input.workDir, 'train');
  fs.mkdirSync(dir, { recursive: true });
  const args = ['--data', input.dataPath, '--schema', input.schemaPath, '--out', dir, '--epochs', String(input.epochs), '--seed', String(input.seed)];
  await run('train.py', [...args, '--image-digest', `sha256:${'be'.repeat(32)}`], dir, 'train.log');
  return path.join(dir, 'model.onnx');
}

export async function bareEvaluate(input: BareInput & { model: string }): Promise<Record<string, number>> {
  const dir = path.join(input.workDir, 'evaluate');
  fs.mkdirSync(dir, { recursive: true });
  await run(
    'evaluate.py',
    ['--model', input.model, '--data', input.dataPath, '--schema', input.schemaPath, '--seed', String(input.seed), '--out', dir],
    dir,
    'evaluate.log',
  );
  return JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')) as Record<string, number>;
}

/**
 * A plain Triton deployment, the serving work without its controls: the model repository entry
 * written (the same writer and layout as the governed deploy), and a load of every version on disk
 * (config.pbtxt's `all` policy), so Triton serves as many versions of the bare model as of the
 * governed one. No registry state, provenance, digest check, load slot, readiness wait or smoke.
 */
export async function bareDeploy(input: { model: string; version: number; onnx: string; inputWidth: number }): Promise<void> {
  const env = loadEnv();
  writeRepositoryEntry({
    repository: tritonPaths(env).modelRepository,
    model: input.model,
    version: input.version,
    onnx: fs.readFileSync(input.onnx),
    inputWidth: input.inputWidth,
    outputWidth: 1,
  });
  await new TritonClient(tritonUrl(env)).load(input.model);
}
