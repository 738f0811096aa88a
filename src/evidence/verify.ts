import { type KeyObject, createPublicKey } from 'node:crypto';
import { unzipSync } from 'fflate';
import { type AuditCheckpoint, CHECKPOINT_PAYLOAD_TYPE, auditCheckpointSchema } from '../audit/checkpoint.ts';
import { hashOf } from '../audit/chain.ts';
import { sha256Hex } from '../audit/canonical.ts';
import { signedApprovalVerdict } from '../audit/signatures.ts';
import { checkProvenance } from '../provenance/statement.ts';
import { verifyEnvelope } from '../signing/dsse.ts';
import { keyIdOf } from '../signing/factory-key.ts';
import {
  MANIFEST_PAYLOAD_TYPE,
  PACK_FILES,
  PACK_LIMITS,
  type PackAuditEvent,
  type PackManifest,
  auditProofSchema,
  packApprovalSchema,
  packAuditEventSchema,
  packHistoryIndexSchema,
  packManifestSchema,
} from './format.ts';

/**
 * The offline verifier of an evidence pack: it reads nothing but the archive (no stack, no database,
 * no environment) and reuses the code the factory itself trusts: DSSE verification (src/signing/dsse.ts),
 * the provenance check (src/provenance/statement.ts), the approval signature check (src/audit/signatures.ts
 * over src/signing/sshsig.ts) and the audit chain's hash (src/audit/chain.ts).
 */

/** Each failure class has its exit code (README, "Evidence packs"); the most fundamental one found wins. */
export const VERIFY_EXIT = {
  ok: 0,
  unreadable: 20,
  manifestSignature: 21,
  fileDigest: 22,
  provenance: 23,
  approvalSignature: 24,
  auditChain: 25,
  records: 26,
} as const;
export type ProblemClass = Exclude<keyof typeof VERIFY_EXIT, 'ok'>;
const PRIORITY: ProblemClass[] = ['unreadable', 'manifestSignature', 'fileDigest', 'provenance', 'approvalSignature', 'auditChain', 'records'];

export interface PackProblem {
  class: ProblemClass;
  /** The file of the pack the problem is in, when there is one. */
  file?: string;
  message: string;
}

export interface PackVerdict {
  ok: boolean;
  exitCode: number;
  model?: string;
  version?: number;
  artifactDigest?: string;
  exportedAt?: string;
  exportedBy?: string;
  case?: string | null;
  /** The key the manifest is signed by, and whether the caller named it (else: the key inside the pack, to compare with the published one). */
  keyId?: string;
  keyTrustedBy: 'given' | 'pack';
  checked: {
    files: number;
    provenance: boolean;
    approvals: { total: number; signed: number; againstPack: number };
    audit: { events: number; versionEvents: number; checkpointSeq?: string; checkpointCreatedAt?: string };
    histories: number;
    policy?: { digest: string; isTheVersions: boolean };
  };
  problems: PackProblem[];
  notes: string[];
}

export class PackUnreadable extends Error {
  override name = 'PackUnreadable';
}

/** Unzips within the limits; duplicate names, absolute or `..` paths, and oversized entries are refused. */
export function unpack(archive: Uint8Array): Map<string, Uint8Array> {
  if (archive.length > PACK_LIMITS.archiveBytes) throw new PackUnreadable(`the archive is ${archive.length} bytes, more than ${PACK_LIMITS.archiveBytes}`);
  const seen = new Set<string>();
  let total = 0;
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(archive, {
      filter(f) {
        if (seen.has(f.name)) throw new PackUnreadable(`the archive holds ${JSON.stringify(f.name.slice(0, 200))} twice`);
        seen.add(f.name);
        if (seen.size > PACK_LIMITS.files) throw new PackUnreadable(`the archive holds more than ${PACK_LIMITS.files} files`);
        if (f.originalSize > PACK_LIMITS.fileBytes)
          throw new PackUnreadable(`${f.name.slice(0, 200)} unpacks to ${f.originalSize} bytes, more than ${PACK_LIMITS.fileBytes}`);
        total += f.originalSize;
        if (total > PACK_LIMITS.totalBytes) throw new PackUnreadable(`the archive unpacks to more than ${PACK_LIMITS.totalBytes} bytes`);
        return !f.name.endsWith('/');
      },
    });
  } catch (err) {
    if (err instanceof PackUnreadable) throw err;
    throw new PackUnreadable(`not a readable zip archive: ${(err as Error).message}`);
  }
  const files = new Map<string, Uint8Array>();
  for (const [name, bytes] of Object.entries(entries)) {
    // A declared size can lie: hold the real one to the limit too.
    if (bytes.length > PACK_LIMITS.fileBytes) throw new PackUnreadable(`${name.slice(0, 200)} is larger than ${PACK_LIMITS.fileBytes} bytes`);
    files.set(name, bytes);
  }
  return files;
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
/** JSON of a file whose bytes may be anyone's (a pack whose manifest did not verify): undefined when it is not JSON. */
function tryJson(b: Uint8Array | undefined): unknown {
  if (!b) return undefined;
  try {
    return JSON.parse(text(b));
  } catch {
    return undefined;
  }
}

