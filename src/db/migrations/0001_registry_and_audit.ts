import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE dataset_versions (
      manifest_digest text PRIMARY KEY,
      name text NOT NULL,
      raw_uri text NOT NULL,
      raw_sha256 text NOT NULL,
      certified_uri text NOT NULL,
      manifest_uri text NOT NULL,
      rows_total integer NOT NULL,
      rows_accepted integer NOT NULL,
      rows_excluded integer NOT NULL,
      exclusions jsonb NOT NULL,
      workflow_id text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);

  await sql`
    CREATE TABLE model_versions (
      id serial PRIMARY KEY,
      model_name text NOT NULL,
      version integer NOT NULL,
      state text NOT NULL CHECK (state IN ('registered','validated','approved','deployed','rejected')),
      risk_tier text NOT NULL,
      artifact_digest text NOT NULL,
      artifact_uri text NOT NULL,
      dataset_manifest_digest text NOT NULL REFERENCES dataset_versions (manifest_digest),
      commit_sha text NOT NULL,
      image_digest text NOT NULL,
      requester text NOT NULL,
      developer text NOT NULL,
      metrics jsonb NOT NULL,
      environment jsonb NOT NULL,
      policy_digest text NOT NULL,
      workflow_id text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (model_name, version)
    )`.execute(db);

  await sql`
    CREATE TABLE approvals (
      id text PRIMARY KEY,
      model_version_id integer NOT NULL REFERENCES model_versions (id),
      workflow_id text NOT NULL,
      decision text NOT NULL,
      approver text NOT NULL,
      role text NOT NULL,
      meaning text NOT NULL,
      model_digest text NOT NULL,
      comment text,
      accepted boolean NOT NULL,
      refusal_reason text,
      policy_digest text NOT NULL,
      decided_at timestamptz NOT NULL
    )`.execute(db);

  await sql`
    CREATE TABLE deployments (
      id text PRIMARY KEY,
      model_version_id integer NOT NULL REFERENCES model_versions (id),
      triton_model text NOT NULL,
      triton_version integer NOT NULL,
      endpoint text NOT NULL,
      artifact_digest text NOT NULL,
      smoke jsonb NOT NULL,
      deployed_at timestamptz NOT NULL
    )`.execute(db);

  // The audit projection: append-only, one global sequence, each row chained to the previous one.
  await sql`
    CREATE TABLE audit_events (
      seq bigserial PRIMARY KEY,
      event_id text NOT NULL UNIQUE,
      workflow_id text NOT NULL,
      run_id text NOT NULL,
      step text NOT NULL,
      kind text NOT NULL,
      actor text NOT NULL,
      payload jsonb NOT NULL,
      occurred_at text NOT NULL,
      prev_hash text NOT NULL,
      hash text NOT NULL UNIQUE
    )`.execute(db);
  await sql`CREATE INDEX audit_events_workflow ON audit_events (workflow_id, seq)`.execute(db);
  await sql`
    CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$`.execute(db);
  await sql`
    CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()`.execute(db);
  await sql`
    CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the audit trail is never migrated down');
}
