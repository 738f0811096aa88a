import { type Kysely, sql } from 'kysely';

/**
 * The states after the first inference (issue 9), in one migration so the features that use them
 * (rollback, drills, retirement) each add their own tables without redefining these checks:
 *
 * - model_versions: `rolled-back` (a rollback took it off the live route; a later roll-forward may
 *   serve it again) and `retired` (terminal: unloaded, refused with 410, retention runs from then).
 *   The guard keeps every rule of 0007 and adds: deployed → rolled-back | retired,
 *   rolled-back → deployed | retired, approved → retired.
 * - gateway_routes: `shadow` (a drill's own route, never live traffic) and `retired` (the gateway
 *   answers 410 with the route's reason).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE model_versions DROP CONSTRAINT model_versions_state_check`.execute(db);
  await sql`
    ALTER TABLE model_versions ADD CONSTRAINT model_versions_state_check
    CHECK (state IN ('registered','validated','approved','deployed','rejected','failed','cancelled','rolled-back','retired'))`.execute(db);
  await sql`
    CREATE OR REPLACE FUNCTION model_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'model_versions: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF (NEW.id, NEW.model_name, NEW.version, NEW.risk_tier, NEW.artifact_digest, NEW.artifact_uri, NEW.dataset_manifest_digest,
          NEW.commit_sha, NEW.image_digest, NEW.requester, NEW.developer, NEW.metrics, NEW.environment, NEW.policy_digest,
          NEW.workflow_id, NEW.run_id, NEW.created_at, NEW.provenance_uri, NEW.provenance_digest, NEW.provenance_key_id)
         IS DISTINCT FROM
         (OLD.id, OLD.model_name, OLD.version, OLD.risk_tier, OLD.artifact_digest, OLD.artifact_uri, OLD.dataset_manifest_digest,
          OLD.commit_sha, OLD.image_digest, OLD.requester, OLD.developer, OLD.metrics, OLD.environment, OLD.policy_digest,
          OLD.workflow_id, OLD.run_id, OLD.created_at, OLD.provenance_uri, OLD.provenance_digest, OLD.provenance_key_id) THEN
        RAISE EXCEPTION 'model_versions: only the state of a version may change' USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
           (OLD.state = 'registered' AND NEW.state IN ('validated', 'rejected', 'failed', 'cancelled'))
        OR (OLD.state = 'validated' AND NEW.state IN ('approved', 'rejected', 'failed', 'cancelled'))
        OR (OLD.state = 'approved' AND NEW.state IN ('deployed', 'rejected', 'failed', 'cancelled', 'retired'))
        OR (OLD.state = 'deployed' AND NEW.state IN ('rolled-back', 'retired'))
        OR (OLD.state = 'rolled-back' AND NEW.state IN ('deployed', 'retired'))) THEN
        RAISE EXCEPTION 'model_versions: % → % is not a lifecycle transition', OLD.state, NEW.state USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$`.execute(db);

  await sql`ALTER TABLE gateway_routes DROP CONSTRAINT gateway_routes_state_check`.execute(db);
  await sql`ALTER TABLE gateway_routes ADD CONSTRAINT gateway_routes_state_check CHECK (state IN ('live', 'shadow', 'retired'))`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('registry guards are never migrated down');
}
