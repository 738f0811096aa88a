import type { Kysely } from 'kysely';
import type { Database } from '../db/schema.ts';
import type { ObjectRef } from '../audit/objects.ts';
import { DECISION_DONE, type Decision, signatureLine } from '../domain/approval.ts';
import type { RetentionExtension } from '../domain/retirement.ts';
import { type ServingView, renderServing, servingView } from './serving.ts';

export interface ModelTrace {
  model: {
    name: string;
    version: number;
    state: string;
    riskTier: string;
    artifactDigest: string;
    artifactUri: string;
    registeredAt: string;
    workflowId: string;
    /** The run that registered it (a retried lifecycle has several under one workflow id); absent for older rows. */
    runId?: string;
  };
  code: { commitSha: string; imageDigest: string; developer: string; requester: string };
  data: {
    name: string;
    rawUri: string;
    rawSha256: string;
    manifestDigest: string;
    manifestUri: string;
    certifiedUri: string;
    rowsTotal: number;
    rowsAccepted: number;
    rowsExcluded: number;
    exclusions: Array<{ line: number; reason: string }>;
  };
  training: { environment: Record<string, unknown> };
  /** The signed provenance the registry names (absent for versions registered before it was signed). */
  provenance?: TracedProvenance;
  evaluation: { metrics: Record<string, number>; policyDigest: string };
  approvals: Array<{
    decision: string;
    name: string;
    approver: string;
    role: string;
    meaning: string;
    at: string;
    modelDigest: string;
    comment: string | null;
    /** A signed decision's key (`SHA256:…`, as ssh-keygen -l prints it); null when unsigned. */
    keyFingerprint: string | null;
    /** true: the gate verified the signature over the statement with that key; null when unsigned. */
    signatureVerified: boolean | null;
    signedAt: string | null;
  }>;
  refusedDecisions: number;
  deployment?: {
    tritonModel: string;
    tritonVersion: number;
    endpoint: string;
    artifactDigest: string;
    at: string;
    /** Asked of Triton when the trace is made (src/trace/live.ts), not remembered: absent when not asked. */
    serving?: ServingState;
  };
  /** Each object the trace names, as object storage has it now (absent when not asked). */
  objects?: TracedObject[];
  /** The version's serving state (live, shadow, rolled-back, retired, not-served), its model's, and the model's deployment history. */
  serving: ServingView;
  /** Its retirement, when it was retired: why, by whom, the approvals, and evidence retention from that date. */
  retirement?: {
    at: string;
    reason: string;
    requestedBy: string;
    workflowId: string;
    approvals: Array<{ approver: string; role: string; at: string; signatureVerified: boolean | null }>;
    retention: RetentionExtension[];
  };
  /** The gateway's route for the model (what it serves now); absent when the gateway serves no version of it. */
  gateway?: { state: string; version: number; thisVersion: boolean; since: string; reason: string };
}

export type ServingState = 'ready' | 'not loaded' | 'unreachable';

export interface TracedProvenance {
  uri: string;
  /** sha256 of the DSSE envelope's bytes. */
  digest: string;
  /** The key id (`SHA256:…`) recorded as its signer. */
  keyId: string | null;
  /** Checked when the trace is made (src/trace/live.ts): the envelope's bytes, signature and digests; absent when not asked. */
  verified?: boolean;
  /** Why it did not verify, or could not be checked. */
  reason?: string;
}

export interface TracedObject {
  role: ObjectRef['role'];
  uri: string;
  expected: string;
  /** ok: present with the recorded sha256 (per its metadata); unreadable: the store did not answer in time. */
  state: 'ok' | 'missing' | 'different' | 'unreadable';
  actual?: string;
  reason?: string;
}

export class TraceNotFound extends Error {
  override name = 'TraceNotFound';
}

/** "model" or "model@3"; without a version, the newest. */
export function parseModelRef(ref: string): { name: string; version?: number } {
  const [name, version] = ref.split('@');
  if (!name) throw new TraceNotFound(`no model named in "${ref}"`);
  if (version !== undefined && !/^\d+$/.test(version)) throw new TraceNotFound(`"${version}" is not a version number (use model@3)`);
  return { name, version: version === undefined ? undefined : Number(version) };
}

/**
 * From a served model back to its raw data, exclusions, certified manifest, code commit, container
 * image, training environment, metrics, every approval, and its deployment. Four indexed queries.
 */
