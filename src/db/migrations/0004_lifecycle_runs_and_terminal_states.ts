import { type Kysely, sql } from 'kysely';

/**
 * A lifecycle that failed or was cancelled can be started again for the same model and commit (a new
 * Temporal run under the same workflow id), so:
 * - a model version ends `failed` or `cancelled` when its lifecycle does, from any state before
 *   deployment (deployed and rejected stay final), recorded by the lifecycle's compensation;
 * - each run registers its own version: `run_id` names the run that registered it, and uniqueness is
 *   per (workflow_id, run_id). Rows written before this migration keep run_id NULL and stay unique
 *   per workflow id, so a re-run registerModel for an old lifecycle still finds its row.
 * The guard keeps every rule of 0003 and adds run_id to the facts that never change.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE model_versions DROP CONSTRAINT model_versions_state_check`.execute(db);
  await sql`
    ALTER TABLE model_versions ADD CONSTRAINT model_versions_state_check
    CHECK (state IN ('registered','validated','approved','deployed','rejected','failed','cancelled'))`.execute(db);

  await sql`ALTER TABLE model_versions ADD COLUMN run_id text`.execute(db);
  await sql`ALTER TABLE model_versions DROP CONSTRAINT model_versions_workflow_id_key`.execute(db);
  await sql`CREATE UNIQUE INDEX model_versions_workflow_run ON model_versions (workflow_id, run_id)`.execute(db);
  await sql`CREATE UNIQUE INDEX model_versions_workflow_legacy ON model_versions (workflow_id) WHERE run_id IS NULL`.execute(db);

  await sql`
    CREATE OR REPLACE FUNCTION model_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'model_versions: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF (NEW.id, NEW.model_name, NEW.version, NEW.risk_tier, NEW.artifact_digest, NEW.artifact_uri, NEW.dataset_manifest_digest,
          NEW.commit_sha, NEW.image_digest, NEW.requester, NEW.developer, NEW.metrics, NEW.environment, NEW.policy_digest,
          NEW.workflow_id, NEW.run_id, NEW.created_at)
         IS DISTINCT FROM
         (OLD.id, OLD.model_name, OLD.version, OLD.risk_tier, OLD.artifact_digest, OLD.artifact_uri, OLD.dataset_manifest_digest,
          OLD.commit_sha, OLD.image_digest, OLD.requester, OLD.developer, OLD.metrics, OLD.environment, OLD.policy_digest,
          OLD.workflow_id, OLD.run_id, OLD.created_at) THEN
        RAISE EXCEPTION 'model_versions: only the state of a version may change' USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
           (OLD.state = 'registered' AND NEW.state IN ('validated', 'rejected', 'failed', 'cancelled'))
        OR (OLD.state = 'validated' AND NEW.state IN ('approved', 'rejected', 'failed', 'cancelled'))
        OR (OLD.state = 'approved' AND NEW.state IN ('deployed', 'rejected', 'failed', 'cancelled'))) THEN
        RAISE EXCEPTION 'model_versions: % → % is not a lifecycle transition', OLD.state, NEW.state USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('registry guards are never migrated down');
}
