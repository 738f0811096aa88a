import { createHash } from 'node:crypto';
import { type ObjectCheck, type ObjectRef, datasetObjects, modelObjects } from '../audit/objects.ts';
import type { Env } from '../config/env.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';
import { TritonClient } from '../serving/triton.ts';
import { MAX_ENVELOPE_BYTES, checkProvenance } from '../provenance/statement.ts';
import { loadTrustedKeys } from '../signing/trusted-keys.ts';
import { getObjectSigned, headObjectSigned } from './s3-head.ts';
import type { ModelTrace, ServingState, TracedObject, TracedProvenance } from './trace.ts';

/**
 * What `trace` asks the world, not the registry: whether the deployment's Triton serves the version
 * now, and whether each object the trace names exists (with the sha256 its writer recorded). All
 * at once, each with a short deadline: when everything answers this adds a few tens of ms; when
 * something does not, at most `timeoutMs`. No S3 SDK (its load alone took longer than the trace).
 */
export async function probeTrace(env: Env, t: ModelTrace, { timeoutMs = 1_000 }: { timeoutMs?: number } = {}): Promise<ModelTrace> {
  const refs = [
    ...modelObjects({ model_name: t.model.name, version: t.model.version, artifact_uri: t.model.artifactUri, artifact_digest: t.model.artifactDigest }),
    ...datasetObjects({
      manifest_digest: t.data.manifestDigest,
      raw_uri: t.data.rawUri,
      raw_sha256: t.data.rawSha256,
      certified_uri: t.data.certifiedUri,
      manifest_uri: t.data.manifestUri,
    }),
  ];
  const [serving, objects, provenance] = await Promise.all([
    t.deployment ? servingState(t.deployment, timeoutMs) : Promise.resolve(undefined),
    Promise.all(refs.map((r) => headObject(env, r, timeoutMs))),
    t.provenance ? verifyTracedProvenance(env, t, t.provenance, timeoutMs) : Promise.resolve(undefined),
  ]);
  return {
    ...t,
    ...(provenance ? { provenance } : {}),
    ...(t.deployment && serving ? { deployment: { ...t.deployment, serving } } : {}),
    objects: objects.map((o): TracedObject => ({
      role: o.role,
      uri: o.uri,
      expected: o.expected,
      state: o.state,
      ...(o.actual ? { actual: o.actual } : {}),
      ...(o.reason ? { reason: o.reason } : {}),
    })),
  };
}

/**
 * Existence only (one HEAD, short deadline). The sha256 our writers store in the object's metadata
 * is compared when present: it catches a plain overwrite, though metadata is a claim, not proof
 * (`audit verify --objects` hashes the bytes).
 */
export async function headObject(env: Env, ref: ObjectRef, timeoutMs: number): Promise<ObjectCheck> {
  const loc = parseS3Uri(ref.uri);
  if (!loc) return { ...ref, state: 'missing', reason: 'not an s3:// URI' };
  try {
    const head = await headObjectSigned(env, loc, timeoutMs);
    if (head.status === 404) return { ...ref, state: 'missing' };
    if (head.status !== 200) return { ...ref, state: 'unreadable', reason: `object storage answered ${head.status}` };
    if (head.sha256 === undefined) return { ...ref, state: 'different', reason: 'the object carries no sha256 of ours: overwritten by another writer' };
    return head.sha256 === ref.expected ? { ...ref, state: 'ok' } : { ...ref, state: 'different', actual: head.sha256 };
  } catch (err) {
    const e = err as Error;
    return {
      ...ref,
      state: 'unreadable',
      reason: e.name === 'TimeoutError' || e.name === 'AbortError' ? `no answer within ${timeoutMs} ms` : e.message.slice(0, 200),
    };
  }
}

/**
 * Fetches the provenance envelope and checks it as a deployment does (src/provenance/statement.ts):
 * its bytes are the ones recorded, a trusted factory key signed it, and its digests are the registry's.
 */
export async function verifyTracedProvenance(env: Env, t: ModelTrace, p: TracedProvenance, timeoutMs: number): Promise<TracedProvenance> {
  const no = (reason: string): TracedProvenance => ({ ...p, verified: false, reason });
  const loc = parseS3Uri(p.uri);
  if (!loc) return no('not an s3:// URI');
  let trusted;
  try {
    trusted = loadTrustedKeys(env).map((k) => k.publicKey);
  } catch (err) {
    return no(`not checked: ${(err as Error).message}`);
  }
  try {
    const got = await getObjectSigned(env, loc, timeoutMs, MAX_ENVELOPE_BYTES);
    if (got.status === 404) return no('the envelope is missing from object storage');
    if (got.status !== 200 || !got.bytes) return no(`object storage answered ${got.status}`);
    if (got.truncated) return no(`the envelope is larger than ${MAX_ENVELOPE_BYTES} bytes`);
    const actual = `sha256:${createHash('sha256').update(got.bytes).digest('hex')}`;
    if (actual !== p.digest) return no(`the envelope is ${actual}, the registry holds ${p.digest}`);
    const verdict = checkProvenance(got.bytes, trusted, {
      artifactDigest: t.model.artifactDigest,
      datasetManifestDigest: t.data.manifestDigest,
      commitSha: t.code.commitSha,
      policyDigest: t.evaluation.policyDigest,
      imageDigest: t.code.imageDigest,
    });
    return verdict.ok ? { ...p, verified: true, keyId: verdict.keyId } : no(verdict.reason);
  } catch (err) {
    const e = err as Error;
    return no(
      e.name === 'TimeoutError' || e.name === 'AbortError' ? `not checked: no answer within ${timeoutMs} ms` : `not checked: ${e.message.slice(0, 200)}`,
    );
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
