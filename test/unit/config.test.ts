import { describe, expect, it } from 'vitest';
import { ConfigError, loadEnv } from '../../src/config/env.ts';

describe('environment config', () => {
  it('has local defaults', () => {
    const env = loadEnv({});
    expect(env.TEMPORAL_ADDRESS).toBe('127.0.0.1:7233');
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.TEMPORAL_RETENTION_DAYS).toBeGreaterThanOrEqual(30);
  });

  it('fails fast naming the bad variable', () => {
    expect(() => loadEnv({ TRITON_HTTP_PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => loadEnv({ TRITON_HTTP_PORT: 'eighty' })).toThrow(/TRITON_HTTP_PORT="eighty"/);
    expect(() => loadEnv({ DATABASE_URL: 'mysql://x' })).toThrow(/DATABASE_URL/);
    expect(() => loadEnv({ TEMPORAL_RETENTION_DAYS: '1' })).toThrow(/TEMPORAL_RETENTION_DAYS/);
  });
});