function parseJson(files: Map<string, Uint8Array>, name: string): unknown {
  const b = files.get(name);
  if (!b) throw new PackUnreadable(`${name} is missing`);
  try {
    return JSON.parse(text(b));
  } catch {
    throw new PackUnreadable(`${name} is not JSON`);
  }
}

/** allowed_signers lines (`<principal> namespaces="…" <type> <base64>`) as the principals and keys they list. */
export function principalsFromAllowedSigners(body: string): Array<{ id: string; keys: string[] }> {
  const byId = new Map<string, string[]>();
  for (const line of body.split('\n')) {
    const parts = line.trim().split(/\s+/);
    if (parts.length < 4 || line.trim().startsWith('#')) continue;
    const [ids, , type, blob] = parts;
    for (const id of ids!.split(',')) byId.set(id.toLowerCase(), [...(byId.get(id.toLowerCase()) ?? []), `${type} ${blob}`]);
  }
  return [...byId].map(([id, keys]) => ({ id, keys }));
}

/**
 * Verifies a pack. `trusted`: the factory public keys the examiner holds (published); without them the
 * key inside the pack is used, and the verdict says so (compare its fingerprint with the published one).
 */
export function verifyPack(archive: Uint8Array, { trusted }: { trusted?: readonly KeyObject[] } = {}): PackVerdict {
  const problems: PackProblem[] = [];
  const notes: string[] = [];
  const verdict: PackVerdict = {
    ok: false,
    exitCode: VERIFY_EXIT.unreadable,
    keyTrustedBy: trusted?.length ? 'given' : 'pack',
    checked: { files: 0, provenance: false, approvals: { total: 0, signed: 0, againstPack: 0 }, audit: { events: 0, versionEvents: 0 }, histories: 0 },
    problems,
    notes,
  };
  const finish = (): PackVerdict => {
    const worst = PRIORITY.find((c) => problems.some((p) => p.class === c));
    verdict.ok = !worst;
    verdict.exitCode = worst ? VERIFY_EXIT[worst] : VERIFY_EXIT.ok;
    return verdict;
  };
  const problem = (cls: ProblemClass, message: string, file?: string) => problems.push({ class: cls, message, ...(file ? { file } : {}) });

  let files: Map<string, Uint8Array>;
  let manifest: PackManifest;
  try {
    files = unpack(archive);
    const parsed = packManifestSchema.safeParse(parseJson(files, PACK_FILES.manifest));
    if (!parsed.success)
      throw new PackUnreadable(
        `${PACK_FILES.manifest} is not an evidence pack manifest: ${parsed.error.issues[0]?.path.join('.')}: ${parsed.error.issues[0]?.message}`,
      );
    manifest = parsed.data;
  } catch (err) {
    if (!(err instanceof PackUnreadable)) throw err;
    problem('unreadable', err.message);
    return finish();
  }
  Object.assign(verdict, {
    model: manifest.model,
    version: manifest.version,
    artifactDigest: manifest.artifactDigest,
    exportedAt: manifest.exportedAt,
    exportedBy: manifest.exportedBy,
    case: manifest.case,
  });

  // 1. Every file against the manifest: altered, missing or unlisted, each named.
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  for (const f of manifest.files) {
    const bytes = files.get(f.path);
    if (!bytes) problem('fileDigest', `listed in the manifest but missing from the pack`, f.path);
    else if (sha256Hex(bytes) !== f.sha256) problem('fileDigest', `altered: its sha256 is ${sha256Hex(bytes)}, the signed manifest says ${f.sha256}`, f.path);
    else verdict.checked.files += 1;
  }
  for (const name of files.keys()) {
    if (name !== PACK_FILES.manifest && name !== PACK_FILES.manifestEnvelope && !listed.has(name))
      problem('fileDigest', 'not listed in the signed manifest', name);
  }
  const intact = (name: string) => listed.has(name) && !problems.some((p) => p.file === name);
  const get = (name: string) => (intact(name) ? files.get(name) : undefined);

  // 2. The factory key and the manifest's signature.
  let keys: KeyObject[] = [];
  const pem = get(PACK_FILES.factoryKeyPem);
  let packKey: KeyObject | undefined;
  try {
    packKey = pem ? createPublicKey({ key: text(pem), format: 'pem' }) : undefined;
  } catch {
    problem('manifestSignature', 'not a PEM public key', PACK_FILES.factoryKeyPem);
  }
  if (trusted?.length) {
    keys = [...trusted];
    if (packKey && !trusted.some((k) => keyIdOf(k) === keyIdOf(packKey))) {
      notes.push(`the pack's own key ${keyIdOf(packKey)} is not one you trust: only the keys you gave verify it`);
    }
  } else if (packKey) {
    keys = [packKey];
    notes.push(
      `verified with the factory key inside the pack (${keyIdOf(packKey)}): compare it with the factory's published key (\`factory keys show\`), or pass --trusted-key`,
    );
  } else problem('manifestSignature', 'no factory public key in the pack and none given', PACK_FILES.factoryKeyPem);
  const envelopeBytes = files.get(PACK_FILES.manifestEnvelope);
  if (!envelopeBytes) problem('manifestSignature', 'missing: the manifest is unsigned', PACK_FILES.manifestEnvelope);
  else if (keys.length) {
    const v = verifyEnvelope(tryJson(envelopeBytes), keys, MANIFEST_PAYLOAD_TYPE);
    if (!v.ok) problem('manifestSignature', v.reason, PACK_FILES.manifestEnvelope);
    else if (!v.payload.equals(Buffer.from(files.get(PACK_FILES.manifest)!)))
      problem('manifestSignature', 'altered: it is not the manifest the factory signed', PACK_FILES.manifest);
    else verdict.keyId = v.keyId;
  }

  // 3. The model version, and its provenance against it.
  const versionJson = tryJson(get(PACK_FILES.version));
  const versionRaw = versionJson && typeof versionJson === 'object' ? (versionJson as Record<string, unknown>) : undefined;
  const envBytes = get(PACK_FILES.provenanceEnvelope);
  if (versionRaw && envBytes) {
    const p = checkProvenance(envBytes, keys, {
      artifactDigest: String(versionRaw.artifact_digest),
      datasetManifestDigest: String(versionRaw.dataset_manifest_digest),
      commitSha: String(versionRaw.commit_sha),
      policyDigest: String(versionRaw.policy_digest),
      imageDigest: String(versionRaw.image_digest),
    });
    if (!p.ok) problem('provenance', p.reason, PACK_FILES.provenanceEnvelope);
    else if (versionRaw.provenance_digest !== `sha256:${sha256Hex(envBytes)}`) {
      problem(
        'provenance',
        `its digest is sha256:${sha256Hex(envBytes)}, the registry recorded ${String(versionRaw.provenance_digest)}`,
        PACK_FILES.provenanceEnvelope,
      );
    } else verdict.checked.provenance = true;
    if (versionRaw.artifact_digest !== manifest.artifactDigest) problem('records', `the version's artifact digest is not the manifest's`, PACK_FILES.version);
  } else if (!envBytes && !listed.has(PACK_FILES.provenanceEnvelope))
    notes.push('no signed provenance in the pack (a version registered before provenance existed)');

  // 3b. The certified dataset's manifest is the one the version (and its provenance) names; the
  // evaluation report holds the metrics the registry recorded.
  if (versionRaw) {
    const manifests = [...files.keys()].filter((n) => n.startsWith(PACK_FILES.datasets) && n.endsWith('/manifest.json'));
    const digests = manifests.filter(intact).map((n) => `sha256:${sha256Hex(files.get(n)!)}`);
    if (manifests.length && !digests.includes(String(versionRaw.dataset_manifest_digest))) {
      problem('records', `no dataset manifest in the pack has the version's digest ${String(versionRaw.dataset_manifest_digest)}`, manifests[0]);
    }
    const report = tryJson(get(PACK_FILES.evaluationReport));
    const metrics = versionRaw.metrics;
    if (report && typeof report === 'object' && metrics && typeof metrics === 'object') {
      for (const [k, v] of Object.entries(metrics as Record<string, unknown>)) {
        const r = (report as Record<string, unknown>)[k];
        if (r !== undefined && r !== v)
          problem('records', `the report's ${k} is ${String(r)}, the registry recorded ${String(v)}`, PACK_FILES.evaluationReport);
      }
    }
  }

  // 4. The policy pack's bytes against its digest.
  const policy = get(PACK_FILES.policyPack);
  const policyDigest = get(PACK_FILES.policyDigest);
  if (policy && policyDigest) {
    const digest = `sha256:${sha256Hex(policy)}`;
    if (text(policyDigest).trim() !== digest)
      problem('records', `the policy pack's digest is ${digest}, not ${text(policyDigest).trim()}`, PACK_FILES.policyDigest);
    verdict.checked.policy = { digest, isTheVersions: versionRaw?.policy_digest === digest };
    if (versionRaw && versionRaw.policy_digest !== digest)
      notes.push(`the policy pack in the evidence (in force at export) is ${digest}; the version was judged under ${String(versionRaw.policy_digest)}`);
  }

  // 5. Every approval; each signed one re-verified over its statement (21 CFR 11.50, 11.70).
  const approvalsFile = get(PACK_FILES.approvals);
  if (approvalsFile && versionRaw) {
    const signers = get(PACK_FILES.allowedSigners);
    const principals = signers ? principalsFromAllowedSigners(text(signers)) : [];
    const rows = packApprovalSchema.array().safeParse(tryJson(approvalsFile));
    if (!rows.success) problem('approvalSignature', `not a list of approvals: ${rows.error.issues[0]?.message}`, PACK_FILES.approvals);
    for (const a of rows.success ? rows.data : []) {
      verdict.checked.approvals.total += 1;
      if (a.accepted && a.decision !== 'withdraw' && a.model_digest !== versionRaw.artifact_digest) {
        problem('approvalSignature', `approval ${a.id} (${a.approver}) is for ${a.model_digest}, not this version's artifact`, PACK_FILES.approvals);
      }
      if (a.signature === null) continue;
      verdict.checked.approvals.signed += 1;
      for (const [f, want] of [
        [a.statementFile, a.signed_statement],
        [a.signatureFile, a.signature],
      ] as const) {
        if (f && files.get(f) && text(files.get(f)!) !== want) problem('approvalSignature', `not the statement/signature recorded for approval ${a.id}`, f);
      }
      const checkPack = signers && verdict.checked.policy?.digest === a.policy_digest ? { principals } : undefined;
      const v = signedApprovalVerdict({ ...a, model_name: String(versionRaw.model_name), version: Number(versionRaw.version) }, checkPack);
      if (v.againstPack) verdict.checked.approvals.againstPack += 1;
      for (const reason of v.problems)
        problem('approvalSignature', `approval ${a.id} (${a.approver}, ${a.role}): ${reason}`, a.signatureFile ?? PACK_FILES.approvals);
    }
  }

  // 6. The audit events: a chain segment ending at the head a signed checkpoint names.
  const eventsFile = get(PACK_FILES.auditEvents);
  const cpFile = get(PACK_FILES.auditCheckpoint);
  const proofFile = get(PACK_FILES.auditProof);
  let events: PackAuditEvent[] = [];
  if (eventsFile && cpFile && proofFile) {
    events = checkAuditSegment(eventsFile, cpFile, proofFile, keys, manifest, problem, verdict);
  } else if (!eventsFile || !cpFile || !proofFile) {
    for (const f of [PACK_FILES.auditEvents, PACK_FILES.auditCheckpoint, PACK_FILES.auditProof]) {
      if (!listed.has(f)) problem('auditChain', 'missing: the audit events are not in the pack', f);
    }
  }

  // 7. Exported histories: each file's digest is the one the chain recorded (history.exported).
  const index = get(PACK_FILES.historyIndex);
  if (index) {
    const parsed = packHistoryIndexSchema.safeParse(tryJson(index));
    if (!parsed.success) problem('records', 'not a history index', PACK_FILES.historyIndex);
    const chained = new Set(
      events
        .filter((e) => e.kind === 'history.exported' && e.workflow_id === manifest.workflowId)
        .flatMap((e) => ((e.payload.runs as Array<{ digest?: unknown }> | undefined) ?? []).map((r) => String(r.digest))),
    );
    for (const h of parsed.success ? parsed.data : []) {
      const bytes = files.get(h.file);
      if (!bytes) continue; // named above
      verdict.checked.histories += 1;
      const digest = `sha256:${sha256Hex(bytes)}`;
      if (digest !== h.digest) problem('records', `its digest is ${digest}, the registry recorded ${h.digest}`, h.file);
      else if (events.length && !chained.has(digest))
        problem('records', `its digest ${digest} is in no history.exported event of the verified audit segment`, h.file);
    }
    if (parsed.success && parsed.data.length === 0) notes.push('no exported Temporal history yet (the lifecycle had not closed, or its archiver had not run)');
  }
  return finish();
}

