/**
 * Lifecycles at scale from real ones. A template is a recorded lifecycle's history (the replay
 * fixtures in test/fixtures/): every registry write and audit event its activities were asked for,
 * with their exact inputs. `instantiate` gives a template new identities (workflow and run ids,
 * model name and version, commit, artifact and dataset digests, times) and `bulkFill` writes many
 * such lifecycles with multi-row inserts, chaining each audit row exactly as appendAuditEventsIn
 * does (same canonical JSON, same hashOf, same order). test/integration/bench-fill.test.ts replays
 * the same operations through the real activities into another database and compares every row.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Kysely, sql } from 'kysely';
import { GENESIS_HASH, auditEventId, canonicalEvent, type AuditEventInput } from '../src/audit/chain.ts';
import { sha256Hex } from '../src/audit/canonical.ts';
import { boundedText } from '../src/audit/bounded-text.ts';
import type { Database, ModelState } from '../src/db/schema.ts';
import type { DecisionRecord } from '../src/domain/approval.ts';
import { MODEL_STATE_TRANSITIONS } from '../src/domain/model-state.ts';

/** The audit-chain writers' lock (src/audit/append.ts): a fill holds it so no real append interleaves. */
const AUDIT_CHAIN_LOCK = 7_240_001;
/** activities/registry.ts LIFECYCLE_END_CAUSE_MAX and ACTOR_MAX. */
const END_CAUSE_MAX = 2_000;
const END_ACTOR_MAX = 320;

export interface DatasetRow {
  manifest_digest: string;
  name: string;
  raw_uri: string;
  raw_sha256: string;
  certified_uri: string;
  manifest_uri: string;
  rows_total: number;
  rows_accepted: number;
  rows_excluded: number;
  exclusions: Array<{ line: number; reason: string }>;
  workflow_id: string;
}

export interface RegisterOp {
  workflowId: string;
  runId?: string;
  modelName: string;
  riskTier: string;
  artifactDigest: string;
  artifactUri: string;
  datasetManifestDigest: string;
  commitSha: string;
  imageDigest: string;
  requester: string;
  developer: string;
  metrics: Record<string, number>;
  environment: Record<string, unknown>;
  policyDigest: string;
}

export interface DeploymentOp {
  id: string;
  modelVersionId: number;
  tritonModel: string;
  tritonVersion: number;
  endpoint: string;
  artifactDigest: string;
  smoke: Record<string, unknown>;
  deployedAt: string;
}

export interface EndOp {
  workflowId: string;
  runId: string;
  modelVersionId?: number;
  outcome: 'failed' | 'cancelled';
  cause: string;
  actor?: string;
  at: string;
}

/** One write a lifecycle made, in the order it made them (the activity and its input). */
export type Op =
  | { op: 'audit'; event: AuditEventInput }
  | { op: 'dataset'; row: DatasetRow }
  | { op: 'register'; input: RegisterOp }
  | { op: 'state'; to: ModelState }
  | { op: 'decisions'; batch: Array<{ record: DecisionRecord; event?: AuditEventInput }> }
  | { op: 'deployment'; input: DeploymentOp }
  | { op: 'end'; input: EndOp };

export interface Template {
  name: string;
  ops: Op[];
  modelName: string;
  commitSha: string;
  runId: string;
  /** 64-hex values that name the lifecycle's data (raw, certified, manifest): shared by lifecycles on one dataset. */
  datasetHexes: string[];
  /** 64-hex values that name its artifact: one per lifecycle. */
  artifactHexes: string[];
}

type Payload = { data?: string; metadata?: Record<string, string> };
interface HistoryEvent {
  eventId: string;
  activityTaskScheduledEventAttributes?: { activityType: { name: string }; input?: { payloads?: Payload[] } };
  activityTaskCompletedEventAttributes?: { scheduledEventId: string; result?: { payloads?: Payload[] } };
}

const decode = (p: Payload | undefined): unknown => (p?.data === undefined ? undefined : JSON.parse(Buffer.from(p.data, 'base64').toString('utf8')));
const HEX64 = /[0-9a-f]{64}/g;
const hexesIn = (v: unknown): string[] => [...new Set(JSON.stringify(v ?? null).match(HEX64) ?? [])];

