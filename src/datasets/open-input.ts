import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { type Env, projectRoot } from '../config/env.ts';
import { bucket } from '../storage/s3.ts';
import { objectStream } from '../storage/stream.ts';
import { InputRefused, describeSize, insideRoots, parseDataRoots, parseInputLocation, showLocation } from './lanes.ts';

/** A schema is a small JSON document: anything larger is not one. */
export const MAX_SCHEMA_BYTES = 1024 * 1024;

export interface InputLanes {
  /** Allowed roots, resolved (realpath) where they exist. */
  roots: string[];
  landingBucket: string;
  maxBytes: number;
}

export function inputLanes(env: Env): InputLanes {
  const roots = parseDataRoots(env.FACTORY_DATA_ROOTS, [path.join(projectRoot, 'datasets'), path.join(env.FACTORY_HOME, 'landing')]);
  const real = roots.flatMap((r) => {
    try {
      return [fs.realpathSync(r)];
    } catch {
      return []; // a root that does not exist admits nothing
    }
  });
  return { roots: real, landingBucket: bucket(env, 'landing'), maxBytes: env.FACTORY_DATASET_MAX_BYTES };
}

export interface OpenedInput {
  stream: Readable;
  /** Size when it was opened; the stream is capped at `maxBytes` whatever it turns out to be. */
  size: number;
  /** The file's name (last path or key segment), for the quarantine key. */
  name: string;
  /** Where it was read from: the resolved path or the s3:// URI. */
  source: string;
}

/**
 * Opens a local input after checking it lies inside an allowed root: the path is resolved (symlinks
 * followed) and judged, then the opened descriptor is judged again through /proc/self/fd, so a
 * symlink swapped in between is caught. Only regular files are read (no FIFO, device or directory).
 */
function openLocal(p: string, what: string, lanes: InputLanes, maxBytes: number): { fd: number; size: number; real: string } {
  let real: string;
  try {
    real = fs.realpathSync(p);
  } catch {
    // Say nothing about existence outside the roots.
    if (!insideRoots(path.resolve(p), lanes.roots)) throw outside(p, what, lanes);
    throw new InputRefused(`the ${what} ${showLocation(p)} does not exist or cannot be read`, 'DatasetUnreadable');
  }
  if (!insideRoots(real, lanes.roots)) throw outside(p, what, lanes);
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    throw new InputRefused(`the ${what} ${showLocation(p)} cannot be opened for reading`, 'DatasetUnreadable');
  }
  try {
    const opened = fs.readlinkSync(`/proc/self/fd/${fd}`);
    if (!insideRoots(opened, lanes.roots)) throw outside(p, what, lanes);
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new InputRefused(`the ${what} ${showLocation(p)} is not a regular file`, 'DatasetUnreadable');
    if (st.size > maxBytes) throw new InputRefused(`the ${what} ${showLocation(p)} has ${describeSize(st.size)}, more than the ${describeSize(maxBytes)} allowed`, 'DatasetTooLarge');
    return { fd, size: st.size, real: opened };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function outside(p: string, what: string, lanes: InputLanes): InputRefused {
  return new InputRefused(
    `the ${what} ${showLocation(p)} is outside the allowed data roots (${lanes.roots.join(', ') || 'none configured'}) and not in s3://${lanes.landingBucket}/`,
    'DatasetOutsideAllowedRoots',
  );
}

/** Opens a dataset or schema from its lane (a file inside a root, or an object in the landing bucket). */
export async function openInput(s3: S3Client, location: string, what: string, lanes: InputLanes, maxBytes = lanes.maxBytes): Promise<OpenedInput> {
  const loc = parseInputLocation(location, what, lanes.landingBucket);
  if (loc.kind === 'file') {
    const { fd, size, real } = openLocal(loc.path, what, lanes, maxBytes);
    // `end` caps the read at the size judged, even if the file grows meanwhile.
    return { stream: fs.createReadStream('', { fd, start: 0, end: Math.max(0, size - 1) }), size, name: path.basename(real), source: real };
  }
  const head = await s3.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key })).catch(() => undefined);
  if (!head) throw new InputRefused(`the ${what} ${showLocation(location)} does not exist or cannot be read`, 'DatasetUnreadable');
  const size = head.ContentLength ?? 0;
  if (size > maxBytes) throw new InputRefused(`the ${what} ${showLocation(location)} has ${describeSize(size)}, more than the ${describeSize(maxBytes)} allowed`, 'DatasetTooLarge');
  const { body } = await objectStream(s3, loc.bucket, loc.key);
  return { stream: body, size, name: loc.key.split('/').pop() || 'data', source: `s3://${loc.bucket}/${loc.key}` };
}

/** Reads a whole (small) input; more than `maxBytes` is refused. */
export async function readInput(s3: S3Client, location: string, what: string, lanes: InputLanes, maxBytes: number): Promise<Buffer> {
  const opened = await openInput(s3, location, what, lanes, maxBytes);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of opened.stream as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > maxBytes) {
      opened.stream.destroy();
      throw new InputRefused(`the ${what} ${showLocation(location)} has more than the ${describeSize(maxBytes)} allowed`, 'DatasetTooLarge');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
