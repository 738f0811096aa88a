import * as z from 'zod';
import { dataClassificationSchema } from '../domain/classification.ts';
import { SSHSIG_LIMITS, parsePublicKeyLine } from '../signing/sshsig.ts';

import { riskTierSchema } from '../domain/risk-tier.ts';

/** Policy pack schema: pure (no Node built-ins) so workflow code can use the types and durations. */
export { RISK_TIERS, type RiskTier, riskTierSchema } from '../domain/risk-tier.ts';

const duration = z.string().regex(/^\d+(s|m|h|d)$/, 'a duration like 90s, 30m, 12h or 7d');
const metricThresholds = z.partialRecord(z.enum(['accuracy', 'auc', 'recall', 'precision']), z.number().min(0).max(1));

/**
 * Post-deployment monitoring of a tier's deployed versions (workflows/monitor.ts): the window length
 * and the thresholds a window is judged by. A breach raises a review; `autoRollback` also rolls the
 * model back to its previous approved version. A tier without `monitoring` starts no monitor at deploy.
 */
export const monitoringPolicySchema = z.object({
  window: duration.default('1h'),
  /** Fewer binned rows than this in a window: errors and latency are judged, drift is not (PSI over few rows is noise). */
  minRows: z.number().int().min(1).max(1_000_000).default(100),
  maxFeaturePsi: z.number().positive().default(0.25),
  maxPredictionPsi: z.number().positive().default(0.25),
  maxConfidenceShift: z.number().min(0).max(1).default(0.1),
  maxErrorRate: z.number().min(0).max(1).default(0.05),
  maxLatencyP95Ms: z.number().positive().default(1000),
  autoRollback: z.boolean().default(false),
});
export type MonitoringPolicy = z.infer<typeof monitoringPolicySchema>;

export const tierPolicySchema = z.object({
  approverRoles: z.array(z.string().min(1)).min(1),
  thresholds: metricThresholds,
  approvalTimeout: duration,
  /** Above this fraction of excluded rows, certification stops (ExcessiveExclusions) naming the top reasons. */
  maxExcludedFraction: z.number().min(0).max(1),
  /**
   * What an accepted rejection does: `end-gate` rejects the candidate at once; `reopen-role` takes back
   * that role's approval (if any) and keeps the gate open for another holder of the role.
   */
  onRejection: z.enum(['end-gate', 'reopen-role']).default('end-gate'),
  /**
   * The longest a rollback of this tier's models may take (command → first correct inference on the
   * previous version): a rollback drill slower than this raises a finding (`drill.exceeded-rto`).
   * Default 900 s (the seed's "rollback in under 15 minutes").
   */
  rollbackRtoSeconds: z.number().int().min(1).max(86_400).default(900),
  /**
   * Whether an approval or rejection in this tier must carry an OpenSSH signature (namespace
   * factory-approval) by one of the approver's keys over the decision's statement (21 CFR 11.50, 11.70).
   */
  requireSignature: z.boolean().default(false),
  /**
   * How long a validation stands (SR 11-7 periodic review): a version in use is due for revalidation this
   * long after it was last validated, and `factory inventory` flags it overdue after that. Optional (older packs have none).
   */
  revalidateEvery: duration.optional(),
  /**
   * Who renews a validation when it falls due (`revalidationReview`, opened by the scheduled
   * `revalidationSweep`): every role listed must approve. Default: [validator].
   */
  revalidatorRoles: z.array(z.string().min(1)).min(1).optional(),
  monitoring: monitoringPolicySchema.optional(),
  /** Known limitations of this tier's models, printed on each model card (`factory card`); optional. */
  limitations: z
    .array(
      z
        .string()
        .min(1)
        .max(500)
        .regex(/^[^\u0000-\u001f\u007f]*$/, 'no control characters'),
    )
    .max(32)
    .optional(),
});