export const TEMPLATE_DIR = path.join(import.meta.dirname, '..', 'test', 'fixtures');

/** Reads a recorded lifecycle (a replay fixture) into the writes it made. */
export function loadTemplate(file: string): Template {
  const events = (JSON.parse(fs.readFileSync(file, 'utf8')) as { events: HistoryEvent[] }).events;
  const results = new Map<string, unknown>();
  for (const e of events) {
    const done = e.activityTaskCompletedEventAttributes;
    if (done) results.set(String(done.scheduledEventId), decode(done.result?.payloads?.[0]));
  }
  const ops: Op[] = [];
  const datasetHexes = new Set<string>();
  const artifactHexes = new Set<string>();
  let quarantined: { rawUri: string; rawSha256: string } | undefined;
  let started: AuditEventInput | undefined;
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (!s) continue;
    const input = decode(s.input?.payloads?.[0]) as Record<string, unknown>;
    const result = results.get(String(e.eventId)) as Record<string, unknown> | undefined;
    switch (s.activityType.name) {
      case 'appendAudit':
        ops.push({ op: 'audit', event: input as unknown as AuditEventInput });
        started ??= input as unknown as AuditEventInput;
        break;
      case 'quarantineRaw':
        quarantined = result as typeof quarantined;
        for (const h of hexesIn(result)) datasetHexes.add(h);
        break;
      case 'certifyDataset': {
        if (!result || !quarantined) break;
        for (const h of hexesIn(result)) datasetHexes.add(h);
        const r = result as {
          manifestDigest: string;
          datasetName: string;
          certifiedUri: string;
          manifestUri: string;
          rowsTotal: number;
          rowsAccepted: number;
          rowsExcluded: number;
          exclusions?: DatasetRow['exclusions'];
        };
        ops.push({
          op: 'dataset',
          row: {
            manifest_digest: r.manifestDigest,
            name: r.datasetName,
            raw_uri: quarantined.rawUri,
            raw_sha256: quarantined.rawSha256,
            certified_uri: r.certifiedUri,
            manifest_uri: r.manifestUri,
            rows_total: r.rowsTotal,
            rows_accepted: r.rowsAccepted,
            rows_excluded: r.rowsExcluded,
            exclusions: r.exclusions ?? [],
            workflow_id: String(input.workflowId),
          },
        });
        break;
      }
      case 'trainModel':
        for (const h of hexesIn(result)) artifactHexes.add(h);
        break;
      case 'registerModel':
        ops.push({ op: 'register', input: input as unknown as RegisterOp });
        break;
      case 'setModelState':
        ops.push({ op: 'state', to: input.to as ModelState });
        break;
      case 'recordDecision':
        ops.push({ op: 'decisions', batch: [{ record: input as unknown as DecisionRecord }] });
        break;
      case 'recordDecisions':
        ops.push({ op: 'decisions', batch: input as unknown as Array<{ record: DecisionRecord; event: AuditEventInput }> });
        break;
      case 'recordDeployment':
        ops.push({ op: 'deployment', input: input as unknown as DeploymentOp });
        break;
      case 'recordLifecycleEnd':
        ops.push({ op: 'end', input: input as unknown as EndOp });
        break;
      default:
        break; // reads, training, serving: no registry or audit row of their own
    }
  }
  if (!started) throw new Error(`${file}: no lifecycle.started event`);
  const lifecycleInput = (started.payload as { input: { modelName: string; commitSha: string } }).input;
  for (const h of datasetHexes) artifactHexes.delete(h);
  return {
    name: path.basename(file, '.json'),
    ops,
    modelName: lifecycleInput.modelName,
    commitSha: lifecycleInput.commitSha,
    runId: started.runId,
    datasetHexes: [...datasetHexes],
    artifactHexes: [...artifactHexes],
  };
}

