import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/**
 * Artifact promotions between sites (issue 10 item 2, seed pattern 3): one row per model version copied
 * to another site by the `artifactPromotion` workflow after its signed provenance and artifact digest
 * were re-verified, written in the same transaction as the audit event `artifact.promoted`. A fact:
 * the workers may only insert it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE artifact_promotions (
      id text PRIMARY KEY,
      model_version_id integer NOT NULL REFERENCES model_versions(id),
      model_name text NOT NULL,
      version integer NOT NULL,
      from_site text NOT NULL,
      to_site text NOT NULL,
      purpose text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 63),
      requested_by text NOT NULL,
      artifact_digest text NOT NULL,
      artifact_from text NOT NULL,
      artifact_to text NOT NULL,
      provenance_digest text NOT NULL,
      provenance_from text NOT NULL,
      provenance_to text NOT NULL,
      provenance_key_id text NOT NULL,
      workflow_id text NOT NULL,
      run_id text NOT NULL,
      policy_digest text NOT NULL,
      promoted_at timestamptz NOT NULL,
      UNIQUE (model_version_id, to_site, workflow_id, run_id)
    )`.execute(db);
  await sql`CREATE INDEX artifact_promotions_model ON artifact_promotions (model_name, version)`.execute(db);
  await grantToApp(db, 'artifact_promotions', { insert: true });
}

export async function down(): Promise<void> {
  throw new Error('artifact promotions are facts: never migrated down');
}
