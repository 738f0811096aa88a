import type { Kysely } from 'kysely';
import { commentDigest, parseStatement } from '../domain/approval-statement.ts';
import type { Database } from '../db/schema.ts';
import type { PolicyPack } from '../policy/schema.ts';
import { APPROVAL_NAMESPACE, parsePublicKeyLine, verifySshSig } from '../signing/sshsig.ts';

export interface SignatureProblem {
  id: string;
  approver: string;
  reason: string;
}

export interface SignaturesResult {
  ok: boolean;
  /** Signed decisions re-verified (statement, signature, key). */
  checked: number;
  /** Of those, how many were also checked against the pack their decision recorded (its digest at hand). */
  againstPack: number;
  problems: SignatureProblem[];
}

/**
 * Re-verifies every stored signature, trusting nothing the row says about itself: the signature over
 * the stored statement with the stored key; the key's fingerprint; the statement's fields against the
 * row (approver, role, meaning, decision, digest, workflow, comment); and, where the pack whose digest
 * the decision recorded is at hand, that the key is one of the approver's there. Pages by id: bounded
 * memory for any table size.
 */
export async function verifyApprovalSignatures(db: Kysely<Database>, packs: ReadonlyMap<string, PolicyPack>, batch = 1_000): Promise<SignaturesResult> {
  const problems: SignatureProblem[] = [];
  let checked = 0;
  let againstPack = 0;
  let after = '';
  for (;;) {
    const page = await db
      .selectFrom('approvals as a')
      .innerJoin('model_versions as m', 'm.id', 'a.model_version_id')
      .select([
        'a.id',
        'a.workflow_id',
        'a.decision',
        'a.approver',
        'a.role',
        'a.meaning',
        'a.model_digest',
        'a.comment',
        'a.accepted',
        'a.policy_digest',
        'a.key_fingerprint',
        'a.public_key',
        'a.signed_statement',
        'a.signature',
        'a.signature_verified',
        'm.model_name',
        'm.version',
      ])
      .where('a.id', '>', after)
      .orderBy('a.id')
      .limit(batch)
      .execute();
    for (const r of page) {
      const bad = (reason: string) => problems.push({ id: r.id, approver: r.approver, reason });
      const pack = packs.get(r.policy_digest);
      const evidence = [r.key_fingerprint, r.public_key, r.signed_statement, r.signature];
      // Unsigned: a tier that requires none, a withdrawal, or a lifecycle whose gate opened under the rules
      // before signatures (its pack may already say requireSignature): the history's patch marker tells.
      if (evidence.every((e) => e === null) && r.signature_verified === null) continue;
      checked += 1;
      if (evidence.some((e) => e === null) || r.signature_verified !== true) {
        bad('incomplete signature evidence (fingerprint, public key, statement, signature and verified are stored together)');
        continue;
      }
      const verdict = signedApprovalVerdict(r, pack);
      for (const reason of verdict.problems) bad(reason);
      if (verdict.againstPack) againstPack += 1;
    }
    if (page.length < batch) break;
    after = page.at(-1)!.id;
  }
  return { ok: problems.length === 0, checked, againstPack, problems };
}

/** The fields of a stored signed decision that its signature is checked against. */
export interface SignedApprovalRecord {
  workflow_id: string;
  decision: string;
  approver: string;
  role: string;
  meaning: string;
  model_digest: string;
  comment: string | null;
  policy_digest: string;
  key_fingerprint: string | null;
  public_key: string | null;
  signed_statement: string | null;
  signature: string | null;
  model_name: string;
  version: number;
}

/**
 * What is wrong with one signed decision's evidence (no problems: it verifies): the signature over the stored
 * statement with the stored key, the key's fingerprint, the statement's fields against the record, and,
 * given the pack the decision recorded, that the key is one of the approver's there. Pure: `audit
 * verify` runs it over the registry, `evidence verify` over a pack's files, offline.
 */
export function signedApprovalVerdict(
  r: SignedApprovalRecord,
  pack?: { principals: ReadonlyArray<Pick<PolicyPack['principals'][number], 'id' | 'keys'>> },
): { problems: string[]; againstPack: boolean } {
  const problems: string[] = [];
  const early = (reason: string) => ({ problems: [...problems, reason], againstPack: false });
  const bad = (reason: string) => problems.push(reason);
  const key = parsePublicKeyLine(r.public_key ?? '');
  if (!key.ok) return early(`stored public key unreadable: ${key.reason}`);
  if (key.value.fingerprint !== r.key_fingerprint) bad(`stored fingerprint ${r.key_fingerprint} is not the stored key's (${key.value.fingerprint})`);
  const v = verifySshSig(r.signature ?? '', r.signed_statement ?? '', APPROVAL_NAMESPACE);
  if (!v.ok) return early(`signature does not verify over the stored statement: ${v.reason}`);
  if (v.value.publicKey.fingerprint !== key.value.fingerprint)
    bad(`signed by ${v.value.publicKey.fingerprint}, not by the stored key ${key.value.fingerprint}`);
  const st = parseStatement(r.signed_statement!);
  if (!st.ok) return early(`stored statement unreadable: ${st.reason}`);
  const f = st.value;
  const differs = (
    [
      ['workflow-id', f.workflowId, r.workflow_id],
      ['model', f.model, r.model_name],
      ['version', String(f.version), String(r.version)],
      ['artifact-digest', f.artifactDigest, r.model_digest],
      ['role', f.role, r.role],
      ['meaning', f.meaning, r.meaning],
      ['decision', f.decision, r.decision],
      ['approver', f.approver.toLowerCase(), r.approver.toLowerCase()],
      ['comment-sha256', f.commentSha256, commentDigest(r.comment ?? undefined)],
    ] as const
  ).filter(([, signed, row]) => signed !== row);
  for (const [name, signed, row] of differs) bad(`the signed statement's ${name} is "${signed}", the row's is "${row}"`);
  if (pack) {
    const principal = pack.principals.find((p) => p.id.toLowerCase() === r.approver.toLowerCase());
    const own = (principal?.keys ?? []).map(parsePublicKeyLine).some((k) => k.ok && k.value.fingerprint === key.value.fingerprint);
    if (!own) bad(`the key ${key.value.fingerprint} is not one of ${r.approver}'s keys in the policy pack ${r.policy_digest.slice(0, 19)}…`);
  }
  return { problems, againstPack: !!pack };
}
