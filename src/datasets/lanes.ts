import path from 'node:path';

/**
 * Input lanes: where a dataset (or its schema) may come from. Pure judgement of a location's text
 * and of a resolved path against the allowed roots; the I/O (realpath, open, the re-check of the
 * opened file) is in open-input.ts.
 */

export type InputLocation = { kind: 'file'; path: string } | { kind: 's3'; bucket: string; key: string };

/** The ApplicationFailure types a refused input becomes (non-retryable: the same input fails the same way). */
export type InputRefusal = 'InvalidDatasetPath' | 'DatasetOutsideAllowedRoots' | 'DatasetTooLarge' | 'DatasetUnreadable';

export class InputRefused extends Error {
  override name = 'InputRefused';
  constructor(
    message: string,
    readonly type: InputRefusal,
  ) {
    super(message);
  }
}

export const MAX_LOCATION_LENGTH = 4096;
const MAX_S3_KEY_BYTES = 1024;

/** A location is named in errors only through this: bounded, control characters escaped by JSON. */
export function showLocation(raw: string): string {
  return JSON.stringify(raw.length > 200 ? `${raw.slice(0, 200)}…` : raw);
}

/**
 * Judges the text of a location: an absolute path without `..` segments, or `s3://<landing>/<key>`.
 * NUL, control characters and lone surrogates are refused (they truncate or disguise paths).
 */
export function parseInputLocation(raw: string, what: string, landingBucket: string): InputLocation {
  if (raw.length === 0 || raw.length > MAX_LOCATION_LENGTH) throw new InputRefused(`the ${what} location must have 1 to ${MAX_LOCATION_LENGTH} characters`, 'InvalidDatasetPath');
  if (/[\u0000-\u001f\u007f-\u009f]/.test(raw)) throw new InputRefused(`the ${what} location contains a control character`, 'InvalidDatasetPath');
  if (/\p{Surrogate}/u.test(raw)) throw new InputRefused(`the ${what} location contains a lone surrogate`, 'InvalidDatasetPath');
  if (raw.startsWith('s3://')) {
    const rest = raw.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucketName = slash < 0 ? rest : rest.slice(0, slash);
    const key = slash < 0 ? '' : rest.slice(slash + 1);
    if (bucketName !== landingBucket) {
      throw new InputRefused(`the ${what} ${showLocation(raw)} is not in the landing bucket s3://${landingBucket}/`, 'DatasetOutsideAllowedRoots');
    }
    if (key === '' || Buffer.byteLength(key) > MAX_S3_KEY_BYTES) throw new InputRefused(`the ${what} ${showLocation(raw)} names no object key of 1 to ${MAX_S3_KEY_BYTES} bytes`, 'InvalidDatasetPath');
    return { kind: 's3', bucket: bucketName, key };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) throw new InputRefused(`the ${what} ${showLocation(raw)} uses a scheme other than s3://`, 'InvalidDatasetPath');
  if (!path.isAbsolute(raw)) throw new InputRefused(`the ${what} ${showLocation(raw)} is not an absolute path`, 'InvalidDatasetPath');
  if (raw.split('/').includes('..')) throw new InputRefused(`the ${what} ${showLocation(raw)} has a '..' segment`, 'DatasetOutsideAllowedRoots');
  return { kind: 'file', path: raw };
}

/** Whether a resolved (realpath) file lies inside one of the resolved roots. */
export function insideRoots(realPath: string, realRoots: readonly string[]): boolean {
  return realRoots.some((root) => realPath === root || realPath.startsWith(root.endsWith('/') ? root : `${root}/`));
}

/** FACTORY_DATA_ROOTS (colon-separated absolute paths) or the defaults; relative entries are refused. */
export function parseDataRoots(value: string | undefined, defaults: readonly string[]): string[] {
  const roots = value === undefined || value.trim() === '' ? [...defaults] : value.split(':').filter((r) => r !== '');
  for (const r of roots) if (!path.isAbsolute(r)) throw new Error(`FACTORY_DATA_ROOTS entries must be absolute paths: ${JSON.stringify(r)}`);
  return roots.map((r) => path.resolve(r));
}

/** A size as messages show it. */
export function describeSize(bytes: number): string {
  return bytes >= 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${bytes} bytes`;
}
