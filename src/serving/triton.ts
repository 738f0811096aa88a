import fs from 'node:fs';
import path from 'node:path';
import { type Env, projectRoot } from '../config/env.ts';

/** Triton's HTTP address: TRITON_URL when it runs elsewhere, else the local server on TRITON_HTTP_PORT. */
export function tritonUrl(env: Pick<Env, 'TRITON_URL' | 'TRITON_HTTP_PORT'>): string {
  return env.TRITON_URL ?? `http://127.0.0.1:${env.TRITON_HTTP_PORT}`;
}

/** Where Triton's files live: the model repository the deploy activity writes and Triton reads, and its backends. */
export function tritonPaths(env: Pick<Env, 'FACTORY_HOME' | 'TRITON_MODEL_REPOSITORY'>) {
  const root = path.join(env.FACTORY_HOME, 'triton');
  return { root, modelRepository: env.TRITON_MODEL_REPOSITORY ?? path.join(root, 'models'), backends: path.join(root, 'backends') };
}

/** Every call has a deadline: a wedged Triton must never hang a worker, a reconcile or `trace`. */
const DEFAULT_TIMEOUT_MS = 10_000;
/** Loading starts a Python stub and onnxruntime: seconds normally, more on a loaded machine. */
const LOAD_TIMEOUT_MS = 120_000;

export interface CallOptions {
  timeoutMs?: number;
  /** Aborts the call early (an activity's cancellation). */
  signal?: AbortSignal;
}

/** One version's state in Triton's repository index (explicit mode: only loaded ones are READY). */
export interface IndexEntry {
  name: string;
  version?: string;
  state?: string;
  reason?: string;
}

/** Triton's HTTP API (KServe v2 + repository extension), as the deploy step, the reconciler and the tests use it. */
export class TritonClient {
  constructor(readonly baseUrl: string) {}

