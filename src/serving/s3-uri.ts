/** `s3://bucket/key` → its parts; undefined for anything else (the registry holds only such URIs). No SDK here: `trace` imports it. */
export function parseS3Uri(uri: string): { bucket: string; key: string } | undefined {
  const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,62})\/(.+)$/.exec(uri);
  return m ? { bucket: m[1]!, key: m[2]! } : undefined;
}
