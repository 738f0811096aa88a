import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/** Months of request-log partitions made ahead by this migration; later rows land in the DEFAULT partition until a later migration adds months. */
const MONTHS_AHEAD = 24;

/** `gateway_requests_y2026m11` for the month of `d` (UTC), and its bounds. */
export function requestPartition(d: Date): { name: string; from: string; to: string } {
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const from = new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10);
  const to = new Date(Date.UTC(y, m + 1, 1)).toISOString().slice(0, 10);
  return { name: `gateway_requests_y${y}m${String(m + 1).padStart(2, '0')}`, from, to };
}

/**
 * The inference gateway's tables.
 *
 * gateway_routes: what the gateway serves per model, ONE row per model (use cases are the pack's):
 * a deploy writes it, a rollback (a later change) switches it with one UPDATE, atomically.
 *
 * gateway_requests: one row per request, served or refused, range-partitioned by month on
 * received_at. The request id is a UUID v7, whose first 48 bits are received_at in milliseconds: a
 * lookup by id names its partition (`received_at = <time in the id> AND request_id = …`). Rows are
 * facts: the workers' role may only insert them. A DEFAULT partition takes what falls outside.
 *
 * payload_reads: every read of a request's payload (who, when, why), recorded before the read.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE gateway_routes (
      model_name text PRIMARY KEY,
      model_version_id integer NOT NULL REFERENCES model_versions(id),
      triton_model text NOT NULL,
      triton_version integer NOT NULL,
      artifact_digest text NOT NULL,
      state text NOT NULL DEFAULT 'live' CHECK (state IN ('live')),
      switched_at timestamptz NOT NULL DEFAULT now(),
      switched_by text NOT NULL,
      reason text NOT NULL
    )`.execute(db);
  await grantToApp(db, 'gateway_routes', {
    insert: true,
    update: ['model_version_id', 'triton_model', 'triton_version', 'artifact_digest', 'state', 'switched_at', 'switched_by', 'reason'],
  });
  // Versions deployed before the gateway existed: the newest deployment of each model is its route.
  await sql`
    INSERT INTO gateway_routes (model_name, model_version_id, triton_model, triton_version, artifact_digest, switched_at, switched_by, reason)
    SELECT DISTINCT ON (m.model_name) m.model_name, m.id, d.triton_model, d.triton_version, d.artifact_digest, d.deployed_at, 'migration 0010', 'deployed before the gateway'
    FROM deployments d JOIN model_versions m ON m.id = d.model_version_id
    WHERE m.state = 'deployed'
    ORDER BY m.model_name, d.deployed_at DESC`.execute(db);

  await sql`
    CREATE TABLE gateway_requests (
      request_id uuid NOT NULL,
      received_at timestamptz NOT NULL,
      client_request_id text,
      principal text,
      use_case text,
      key_id text,
      method text NOT NULL,
      route text NOT NULL,
      model_name text,
      model_version integer,
      model_version_id integer,
      artifact_digest text,
      input_digest text,
      output_digest text,
      output_summary jsonb,
      payload_uri text,
      status integer NOT NULL,
      outcome text NOT NULL,
      reason text,
      latency_ms real NOT NULL,
      PRIMARY KEY (received_at, request_id)
    ) PARTITION BY RANGE (received_at)`.execute(db);
  await sql`CREATE TABLE gateway_requests_default PARTITION OF gateway_requests DEFAULT`.execute(db);
  const now = new Date();
  for (let i = -1; i < MONTHS_AHEAD; i++) {
    const p = requestPartition(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1)));
    await sql`CREATE TABLE ${sql.id(p.name)} PARTITION OF gateway_requests FOR VALUES FROM (${sql.lit(p.from)}) TO (${sql.lit(p.to)})`.execute(db);
  }
  // By id alone (an id from elsewhere, whose time is not trusted) and per model over time (monitoring).
  await sql`CREATE INDEX gateway_requests_request_id ON gateway_requests (request_id)`.execute(db);
  await sql`CREATE INDEX gateway_requests_model_time ON gateway_requests (model_name, received_at)`.execute(db);
  await grantToApp(db, 'gateway_requests', { insert: true });

  await sql`
    CREATE TABLE payload_reads (
      id bigserial PRIMARY KEY,
      request_id uuid NOT NULL,
      reader text NOT NULL,
      purpose text NOT NULL CHECK (length(purpose) BETWEEN 3 AND 500),
      payload_uri text NOT NULL,
      read_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await grantToApp(db, 'payload_reads', { insert: true, sequence: 'payload_reads_id_seq' });
}

export async function down(): Promise<void> {
  throw new Error('the request log is never migrated down');
}
