import { describe, expect, it } from 'vitest';
import { devServerArgs } from '../../temporal/dev-server.ts';

describe('Temporal dev server flags', () => {
  const args = devServerArgs({ host: '127.0.0.1', port: 7233, uiPort: 8233, dbFile: '/x/temporal.db', namespace: 'default' });
  it('persists to SQLite and serves the Web UI', () => {
    expect(args.join(' ')).toContain('--db-filename /x/temporal.db');
    expect(args.join(' ')).toContain('--ui-port 8233');
    expect(args).not.toContain('--headless');
  });
  it('registers the lifecycle search attributes', () => {
    for (const sa of ['ModelName=Keyword', 'RiskTier=Keyword', 'LifecycleStage=Keyword', 'PendingRoles=KeywordList']) expect(args).toContain(sa);
  });
});
