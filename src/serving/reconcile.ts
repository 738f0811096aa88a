import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { type Kysely, sql } from 'kysely';
import { appendAuditEvent } from '../audit/append.ts';
import type { Env } from '../config/env.ts';
import type { Database } from '../db/schema.ts';
import { processFiles, readPid, readStartRecord } from '../process/records.ts';
import type { Logger } from '../log.ts';
import { type ProvenanceRow, type StoredProvenanceVerdict, verifyStoredProvenance } from '../provenance/verify.ts';
import { EvidenceDiffers, EvidenceMissing, downloadVerified, parseS3Uri } from './artifact.ts';
import { TritonClient, modelConfig, repositoryScratchFile, tritonPaths, tritonUrl, writeRepositoryEntry } from './triton.ts';

/**
 * Serving reconciliation: the registry says which versions are deployed; Triton (explicit model
 * control) forgets every loaded model when it restarts. Each pass asks Triton once which versions
 * are READY (the repository index) and reloads each deployed version that is not, from its artifact
 * in object storage, after checking the artifact's sha256 against the registry again. An artifact
 * that is missing or different is never loaded: the refusal is reported and recorded in the audit
 * trail, once per (deployment, Triton start). A pass changes nothing when everything is served, so
 * it is cheap to run every few seconds (the serving worker) and on every `factory dev up`.
 */

export interface ReconcileDeps {
  env: Env;
  db: Kysely<Database>;
  s3: S3Client;
  log: Logger;
}

/** A deployed version as the registry has it, with its latest deployment. */
export interface DeployedVersion {
  modelVersionId: number;
  model: string;
  version: number;
  workflowId: string;
  artifactUri: string;
  artifactDigest: string;
  deploymentId: string;
  inputWidth: number;
  outputWidth: number;
  /** The registry's facts its signed provenance must agree with (src/provenance/verify.ts); provenance_uri NULL for versions registered before it. */
  provenance: ProvenanceRow;
  /** Its run recorded `provenance.signed` in the audit trail: it must have verifying provenance, whatever the row says now. */
  provenanceSigned: boolean;
}

export interface VersionOutcome {
  model: string;
  version: number;
  /** reloaded: verified and READY again; refused: the artifact is missing or differs (recorded); failed: will be tried again. */
  outcome: 'reloaded' | 'refused' | 'failed' | 'deferred';
  reason?: string;
  artifactUri: string;
  auditEventId?: string;
}

export interface ReconcileReport {
  /** unreachable: Triton did not answer its index within the deadline; nothing was tried. */
  triton: 'ok' | 'unreachable' | 'not asked';
  /** The Triton start this pass saw (see tritonStartId). */
  tritonStart: string;
  deployed: number;
  alreadyReady: number;
  versions: VersionOutcome[];
  millis: number;
}

const INDEX_TIMEOUT_MS = 2_000;
const READY_TIMEOUT_MS = 60_000;

/** Every deployed version, with the widths its deployment was smoke-tested with (the model's I/O shape). */
export async function deployedVersions(db: Kysely<Database>): Promise<DeployedVersion[]> {
  const rows = await sql<{
    id: number;
    model_name: string;
    version: number;
    workflow_id: string;
    artifact_uri: string;
    artifact_digest: string;
    deployment_id: string;
    smoke: { input?: unknown; output?: unknown } | null;
    dataset_manifest_digest: string;
    commit_sha: string;
    policy_digest: string;
    image_digest: string;
    provenance_uri: string | null;
    provenance_digest: string | null;
    provenance_signed: boolean;
  }>`
    SELECT m.id, m.model_name, m.version, m.workflow_id, m.artifact_uri, m.artifact_digest, d.id AS deployment_id, d.smoke,
      m.dataset_manifest_digest, m.commit_sha, m.policy_digest, m.image_digest, m.provenance_uri, m.provenance_digest,
      EXISTS (SELECT 1 FROM audit_events e WHERE e.workflow_id = m.workflow_id AND e.run_id = m.run_id AND e.step = 'provenance.signed') AS provenance_signed
    FROM model_versions m
    JOIN LATERAL (SELECT id, smoke FROM deployments WHERE model_version_id = m.id ORDER BY deployed_at DESC LIMIT 1) d ON true
    WHERE m.state = 'deployed'
    ORDER BY m.model_name, m.version`.execute(db);
  return rows.rows.map((r) => ({
    modelVersionId: r.id,
    model: r.model_name,
    version: r.version,
    workflowId: r.workflow_id,
    artifactUri: r.artifact_uri,
    artifactDigest: r.artifact_digest,
    deploymentId: r.deployment_id,
    inputWidth: width(r.smoke?.input),
    outputWidth: width(r.smoke?.output),
    provenance: {
      artifact_digest: r.artifact_digest,
      dataset_manifest_digest: r.dataset_manifest_digest,
      commit_sha: r.commit_sha,
      policy_digest: r.policy_digest,
      image_digest: r.image_digest,
      provenance_uri: r.provenance_uri,
      provenance_digest: r.provenance_digest,
    },
    provenanceSigned: r.provenance_signed,
  }));
}

