import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/env.ts';

/** Triton's HTTP API (KServe v2 + repository extension), as the deploy step and the tests use it. */
export class TritonClient {
  constructor(readonly baseUrl: string) {}

  private async call(method: 'GET' | 'POST', route: string, body?: unknown): Promise<unknown> {
    const res = await fetch(`${this.baseUrl}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(120_000),
    });
    const text = await res.text();
    if (!res.ok) throw new TritonError(`${method} ${route} → ${res.status}: ${text}`, res.status);
    return text ? JSON.parse(text) : undefined;
  }

  load(model: string): Promise<unknown> {
    return this.call('POST', `/v2/repository/models/${encodeURIComponent(model)}/load`, {});
  }

  unload(model: string): Promise<unknown> {
    return this.call('POST', `/v2/repository/models/${encodeURIComponent(model)}/unload`, {});
  }

  async versionReady(model: string, version: number): Promise<boolean> {
    const res = await fetch(`${this.baseUrl}/v2/models/${encodeURIComponent(model)}/versions/${version}/ready`);
    return res.ok;
  }


  /** One FP32 batch in, the first output back (rows × columns). */
  async infer(model: string, rows: number[][], version?: number): Promise<{ outputs: number[][]; raw: InferResponse }> {
    const width = rows[0]?.length ?? 0;
    const route = version === undefined ? `/v2/models/${encodeURIComponent(model)}/infer` : `/v2/models/${encodeURIComponent(model)}/versions/${version}/infer`;
    const raw = (await this.call('POST', route, {
      inputs: [{ name: 'input', shape: [rows.length, width], datatype: 'FP32', data: rows.flat() }],
    })) as InferResponse;
    const out = raw.outputs[0];
    if (!out) throw new TritonError(`no output from ${model}`, 500);
    const cols = out.shape[1] ?? 1;
    const outputs = Array.from({ length: out.shape[0] ?? 0 }, (_, i) => out.data.slice(i * cols, (i + 1) * cols));
    return { outputs, raw };
  }
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

/**
 * Writes `<repository>/<model>/config.pbtxt` and `<version>/{model.onnx,model.py}`: an ONNX file
 * served by onnxruntime inside Triton's Python backend. Writing the same bytes again is a no-op.
 */
export function writeRepositoryEntry(opts: {
  repository: string;
  model: string;
  version: number;
  onnx: Buffer;
  inputWidth: number;
  outputWidth: number;
}): string {
  const modelDir = path.join(opts.repository, opts.model);
  const versionDir = path.join(modelDir, String(opts.version));
  fs.mkdirSync(versionDir, { recursive: true });
  const config = [
    `name: "${opts.model}"`,
    'backend: "python"',
    'max_batch_size: 0',
    `input [ { name: "input", data_type: TYPE_FP32, dims: [ -1, ${opts.inputWidth} ] } ]`,
    `output [ { name: "output", data_type: TYPE_FP32, dims: [ -1, ${opts.outputWidth} ] } ]`,
    'instance_group [ { kind: KIND_CPU, count: 1 } ]',
    // Every version stays servable so a rollback is a load, not a rebuild.
    'version_policy: { all: {} }',
    '',
  ].join('\n');
  fs.writeFileSync(path.join(modelDir, 'config.pbtxt'), config);
  fs.writeFileSync(path.join(versionDir, 'model.onnx'), opts.onnx);
  fs.copyFileSync(modelTemplate, path.join(versionDir, 'model.py'));
  return versionDir;
}