function checkAuditSegment(
  eventsFile: Uint8Array,
  cpFile: Uint8Array,
  proofFile: Uint8Array,
  keys: KeyObject[],
  manifest: PackManifest,
  problem: (cls: ProblemClass, message: string, file?: string) => void,
  verdict: PackVerdict,
): PackAuditEvent[] {
  const proof = auditProofSchema.safeParse(tryJson(proofFile));
  if (!proof.success) {
    problem('auditChain', 'not an audit proof', PACK_FILES.auditProof);
    return [];
  }
  let checkpoint: AuditCheckpoint | undefined;
  const raw = tryJson(cpFile);
  const v = keys.length ? verifyEnvelope(raw, keys, CHECKPOINT_PAYLOAD_TYPE) : ({ ok: false, reason: 'no key to verify with' } as const);
  if (!v.ok) problem('auditChain', `the checkpoint is not signed by the factory: ${v.reason}`, PACK_FILES.auditCheckpoint);
  else {
    const cp = auditCheckpointSchema.safeParse(tryJson(v.payload));
    if (!cp.success) problem('auditChain', 'signed, but not an audit checkpoint', PACK_FILES.auditCheckpoint);
    else checkpoint = cp.data;
  }
  const lines = text(eventsFile)
    .split('\n')
    .filter((l) => l.length);
  if (lines.length > PACK_LIMITS.auditEvents) {
    problem('auditChain', `${lines.length} events, more than ${PACK_LIMITS.auditEvents}`, PACK_FILES.auditEvents);
    return [];
  }
  const events: PackAuditEvent[] = [];
  for (const [i, line] of lines.entries()) {
    const parsed = packAuditEventSchema.safeParse(tryJson(Buffer.from(line)));
    if (!parsed.success) {
      problem('auditChain', `line ${i + 1} is not an audit event`, PACK_FILES.auditEvents);
      return [];
    }
    events.push(parsed.data);
  }
  // Each row's own hash, and each row chained to the one before it.
  for (const [i, e] of events.entries()) {
    const { seq: _seq, hash, ...rest } = e;
    if (hashOf(rest) !== hash) {
      problem('auditChain', `the event at seq ${e.seq} (${e.event_id}) does not hash to its recorded hash: it was edited`, PACK_FILES.auditEvents);
      break;
    }
    if (i > 0 && e.prev_hash !== events[i - 1]!.hash) {
      problem(
        'auditChain',
        `the event at seq ${e.seq} does not chain to the event before it (seq ${events[i - 1]!.seq}): an event was removed or inserted`,
        PACK_FILES.auditEvents,
      );
      break;
    }
    if (i > 0 && BigInt(e.seq) <= BigInt(events[i - 1]!.seq)) {
      problem('auditChain', `the events are not in sequence order at seq ${e.seq}`, PACK_FILES.auditEvents);
      break;
    }
  }
  const first = events[0];
  const last = events.at(-1);
  const p = proof.data;
  if (!first || !last) problem('auditChain', 'no events', PACK_FILES.auditEvents);
  else {
    if (first.seq !== p.firstSeq || last.seq !== p.lastSeq)
      problem('auditChain', `the segment is seq ${first.seq}..${last.seq}, the proof says ${p.firstSeq}..${p.lastSeq}`, PACK_FILES.auditProof);
    if (checkpoint) {
      if (checkpoint.seq !== last.seq || checkpoint.headHash !== last.hash) {
        problem(
          'auditChain',
          `the segment ends at seq ${last.seq} hash ${last.hash}, the signed checkpoint names seq ${checkpoint.seq} hash ${checkpoint.headHash}`,
          PACK_FILES.auditEvents,
        );
      }
      if (checkpoint.seq !== p.checkpointSeq || checkpoint.chain !== p.chain)
        problem('auditChain', 'the proof names another checkpoint', PACK_FILES.auditProof);
      verdict.checked.audit.checkpointSeq = checkpoint.seq;
      verdict.checked.audit.checkpointCreatedAt = checkpoint.createdAt;
    }
  }
  // The version's events: every one the proof names is in the segment and is the lifecycle's, and none is left unnamed.
  const own = new Set(events.filter((e) => e.workflow_id === manifest.workflowId).map((e) => e.event_id));
  const named = new Set(p.versionEvents);
  for (const id of named)
    if (!own.has(id)) problem('auditChain', `the proof names ${id}, which is not one of the lifecycle's events in the segment`, PACK_FILES.auditProof);
  for (const id of own)
    if (!named.has(id)) problem('auditChain', `the lifecycle's event ${id} is in the segment but not named by the proof`, PACK_FILES.auditProof);
  verdict.checked.audit.events = events.length;
  verdict.checked.audit.versionEvents = own.size;
  return events;
}
