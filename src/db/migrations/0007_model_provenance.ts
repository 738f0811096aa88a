import { type Kysely, sql } from 'kysely';

/**
 * Each model version registered from here on names its signed provenance (an in-toto Statement v1 /
 * SLSA Provenance v1 in a DSSE envelope, in the evidence bucket under Object Lock): its URI, the
 * sha256 of the envelope's bytes and the id of the key that signed it. NULL for rows registered
 * before provenance was signed. They are facts of the version: the guard keeps every rule of 0004
 * and adds the three columns to what never changes.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE model_versions ADD COLUMN provenance_uri text, ADD COLUMN provenance_digest text, ADD COLUMN provenance_key_id text`.execute(db);
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
        OR (OLD.state = 'approved' AND NEW.state IN ('deployed', 'rejected', 'failed', 'cancelled'))) THEN
        RAISE EXCEPTION 'model_versions: % → % is not a lifecycle transition', OLD.state, NEW.state USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('registry guards are never migrated down');
}