  private async call(method: 'GET' | 'POST', route: string, body?: unknown, opts: CallOptions = {}): Promise<unknown> {
    const res = await fetch(`${this.baseUrl}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: deadline(opts),
    });
    const text = await res.text();
    if (!res.ok) throw new TritonError(`${method} ${route} → ${res.status}: ${text.slice(0, 500)}`, res.status);
    return text ? JSON.parse(text) : undefined;
  }

  /**
   * Loads a model (all its versions on disk, per its config.pbtxt), or with `config` the versions and
   * settings given there (Triton ignores config.pbtxt then): the reconciler and the deploy step name
   * the exact versions they verified, so a version directory nobody verified is never served.
   */
  load(model: string, opts: CallOptions & { config?: TritonModelConfig } = {}): Promise<unknown> {
    const body = opts.config ? { parameters: { config: JSON.stringify(opts.config) } } : {};
    return this.call('POST', `/v2/repository/models/${encodeURIComponent(model)}/load`, body, { timeoutMs: LOAD_TIMEOUT_MS, ...opts });
  }

  unload(model: string, opts: CallOptions = {}): Promise<unknown> {
    return this.call('POST', `/v2/repository/models/${encodeURIComponent(model)}/unload`, {}, opts);
  }

  /** The repository's models and, for loaded ones, each version's state; `ready` keeps only READY versions. */
  async index(opts: CallOptions & { ready?: boolean } = {}): Promise<IndexEntry[]> {
    return ((await this.call('POST', '/v2/repository/index', opts.ready ? { ready: true } : {}, opts)) ?? []) as IndexEntry[];
  }

  /** true when the version answers ready; false when it does not; throws when Triton cannot be reached in time. */
  async versionReady(model: string, version: number, opts: CallOptions = {}): Promise<boolean> {
    const res = await fetch(`${this.baseUrl}/v2/models/${encodeURIComponent(model)}/versions/${version}/ready`, { signal: deadline(opts) });
    await res.body?.cancel();
    return res.ok;
  }

  /** One FP32 batch in, the first output back (rows × columns). */
  async infer(model: string, rows: number[][], version?: number, opts: CallOptions = {}): Promise<{ outputs: number[][]; raw: InferResponse }> {
    const width = rows[0]?.length ?? 0;
    const route = version === undefined ? `/v2/models/${encodeURIComponent(model)}/infer` : `/v2/models/${encodeURIComponent(model)}/versions/${version}/infer`;
    const raw = (await this.call(
      'POST',
      route,
      { inputs: [{ name: 'input', shape: [rows.length, width], datatype: 'FP32', data: rows.flat() }] },
      { timeoutMs: 60_000, ...opts },
    )) as InferResponse;
    const out = raw.outputs[0];
    if (!out) throw new TritonError(`no output from ${model}`, 500);
    const cols = out.shape[1] ?? 1;
    const outputs = Array.from({ length: out.shape[0] ?? 0 }, (_, i) => out.data.slice(i * cols, (i + 1) * cols));
    return { outputs, raw };
  }
}

function deadline(opts: CallOptions): AbortSignal {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  return opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout;
}

export interface InferResponse {
  model_name: string;
  model_version: string;
  outputs: Array<{ name: string; datatype: string; shape: number[]; data: number[] }>;
}

export class TritonError extends Error {
  override name = 'TritonError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const modelTemplate = path.join(projectRoot, 'src', 'serving', 'onnx_model.py');

/** The model configuration Triton gets (as config.pbtxt, and as JSON in a load's `config` override). */
export interface TritonModelConfig {
  name: string;
  backend: 'python';
  max_batch_size: 0;
  input: Array<{ name: string; data_type: 'TYPE_FP32'; dims: number[] }>;
  output: Array<{ name: string; data_type: 'TYPE_FP32'; dims: number[] }>;
  instance_group: Array<{ kind: 'KIND_CPU'; count: number }>;
  version_policy: { all: Record<string, never> } | { specific: { versions: number[] } };
}

/**
 * An ONNX model served by onnxruntime in the Python backend. `versions` names the versions to serve;
 * without it every version directory on disk is servable (config.pbtxt, kept for manual loads).
 */
export function modelConfig(opts: { model: string; inputWidth: number; outputWidth: number; versions?: number[] }): TritonModelConfig {
  return {
    name: opts.model,
    backend: 'python',
    max_batch_size: 0,
    input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [-1, opts.inputWidth] }],
    output: [{ name: 'output', data_type: 'TYPE_FP32', dims: [-1, opts.outputWidth] }],
    instance_group: [{ kind: 'KIND_CPU', count: 1 }],
    version_policy: opts.versions ? { specific: { versions: [...new Set(opts.versions)].sort((a, b) => a - b) } } : { all: {} },
  };
}

/** A model name Triton and the file system both take as it is (the registry checks names too; this is the last guard). */
const SAFE_MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * Writes `<repository>/<model>/config.pbtxt` and `<version>/{model.onnx,model.py}`: an ONNX file
 * served by onnxruntime inside Triton's Python backend. The ONNX comes as bytes, or as a file
 * (already checked against its digest) that is moved into place, so a large model is never held in
 * memory. Writing the same bytes again is a no-op for Triton.
 */
export function writeRepositoryEntry(opts: {
  repository: string;
  model: string;
  version: number;
  onnx: Buffer | { file: string };
  inputWidth: number;
  outputWidth: number;
}): string {
  if (!SAFE_MODEL_NAME.test(opts.model) || opts.model === '..' || !Number.isInteger(opts.version) || opts.version < 1) {
    throw new Error(`refusing repository entry for model ${JSON.stringify(opts.model)} version ${opts.version}`);
  }
  const modelDir = path.join(opts.repository, opts.model);
  const versionDir = path.join(modelDir, String(opts.version));
  fs.mkdirSync(versionDir, { recursive: true });
  const c = modelConfig(opts);
  const config = [
    `name: "${c.name}"`,
    'backend: "python"',
    'max_batch_size: 0',
    `input [ { name: "input", data_type: TYPE_FP32, dims: [ -1, ${opts.inputWidth} ] } ]`,
    `output [ { name: "output", data_type: TYPE_FP32, dims: [ -1, ${opts.outputWidth} ] } ]`,
    'instance_group [ { kind: KIND_CPU, count: 1 } ]',
    // Every version stays servable so a rollback is a load, not a rebuild.
    'version_policy: { all: {} }',
    '',
  ].join('\n');
  // Each file lands by rename: a deploy and a reconcile (or two reconcilers) may write the same
  // entry while Triton loads it, and Triton must never read a half-written file.
  const replace = (target: string, write: (tmp: string) => void) => {
    const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    write(tmp);
    fs.renameSync(tmp, target);
  };
  replace(path.join(modelDir, 'config.pbtxt'), (tmp) => fs.writeFileSync(tmp, config));
  const onnx = opts.onnx;
  if (Buffer.isBuffer(onnx)) replace(path.join(versionDir, 'model.onnx'), (tmp) => fs.writeFileSync(tmp, onnx));
  else fs.renameSync(onnx.file, path.join(versionDir, 'model.onnx'));
  replace(path.join(versionDir, 'model.py'), (tmp) => fs.copyFileSync(modelTemplate, tmp));
  return versionDir;
}

/** A scratch file inside the model's directory (same file system: the move into place is a rename). */
export function repositoryScratchFile(repository: string, model: string): string {
  if (!SAFE_MODEL_NAME.test(model) || model === '..') throw new Error(`refusing repository entry for model ${JSON.stringify(model)}`);
  const dir = path.join(repository, model);
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `.incoming-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.onnx`);
}