function width(rows: unknown): number {
  const first = Array.isArray(rows) ? (rows[0] as unknown) : undefined;
  return Array.isArray(first) && first.length > 0 ? first.length : 0;
}

/**
 * Which Triton start this is: for the local stack, the pid and start time `dev up` recorded; for a
 * Triton elsewhere (TRITON_URL) or one found running, the UTC day. It keys the audit event of a
 * refusal, so every process that reconciles after the same start records it once.
 */
export function tritonStartId(env: Env): string {
  if (!env.TRITON_URL) {
    const files = processFiles(env.FACTORY_HOME, 'triton');
    const pid = readPid(files);
    const rec = pid === undefined ? undefined : readStartRecord(files, pid);
    if (rec) return `pid-${rec.pid}-${rec.startedAt}`;
  }
  return `day-${new Date().toISOString().slice(0, 10)}`;
}

/** Retry spacing for versions that were refused or failed, per process: a refusal is re-checked, not re-downloaded every pass. */
const backoff = new Map<string, { attempts: number; next: number }>();

function due(key: string): boolean {
  return (backoff.get(key)?.next ?? 0) <= Date.now();
}

function later(key: string): void {
  const attempts = (backoff.get(key)?.attempts ?? 0) + 1;
  backoff.set(key, { attempts, next: Date.now() + Math.min(300_000, 10_000 * 2 ** (attempts - 1)) });
}

/**
 * One reconciliation pass (see the module comment). Bounded: each HTTP call has a timeout and the
 * pass stops starting new models after `budgetMs`, reporting the rest as deferred.
 */
export async function reconcileServing(
  deps: ReconcileDeps,
  opts: { budgetMs?: number; signal?: AbortSignal; ignoreBackoff?: boolean } = {},
): Promise<ReconcileReport> {
  const t0 = Date.now();
  const { env, db, log } = deps;
  const budgetEnds = t0 + (opts.budgetMs ?? 120_000);
  const tritonStart = tritonStartId(env);
  const deployed = await deployedVersions(db);
  const report: ReconcileReport = { triton: 'not asked', tritonStart, deployed: deployed.length, alreadyReady: 0, versions: [], millis: 0 };
  const done = () => ({ ...report, millis: Date.now() - t0 });
  if (!deployed.length) return done();

  const triton = new TritonClient(tritonUrl(env));
  let ready: Set<string>;
  try {
    const index = await triton.index({ ready: true, timeoutMs: INDEX_TIMEOUT_MS, signal: opts.signal });
    ready = new Set(index.filter((e) => e.state === 'READY' && e.version !== undefined).map((e) => `${e.name}@${e.version}`));
  } catch {
    report.triton = 'unreachable';
    return done();
  }
  report.triton = 'ok';

  const missing = new Map<string, DeployedVersion[]>();
  for (const v of deployed) {
    if (ready.has(`${v.model}@${v.version}`)) report.alreadyReady += 1;
    else missing.set(v.model, [...(missing.get(v.model) ?? []), v]);
  }
  for (const [model, versions] of missing) {
    if (Date.now() > budgetEnds || opts.signal?.aborted) {
      report.versions.push(...versions.map((v) => ({ model, version: v.version, outcome: 'deferred' as const, artifactUri: v.artifactUri })));
      continue;
    }
    // Versions of this model Triton serves now stay in the load (a load names every version to serve):
    // the deployed ones, and one a deployment is bringing up at this moment.
    const serving = [...ready].filter((r) => r.startsWith(`${model}@`)).map((r) => Number(r.slice(model.length + 1)));
    report.versions.push(...(await reconcileModel(deps, triton, model, versions, serving, tritonStart, opts)));
  }
  const result = done();
  const changed = result.versions.filter((v) => v.outcome !== 'deferred');
  if (changed.length) log.info({ tritonStart, versions: changed, millis: result.millis }, 'serving reconciled');
  return result;
}