/** The lifecycle mix a fill draws from, with weights: real outcomes in rough production proportion. */
export const DEFAULT_MIX: Array<[string, number]> = [
  ['lifecycle-high-risk-deployed', 30],
  ['lifecycle-high-risk-with-refusals', 10],
  ['lifecycle-bounded-withdrawn-reopened-deployed', 10],
  ['lifecycle-released-code-upgraded-at-gate-deployed', 20],
  ['lifecycle-low-risk-rejected-by-evaluation', 15],
  ['lifecycle-bounded-rejected-by-filled-role', 5],
  ['lifecycle-terminal-failed-at-deploy', 4],
  ['lifecycle-terminal-cancelled-at-gate', 3],
  ['lifecycle-bounded-approval-timed-out', 3],
];

export function loadMix(mix = DEFAULT_MIX, dir = TEMPLATE_DIR): Array<{ template: Template; weight: number }> {
  return mix.map(([name, weight]) => ({ template: loadTemplate(path.join(dir, `${name}.json`)), weight }));
}

const derive = (...parts: Array<string | number>) => createHash('sha256').update(parts.join('\u0000')).digest('hex');
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

function deepMap(v: unknown, f: (key: string | undefined, v: unknown) => unknown, key?: string): unknown {
  const mapped = f(key, v);
  if (mapped !== v) return mapped;
  if (Array.isArray(v)) return v.map((x) => deepMap(x, f));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, deepMap(x, f, k)]));
  return v;
}

export interface Identity {
  /** Unique per lifecycle. */
  index: number;
  modelName: string;
  /** Lifecycles with the same dataset index share one certified dataset version. */
  dataset: number;
  /** Added to every time in the template. */
  shiftMs: number;
  /** Refused decisions added before the gate's first accepted one (a storm); 0 for none. */
  extraRefusals: number;
  seed: string;
}

/**
 * The template's writes for another lifecycle: its ids, names and digests replaced, times shifted, and
 * `extraRefusals` more refused decisions recorded before the first accepted one (numbered as the gate does).
 */
export function instantiate(t: Template, id: Identity): Op[] {
  const commit = derive(id.seed, 'commit', id.index).slice(0, 40);
  const run = derive(id.seed, 'run', id.index);
  const runId = `${run.slice(0, 8)}-${run.slice(8, 12)}-${run.slice(12, 16)}-${run.slice(16, 20)}-${run.slice(20, 32)}`;
  let text = JSON.stringify(t.ops);
  const swaps: Array<[string, string]> = [
    [t.commitSha, commit],
    [t.runId, runId],
    [t.modelName, id.modelName],
    ...t.datasetHexes.map((h): [string, string] => [h, derive(id.seed, 'dataset', id.dataset, h)]),
    ...t.artifactHexes.map((h): [string, string] => [h, derive(id.seed, 'artifact', id.index, h)]),
  ];
  for (const [from, to] of swaps) text = text.replaceAll(from, to);
  const shifted = deepMap(JSON.parse(text), (_k, v) => (typeof v === 'string' && ISO.test(v) ? new Date(Date.parse(v) + id.shiftMs).toISOString() : v)) as Op[];
  if (id.extraRefusals <= 0) return shifted;
  return withRefusalStorm(shifted, id.extraRefusals);
}

