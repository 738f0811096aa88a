import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Env } from '../../config/env.ts';
import type { Component, StackContext } from '../component.ts';
import { processFiles, startDetached } from '../process.ts';
import { requireFile, venvPaths } from '../venv.ts';
import { tritonPaths, tritonUrl } from '../../serving/triton.ts';

export { tritonPaths, tritonUrl } from '../../serving/triton.ts';

/**
 * Lays out the backend directory the way Triton expects it: the wheel ships the Python backend and
 * one stub per Python version apart; the stub matching the venv's Python goes beside the backend.
 */
function prepareBackends(env: Env): { serverBinary: string; libraryPath: string } {
  const venv = venvPaths(env);
  const bundle = path.join(venv.sitePackages, 'pytriton', 'tritonserver');
  const serverBinary = requireFile(path.join(bundle, 'bin', 'tritonserver'), 'tritonserver (nvidia-pytriton)');
  const target = path.join(tritonPaths(env).backends, 'python');
  fs.mkdirSync(target, { recursive: true });
  for (const file of fs.readdirSync(path.join(bundle, 'backends', 'python'))) {
    if (file.endsWith('.so') || file.endsWith('.py')) fs.copyFileSync(path.join(bundle, 'backends', 'python', file), path.join(target, file));
  }
  const stub = requireFile(
    path.join(bundle, 'python_backend_stubs', venv.pythonVersion, 'triton_python_backend_stub'),
    `the Python ${venv.pythonVersion} backend stub`,
  );
  fs.copyFileSync(stub, path.join(target, 'triton_python_backend_stub'));
  fs.chmodSync(path.join(target, 'triton_python_backend_stub'), 0o755);
  // The stub links against libpython: point the loader at the interpreter's library directory.
  const pythonLibDir = execFileSync(venv.python, ['-c', 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))'], { encoding: 'utf8' }).trim();
  return { serverBinary, libraryPath: [path.join(venv.sitePackages, 'nvidia_pytriton.libs'), pythonLibDir].join(':') };
}

/** NVIDIA Triton in explicit model-control mode: models are loaded only through the repository API. */
export const triton: Component = {
  name: 'triton',
  startTimeoutMs: 60_000,
  hint: 'check that TRITON_HTTP_PORT, TRITON_GRPC_PORT and TRITON_METRICS_PORT are free and that .venv has nvidia-pytriton (npm run setup)',
  endpoint: (ctx) => tritonUrl(ctx.env),
  binds(ctx) {
    const { env } = ctx;
    const local = [
      { host: '127.0.0.1', port: env.TRITON_HTTP_PORT, variable: 'TRITON_HTTP_PORT' },
      { host: '127.0.0.1', port: env.TRITON_GRPC_PORT, variable: 'TRITON_GRPC_PORT' },
      { host: '127.0.0.1', port: env.TRITON_METRICS_PORT, variable: 'TRITON_METRICS_PORT' },
    ];
    if (!env.TRITON_URL) return local;
    // TRITON_URL names a server elsewhere: a local start would not serve it.
    const url = new URL(env.TRITON_URL);
    return [{ host: url.hostname, port: Number(url.port || 80), variable: 'TRITON_URL' }, ...local];
  },
  /**
   * Alive and answering: `/v2/health/live` within 5 s. Not `ready`: with --strict-readiness a server
   * busy loading models (50 deployments at once) answers not-ready, or slowly, and `up` (each bench
   * calls it) took that for a wedged server and restarted it, dropping every model being loaded.
   */
  async healthy(ctx) {
    try {
      const res = await fetch(`${tritonUrl(ctx.env)}/v2/health/live`, { signal: AbortSignal.timeout(5_000) });
      return res.ok;
    } catch {
      return false;
    }
  },
  /** After a start: the server answers ready (its repository scanned, nothing loaded yet in explicit mode). */
  async ready(ctx) {
    try {
      const res = await fetch(`${tritonUrl(ctx.env)}/v2/health/ready`, { signal: AbortSignal.timeout(1_000) });
      return res.ok;
    } catch {
      return false;
    }
  },
  async start(ctx: StackContext) {
    const { env } = ctx;
    const paths = tritonPaths(env);
    fs.mkdirSync(paths.modelRepository, { recursive: true });
    const { serverBinary, libraryPath } = prepareBackends(env);
    const args = [
      `--model-repository=${paths.modelRepository}`,
      `--backend-directory=${paths.backends}`,
      '--model-control-mode=explicit',
      '--http-address=127.0.0.1',
      `--http-port=${env.TRITON_HTTP_PORT}`,
      '--grpc-address=127.0.0.1',
      `--grpc-port=${env.TRITON_GRPC_PORT}`,
      `--metrics-port=${env.TRITON_METRICS_PORT}`,
      '--allow-metrics=true',
      '--exit-on-error=false',
      '--strict-readiness=true',
    ];
    startDetached(processFiles(env.FACTORY_HOME, 'triton'), serverBinary, args, {
      env: {
        ...process.env,
        LD_LIBRARY_PATH: [libraryPath, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
        // The Python stub does not inherit PYTHONPATH; it finds its environment from the first
        // python3 on PATH. Without the venv first it imports numpy 2 from the base interpreter, which
        // the bundled stub misreads (every output arrives as 0 bytes).
        PATH: [venvPaths(env).bin, process.env.PATH].filter(Boolean).join(':'),
      },
    });
  },
  /**
   * Serves again what the registry says is deployed: after a Triton (re)start it has no model loaded
   * (explicit mode). Each is reloaded from its artifact after its sha256 is checked again (see
   * src/serving/reconcile.ts); a refusal is recorded, never an `up` failure. Bounded to 90 s: what is
   * left is the serving worker's (it reconciles every 10 s). Postgres and S3 come before Triton.
   */
  async prepare(ctx) {
    const [{ reconcileServing }, { createEnvDb }, { createS3 }] = await Promise.all([
      import('../../serving/reconcile.ts'),
      import('../../db/connect.ts'),
      import('../../storage/s3.ts'),
    ]);
    const db = createEnvDb(ctx.env, 2, 'worker');
    const s3 = createS3(ctx.env);
    try {
      const report = await reconcileServing({ env: ctx.env, db, s3, log: ctx.log }, { budgetMs: 90_000, ignoreBackoff: true });
      for (const v of report.versions.filter((x) => x.outcome !== 'reloaded')) {
        ctx.log.warn({ model: v.model, version: v.version, outcome: v.outcome, reason: v.reason }, 'deployed version not served');
      }
    } catch (err) {
      // The registry unreadable (a fresh database, say) must not stop the stack: the worker retries.
      ctx.log.warn({ err: (err as Error).message }, 'serving reconcile skipped');
    } finally {
      s3.destroy();
      await db.destroy();
    }
  },
  async describe(ctx) {
    return `metrics http://127.0.0.1:${ctx.env.TRITON_METRICS_PORT}/metrics`;
  },
};
