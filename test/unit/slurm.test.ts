import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEnv } from '../../src/config/env.ts';
import { SlurmRequestRefused, batchScript, explainSbatchError, parseJobId, parseSacct, sbatchArgs, shellQuote } from '../../src/jobs/slurm.ts';

describe('Slurm launcher (pure parts)', () => {
  it('the batch script is bash, runs the command with every argument verbatim, and records the exit status like a local job', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'slurm-script-'));
    try {
      const args = [`it's`, 'a b', '$HOME', '`id`', 'line\nbreak', '"q"', ''];
      const script = batchScript({ jobDir: dir, command: '/bin/bash', args: ['-c', 'printf "<%s>\\n" "$@"; exit 7', 'sh', ...args] });
      expect(script.startsWith('#!/bin/bash\n')).toBe(true);
      const file = path.join(dir, 'job.sbatch');
      fs.writeFileSync(file, script, { mode: 0o700 });
      fs.writeFileSync(path.join(dir, 'lease'), '{}');
      // Run as Slurm would, from another directory and with no JOB_DIR: the script sets both itself.
      const out = execFileSync('/bin/bash', [file], { cwd: os.tmpdir(), env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
      expect(out).toBe(args.map((a) => `<${a}>\n`).join(''));
      expect(fs.readFileSync(path.join(dir, 'exit_code'), 'utf8').trim()).toBe('7');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an argument with a NUL; quotes single quotes', () => {
    expect(() => shellQuote('a\0b')).toThrow(SlurmRequestRefused);
    expect(shellQuote(`a'b`)).toBe(`'a'\\''b'`);
  });

  it('sbatch arguments: parsable, own log appended, never requeued, GRES and partition only when configured', () => {
    const base = { jobName: 'factory-train', jobDir: '/j', logFile: '/j/train.log', script: '/j/job.sbatch' };
    expect(sbatchArgs({ ...base, request: {} })).toEqual([
      '--parsable',
      '--job-name=factory-train',
      '--chdir=/j',
      '--output=/j/train.log',
      '--open-mode=append',
      '--export=ALL',
      '--no-requeue',
      '/j/job.sbatch',
    ]);
    expect(sbatchArgs({ ...base, request: { partition: 'gpu', gres: 'gpu:a100:2', timeLimit: '2:00:00' } }).slice(7)).toEqual([
      '--partition=gpu',
      '--gres=gpu:a100:2',
      '--time=2:00:00',
      '/j/job.sbatch',
    ]);
  });

  it("explains Slurm's refusals of a GRES or partition request (the texts slurm-wlm 22.05 prints), and leaves other failures retryable", () => {
    const tooMany = explainSbatchError('sbatch: error: Batch job submission failed: Requested node configuration is not available\n', {
      gres: 'gpu:2',
      partition: 'debug',
    });
    expect(tooMany?.message).toMatch(/^no node in partition debug can ever satisfy --gres=gpu:2: ask for fewer GPUs \(FACTORY_SLURM_GRES\)/);
    expect(tooMany?.message).toContain('Slurm said: Batch job submission failed: Requested node configuration is not available');
    const unknown = explainSbatchError('sbatch: error: Invalid generic resource (gres) specification\n', { gres: 'gpu:1' });
    expect(unknown?.message).toContain('Slurm does not know the GPU request --gres=gpu:1');
    expect(unknown?.message).toContain('GresTypes=gpu');
    const partition = explainSbatchError(
      'sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job submission failed: Invalid partition name specified\n',
      { partition: 'nope' },
    );
    expect(partition?.message).toContain('Slurm has no partition nope: fix FACTORY_SLURM_PARTITION');
    expect(explainSbatchError('sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n', {})).toBeUndefined();
    // Slurm's text is bounded and stripped of control characters before it reaches a message.
    const noisy = explainSbatchError(`sbatch: error: Invalid generic resource (gres) specification \u001b[2J${'x'.repeat(5000)}`, {});
    expect(noisy!.message).not.toContain('\u001b');
    expect(noisy!.message.length).toBeLessThan(600);
  });

  it('reads the job id sbatch --parsable prints, and the last sacct -c record of the job', () => {
    expect(parseJobId('42\n')).toBe(42);
    expect(parseJobId('43;cluster\n')).toBe(43);
    expect(() => parseJobId('Submitted batch job 44')).toThrow(/no job id/);
    const out =
      '7|factory-train|debug|COMPLETED|0:0|00:00:12|vm|2026-11-27T12:31:48|2026-11-27T12:32:00|/jobs/a/train\n8|x|debug|CANCELLED by 0|0:15|00:00:01|vm|s|e|/w\n';
    expect(parseSacct(out, 7)).toEqual({
      jobId: 7,
      jobName: 'factory-train',
      partition: 'debug',
      state: 'COMPLETED',
      exitCode: '0:0',
      elapsed: '00:00:12',
      nodeList: 'vm',
      start: '2026-11-27T12:31:48',
      end: '2026-11-27T12:32:00',
      workDir: '/jobs/a/train',
    });
    expect(parseSacct(out, 8)?.state).toBe('CANCELLED');
    expect(parseSacct(out, 9)).toBeUndefined();
    // An earlier cluster's job 7 (ids start again after a controller loses its state) is not this one.
    const reused = `7|factory-train|debug|FAILED|3:0|00:00:00|vm|s|e|/jobs/old/train\n${out}`;
    expect(parseSacct(reused, 7, '/jobs/a/train')?.state).toBe('COMPLETED');
    expect(parseSacct(reused, 7, '/jobs/elsewhere')).toBeUndefined();
  });

  it('configuration: the local launcher by default; GRES, partition and time limit validated', () => {
    expect(loadEnv({}).FACTORY_JOB_LAUNCHER).toBe('local');
    const e = loadEnv({
      FACTORY_JOB_LAUNCHER: 'slurm',
      FACTORY_SLURM_GRES: 'gpu:a100:2',
      FACTORY_SLURM_PARTITION: 'gpu-onprem',
      FACTORY_SLURM_TIME_LIMIT: '1-00:00:00',
    });
    expect(e).toMatchObject({ FACTORY_JOB_LAUNCHER: 'slurm', FACTORY_SLURM_GRES: 'gpu:a100:2', FACTORY_SLURM_PARTITION: 'gpu-onprem' });
    expect(() => loadEnv({ FACTORY_JOB_LAUNCHER: 'kubernetes' })).toThrow(/FACTORY_JOB_LAUNCHER/);
    expect(() => loadEnv({ FACTORY_SLURM_GRES: 'gpu:1 --wrap=id' })).toThrow(/FACTORY_SLURM_GRES.*GPU GRES request/);
    expect(() => loadEnv({ FACTORY_SLURM_PARTITION: 'a;b' })).toThrow(/FACTORY_SLURM_PARTITION/);
    expect(() => loadEnv({ FACTORY_SLURM_TIME_LIMIT: 'forever' })).toThrow(/FACTORY_SLURM_TIME_LIMIT/);
  });
});
