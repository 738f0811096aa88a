import type { ColumnType, Generated, JSONColumnType } from 'kysely';

type CreatedAt = ColumnType<Date, Date | string | undefined, never>;

/** Registry and audit tables (see migrations/). Types only: the migrations are the DDL. */
export interface Database {
  dataset_versions: DatasetVersionsTable;
  model_versions: ModelVersionsTable;
  approvals: ApprovalsTable;
  deployments: DeploymentsTable;
  audit_events: AuditEventsTable;
  gateway_routes: GatewayRoutesTable;
  gateway_requests: GatewayRequestsTable;
  payload_reads: PayloadReadsTable;
  history_exports: HistoryExportsTable;
  retirements: RetirementsTable;
  artifact_promotions: ArtifactPromotionsTable;
  legal_holds: LegalHoldsTable;
  legal_hold_objects: LegalHoldObjectsTable;
  legal_hold_releases: LegalHoldReleasesTable;
  retention_tombstones: RetentionTombstonesTable;
  rollbacks: RollbacksTable;
  rollback_recoveries: RollbackRecoveriesTable;
  rollback_drills: RollbackDrillsTable;
  monitoring_windows: MonitoringWindowsTable;
  monitoring_reviews: MonitoringReviewsTable;
  monitoring_acknowledgements: MonitoringAcknowledgementsTable;
  revalidation_reviews: RevalidationReviewsTable;
  revalidation_outcomes: RevalidationOutcomesTable;
}

/** An artifact promoted to another site (migration 0019). A fact: insert only. */
export interface ArtifactPromotionsTable {
  id: string;
  model_version_id: number;
  model_name: string;
  version: number;
  from_site: string;
  to_site: string;
  purpose: string;
  requested_by: string;
  artifact_digest: string;
  artifact_from: string;
  artifact_to: string;
  provenance_digest: string;
  provenance_from: string;
  provenance_to: string;
  provenance_key_id: string;
  workflow_id: string;
  run_id: string;
  policy_digest: string;
  promoted_at: Date | string;
}

/** A legal hold case (migration 0016): what it holds and who placed it. Facts: insert only. */
export interface LegalHoldsTable {
  case_id: string;
  scope_kind: 'model' | 'dataset';
  scope_name: string;
  placed_by: string;
  reason: string;
  workflow_id: string;
  placed_at: CreatedAt;
}

/** Each object version a hold put an S3 legal hold on. */
export interface LegalHoldObjectsTable {
  case_id: string;
  bucket: string;
  key: string;
  version_id: string;
}

/** A case's release; the database refuses one by the principal who placed the hold. */
export interface LegalHoldReleasesTable {
  case_id: string;
  released_by: string;
  reason: string;
  workflow_id: string;
  released_at: CreatedAt;
}

/** One object version the retention job deleted, recorded before the delete. */
export interface RetentionTombstonesTable {
  id: Generated<string>;
  bucket: string;
  key: string;
  version_id: string;
  record_type: string;
  classification: string;
  retain_until: Date | null;
  size_bytes: string | null;
  sha256: string | null;
  sweep_id: string;
  deleted_at: CreatedAt;
}

/** What the gateway serves per model (migration 0010): one row a rollback switches. */
export interface GatewayRoutesTable {
  model_name: string;
  model_version_id: number;
  triton_model: string;
  triton_version: number;
  artifact_digest: string;
  state: 'live' | 'shadow' | 'retired';
  switched_at: ColumnType<Date, Date | string | undefined, Date | string>;
  switched_by: string;
  reason: string;
}

/** One row per gateway request, served or refused (migration 0010; partitioned by month on received_at). */
export interface GatewayRequestsTable {
  request_id: string;
  received_at: ColumnType<Date, Date | string, never>;
  client_request_id: string | null;
  principal: string | null;
  use_case: string | null;
  key_id: string | null;
  method: string;
  route: string;
  model_name: string | null;
  model_version: number | null;
  model_version_id: number | null;
  artifact_digest: string | null;
  input_digest: string | null;
  output_digest: string | null;
  output_summary: ColumnType<Record<string, unknown> | null, string | null, never>;
  payload_uri: string | null;
  status: number;
  outcome: string;
  reason: string | null;
  latency_ms: number;
  /** Per served row and feature, the training-decile bin of the value (migration 0014); never the value. */
  feature_bins: number[] | null;
  /** The model's P(positive) per served row (migration 0014). */
  scores: number[] | null;
}

