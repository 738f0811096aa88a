import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { loadEnv } from '../src/config/env.ts';
import { policyPackPath } from '../src/policy/pack.ts';
import { venvPaths } from '../src/dev/venv.ts';

export const env = loadEnv();

/** A tiny real ONNX model (Linear 4→2 with fixed weights) exported by PyTorch in the project venv. */
export function tinyOnnx(): Buffer {
  const script = [
    'import io, sys, torch',
    'm = torch.nn.Linear(4, 2)',
    'torch.nn.init.constant_(m.weight, 0.5); torch.nn.init.constant_(m.bias, 1.0)',
    'b = io.BytesIO()',
    'torch.onnx.export(m, torch.zeros(1, 4), b, input_names=["input"], output_names=["output"], dynamic_axes={"input": {0: "n"}, "output": {0: "n"}}, dynamo=False)',
    'sys.stdout.buffer.write(b.getvalue())',
  ].join('\n');
  return execFileSync(venvPaths(env).python, ['-W', 'ignore', '-c', script], { maxBuffer: 10_000_000 });
}

/**
 * The text of the pack the test stack runs with: policies/default.yaml with the dev principals' public
 * keys (`factory dev up` writes it under FACTORY_HOME). Tests that need a pack of their own edit this.
 */
export function stackPolicyText(): string {
  return fs.readFileSync(policyPackPath(), 'utf8');
}
