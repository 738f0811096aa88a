import type { Kysely } from 'kysely';
import type { Env } from '../config/env.ts';
import type { Database } from '../db/schema.ts';
import { modelInventory } from '../inventory/inventory.ts';
import type { LoadedPolicyPack } from '../policy/pack.ts';
import { parseS3Uri } from '../serving/s3-uri.ts';
import { getObjectSigned } from '../trace/s3-head.ts';
import { traceModel } from '../trace/trace.ts';
import type { CardData } from './card.ts';

/** A manifest larger than this is not read for its classification (the card says "not recorded"). */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/**
 * Everything a card is built from: the trace (src/trace/trace.ts, its queries as they are), the version's
 * revalidation from the inventory, the last monitoring window of the version, and the classification
 * the certified manifest declares (the registry does not keep it). Nothing the trace loads is asked again.
 */
export async function loadCardData(
  db: Kysely<Database>,
  env: Env,
  ref: string,
  policy: LoadedPolicyPack,
  now: Date,
  principalNames: Map<string, string> = new Map(),
): Promise<CardData> {
  const trace = await traceModel(db, ref, principalNames);
  const [inventory, window, classification] = await Promise.all([
    modelInventory(db, policy.pack, now, { model: trace.model.name }),
    db
      .selectFrom('monitoring_windows as w')
      .innerJoin('model_versions as m', 'm.id', 'w.model_version_id')
      .select(['w.window_start', 'w.window_end', 'w.figures', 'w.breaches'])
      .where('m.model_name', '=', trace.model.name)
      .where('m.version', '=', trace.model.version)
      .where('w.model_name', '=', trace.model.name)
      .orderBy('w.window_end', 'desc')
      .limit(1)
      .executeTakeFirst(),
    manifestClassification(env, trace.data.manifestUri),
  ]);
  const entry = inventory.find((v) => v.version === trace.model.version);
  return {
    trace,
    pack: policy.pack,
    policyDigest: policy.digest,
    classification,
    revalidation: {
      lastValidatedAt: entry?.lastValidatedAt ?? null,
      revalidateEvery: entry?.revalidateEvery ?? null,
      revalidationDueAt: entry?.revalidationDueAt ?? null,
      overdue: entry?.overdue ?? false,
    },
    monitoring: window
      ? {
          windowStart: new Date(window.window_start).toISOString(),
          windowEnd: new Date(window.window_end).toISOString(),
          figures: window.figures,
          breaches: Array.isArray(window.breaches) ? window.breaches.length : 0,
        }
      : null,
    generatedAt: now.toISOString(),
  };
}

/** The classification the certified manifest declares; null when it is unreadable, too large or declares none. */
async function manifestClassification(env: Env, manifestUri: string): Promise<string | null> {
  const loc = parseS3Uri(manifestUri);
  if (!loc) return null;
  try {
    const got = await getObjectSigned(env, loc, 5_000, MAX_MANIFEST_BYTES);
    if (got.status !== 200 || !got.bytes || got.truncated) return null;
    const c = (JSON.parse(got.bytes.toString('utf8')) as { classification?: unknown }).classification;
    return typeof c === 'string' && /^[a-z][a-z0-9-]{0,31}$/.test(c) ? c : null;
  } catch {
    return null;
  }
}
