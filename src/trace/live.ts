import { headObject, modelObjects, datasetObjects } from '../audit/objects.ts';
import type { Env } from '../config/env.ts';
import { TritonClient } from '../serving/triton.ts';
import { createS3 } from '../storage/s3.ts';
import type { ModelTrace, ServingState, TracedObject } from './trace.ts';

/**
 * What `trace` asks the world, not the registry: whether the deployment's Triton serves the version
 * now, and whether each object the trace names exists (with the sha256 its writer recorded). All
 * at once, each with a short deadline: when everything answers this adds a few tens of ms; when
 * something does not, at most `timeoutMs`.
 */
export async function probeTrace(env: Env, t: ModelTrace, { timeoutMs = 1_000 }: { timeoutMs?: number } = {}): Promise<ModelTrace> {
  const refs = [
    ...modelObjects({ model_name: t.model.name, version: t.model.version, artifact_uri: t.model.artifactUri, artifact_digest: t.model.artifactDigest }),
    ...datasetObjects({ manifest_digest: t.data.manifestDigest, raw_uri: t.data.rawUri, raw_sha256: t.data.rawSha256, certified_uri: t.data.certifiedUri, manifest_uri: t.data.manifestUri }),
  ];
  const s3 = createS3(env);
  try {
    const [serving, objects] = await Promise.all([
      t.deployment ? servingState(t.deployment, timeoutMs) : Promise.resolve(undefined),
      Promise.all(refs.map((r) => headObject(s3, r, timeoutMs))),
    ]);
    return {
      ...t,
      ...(t.deployment && serving ? { deployment: { ...t.deployment, serving } } : {}),
      objects: objects.map((o): TracedObject => ({ role: o.role, uri: o.uri, expected: o.expected, state: o.state, ...(o.actual ? { actual: o.actual } : {}), ...(o.reason ? { reason: o.reason } : {}) })),
    };
  } finally {
    s3.destroy();
  }
}

/** Asks the Triton the deployment names (its recorded endpoint) whether that version is ready. */
export async function servingState(d: { endpoint: string; tritonModel: string; tritonVersion: number }, timeoutMs = 1_000): Promise<ServingState> {
  let origin: string;
  try {
    origin = new URL(d.endpoint).origin;
  } catch {
    return 'unreachable';
  }
  try {
    return (await new TritonClient(origin).versionReady(d.tritonModel, d.tritonVersion, { timeoutMs })) ? 'ready' : 'not loaded';
  } catch {
    return 'unreachable';
  }
}