export const principalSchema = z.object({
  id: z.string().email(),
  name: z.string().min(1),
  roles: z.array(z.string().min(1)).min(1),
  /**
   * The principal's public keys, as in authorized_keys: `ssh-ed25519 AAAA… comment` or
   * `ecdsa-sha2-nistp256 AAAA… comment`. A signed decision verifies with one of them.
   */
  keys: z
    .array(
      z
        .string()
        .max(SSHSIG_LIMITS.publicKeyLine)
        .superRefine((line, ctx) => {
          const key = parsePublicKeyLine(line);
          if (!key.ok) ctx.addIssue({ code: 'custom', message: key.reason });
        }),
    )
    .max(16)
    .default([]),
});

const gatewayName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/, 'letters, digits, _ . - (at most 128)');

/** What callers of one use case may call through the gateway: model names and the risk tiers allowed. */
export const useCaseSchema = z.object({
  name: gatewayName,
  description: z.string().max(500).optional(),
  models: z.array(gatewayName).min(1),
  riskTiers: z.array(riskTierSchema).min(1),
});
export type UseCase = z.infer<typeof useCaseSchema>;

/** An API key of the gateway, by its hash only (never the key): `factory gateway key create` prints the line. */
export const gatewayKeySchema = z.object({
  id: z.string().regex(/^[a-z0-9]{8,32}$/, 'the key id printed by `factory gateway key create`'),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'sha256 of the key, hex'),
  principal: z.string().email(),
  useCase: gatewayName,
});
export type GatewayKey = z.infer<typeof gatewayKeySchema>;

/** The kinds of evidence object; each is kept under Object Lock (COMPLIANCE) until its retain-until. */
export const EVIDENCE_KINDS = ['raw', 'certified', 'artifacts', 'evaluations', 'provenance', 'checkpoints', 'histories', 'packs'] as const;
export type EvidenceKind = (typeof EVIDENCE_KINDS)[number];

/** A retention: whole years (calendar years, e.g. 7y for SEC 17a-4) or days (e.g. 2190d). At most 100 years. */
export const retentionSchema = z
  .string()
  .regex(/^[1-9]\d{0,4}(y|d)$/, 'a retention like 6y, 7y or 2190d')
  .refine((r) => (r.endsWith('y') ? Number(r.slice(0, -1)) <= 100 : Number(r.slice(0, -1)) <= 36_525), 'at most 100 years');

/**
 * How long evidence objects are kept, under Object Lock in COMPLIANCE mode (nobody, root included, can
 * shorten it or delete a locked version before then). `default` applies to every kind not named.
 * Examples: HIPAA 45 CFR 164.316(b)(2) keeps documentation 6 years (6y); SEC 17a-4 keeps most records
 * 6 years and some 3 (the longest applying wins: 6y or 7y is common).
 */
export const evidenceRetentionSchema = z
  .object({
    default: retentionSchema,
    raw: retentionSchema.optional(),
    certified: retentionSchema.optional(),
    artifacts: retentionSchema.optional(),
    evaluations: retentionSchema.optional(),
    provenance: retentionSchema.optional(),
    checkpoints: retentionSchema.optional(),
    histories: retentionSchema.optional(),
    /** Evidence packs exported for an examination (`factory evidence export`). */
    packs: retentionSchema.optional(),
  })
  .strict();
export type EvidenceRetention = z.infer<typeof evidenceRetentionSchema>;
/** A pack written before retention was part of it keeps evidence 7 years. */
export const DEFAULT_EVIDENCE_RETENTION: EvidenceRetention = { default: '7y' };

/**
 * A compute zone: a task queue (its name, before any deployment prefix) whose workers run training and
 * evaluation jobs, with what placement decides from: where it is (`on-prem` in the organisation's own
 * site, `burst` at a cloud or a partner), which data classifications it may hold, and the GPU types
 * attested for it. Placement (src/placement/) reads these; a zone's worker enforces them too.
 */
