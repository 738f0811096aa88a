/**
 * The environment a job (trainer, evaluator) runs with: an allow-list, never the worker's own
 * environment, which holds S3 and database credentials and the Temporal address. A job reads its
 * inputs from files its launcher put in JOB_DIR; it needs no secret.
 */
export const JOB_ENV_ALLOWED = [
  'PATH',
  'HOME',
  'TMPDIR',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  // What PyTorch and the CUDA runtime read to pick and size devices and threads.
  'CUDA_VISIBLE_DEVICES',
  'NVIDIA_VISIBLE_DEVICES',
  'CUDA_DEVICE_ORDER',
  'LD_LIBRARY_PATH',
  'OMP_NUM_THREADS',
  'MKL_NUM_THREADS',
] as const;

export function jobEnv(source: NodeJS.ProcessEnv, jobDir: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of JOB_ENV_ALLOWED) {
    const v = source[k];
    if (v !== undefined) env[k] = v;
  }
  env.PATH ??= '/usr/local/bin:/usr/bin:/bin';
  // No user site-packages: the job runs the project's venv and nothing a user dropped in ~/.local.
  env.PYTHONNOUSERSITE = '1';
  env.JOB_DIR = jobDir;
  return env;
}
