import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { projectRoot } from '../../src/config/env.ts';
import { devServerArgs } from '../../temporal/dev-server.ts';
import { searchAttributes } from '../../temporal/search-attributes.ts';

type Service = {
  volumes?: string[];
  image?: string;
  ports?: string[];
  environment?: Record<string, string>;
  command?: string;
  entrypoint?: string;
  depends_on?: unknown;
};
const compose = parse(fs.readFileSync(`${projectRoot}/docker-compose.yml`, 'utf8')) as { services: Record<string, Service> };

describe('docker-compose.yml (shape; no Docker engine here)', () => {
  it('has the promised services', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['gateway', 'minio', 'postgresql', 'temporal', 'temporal-setup', 'temporal-ui', 'triton', 'workers']);
  });

  it('publishes the documented ports', () => {
    const ports = (s: string) => compose.services[s]?.ports ?? [];
    expect(ports('temporal')).toContain('7233:7233');
    expect(ports('temporal-ui')).toContain('8233:8080');
    expect(ports('postgresql')).toContain('5432:5432');
    expect(ports('minio')).toEqual(expect.arrayContaining(['9000:9000', '9001:9001']));
    expect(ports('triton')).toEqual(expect.arrayContaining(['8000:8000', '8001:8001', '8002:8002']));
    expect(ports('gateway')).toEqual(['8010:8010']);
  });

  it('runs the gateway in front of Triton as the least-privileged database role', () => {
    const g = compose.services.gateway;
    expect(g?.command).toMatch(/src\/gateway\/run\.ts/);
    expect(g?.environment).toMatchObject({ TRITON_URL: 'http://triton:8000', FACTORY_GATEWAY_PORT: '8010', FACTORY_GATEWAY_HOST: '0.0.0.0' });
    expect(g?.environment?.FACTORY_APP_DATABASE_URL).toMatch(/^postgres:\/\/factory_worker:/);
    expect(g?.depends_on).toEqual(expect.arrayContaining(['postgresql', 'minio', 'triton']));
  });

  it('persists Temporal to PostgreSQL, runs Triton in explicit mode, registers our search attributes', () => {
    expect(compose.services.temporal?.environment).toMatchObject({ DB: 'postgres12', POSTGRES_SEEDS: 'postgresql' });
    expect(compose.services.triton?.command).toMatch(/--model-control-mode=explicit/);
    for (const name of Object.keys(searchAttributes)) expect(compose.services['temporal-setup']?.entrypoint).toContain(`--name ${name}`);
  });

  it('gives the production Temporal the payload limits the dev server runs with (one file)', () => {
    expect(compose.services.temporal?.environment?.DYNAMIC_CONFIG_FILE_PATH).toBe('config/dynamicconfig/factory.yaml');
    expect(compose.services.temporal?.volumes).toContain('./temporal/dynamic-config.yaml:/etc/temporal/config/dynamicconfig/factory.yaml:ro');
    const args = devServerArgs({ host: '127.0.0.1', port: 7233, uiPort: 8233, dbFile: 'x.db', namespace: 'default' });
    expect(args.join(' ')).toContain('--dynamic-config-value limit.blobSize.error=262144');
  });

  it('keeps secrets out of the file: credentials come from the environment', () => {
    const text = fs.readFileSync(`${projectRoot}/docker-compose.yml`, 'utf8');
    expect(text).toMatch(/POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:\?/);
    expect(text).toMatch(/MINIO_ROOT_PASSWORD: \$\{AWS_SECRET_ACCESS_KEY:\?/);
  });

  it('hands the workers the signing key as a secret file, named by the environment', () => {
    const doc = parse(fs.readFileSync(`${projectRoot}/docker-compose.yml`, 'utf8')) as {
      services: Record<string, Service & { secrets?: string[] }>;
      secrets: Record<string, { file: string }>;
    };
    expect(doc.services.workers?.secrets).toEqual(['factory_signing_key']);
    expect(doc.services.workers?.environment?.FACTORY_SIGNING_KEY_FILE).toBe('/run/secrets/factory_signing_key');
    expect(doc.secrets.factory_signing_key?.file).toMatch(/^\$\{FACTORY_SIGNING_KEY_PATH:\?/);
  });

  it('identifies callers: Temporal with the JWT authorizer and default claim mapper, principal attribution, the Web UI behind OIDC', () => {
    const temporal = compose.services.temporal?.environment ?? {};
    expect(temporal).toMatchObject({
      TEMPORAL_AUTH_AUTHORIZER: 'default',
      TEMPORAL_AUTH_CLAIM_MAPPER: 'default',
      TEMPORAL_JWT_PERMISSIONS_CLAIM: '${TEMPORAL_JWT_PERMISSIONS_CLAIM:-permissions}',
      USE_INTERNAL_FRONTEND: 'true',
    });
    expect(temporal.TEMPORAL_JWT_KEY_SOURCE1).toMatch(/^\$\{TEMPORAL_JWT_KEY_SOURCE1:\?/);
    expect(temporal.SERVICES).toContain('internal-frontend');
    // The principal the authorizer derives is stamped on history events (same file as the dev server's).
    const args = devServerArgs({ host: '127.0.0.1', port: 7233, uiPort: 8233, dbFile: 'x.db', namespace: 'default' });
    expect(args.join(' ')).toContain('--dynamic-config-value frontend.enablePrincipalPropagation=true');
    const ui = compose.services['temporal-ui']?.environment ?? {};
    expect(ui.TEMPORAL_AUTH_ENABLED).toBe('true');
    for (const k of ['TEMPORAL_AUTH_PROVIDER_URL', 'TEMPORAL_AUTH_CLIENT_ID', 'TEMPORAL_AUTH_CLIENT_SECRET'])
      expect(ui[k]).toMatch(new RegExp(`^\\$\\{${k}:\\?`));
    // Workers and the one-shot setup present their own tokens, from the environment.
    expect(compose.services.workers?.environment?.TEMPORAL_API_KEY).toMatch(/^\$\{TEMPORAL_WORKER_API_KEY:\?/);
    expect(compose.services['temporal-setup']?.environment?.TEMPORAL_API_KEY).toMatch(/^\$\{TEMPORAL_ADMIN_API_KEY:\?/);
    expect(compose.services['temporal-setup']?.entrypoint).toContain('--api-key');
  });
});