export async function traceModel(db: Kysely<Database>, ref: string, principalNames: Map<string, string> = new Map()): Promise<ModelTrace> {
  const { name, version } = parseModelRef(ref);
  let q = db
    .selectFrom('model_versions as m')
    .innerJoin('dataset_versions as d', 'd.manifest_digest', 'm.dataset_manifest_digest')
    .selectAll('m')
    .select([
      'd.name as dataset_name',
      'd.raw_uri',
      'd.raw_sha256',
      'd.manifest_uri',
      'd.certified_uri',
      'd.rows_total',
      'd.rows_accepted',
      'd.rows_excluded',
      'd.exclusions',
    ])
    .where('m.model_name', '=', name);
  q = version === undefined ? q.orderBy('m.version', 'desc').limit(1) : q.where('m.version', '=', version);
  const m = await q.executeTakeFirst();
  if (!m) throw new TraceNotFound(`no registered model ${ref}`);
  // The accepted decisions in order, and only a count of the refused ones (a storm can leave thousands): index approvals_model_version.
  // Approvals of its release (its lifecycle's); a retirement's approvals are the retirement's, shown with it.
  const [accepted, refused, deployment, route, serving, retirement] = await Promise.all([
    db
      .selectFrom('approvals')
      .selectAll()
      .where('model_version_id', '=', m.id)
      .where('workflow_id', '=', m.workflow_id)
      .where('accepted', '=', true)
      .orderBy('decided_at')
      .execute(),
    db
      .selectFrom('approvals')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('model_version_id', '=', m.id)
      .where('workflow_id', '=', m.workflow_id)
      .where('accepted', '=', false)
      .executeTakeFirstOrThrow(),
    db.selectFrom('deployments').selectAll().where('model_version_id', '=', m.id).orderBy('deployed_at', 'desc').limit(1).executeTakeFirst(),
    // What the gateway serves for the model now (its primary key): this version, or another.
    db
      .selectFrom('gateway_routes as r')
      .innerJoin('model_versions as v', 'v.id', 'r.model_version_id')
      .select(['v.version', 'r.state', 'r.switched_at', 'r.reason'])
      .where('r.model_name', '=', m.model_name)
      .executeTakeFirst(),
    servingView(db, m.model_name, { number: m.version, registryState: m.state }),
    m.state === 'retired' ? retirementOf(db, m.id) : Promise.resolve(undefined),
  ]);
  return {
    model: {
      name: m.model_name,
      version: m.version,
      state: m.state,
      riskTier: m.risk_tier,
      artifactDigest: m.artifact_digest,
      artifactUri: m.artifact_uri,
      registeredAt: new Date(m.created_at).toISOString(),
      workflowId: m.workflow_id,
      ...(m.run_id ? { runId: m.run_id } : {}),
    },
    code: { commitSha: m.commit_sha, imageDigest: m.image_digest, developer: m.developer, requester: m.requester },
    data: {
      name: m.dataset_name,
      rawUri: m.raw_uri,
      rawSha256: m.raw_sha256,
      manifestDigest: m.dataset_manifest_digest,
      manifestUri: m.manifest_uri,
      certifiedUri: m.certified_uri,
      rowsTotal: m.rows_total,
      rowsAccepted: m.rows_accepted,
      rowsExcluded: m.rows_excluded,
      exclusions: m.exclusions,
    },
    training: { environment: m.environment },
    ...(m.provenance_uri && m.provenance_digest ? { provenance: { uri: m.provenance_uri, digest: m.provenance_digest, keyId: m.provenance_key_id } } : {}),
    evaluation: { metrics: m.metrics, policyDigest: m.policy_digest },
    approvals: accepted.map((a) => ({
      decision: a.decision,
      name: principalNames.get(a.approver.toLowerCase()) ?? a.approver,
      approver: a.approver,
      role: a.role,
      meaning: a.meaning,
      at: new Date(a.decided_at).toISOString(),
      modelDigest: a.model_digest,
      comment: a.comment,
      keyFingerprint: a.key_fingerprint ?? null,
      signatureVerified: a.signature_verified ?? null,
      signedAt: a.signed_at ? new Date(a.signed_at).toISOString() : null,
    })),
    refusedDecisions: Number(refused.n),
    serving,
    ...(retirement ? { retirement } : {}),
    ...(route
      ? {
          gateway: {
            state: route.state,
            version: route.version,
            thisVersion: route.version === m.version,
            since: new Date(route.switched_at).toISOString(),
            reason: route.reason,
          },
        }
      : {}),
    ...(deployment
      ? {
          deployment: {
            tritonModel: deployment.triton_model,
            tritonVersion: deployment.triton_version,
            endpoint: deployment.endpoint,
            artifactDigest: deployment.artifact_digest,
            at: new Date(deployment.deployed_at).toISOString(),
          },
        }
      : {}),
  };
}

/** A retired version's retirement: the row and the accepted decisions of its workflow. */
async function retirementOf(db: Kysely<Database>, modelVersionId: number): Promise<ModelTrace['retirement']> {
  const r = await db.selectFrom('retirements').selectAll().where('model_version_id', '=', modelVersionId).executeTakeFirst();
  if (!r) return undefined;
  const approvals = await db
    .selectFrom('approvals')
    .select(['approver', 'role', 'decided_at', 'signature_verified'])
    .where('model_version_id', '=', modelVersionId)
    .where('workflow_id', '=', r.workflow_id)
    .where('accepted', '=', true)
    .where('decision', '=', 'approve')
    .orderBy('decided_at')
    .execute();
  return {
    at: new Date(r.retired_at).toISOString(),
    reason: r.reason,
    requestedBy: r.requested_by,
    workflowId: r.workflow_id,
    approvals: approvals.map((a) => ({
      approver: a.approver,
      role: a.role,
      at: new Date(a.decided_at).toISOString(),
      signatureVerified: a.signature_verified,
    })),
    retention: r.retention,
  };
}