async function reconcileModel(
  deps: ReconcileDeps,
  triton: TritonClient,
  model: string,
  versions: DeployedVersion[],
  serving: number[],
  tritonStart: string,
  opts: { signal?: AbortSignal; ignoreBackoff?: boolean },
): Promise<VersionOutcome[]> {
  const { env, s3, db, log } = deps;
  const repository = tritonPaths(env).modelRepository;
  const out: VersionOutcome[] = [];
  const verified: DeployedVersion[] = [];
  for (const v of versions) {
    const key = `${v.deploymentId}@${tritonStart}`;
    if (!opts.ignoreBackoff && !due(key)) {
      out.push({ model, version: v.version, outcome: 'deferred', reason: 'refused or failed recently; retried later', artifactUri: v.artifactUri });
      continue;
    }
    const loc = parseS3Uri(v.artifactUri);
    if (!v.inputWidth || !v.outputWidth) {
      later(key);
      out.push({
        model,
        version: v.version,
        outcome: 'failed',
        reason: 'its deployment recorded no smoke input and output to take the model shape from',
        artifactUri: v.artifactUri,
      });
      continue;
    }
    // A version deployed with signed provenance is reloaded only while its provenance still verifies;
    // one whose run signed provenance (the audit trail says so) and whose row names none now is refused.
    if (v.provenance.provenance_uri || v.provenanceSigned) {
      let verdict: StoredProvenanceVerdict;
      try {
        verdict = await verifyStoredProvenance({ env, s3 }, v.provenance);
      } catch (err) {
        later(key);
        out.push({ model, version: v.version, outcome: 'failed', reason: `provenance not fetched: ${(err as Error).message}`, artifactUri: v.artifactUri });
        continue;
      }
      if (!verdict.ok) {
        later(key);
        const event = await appendAuditEvent(db, {
          workflowId: v.workflowId,
          runId: 'serving-reconcile',
          step: `provenance.refused.${v.deploymentId.split('/').at(-2) ?? v.deploymentId}@${tritonStart}`,
          kind: 'provenance.refused',
          actor: 'factory-serving',
          payload: {
            at: 'reconcile',
            modelName: model,
            version: v.version,
            modelVersionId: v.modelVersionId,
            deploymentId: v.deploymentId,
            provenanceUri: v.provenance.provenance_uri,
            provenanceDigest: v.provenance.provenance_digest,
            reason: verdict.reason,
            tritonStart,
          },
          occurredAt: new Date().toISOString(),
        });
        log.warn(
          { model, version: v.version, reason: verdict.reason, auditEventId: event.eventId },
          'deployed version not reloaded: its provenance does not verify',
        );
        out.push({
          model,
          version: v.version,
          outcome: 'refused',
          reason: `provenance: ${verdict.reason}`,
          artifactUri: v.artifactUri,
          auditEventId: event.eventId,
        });
        continue;
      }
    }
    const scratch = repositoryScratchFile(repository, model);
    try {
      if (!loc) throw new EvidenceMissing(v.artifactUri);
      await downloadVerified(s3, loc, v.artifactDigest, scratch, { signal: opts.signal });
      writeRepositoryEntry({ repository, model, version: v.version, onnx: { file: scratch }, inputWidth: v.inputWidth, outputWidth: v.outputWidth });
      verified.push(v);
    } catch (err) {
      fs.rmSync(scratch, { force: true });
      later(key);
      if (err instanceof EvidenceMissing || err instanceof EvidenceDiffers) {
        const reason = err instanceof EvidenceMissing ? 'missing' : 'different';
        const event = await appendAuditEvent(db, {
          workflowId: v.workflowId,
          runId: 'serving-reconcile',
          // One event per (deployment, Triton start): the deployment's run id names the deployment.
          step: `serving.refused.${v.deploymentId.split('/').at(-2) ?? v.deploymentId}@${tritonStart}`,
          kind: 'serving.artifact_refused',
          actor: 'factory-serving',
          payload: {
            modelName: model,
            version: v.version,
            modelVersionId: v.modelVersionId,
            deploymentId: v.deploymentId,
            artifactUri: v.artifactUri,
            expectedDigest: v.artifactDigest,
            actualDigest: err instanceof EvidenceDiffers ? err.actual : null,
            reason,
            tritonStart,
          },
          occurredAt: new Date().toISOString(),
        });
        log.warn(
          { model, version: v.version, artifactUri: v.artifactUri, reason, auditEventId: event.eventId },
          'deployed version not reloaded: its artifact is not the one the registry holds',
        );
        out.push({
          model,
          version: v.version,
          outcome: 'refused',
          reason: `artifact ${reason}: ${err.message}`,
          artifactUri: v.artifactUri,
          auditEventId: event.eventId,
        });
      } else {
        out.push({ model, version: v.version, outcome: 'failed', reason: `artifact not fetched: ${(err as Error).message}`, artifactUri: v.artifactUri });
      }
    }
  }
  if (!verified.length) return out;
  const newest = verified.at(-1)!;
  try {
    const config = modelConfig({
      model,
      inputWidth: newest.inputWidth,
      outputWidth: newest.outputWidth,
      versions: [...serving, ...verified.map((v) => v.version)],
    });
    await triton.load(model, { config, signal: opts.signal });
    for (const v of verified) {
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let ok = false;
      while (!(ok = await triton.versionReady(model, v.version, { timeoutMs: 2_000, signal: opts.signal }).catch(() => false)) && Date.now() < deadline)
        await sleep(250);
      if (ok) {
        backoff.delete(`${v.deploymentId}@${tritonStart}`);
        out.push({ model, version: v.version, outcome: 'reloaded', artifactUri: v.artifactUri });
      } else {
        later(`${v.deploymentId}@${tritonStart}`);
        out.push({ model, version: v.version, outcome: 'failed', reason: `not ready ${READY_TIMEOUT_MS / 1000}s after loading`, artifactUri: v.artifactUri });
      }
    }
  } catch (err) {
    for (const v of verified) {
      later(`${v.deploymentId}@${tritonStart}`);
      out.push({
        model,
        version: v.version,
        outcome: 'failed',
        reason: `Triton did not load it: ${(err as Error).message.slice(0, 300)}`,
        artifactUri: v.artifactUri,
      });
    }
  }
  return out;
}

