import { type Kysely, sql } from 'kysely';
import { grantToApp } from '../roles.ts';

/**
 * Legal holds and the retention job's tombstones (issue 10 item 5). Every table is a fact table: the
 * workers' role may only insert (a release is a row of its own, never an edit of the hold).
 *
 * legal_holds: one row per case: what it holds (a model's versions or a dataset's versions), who placed
 * it and why. legal_hold_objects: every object version the hold put an S3 legal hold on.
 * legal_hold_releases: who released a case; the database itself refuses a release by the principal who
 * placed it (case-insensitive), whatever client writes it.
 *
 * Frozen rows: while a case on a model is unreleased, its model_versions rows that finished their
 * lifecycle refuse every UPDATE (a held deployed version is not retired or rolled back; a version still
 * in flight may reach its end, so a lifecycle's end is never wedged); dataset_versions are facts already.
 *
 * retention_tombstones: one row per object version the retention job deleted (what it was, its record
 * type and classification, the retain-until that had passed), written before the delete.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE legal_holds (
      case_id text PRIMARY KEY CHECK (case_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$'),
      scope_kind text NOT NULL CHECK (scope_kind IN ('model', 'dataset')),
      scope_name text NOT NULL CHECK (length(scope_name) BETWEEN 1 AND 128),
      placed_by text NOT NULL,
      reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
      workflow_id text NOT NULL,
      placed_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`CREATE INDEX legal_holds_scope ON legal_holds (scope_kind, scope_name)`.execute(db);
  await sql`
    CREATE TABLE legal_hold_objects (
      case_id text NOT NULL REFERENCES legal_holds(case_id),
      bucket text NOT NULL,
      key text NOT NULL,
      version_id text NOT NULL,
      PRIMARY KEY (case_id, bucket, key, version_id)
    )`.execute(db);
  await sql`CREATE INDEX legal_hold_objects_object ON legal_hold_objects (bucket, key, version_id)`.execute(db);
  await sql`
    CREATE TABLE legal_hold_releases (
      case_id text PRIMARY KEY REFERENCES legal_holds(case_id),
      released_by text NOT NULL,
      reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
      workflow_id text NOT NULL,
      released_at timestamptz NOT NULL DEFAULT now()
    )`.execute(db);
  await sql`
    CREATE FUNCTION legal_hold_release_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE placer text;
    BEGIN
      SELECT placed_by INTO placer FROM legal_holds WHERE case_id = NEW.case_id;
      IF lower(placer) = lower(NEW.released_by) THEN
        RAISE EXCEPTION 'legal hold %: released by % who placed it; a different principal must release it', NEW.case_id, NEW.released_by
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$`.execute(db);
  await sql`CREATE TRIGGER legal_hold_releases_second_principal BEFORE INSERT ON legal_hold_releases FOR EACH ROW EXECUTE FUNCTION legal_hold_release_guard()`.execute(
    db,
  );
  await sql`
    CREATE FUNCTION model_versions_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE held text;
    BEGIN
      -- A version still on its way (registered, validated, approved) finishes its lifecycle: its end is
      -- recorded, never wedged. What it became (deployed, rejected, failed, …) is then frozen.
      IF TG_OP = 'UPDATE' AND OLD.state IN ('registered', 'validated', 'approved') THEN
        RETURN NEW;
      END IF;
      SELECT h.case_id INTO held FROM legal_holds h
        WHERE h.scope_kind = 'model' AND h.scope_name = OLD.model_name
          AND NOT EXISTS (SELECT 1 FROM legal_hold_releases r WHERE r.case_id = h.case_id)
        LIMIT 1;
      IF held IS NOT NULL THEN
        RAISE EXCEPTION 'model_versions: % v% is frozen by legal hold %', OLD.model_name, OLD.version, held USING ERRCODE = 'insufficient_privilege';
      END IF;
      RETURN NEW;
    END $$`.execute(db);
  await sql`CREATE TRIGGER model_versions_legal_hold BEFORE UPDATE OR DELETE ON model_versions FOR EACH ROW EXECUTE FUNCTION model_versions_hold_guard()`.execute(
    db,
  );
  for (const t of ['legal_holds', 'legal_hold_objects', 'legal_hold_releases']) {
    await sql`CREATE TRIGGER ${sql.id(`${t}_append_only`)} BEFORE UPDATE OR DELETE ON ${sql.id(t)} FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()`.execute(
      db,
    );
  }

  await sql`
    CREATE TABLE retention_tombstones (
      id bigserial PRIMARY KEY,
      bucket text NOT NULL,
      key text NOT NULL,
      version_id text NOT NULL,
      record_type text NOT NULL,
      classification text NOT NULL,
      retain_until timestamptz,
      size_bytes bigint,
      sha256 text,
      sweep_id text NOT NULL,
      deleted_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (bucket, key, version_id)
    )`.execute(db);
  await sql`CREATE TRIGGER retention_tombstones_append_only BEFORE UPDATE OR DELETE ON retention_tombstones FOR EACH ROW EXECUTE FUNCTION registry_refuse_change()`.execute(
    db,
  );

  await grantToApp(db, 'legal_holds', { insert: true });
  await grantToApp(db, 'legal_hold_objects', { insert: true });
  await grantToApp(db, 'legal_hold_releases', { insert: true });
  await grantToApp(db, 'retention_tombstones', { insert: true, sequence: 'retention_tombstones_id_seq' });
}

export async function down(): Promise<void> {
  throw new Error('legal holds and tombstones are never migrated down');
}
