import * as z from 'zod';

/**
 * The evidence pack's layout (one zip archive). Pure: the exporter (src/evidence/build.ts) writes it
 * and the offline verifier (src/evidence/verify.ts) reads it; both name files through these constants.
 * Every file is listed in manifest.json with its sha256; manifest.dsse.json is a DSSE envelope by the
 * factory key whose payload is manifest.json's exact bytes.
 */
export const PACK_FORMAT = 'ai-factory.evidence-pack/v1';
export const MANIFEST_PAYLOAD_TYPE = 'application/vnd.ai-factory.evidence-manifest+json';

export const PACK_FILES = {
  manifest: 'manifest.json',
  manifestEnvelope: 'manifest.dsse.json',
  readme: 'README.txt',
  factoryKeyPem: 'keys/factory-signing.pub.pem',
  factoryKeySsh: 'keys/factory-signing.pub',
  factoryKeyHex: 'keys/factory-signing.pub.hex',
  allowedSigners: 'keys/allowed_signers',
  version: 'model-version.json',
  provenanceEnvelope: 'provenance/provenance.dsse.json',
  provenanceStatement: 'provenance/statement.json',
  datasets: 'datasets/',
  evaluationReport: 'evaluation/report.json',
  evaluationThresholds: 'evaluation/against-thresholds.json',
  approvals: 'approvals/approvals.json',
  approvalsDir: 'approvals/',
  deployments: 'deployments/deployments.json',
  /** One file per related record type other features keep (rollbacks, drills, retirement, holds...), when their table exists. */
  records: 'records/',
  histories: 'history/',
  historyIndex: 'history/exports.json',
  auditEvents: 'audit/events.jsonl',
  auditCheckpoint: 'audit/checkpoint.dsse.json',
  auditProof: 'audit/proof.json',
  policyPack: 'policy/pack.yaml',
  policyDigest: 'policy/digest.txt',
} as const;

/** Limits the verifier holds a pack to (every input is hostile): the archive, each file, their number. */
export const PACK_LIMITS = {
  archiveBytes: 512 * 1024 * 1024,
  fileBytes: 256 * 1024 * 1024,
  totalBytes: 1024 * 1024 * 1024,
  files: 10_000,
  pathLength: 300,
  /** The most audit events one pack carries between the version's first event and the checkpoint. */
  auditEvents: 200_000,
} as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
/** A path inside the pack: relative, forward slashes, no `..`, no control characters. */
export const packPathSchema = z
  .string()
  .min(1)
  .max(PACK_LIMITS.pathLength)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@+=-]*(\/[A-Za-z0-9][A-Za-z0-9._@+=-]*)*$/, 'a relative path of letters, digits and ._@+=-');

export const packManifestSchema = z
  .object({
    format: z.literal(PACK_FORMAT),
    model: z.string().min(1).max(200),
    version: z.number().int().min(1),
    workflowId: z.string().min(1).max(1000),
    artifactDigest: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    exportedAt: z.iso.datetime(),
    exportedBy: z.string().max(320),
    case: z.string().max(200).nullable(),
    exportWorkflowId: z.string().max(1000),
    /** The factory key that signs the manifest (`SHA256:…`, as `ssh-keygen -l` prints it). */
    keyId: z.string().max(128),
    files: z.array(z.object({ path: packPathSchema, sha256: sha256Hex, bytes: z.number().int().min(0) }).strict()).max(PACK_LIMITS.files),
  })
  .strict();
export type PackManifest = z.infer<typeof packManifestSchema>;

/** audit/proof.json: which events belong to the version, and where the segment ends (the checkpoint's head). */
export const auditProofSchema = z
  .object({
    firstSeq: z.string().regex(/^\d{1,19}$/),
    lastSeq: z.string().regex(/^\d{1,19}$/),
    checkpointSeq: z.string().regex(/^\d{1,19}$/),
    chain: z.string().max(100),
    /** The event ids of this version's lifecycle (its workflow id) inside the segment. */
    versionEvents: z.array(z.string().max(2000)).max(PACK_LIMITS.auditEvents),
  })
  .strict();
export type AuditProof = z.infer<typeof auditProofSchema>;

/** One row of audit/events.jsonl: the audit_events row as stored (seq as text). */
export const packAuditEventSchema = z
  .object({
    seq: z.string().regex(/^\d{1,19}$/),
    event_id: z.string(),
    workflow_id: z.string(),
    run_id: z.string(),
    step: z.string(),
    kind: z.string(),
    actor: z.string(),
    payload: z.record(z.string(), z.unknown()),
    occurred_at: z.string(),
    prev_hash: z.string(),
    hash: z.string(),
  })
  .strict();
export type PackAuditEvent = z.infer<typeof packAuditEventSchema>;

/** One approval as the pack carries it (the registry row, times as ISO text). */
export const packApprovalSchema = z
  .object({
    id: z.string(),
    workflow_id: z.string(),
    decision: z.string(),
    approver: z.string(),
    role: z.string(),
    meaning: z.string(),
    model_digest: z.string(),
    comment: z.string().nullable(),
    accepted: z.boolean(),
    refusal_reason: z.string().nullable(),
    policy_digest: z.string(),
    decided_at: z.string(),
    key_fingerprint: z.string().nullable(),
    public_key: z.string().nullable(),
    signed_statement: z.string().nullable(),
    signature: z.string().nullable(),
    signed_at: z.string().nullable(),
    signature_verified: z.boolean().nullable(),
    /** Where the statement and signature lie as separate files (for ssh-keygen -Y verify), when signed. */
    statementFile: packPathSchema.optional(),
    signatureFile: packPathSchema.optional(),
  })
  .strict();
export type PackApproval = z.infer<typeof packApprovalSchema>;

/** history/exports.json: each exported run's history, the file it lies in and its digest as recorded. */
export const packHistoryIndexSchema = z.array(
  z.object({ runId: z.string(), status: z.string(), file: packPathSchema, digest: z.string(), events: z.number(), uri: z.string() }).strict(),
);

/** A name safe as one path segment of the pack (approver ids, run ids, digests). */
export function pathSegment(text: string): string {
  const s = text.replace(/[^A-Za-z0-9._@+=-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
  return (s || 'x').slice(0, 120);
}