/** A marker after an object's line when object storage does not hold it as recorded. */
function objectMark(t: ModelTrace, role: TracedObject['role']): string {
  const o = t.objects?.find((x) => x.role === role);
  if (!o || o.state === 'ok') return '';
  if (o.state === 'missing') return '  [MISSING from object storage]';
  if (o.state === 'different') return `  [DIFFERENT in object storage${o.actual ? `: ${o.actual.slice(0, 19)}…` : ''}]`;
  return '  [object storage did not answer]';
}

export function renderTrace(t: ModelTrace): string {
  const certified = t.objects?.find((x) => x.role === 'certified');
  const lines = [
    `${t.model.name}@${t.model.version}  state=${t.model.state}  risk=${t.model.riskTier}`,
    `  artifact     ${t.model.artifactDigest}  (${t.model.artifactUri})${objectMark(t, 'artifact')}`,
    `  lifecycle    ${t.model.workflowId}`,
    'data',
    `  raw file     ${t.data.rawSha256}  (${t.data.rawUri})${objectMark(t, 'raw')}`,
    `  validation   ${t.data.rowsAccepted}/${t.data.rowsTotal} rows certified, ${t.data.rowsExcluded} excluded`,
    ...t.data.exclusions.slice(0, 10).map((e) => `    line ${e.line}: ${e.reason}`),
    ...(t.data.exclusions.length > 10 ? [`    … ${t.data.exclusions.length - 10} more (in the manifest)`] : []),
    `  certified    manifest ${t.data.manifestDigest}  (${t.data.manifestUri})${objectMark(t, 'manifest')}`,
    ...(certified && certified.state !== 'ok' ? [`  certified    data (${t.data.certifiedUri})${objectMark(t, 'certified')}`] : []),
    'code',
    `  commit       ${t.code.commitSha}  developer ${t.code.developer}  requested by ${t.code.requester}`,
    `  image        ${t.code.imageDigest}`,
    'training',
    `  environment  ${Object.entries(t.training.environment)
      .filter(([k]) => ['device', 'gpu', 'python', 'torch', 'onnx', 'epochs', 'seed'].includes(k) && t.training.environment[k] !== null)
      .map(([k, v]) => `${k}=${String(v)}`)
      .join(' ')}`,
    `  evaluation   ${Object.entries(t.evaluation.metrics)
      .filter(([k]) => k !== 'n')
      .map(([k, v]) => `${k}=${v.toFixed(4)}`)
      .join(' ')}  (policy ${t.evaluation.policyDigest.slice(0, 19)}…)`,
    'provenance',
    t.provenance
      ? `  ${t.provenance.digest}  (${t.provenance.uri})  signed by ${t.provenance.keyId ?? 'an unrecorded key'}  verified: ${
          t.provenance.verified === undefined ? 'not checked' : t.provenance.verified ? 'yes' : `NO (${t.provenance.reason ?? 'no reason given'})`
        }`
      : '  (none: registered before provenance was signed)',
    'approvals',
    ...(t.approvals.length
      ? t.approvals.map(
          (a) =>
            `  ${a.at}  ${a.name} <${a.approver}>  role=${a.role}  meaning=${a.meaning}  ${DECISION_DONE[a.decision as Decision] ?? a.decision} ${a.modelDigest.slice(0, 19)}…  ${signatureLine(a)}${a.comment ? `  "${a.comment}"` : ''}`,
        )
      : ['  (none)']),
    ...(t.refusedDecisions ? [`  ${t.refusedDecisions} refused decision(s) recorded in the audit trail`] : []),
    'deployment',
    t.deployment
      ? `  ${t.deployment.at}  Triton ${t.deployment.tritonModel} v${t.deployment.tritonVersion}  ${t.deployment.endpoint}${t.deployment.serving ? `  serving: ${t.deployment.serving}` : ''}`
      : '  (not deployed)',
    ...(t.gateway
      ? [
          `  gateway      ${t.gateway.state} route → ${t.model.name}@${t.gateway.version}${t.gateway.thisVersion ? ' (this version)' : ' (NOT this version)'} since ${t.gateway.since} (${t.gateway.reason})`,
        ]
      : []),
    ...renderServing(t.model.name, t.serving),
    ...(t.retirement
      ? [
          'retirement',
          `  ${t.retirement.at}  requested by ${t.retirement.requestedBy}  (${t.retirement.workflowId})  "${t.retirement.reason}"`,
          ...t.retirement.approvals.map(
            (a) =>
              `  approved ${a.at}  ${a.approver}  role=${a.role}  ${a.signatureVerified === null ? 'unsigned' : a.signatureVerified ? 'signature verified' : 'signature NOT verified'}`,
          ),
          `  evidence kept until ${t.retirement.retention.map((r) => r.retainUntil).sort()[0] ?? '(none recorded)'} at least (${t.retirement.retention.length} object(s), retention from the retirement date)`,
        ]
      : []),
  ];
  return lines.join('\n');
}