/**
 * Runs a pass now and then every `intervalMs` after the previous one ends (never two at once), for
 * a worker's lifetime. `stop` aborts a pass in flight and waits for it.
 */
export function startReconcileLoop(deps: ReconcileDeps, { intervalMs = 10_000 }: { intervalMs?: number } = {}): { stop(): Promise<void> } {
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> = Promise.resolve();
  let lastTriton: ReconcileReport['triton'] | undefined;
  const tick = () => {
    current = reconcileServing(deps, { signal: abort.signal, budgetMs: 60_000 })
      .then((r) => {
        if (r.triton !== lastTriton && r.triton !== 'not asked') {
          if (r.triton === 'unreachable')
            deps.log.warn({ triton: tritonUrl(deps.env) }, 'serving reconcile: Triton unreachable; deployed models are not served');
          else if (lastTriton) deps.log.info({ triton: tritonUrl(deps.env) }, 'serving reconcile: Triton reachable again');
          lastTriton = r.triton;
        }
      })
      .catch((err: unknown) => {
        if (!abort.signal.aborted) deps.log.warn({ err: (err as Error).message }, 'serving reconcile pass failed; retried next interval');
      })
      .finally(() => {
        // unref: the loop never keeps a process alive on its own (the worker's polling does).
        if (!abort.signal.aborted) timer = setTimeout(tick, intervalMs).unref();
      });
  };
  tick();
  return {
    async stop() {
      abort.abort();
      clearTimeout(timer);
      await current;
    },
  };
}