export const ZONE_LOCATIONS = ['on-prem', 'burst'] as const;
export const zoneSchema = z
  .object({
    name: z.string().regex(/^gpu-[a-z0-9][a-z0-9-]{0,40}$/, 'gpu-<name>: lower-case letters, digits and -, at most 44 characters'),
    location: z.enum(ZONE_LOCATIONS),
    classifications: z.array(dataClassificationSchema).min(1),
    gpuTypes: z
      .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$/))
      .max(32)
      .default([]),
    description: z.string().max(500).optional(),
  })
  .strict();
export type Zone = z.infer<typeof zoneSchema>;
/** A pack written before zones existed: one on-prem zone holding every classification (what ran until then). */
export const DEFAULT_ZONES: Zone[] = [{ name: 'gpu-onprem', location: 'on-prem', classifications: ['public', 'financial', 'pii', 'phi'], gpuTypes: [] }];

/**
 * A site artifacts may be promoted to (seed pattern 3): its name and where its copies go, a bucket
 * and a key prefix (the dev stack's sites share its artifacts bucket under a per-site prefix).
 */
export const siteSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{0,40}$/, 'lower-case letters, digits and -, at most 41 characters'),
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name'),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$/, 'letters, digits, _ . / -')
      .refine((p) => !p.split('/').includes('..'), 'no .. segment')
      .default(''),
    description: z.string().max(500).optional(),
  })
  .strict();
export type Site = z.infer<typeof siteSchema>;
/** A business purpose a transfer may be made for (recorded with it). */
export const transferPurposeSchema = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/, 'lower-case letters, digits and -');

export const policyPackSchema = z.object({
  version: z.string().min(1),
  riskTiers: z.object({ low: tierPolicySchema, medium: tierPolicySchema, high: tierPolicySchema }).strict(),
  principals: z.array(principalSchema).min(1),
  /** Who may call which models through the inference gateway (src/gateway/); optional (older packs have none). */
  useCases: z.array(useCaseSchema).optional(),
  gatewayKeys: z.array(gatewayKeySchema).optional(),

  evidenceRetention: evidenceRetentionSchema.default(DEFAULT_EVIDENCE_RETENTION),
  /** The compute zones training may be placed on (src/placement/); absent: gpu-onprem alone, holding everything. */
  zones: z
    .array(zoneSchema)
    .min(1)
    .max(64)
    .refine((zs) => new Set(zs.map((z) => z.name)).size === zs.length, 'a zone name appears twice')
    .default(DEFAULT_ZONES),
  /** Sites an artifact may be promoted to (`factory promote`); absent: none. */
  sites: z
    .array(siteSchema)
    .max(64)
    .refine((ss) => new Set(ss.map((s) => s.name)).size === ss.length, 'a site name appears twice')
    .optional(),
  /** The purposes a transfer of data or artifacts between sites may be made for; absent: none (every promotion is refused). */
  transferPurposes: z.array(transferPurposeSchema).max(64).optional(),
});
export type PolicyPack = z.infer<typeof policyPackSchema>;
export type TierPolicy = z.infer<typeof tierPolicySchema>;

/** "7d" → milliseconds. */
export function durationMs(d: string): number {
  const n = Number(d.slice(0, -1));
  const unit = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[d.slice(-1) as 's' | 'm' | 'h' | 'd'];
  return n * unit;
}

/**
 * The retain-until of an evidence object of `kind` written at `from`, from the pack's
 * evidenceRetention: years are calendar years (UTC), days are 86 400 s each. The one function every
 * writer of evidence uses (objects, certified datasets, artifacts, evaluations, provenance,
 * checkpoints, histories).
 */
export function evidenceRetainUntil(pack: Pick<PolicyPack, 'evidenceRetention'>, kind: EvidenceKind, from: Date = new Date()): Date {
  const retention = pack.evidenceRetention ?? DEFAULT_EVIDENCE_RETENTION;
  const r = retention[kind] ?? retention.default;
  const n = Number(r.slice(0, -1));
  if (r.endsWith('d')) return new Date(from.getTime() + n * 86_400_000);
  const until = new Date(from.getTime());
  until.setUTCFullYear(until.getUTCFullYear() + n);
  // 29 February + n years lands on 1 March: never earlier than n years.
  return until;
}
