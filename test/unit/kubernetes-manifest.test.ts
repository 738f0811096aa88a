import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { jobEnv } from '../../src/jobs/child-env.ts';
import { type KubernetesJobRequest, ManifestRefused, jobManifest, jobName } from '../../src/jobs/kubernetes.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import { env } from '../helpers.ts';

const exec = promisify(execFile);
/** The Kubernetes version whose JSON schema the manifests are checked against (kubernetes-validate ships it). */
const KUBERNETES_VERSION = '1.30.0';

function request(over: Partial<KubernetesJobRequest> = {}): KubernetesJobRequest {
  const jobDir = '/var/lib/factory/jobs/lifecycle-bc-2f1d_ABC/train';
  return {
    workflowId: 'lifecycle-bc-2f1d_ABC',
    step: 'train',
    namespace: 'ai-factory',
    imageRepository: 'registry.example:5000/ai-factory/trainer',
    imageDigest: `sha256:${'ab'.repeat(32)}`,
    command: ['/opt/venv/bin/python', '-W', 'ignore'],
    args: ['trainers/train.py', '--data', `${jobDir}/data.csv`, '--epochs', '200'],
    gpus: 1,
    jobDir,
    jobsMountPath: '/var/lib/factory/jobs',
    jobsClaim: 'factory-jobs',
    env: jobEnv({ PATH: '/usr/bin:/bin', AWS_SECRET_ACCESS_KEY: 'never', CUDA_VISIBLE_DEVICES: '0' }, jobDir),
    deadlineSeconds: 86_400,
    ...over,
  };
}

/** Validates files with kubernetes-validate (PyPI; the Kubernetes OpenAPI as JSON schema), strict: unknown fields fail. */
async function validate(...manifests: unknown[]): Promise<{ code: number; out: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-job-'));
  try {
    const files = manifests.map((m, i) => {
      const f = path.join(dir, `job-${i}.json`);
      fs.writeFileSync(f, JSON.stringify(m));
      return f;
    });
    const bin = path.join(venvPaths(env).bin, 'kubernetes-validate');
    try {
      const { stdout, stderr } = await exec(bin, ['--strict', '-k', KUBERNETES_VERSION, ...files]);
      return { code: 0, out: stdout + stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, out: e.stdout + e.stderr };
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('Kubernetes Job manifests', () => {
  it(`training and evaluation Jobs validate against the Kubernetes ${KUBERNETES_VERSION} schema (kubernetes-validate --strict)`, async () => {
    const train = jobManifest(request());
    const evaluate = jobManifest(
      request({ step: 'evaluate', gpus: 0, jobDir: '/var/lib/factory/jobs/lifecycle-bc-2f1d_ABC/evaluate', deadlineSeconds: undefined }),
    );
    const got = await validate(train, evaluate);
    expect(got.out.match(/passed for resource job\//g)).toHaveLength(2);
    expect(got.code, got.out).toBe(0);
  }, 60_000);

  it('the validator is not a rubber stamp: a misspelt field and a wrong type fail it', async () => {
    const typo = jobManifest(request()) as { spec: Record<string, unknown> };
    typo.spec.backofLimit = 0;
    expect((await validate(typo)).code).not.toBe(0);
    const wrongType = jobManifest(request()) as { spec: Record<string, unknown> };
    wrongType.spec.backoffLimit = 'none';
    expect((await validate(wrongType)).code).not.toBe(0);
  }, 60_000);

  it('the image is pinned by digest, GPUs are nvidia.com/gpu limits, no retries behind the factory, the scrubbed environment only', () => {
    const m = jobManifest(request({ gpus: 2 })) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const c = m.spec.template.spec.containers[0];
    expect(c.image).toBe(`registry.example:5000/ai-factory/trainer@sha256:${'ab'.repeat(32)}`);
    expect(c.resources.limits).toEqual({ 'nvidia.com/gpu': '2' });
    expect(m.spec.backoffLimit).toBe(0);
    expect(m.spec.template.spec.restartPolicy).toBe('Never');
    expect(c.env.map((e: { name: string }) => e.name)).toEqual(['CUDA_VISIBLE_DEVICES', 'JOB_DIR', 'PATH', 'PYTHONNOUSERSITE']);
    expect(JSON.stringify(m)).not.toContain('never');
    expect(jobManifest(request({ gpus: 0 })) as any).toMatchObject({ spec: { template: { spec: { containers: [{ resources: { limits: {} } }] } } } }); // eslint-disable-line @typescript-eslint/no-explicit-any
  });

  it('refuses a tag instead of a digest, a bad repository or namespace, control characters, a job directory off the volume', () => {
    expect(() => jobManifest(request({ imageDigest: 'latest' }))).toThrow(ManifestRefused);
    expect(() => jobManifest(request({ imageRepository: 'registry.example/trainer:latest' }))).toThrow(/no tag or digest/);
    expect(() => jobManifest(request({ namespace: 'AI_Factory' }))).toThrow(/namespace/);
    expect(() => jobManifest(request({ args: ['--epochs', '1\n2'] }))).toThrow(/control character/);
    expect(() => jobManifest(request({ jobDir: '/tmp/elsewhere' }))).toThrow(/under the jobs volume/);
    expect(() => jobManifest(request({ gpus: 1.5 }))).toThrow(/gpus/);
  });

  it('job names are DNS-1123 labels, distinct for distinct workflow ids', () => {
    const long = `lifecycle-${'x'.repeat(200)}`;
    for (const id of ['lifecycle-bc-1', 'Lifecycle_BC_1', long, '---', `${long}y`]) {
      const n = jobName(id, 'train');
      expect(n).toMatch(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    }
    expect(jobName('lifecycle-bc-1', 'train')).not.toBe(jobName('Lifecycle_BC_1', 'train'));
    expect(jobName(long, 'train')).not.toBe(jobName(`${long}y`, 'train'));
  });
});
