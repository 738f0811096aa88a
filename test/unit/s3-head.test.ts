import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { encodeS3Path, signBodiless, signHead } from '../../src/trace/s3-head.ts';

function bytes(d: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof d === 'string') return d;
  return ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : new Uint8Array(d);
}

/** node:crypto in the shape the SDK's signer wants (what the S3 client uses in Node). */
class NodeSha256 {
  private readonly h;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret ? createHmac('sha256', bytes(secret)) : createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}

describe("trace's hand-signed HEAD (SigV4)", () => {
  const creds = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', region: 'eu-central-1' };
  const now = new Date('2026-11-27T08:59:01.123Z');
  const sdk = new SignatureV4({ credentials: creds, region: creds.region, service: 's3', sha256: NodeSha256, uriEscapePath: false, applyChecksum: true });

  for (const key of ['models/bc-1/0123abcd/model.onnx', "datasets/odd name/it's (1)*!.csv", 'ünïcode/ключ.json']) {
    it(`signs like the S3 SDK: ${key}`, async () => {
      const url = new URL(`http://127.0.0.1:29000${encodeS3Path('factory-artifacts', key)}`);
      const mine = signHead(url, creds, now);
      const signed = await sdk.sign(
        { method: 'HEAD', protocol: 'http:', hostname: '127.0.0.1', port: 29000, path: url.pathname, query: {}, headers: { host: url.host } },
        { signingDate: now },
      );
      expect(mine.authorization).toBe(signed.headers.authorization);
      expect(mine['x-amz-date']).toBe(signed.headers['x-amz-date']);
    });
  }

  it('signs a GET (the provenance envelope trace verifies) like the S3 SDK', async () => {
    const url = new URL(`http://127.0.0.1:29000${encodeS3Path('factory-evidence', 'provenance/lifecycle-bc-1/run/model.onnx.intoto.json')}`);
    const mine = signBodiless('GET', url, creds, now);
    const signed = await sdk.sign(
      { method: 'GET', protocol: 'http:', hostname: '127.0.0.1', port: 29000, path: url.pathname, query: {}, headers: { host: url.host } },
      { signingDate: now },
    );
    expect(mine.authorization).toBe(signed.headers.authorization);
  });
});
