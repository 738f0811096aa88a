import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../src/config/env.ts';
import { venvPaths } from '../../src/config/venv.ts';
import { loadEnv } from '../../src/config/env.ts';
import { jobEnv } from '../../src/jobs/child-env.ts';

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