/** Adds `n` refused decisions before the first accepted decision and renumbers the gate's decisions. */
function withRefusalStorm(ops: Op[], n: number): Op[] {
  const firstDecision = ops.findIndex((o) => o.op === 'decisions');
  if (firstDecision < 0) return ops;
  const first = (ops[firstDecision] as Extract<Op, { op: 'decisions' }>).batch[0]!;
  const wf = first.record.workflowId;
  const base = first.record.id.slice(0, first.record.id.lastIndexOf('/decision-'));
  const at0 = Date.parse(first.record.decidedAt) - n * 20;
  const storm: Extract<Op, { op: 'decisions' }> = {
    op: 'decisions',
    batch: Array.from({ length: n }, (_, k) => {
      const at = new Date(at0 + k * 20).toISOString();
      const approver = `storm${k % 97}@example.org`;
      const reason = `${approver} does not hold the role "security"`;
      const received = { approver, role: 'security', meaning: 'approval', modelDigest: first.record.modelDigest };
      return {
        record: {
          ...first.record,
          id: '',
          approver,
          role: 'security',
          meaning: 'approval',
          accepted: false,
          refusalReason: reason,
          comment: undefined,
          decidedAt: at,
        },
        event: {
          workflowId: wf,
          runId: base.split('/').at(-1)!,
          step: '',
          kind: 'approval.refused',
          actor: approver,
          payload: { decision: 'approve', reason, received, at, via: k % 2 ? 'update' : 'signal', policyDigest: first.record.policyDigest },
          occurredAt: at,
        },
      };
    }),
  };
  // The gate numbers decisions 1, 2, … in arrival order (id `<wf>/<run>/decision-N`, event step `decision.N`):
  // the storm's come first, so every recorded decision after it moves up by n.
  const moved = (o: Op): Op => {
    if (o.op === 'audit') {
      const m = /^decision\.(\d+)$/.exec(o.event.step);
      return m ? { op: 'audit', event: { ...o.event, step: `decision.${Number(m[1]) + n}` } } : o;
    }
    if (o.op !== 'decisions') return o;
    return {
      op: 'decisions',
      batch: o.batch.map(({ record, event }) => {
        const k = Number(record.id.slice(record.id.lastIndexOf('-') + 1)) + n;
        return { record: { ...record, id: `${base}/decision-${k}` }, ...(event ? { event: { ...event, step: `decision.${k}` } } : {}) };
      }),
    };
  };
  const numbered: Op = {
    op: 'decisions',
    batch: storm.batch.map(({ record, event }, k) => ({
      record: { ...record, id: `${base}/decision-${k + 1}` },
      event: { ...event!, step: `decision.${k + 1}` },
    })),
  };
  return [...ops.slice(0, firstDecision).map(moved), numbered, ...ops.slice(firstDecision).map(moved)];
}

