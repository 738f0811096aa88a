import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliInputLocation } from '../../src/cli/lifecycle.ts';

describe('lifecycle start --dataset/--schema', () => {
  it('passes s3:// URIs (the landing bucket) through unchanged', () => {
    expect(cliInputLocation('s3://landing/wdbc/wdbc.csv')).toBe('s3://landing/wdbc/wdbc.csv');
    expect(cliInputLocation('s3://landing/wdbc/schema.json')).toBe('s3://landing/wdbc/schema.json');
    expect(cliInputLocation('S3://landing/a b.csv')).toBe('S3://landing/a b.csv');
  });

  it('passes other schemes through too: the worker refuses them with their own name (InvalidDatasetPath)', () => {
    expect(cliInputLocation('https://example.org/data.csv')).toBe('https://example.org/data.csv');
  });

  it('makes paths absolute against the shell that ran the command', () => {
    expect(cliInputLocation('datasets/x/data.csv')).toBe(path.join(process.cwd(), 'datasets/x/data.csv'));
    expect(cliInputLocation('/srv/data/x.csv')).toBe('/srv/data/x.csv');
    // Not a URI: no "//" after the colon.
    expect(cliInputLocation('s3:landing/x.csv')).toBe(path.join(process.cwd(), 's3:landing/x.csv'));
  });
});
