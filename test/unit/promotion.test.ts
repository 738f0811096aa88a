import { describe, expect, it } from 'vitest';
import { promotionInputSchema, promotionWorkflowId, siteKey } from '../../src/domain/promotion.ts';
import { policyPackSchema, siteSchema } from '../../src/policy/schema.ts';
import { DEFAULT_POLICY_PACK } from '../../src/policy/pack.ts';
import { parse } from 'yaml';
import fs from 'node:fs';

const input = { modelName: 'credit-risk', version: 3, toSite: 'clinic-north', purpose: 'disaster-recovery', requestedBy: 'ci@hospital.example' };

describe('artifact promotion (pure parts)', () => {
  it('puts the site copy under the site prefix, keeping the home key', () => {
    expect(siteKey('sites/north', 'm/1/model.onnx')).toBe('sites/north/m/1/model.onnx');
    expect(siteKey('sites/north/', 'm/1/model.onnx')).toBe('sites/north/m/1/model.onnx');
    expect(siteKey('', 'm/1/model.onnx')).toBe('m/1/model.onnx');
  });

  it('names one workflow per version and site', () => {
    expect(promotionWorkflowId(input)).toBe('promote-credit-risk-3-clinic-north');
  });

  it('refuses hostile input: control characters, unknown fields, a purpose or site that is not a name', () => {
    expect(promotionInputSchema.safeParse(input).success).toBe(true);
    expect(promotionInputSchema.safeParse({ ...input, purpose: 'x\u0000y' }).success).toBe(false);
    expect(promotionInputSchema.safeParse({ ...input, purpose: 'a'.repeat(64) }).success).toBe(false);
    expect(promotionInputSchema.safeParse({ ...input, toSite: '../etc' }).success).toBe(false);
    expect(promotionInputSchema.safeParse({ ...input, extra: 1 }).success).toBe(false);
    expect(promotionInputSchema.safeParse({ ...input, requestedBy: 'not-an-email' }).success).toBe(false);
  });

  it('a site prefix may not climb out of its bucket; a pack may not name a site twice', () => {
    expect(siteSchema.safeParse({ name: 'n', bucket: 'factory-artifacts', prefix: 'a/../b' }).success).toBe(false);
    expect(siteSchema.safeParse({ name: 'n', bucket: 'Bad_Bucket' }).success).toBe(false);
    const pack = policyPackSchema.parse(parse(fs.readFileSync(DEFAULT_POLICY_PACK, 'utf8')));
    expect(pack.sites?.map((s) => s.name)).toEqual(['clinic-north']);
    expect(pack.transferPurposes).toContain('disaster-recovery');
    const twice = { ...pack, sites: [pack.sites![0], pack.sites![0]] };
    expect(policyPackSchema.safeParse(twice).success).toBe(false);
  });
});