export interface PayloadReadsTable {
  id: Generated<string>;
  request_id: string;
  reader: string;
  purpose: string;
  payload_uri: string;
  read_at: ColumnType<Date, Date | string | undefined, never>;
}

export interface DatasetVersionsTable {
  manifest_digest: string;
  name: string;
  raw_uri: string;
  raw_sha256: string;
  certified_uri: string;
  manifest_uri: string;
  rows_total: number;
  rows_accepted: number;
  rows_excluded: number;
  exclusions: JSONColumnType<Array<{ line: number; reason: string }>>;
  workflow_id: string;
  created_at: CreatedAt;
}

/** deployed, rejected, failed and cancelled are final (migrations 0003, 0004). */
import type { ModelState } from '../domain/model-state.ts';
import type { RetentionExtension } from '../domain/retirement.ts';
export type { ModelState };

export interface ModelVersionsTable {
  id: Generated<number>;
  model_name: string;
  version: number;
  state: ModelState;
  risk_tier: string;
  artifact_digest: string;
  artifact_uri: string;
  dataset_manifest_digest: string;
  commit_sha: string;
  image_digest: string;
  requester: string;
  developer: string;
  metrics: JSONColumnType<Record<string, number>>;
  environment: JSONColumnType<Record<string, unknown>>;
  policy_digest: string;
  workflow_id: string;
  /** The Temporal run that registered the version; NULL for rows written before runs were told apart. */
  run_id: string | null;
  /** The signed provenance (DSSE envelope in the evidence bucket), its sha256 and signing key id; NULL for rows before migration 0007. */
  provenance_uri: ColumnType<string | null, string | null | undefined, never>;
  provenance_digest: ColumnType<string | null, string | null | undefined, never>;
  provenance_key_id: ColumnType<string | null, string | null | undefined, never>;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface ApprovalsTable {
  id: string;
  model_version_id: number;
  workflow_id: string;
  decision: 'approve' | 'reject' | 'withdraw';
  approver: string;
  role: string;
  meaning: string;
  model_digest: string;
  comment: string | null;
  accepted: boolean;
  refusal_reason: string | null;
  policy_digest: string;
  decided_at: Date;
  /** Migration 0005: an accepted signed decision's evidence (null when unsigned). */
  key_fingerprint: string | null;
  public_key: string | null;
  signed_statement: string | null;
  signature: string | null;
  signed_at: Date | null;
  signature_verified: boolean | null;
}

export interface DeploymentsTable {
  id: string;
  model_version_id: number;
  triton_model: string;
  triton_version: number;
  endpoint: string;
  artifact_digest: string;
  smoke: JSONColumnType<Record<string, unknown>>;
  deployed_at: Date;
}

export interface AuditEventsTable {
  seq: Generated<string>;
  event_id: string;
  workflow_id: string;
  run_id: string;
  step: string;
  kind: string;
  actor: string;
  payload: JSONColumnType<Record<string, unknown>>;
  occurred_at: string;
  prev_hash: string;
  hash: string;
  /** The exact text `hash` is the SHA-256 of (migration 0022); null on rows appended before it. */
  canonical: string | null;
}

/** One exported Temporal history per run of a closed lifecycle (migration 0008). Append-only. */
export interface HistoryExportsTable {
  workflow_id: string;
  run_id: string;
  /** The run that closed the lifecycle; the runs it continued from share it. */
  closed_run_id: string;
  /** 0 for the first run of the chain, then each continue-as-new. */
  run_index: number;
  /** How the run closed (Temporal's names): COMPLETED, FAILED, CANCELED, TERMINATED, TIMED_OUT, CONTINUED_AS_NEW. */
  status: string;
  uri: string;
  digest: string;
  events: number;
  bytes: ColumnType<string, number | string, never>;
  retain_until: ColumnType<Date, Date | string, never>;
  exported_at: CreatedAt;
}

/** One row per retired model version (migration 0013). Insert-only. */
export interface RetirementsTable {
  /** `<workflow id>/<run id>/retirement`: a retried activity inserts nothing twice. */
  id: string;
  model_version_id: number;
  model_name: string;
  version: number;
  /** The registry state it left: deployed, rolled-back or approved. */
  previous_state: string;
  reason: string;
  requested_by: string;
  workflow_id: string;
  run_id: string;
  /** Whether the gateway route of the model named this version (and now answers 410). */
  route_retired: boolean;
  retention: JSONColumnType<RetentionExtension[]>;
  policy_digest: string;
  retired_at: ColumnType<Date, Date | string, never>;
}

/** One row per rollback, written with the route switch and the registry change (migration 0012). Append-only. */
export interface RollbacksTable {
  id: string;
  model_name: string;
  from_version_id: number;
  to_version_id: number;
  from_version: number;
  to_version: number;
  trigger: 'manual' | 'monitoring' | 'drill';
  requested_by: string;
  reason: string;
  artifact_digest: string;
  requested_at: ColumnType<Date, Date | string, never>;
  switched_at: CreatedAt;
}

/** The measured recovery of a rollback: its first correct inference and RTO (migration 0012). Append-only. */
export interface RollbackRecoveriesTable {
  rollback_id: string;
  first_correct_at: ColumnType<Date, Date | string, never>;
  rto_ms: number;
  verified_via: 'gateway' | 'triton';
}

/** One row per rollback drill on a shadow deployment (migration 0012). Append-only. */
export interface RollbackDrillsTable {
  id: string;
  model_name: string;
  shadow_model: string;
  live_version: number | null;
  previous_version: number | null;
  verdict: 'passed' | 'failed' | 'exceeded-rto';
  rto_ms: number | null;
  forward_ms: number | null;
  policy_rto_seconds: number | null;
  reason: string | null;
  evidence_uri: string | null;
  evidence_digest: string | null;
  requested_by: string;
  started_at: ColumnType<Date, Date | string, never>;
  finished_at: CreatedAt;
}

/** One monitor window's figures (migration 0014). */
export interface MonitoringWindowsTable {
  id: Generated<string>;
  monitor_id: string;
  model_name: string;
  model_version_id: number | null;
  window_start: ColumnType<Date, Date | string, never>;
  window_end: ColumnType<Date, Date | string, never>;
  figures: ColumnType<Record<string, unknown>, string, never>;
  thresholds: ColumnType<Record<string, unknown> | null, string | null, never>;
  breaches: ColumnType<Array<Record<string, unknown>>, string, never>;
  policy_digest: string | null;
  distribution_digest: string | null;
  recorded_at: Generated<Date>;
}

/** A review a breach raised (migration 0014). */
export interface MonitoringReviewsTable {
  review_id: string;
  monitor_id: string;
  model_name: string;
  model_version_id: number | null;
  window_id: string;
  breaches: ColumnType<Array<Record<string, unknown>>, string, never>;
  auto_rollback: boolean;
  rollback_workflow_id: string | null;
  opened_at: ColumnType<Date, Date | string, never>;
}

/** Who closed a review, and why (migration 0014). */
export interface MonitoringAcknowledgementsTable {
  review_id: string;
  acknowledged_by: string;
  reason: string;
  acknowledged_at: ColumnType<Date, Date | string, never>;
}

/** A revalidation review a sweep opened (migration 0021). A fact: insert only. */
export interface RevalidationReviewsTable {
  workflow_id: string;
  model_version_id: number;
  model_name: string;
  version: number;
  risk_tier: string;
  due_at: Date | string;
  last_validated_at: Date | string;
  required_roles: JSONColumnType<string[]>;
  deadline: Date | string;
  policy_digest: string;
  run_id: string;
  opened_at: Date | string;
}

/** How a revalidation review ended (migration 0021). A fact: insert only. */
export interface RevalidationOutcomesTable {
  workflow_id: string;
  model_version_id: number;
  outcome: 'revalidated' | 'failed' | 'timed-out';
  decided_by: JSONColumnType<Array<{ approver: string; role: string; at: string }>>;
  reason: string | null;
  run_id: string;
  decided_at: Date | string;
}
