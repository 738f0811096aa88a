import { type Kysely, sql } from 'kysely';

/**
 * The registry's facts are append-only like the audit trail: a dataset version, a decision and a
 * deployment never change once written. A model version changes only its state, and only along
 * registered → validated → approved → deployed (or to rejected); everything else about it is fixed.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE FUNCTION registry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
    END $$`.execute(db);
  for (const table of ['dataset_versions', 'approvals', 'deployments']) {
    await sql`
      CREATE TRIGGER ${sql.id(`${table}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql.id(table)}
      FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()`.execute(db);
    await sql`
      CREATE TRIGGER ${sql.id(`${table}_no_truncate`)} BEFORE TRUNCATE ON ${sql.id(table)}
      FOR EACH STATEMENT EXECUTE FUNCTION registry_refuse_change()`.execute(db);
  }
  await sql`
    CREATE FUNCTION model_versions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP <> 'UPDATE' THEN
        RAISE EXCEPTION 'model_versions: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF (NEW.id, NEW.model_name, NEW.version, NEW.risk_tier, NEW.artifact_digest, NEW.artifact_uri, NEW.dataset_manifest_digest,
          NEW.commit_sha, NEW.image_digest, NEW.requester, NEW.developer, NEW.metrics, NEW.environment, NEW.policy_digest,
          NEW.workflow_id, NEW.created_at)
         IS DISTINCT FROM
         (OLD.id, OLD.model_name, OLD.version, OLD.risk_tier, OLD.artifact_digest, OLD.artifact_uri, OLD.dataset_manifest_digest,
          OLD.commit_sha, OLD.image_digest, OLD.requester, OLD.developer, OLD.metrics, OLD.environment, OLD.policy_digest,
          OLD.workflow_id, OLD.created_at) THEN
        RAISE EXCEPTION 'model_versions: only the state of a version may change' USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF NEW.state IS DISTINCT FROM OLD.state AND NOT (
           (OLD.state = 'registered' AND NEW.state IN ('validated', 'rejected'))
        OR (OLD.state = 'validated' AND NEW.state IN ('approved', 'rejected'))
        OR (OLD.state = 'approved' AND NEW.state IN ('deployed', 'rejected'))) THEN
        RAISE EXCEPTION 'model_versions: % → % is not a lifecycle transition', OLD.state, NEW.state USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$`.execute(db);
  await sql`
    CREATE TRIGGER model_versions_guard BEFORE UPDATE OR DELETE ON model_versions
    FOR EACH ROW EXECUTE FUNCTION model_versions_guard()`.execute(db);
  await sql`
    CREATE TRIGGER model_versions_no_truncate BEFORE TRUNCATE ON model_versions
    FOR EACH STATEMENT EXECUTE FUNCTION model_versions_guard()`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('registry guards are never migrated down');
}