/** Gives a write the model version the lifecycle registered (its id, its number, the Triton version and endpoint). */
export function withVersion(v: unknown, id: number, version: number): unknown {
  return deepMap(v, (k, x) => {
    if (k === 'modelVersionId' && typeof x === 'number') return id;
    if ((k === 'version' || k === 'tritonVersion') && typeof x === 'number') return version;
    if (k === 'endpoint' && typeof x === 'string') return x.replace(/\/versions\/\d+\//, `/versions/${version}/`);
    return x;
  });
}

interface Rows {
  datasets: DatasetRow[];
  versions: Array<RegisterOp & { id: number; version: number; state: ModelState }>;
  approvals: Array<DecisionRecord>;
  deployments: DeploymentOp[];
  audit: Array<{ seq: string; event: AuditEventInput; prevHash: string; hash: string; canonical: string }>;
}

/** What a lifecycle's end event says (activities/registry.ts recordLifecycleEnd). */
function endEvent(e: EndOp, modelVersion: { id: number; from: ModelState; to: ModelState } | undefined): AuditEventInput {
  const kind = `lifecycle.${e.outcome}`;
  const cause = boundedText(e.cause, END_CAUSE_MAX) || 'no cause given';
  return {
    workflowId: e.workflowId,
    runId: e.runId,
    step: kind,
    kind,
    actor: e.actor ? boundedText(e.actor, END_ACTOR_MAX) : 'factory',
    payload: { outcome: e.outcome, cause, ...(modelVersion ? { modelVersion } : {}) },
    occurredAt: e.at,
  };
}

/**
 * Turns lifecycles' writes into rows, as the activities would: model version ids from `nextId`,
 * versions numbered per model after `maxVersion`, audit rows chained from `head`.
 */
export function buildRows(
  lifecycles: Op[][],
  ctx: { nextId: () => number; nextSeq: () => string; maxVersion: Map<string, number>; head: string; seenDatasets: Set<string>; seenEvents: Set<string> },
): Rows & { head: string } {
  const rows: Rows = { datasets: [], versions: [], approvals: [], deployments: [], audit: [] };
  let head = ctx.head;
  const append = (e: AuditEventInput) => {
    const eventId = auditEventId(e);
    if (ctx.seenEvents.has(eventId)) return;
    ctx.seenEvents.add(eventId);
    const row = {
      event_id: eventId,
      workflow_id: e.workflowId,
      run_id: e.runId,
      step: e.step,
      kind: e.kind,
      actor: e.actor,
      payload: e.payload,
      occurred_at: e.occurredAt,
      prev_hash: head,
    };
    // As appendAuditEvent: the hashed text is stored with the row (migration 0022).
    const canonical = canonicalEvent(row);
    const hash = sha256Hex(canonical);
    rows.audit.push({ seq: ctx.nextSeq(), event: e, prevHash: head, hash, canonical });
    head = hash;
  };
  for (const ops of lifecycles) {
    let mv: Rows['versions'][number] | undefined;
    const fix = <T>(v: T): T => (mv ? (withVersion(v, mv.id, mv.version) as T) : v);
    for (const o of ops) {
      switch (o.op) {
        case 'dataset':
          if (!ctx.seenDatasets.has(o.row.manifest_digest)) {
            ctx.seenDatasets.add(o.row.manifest_digest);
            rows.datasets.push(o.row);
          }
          break;
        case 'register': {
          const version = (ctx.maxVersion.get(o.input.modelName) ?? 0) + 1;
          ctx.maxVersion.set(o.input.modelName, version);
          mv = { ...o.input, id: ctx.nextId(), version, state: 'registered' };
          rows.versions.push(mv);
          break;
        }
        case 'state':
          if (mv && mv.state !== o.to && MODEL_STATE_TRANSITIONS[mv.state].includes(o.to)) mv.state = o.to;
          break;
        case 'audit':
          append(fix(o.event));
          break;
        case 'decisions':
          for (const d of o.batch) rows.approvals.push(fix({ ...d.record }));
          for (const d of o.batch) if (d.event) append(fix(d.event));
          break;
        case 'deployment':
          rows.deployments.push(fix(o.input));
          break;
        case 'end': {
          let modelVersion: { id: number; from: ModelState; to: ModelState } | undefined;
          if (mv) {
            const from = mv.state;
            const to = MODEL_STATE_TRANSITIONS[from].includes(o.input.outcome) ? o.input.outcome : from;
            mv.state = to;
            modelVersion = { id: mv.id, from, to };
          }
          append(endEvent({ ...o.input, ...(mv ? { modelVersionId: mv.id } : {}) }, modelVersion));
          break;
        }
      }
    }
  }
  return { ...rows, head };
}

/** Writes built rows with one multi-row insert per table and batch (unnest of arrays: one parameter per column). */
export async function insertRows(db: Kysely<Database>, rows: Rows): Promise<void> {
  const col = <T>(xs: T[], f: (x: T) => unknown) => xs.map(f);
  if (rows.datasets.length) {
    const d = rows.datasets;
    await sql`
      INSERT INTO dataset_versions (manifest_digest, name, raw_uri, raw_sha256, certified_uri, manifest_uri, rows_total, rows_accepted, rows_excluded, exclusions, workflow_id)
      SELECT * FROM unnest(${col(d, (x) => x.manifest_digest)}::text[], ${col(d, (x) => x.name)}::text[], ${col(d, (x) => x.raw_uri)}::text[],
        ${col(d, (x) => x.raw_sha256)}::text[], ${col(d, (x) => x.certified_uri)}::text[], ${col(d, (x) => x.manifest_uri)}::text[],
        ${col(d, (x) => x.rows_total)}::int[], ${col(d, (x) => x.rows_accepted)}::int[], ${col(d, (x) => x.rows_excluded)}::int[],
        ${col(d, (x) => JSON.stringify(x.exclusions))}::jsonb[], ${col(d, (x) => x.workflow_id)}::text[])
      ON CONFLICT (manifest_digest) DO NOTHING`.execute(db);
  }
  if (rows.versions.length) {
    const v = rows.versions;
    await sql`
      INSERT INTO model_versions (id, model_name, version, state, risk_tier, artifact_digest, artifact_uri, dataset_manifest_digest,
        commit_sha, image_digest, requester, developer, metrics, environment, policy_digest, workflow_id, run_id)
      SELECT * FROM unnest(${col(v, (x) => x.id)}::int[], ${col(v, (x) => x.modelName)}::text[], ${col(v, (x) => x.version)}::int[],
        ${col(v, (x) => x.state)}::text[], ${col(v, (x) => x.riskTier)}::text[], ${col(v, (x) => x.artifactDigest)}::text[],
        ${col(v, (x) => x.artifactUri)}::text[], ${col(v, (x) => x.datasetManifestDigest)}::text[], ${col(v, (x) => x.commitSha)}::text[],
        ${col(v, (x) => x.imageDigest)}::text[], ${col(v, (x) => x.requester)}::text[], ${col(v, (x) => x.developer)}::text[],
        ${col(v, (x) => JSON.stringify(x.metrics))}::jsonb[], ${col(v, (x) => JSON.stringify(x.environment))}::jsonb[],
        ${col(v, (x) => x.policyDigest)}::text[], ${col(v, (x) => x.workflowId)}::text[], ${col(v, (x) => x.runId ?? null)}::text[])`.execute(db);
  }
  if (rows.approvals.length) {
    const a = rows.approvals;
    await sql`
      INSERT INTO approvals (id, model_version_id, workflow_id, decision, approver, role, meaning, model_digest, comment, accepted, refusal_reason, policy_digest, decided_at)
      SELECT * FROM unnest(${col(a, (x) => x.id)}::text[], ${col(a, (x) => x.modelVersionId)}::int[], ${col(a, (x) => x.workflowId)}::text[],
        ${col(a, (x) => x.decision)}::text[], ${col(a, (x) => x.approver)}::text[], ${col(a, (x) => x.role)}::text[], ${col(a, (x) => x.meaning)}::text[],
        ${col(a, (x) => x.modelDigest)}::text[], ${col(a, (x) => x.comment ?? null)}::text[], ${col(a, (x) => x.accepted)}::bool[],
        ${col(a, (x) => x.refusalReason ?? null)}::text[], ${col(a, (x) => x.policyDigest)}::text[], ${col(a, (x) => x.decidedAt)}::timestamptz[])
      ON CONFLICT (id) DO NOTHING`.execute(db);
  }
  if (rows.deployments.length) {
    const d = rows.deployments;
    await sql`
      INSERT INTO deployments (id, model_version_id, triton_model, triton_version, endpoint, artifact_digest, smoke, deployed_at)
      SELECT * FROM unnest(${col(d, (x) => x.id)}::text[], ${col(d, (x) => x.modelVersionId)}::int[], ${col(d, (x) => x.tritonModel)}::text[],
        ${col(d, (x) => x.tritonVersion)}::int[], ${col(d, (x) => x.endpoint)}::text[], ${col(d, (x) => x.artifactDigest)}::text[],
        ${col(d, (x) => JSON.stringify(x.smoke))}::jsonb[], ${col(d, (x) => x.deployedAt)}::timestamptz[])
      ON CONFLICT (id) DO NOTHING`.execute(db);
  }
  if (rows.audit.length) {
    const e = rows.audit;
    await sql`
      INSERT INTO audit_events (seq, event_id, workflow_id, run_id, step, kind, actor, payload, occurred_at, prev_hash, hash, canonical)
      SELECT * FROM unnest(${col(e, (x) => x.seq)}::bigint[], ${col(e, (x) => auditEventId(x.event))}::text[], ${col(e, (x) => x.event.workflowId)}::text[],
        ${col(e, (x) => x.event.runId)}::text[], ${col(e, (x) => x.event.step)}::text[], ${col(e, (x) => x.event.kind)}::text[],
        ${col(e, (x) => x.event.actor)}::text[], ${col(e, (x) => JSON.stringify(x.event.payload))}::jsonb[], ${col(e, (x) => x.event.occurredAt)}::text[],
        ${col(e, (x) => x.prevHash)}::text[], ${col(e, (x) => x.hash)}::text[], ${col(e, (x) => x.canonical)}::text[])`.execute(db);
  }
}

export interface FillOptions {
  /** Audit events to add (about: whole lifecycles are written). */
  events: number;
  /** Model versions to add (lifecycles that registered one). */
  versions: number;
  /** Distinct model names the versions spread over. */
  models?: number;
  /** Lifecycles per certified dataset version. */
  lifecyclesPerDataset?: number;
  /** Lifecycles written per transaction. */
  batch?: number;
  seed?: string;
  mix?: Array<{ template: Template; weight: number }>;
  onProgress?: (done: { lifecycles: number; versions: number; events: number }) => void;
}

export interface FillResult {
  lifecycles: number;
  versions: number;
  events: number;
  approvals: number;
  deployments: number;
  datasets: number;
  stormLifecycles: number;
  millis: number;
}

/**
 * Fills the registry and audit trail with lifecycles drawn from the mix until `versions` model versions
 * are written; the events beyond what those lifecycles record are refused decisions, in storms of at
 * most 1,000 on about 15 % of the gated lifecycles (the gate's largest source of events), so the trail
 * reaches `events`. Holds the audit chain's lock for the whole fill and continues the existing chain.
 */
export async function bulkFill(db: Kysely<Database>, o: FillOptions): Promise<FillResult> {
  const t0 = performance.now();
  const mix = o.mix ?? loadMix();
  const seed = o.seed ?? 'fill';
  const models = o.models ?? Math.max(1, Math.round(o.versions / 10));
  const perDataset = o.lifecyclesPerDataset ?? 5;
  const batch = o.batch ?? 200;
  const totalWeight = mix.reduce((s, m) => s + m.weight, 0);
  // The mix's average events per lifecycle and versions per lifecycle decide how many lifecycles and storms.
  const perLifecycle = mix.map(({ template, weight }) => {
    const counts = buildRows([template.ops], {
      nextId: () => 1,
      nextSeq: () => '1',
      maxVersion: new Map(),
      head: GENESIS_HASH,
      seenDatasets: new Set(),
      seenEvents: new Set(),
    });
    return { weight, events: counts.audit.length, versions: counts.versions.length, gated: template.ops.some((x) => x.op === 'decisions') };
  });
  const versionsPerLifecycle = perLifecycle.reduce((s, p) => s + p.weight * p.versions, 0) / totalWeight;
  const eventsPerLifecycle = perLifecycle.reduce((s, p) => s + p.weight * p.events, 0) / totalWeight;
  const gatedShare = perLifecycle.reduce((s, p) => s + (p.gated ? p.weight : 0), 0) / totalWeight;
  const lifecycles = Math.max(1, Math.round(o.versions / versionsPerLifecycle));
  const spare = Math.max(0, o.events - Math.round(lifecycles * eventsPerLifecycle));
  const stormTarget = Math.max(1, Math.round(lifecycles * gatedShare * 0.15));
  const stormSize = Math.min(1_000, Math.ceil(spare / stormTarget));
  let stormEventsLeft = spare;
  let gatedSeen = 0;
  const every = Math.max(1, Math.floor((lifecycles * gatedShare) / stormTarget));

  const res: FillResult = { lifecycles: 0, versions: 0, events: 0, approvals: 0, deployments: 0, datasets: 0, stormLifecycles: 0, millis: 0 };
  const start = Date.parse('2026-01-01T00:00:00.000Z');
  const span = 365 * 24 * 3600 * 1000;
  // A deterministic weighted draw: lifecycle i takes the template at (i * golden ratio) mod 1 of the weights.
  const pick = (i: number) => {
    let x = ((i * 0.6180339887498949) % 1) * totalWeight;
    for (const m of mix) {
      if ((x -= m.weight) < 0) return m.template;
    }
    return mix.at(-1)!.template;
  };
  await withChainLock(db, async (writer) => {
    for (let i0 = 0; i0 < lifecycles; i0 += batch) {
      const ops: Op[][] = [];
      for (let i = i0; i < Math.min(lifecycles, i0 + batch); i++) {
        const t = pick(i);
        const gated = t.ops.some((x) => x.op === 'decisions');
        // Storms on every few gated lifecycles (about 15 % of them), until the spare events are spent.
        const storm = gated && stormEventsLeft > 0 && gatedSeen++ % every === 0 ? Math.min(stormSize, stormEventsLeft) : 0;
        stormEventsLeft -= storm;
        if (storm) res.stormLifecycles += 1;
        ops.push(
          instantiate(t, {
            index: i,
            seed,
            modelName: `${seed}-m${i % models}`,
            dataset: Math.floor(i / perDataset),
            shiftMs: start + Math.floor((i / lifecycles) * span) - Date.parse('2026-11-27T00:00:00.000Z'),
            extraRefusals: storm,
          }),
        );
      }
      const w = await writer(ops);
      for (const k of ['versions', 'events', 'approvals', 'deployments', 'datasets'] as const) res[k] += w[k];
      res.lifecycles += ops.length;
      o.onProgress?.({ lifecycles: res.lifecycles, versions: res.versions, events: res.events });
    }
  });
  res.millis = performance.now() - t0;
  return res;
}

type Written = Pick<FillResult, 'versions' | 'events' | 'approvals' | 'deployments' | 'datasets'>;

/** Writes the given lifecycles' rows in one transaction, continuing the chain and the registry in `db`. */
export async function bulkWrite(db: Kysely<Database>, lifecycles: Op[][]): Promise<Written> {
  return withChainLock(db, (writer) => writer(lifecycles));
}

/**
 * Holds the audit chain's lock (on one connection) while `f` writes batches of lifecycles: model version
 * ids and audit sequence numbers come from the tables' own sequences, versions are numbered after the
 * model's latest, datasets and events already present are not written again.
 */
async function withChainLock<T>(db: Kysely<Database>, f: (writer: (ops: Op[][]) => Promise<Written>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql`SELECT pg_advisory_lock(${AUDIT_CHAIN_LOCK})`.execute(conn);
    try {
      const head = await conn.selectFrom('audit_events').select(['hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
      const maxRows = await sql<{ model_name: string; v: number }>`SELECT model_name, max(version) AS v FROM model_versions GROUP BY model_name`.execute(conn);
      let chainHead = head?.hash ?? GENESIS_HASH;
      const maxVersion = new Map(maxRows.rows.map((r) => [r.model_name, Number(r.v)]));
      const seenDatasets = new Set((await conn.selectFrom('dataset_versions').select('manifest_digest').execute()).map((r) => r.manifest_digest));
      const seenEvents = new Set<string>();
      return await f(async (ops) =>
        conn.transaction().execute(async (tx) => {
          // Model version ids from the real sequence (one per register), then the rows, then their sequence numbers.
          const registers = ops.reduce((k, l) => k + l.filter((x) => x.op === 'register').length, 0);
          const ids = (
            await sql<{ id: number }>`SELECT nextval('model_versions_id_seq')::int AS id FROM generate_series(1, ${registers})`.execute(tx)
          ).rows.map((r) => r.id);
          let iId = 0;
          const rows = buildRows(ops, { head: chainHead, maxVersion, seenDatasets, seenEvents, nextId: () => ids[iId++]!, nextSeq: () => '' });
          const seqs = (
            await sql<{ seq: string }>`SELECT nextval('audit_events_seq_seq')::text AS seq FROM generate_series(1, ${rows.audit.length})`.execute(tx)
          ).rows.map((r) => r.seq);
          rows.audit.forEach((r, k) => (r.seq = seqs[k]!));
          await insertRows(tx, rows);
          chainHead = rows.head;
          return {
            versions: rows.versions.length,
            events: rows.audit.length,
            approvals: rows.approvals.length,
            deployments: rows.deployments.length,
            datasets: rows.datasets.length,
          };
        }),
      );
    } finally {
      await sql`SELECT pg_advisory_unlock(${AUDIT_CHAIN_LOCK})`.execute(conn);
    }
  });
}
