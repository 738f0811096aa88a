import { type Kysely, sql } from 'kysely';

/**
 * A legal hold preserves evidence; it must not keep a harmful model in production. Under an open hold
 * (migration 0016) a model's finished versions stay frozen, except the serving moves a rollback makes:
 * deployed → rolled-back and rolled-back → deployed (a roll-forward). They delete nothing, change no
 * fact of the version, and are themselves recorded (rollbacks row, audit event). Retirement, which
 * starts the retention clock, stays refused while the hold is open.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE OR REPLACE FUNCTION model_versions_hold_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE held text;
    BEGIN
      -- A version still on its way (registered, validated, approved) finishes its lifecycle: its end is
      -- recorded, never wedged. What it became (deployed, rejected, failed, …) is then frozen.
      IF TG_OP = 'UPDATE' AND OLD.state IN ('registered', 'validated', 'approved') THEN
        RETURN NEW;
      END IF;
      -- A rollback or a roll-forward: only the state changes (model_versions_guard refuses any other column).
      IF TG_OP = 'UPDATE' AND ((OLD.state = 'deployed' AND NEW.state = 'rolled-back') OR (OLD.state = 'rolled-back' AND NEW.state = 'deployed')) THEN
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
}

export async function down(): Promise<void> {
  throw new Error('registry guards are never migrated down');
}
