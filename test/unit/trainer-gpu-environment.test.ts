import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/config/env.ts';
import { venvPaths } from '../../src/dev/venv.ts';
import { env } from '../helpers.ts';

/** nvidia-smi's answers captured on an NVIDIA H200 (driver 580.159.04), replayed by a stand-in on PATH. */
const FIXTURES = path.join(projectRoot, 'test', 'fixtures', 'nvidia-smi');

/**
 * trainers/train.py's gpu_environment() with each stand-in nvidia-smi in turn (a bash body; null: none
 * on PATH), in one interpreter: importing torch once.
 */
function gpuEnvironments(scripts: Array<string | null>): Array<Record<string, unknown>> {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'fake-nvidia-smi-'));
  try {
    const code = `
import json, os, sys
sys.path.insert(0, "trainers")
import train
exe = os.path.join(sys.argv[1], "nvidia-smi")
out = []
for script in json.loads(sys.argv[2]):
    if os.path.exists(exe):
        os.remove(exe)
    if script is not None:
        with open(exe, "w") as f:
            f.write("#!/bin/bash\\n" + script + "\\n")
        os.chmod(exe, 0o755)
    out.append(train.gpu_environment())
print(json.dumps(out))
`;
    const out = execFileSync(venvPaths(env).python, ['-W', 'ignore', '-c', code, bin, JSON.stringify(scripts)], {
      cwd: projectRoot,
      env: { PATH: `${bin}:/usr/bin:/bin`, PYTHONNOUSERSITE: '1', CUDA_VISIBLE_DEVICES: '' },
      encoding: 'utf8',
    });
    return JSON.parse(out) as Array<Record<string, unknown>>;
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
}

describe("the trainer's GPU record (nvidia-smi inside the job)", () => {
  it('records the GPU model, driver and driver CUDA version as nvidia-smi reports them; nothing when it is absent, fails or prints something else', () => {
    const nvidiaSmiInstalled = ['/usr/bin/nvidia-smi', '/usr/local/nvidia/bin/nvidia-smi', '/usr/local/bin/nvidia-smi'].some((f) => fs.existsSync(f));
    const [h200, absent, failing, noDevices, garbage] = gpuEnvironments([
      `case "$*" in *--query-gpu*) cat ${FIXTURES}/h200-query.csv;; *) cat ${FIXTURES}/h200.txt;; esac`,
      null,
      'echo "NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver." >&2; exit 9',
      `printf 'No devices were found\\n'`,
      `printf 'GPU\\x1b[2J, 1\\n'`,
    ]);
    expect(h200).toEqual({
      gpu_devices: [{ name: 'NVIDIA H200', driver_version: '580.159.04' }],
      gpu_model: 'NVIDIA H200',
      gpu_driver: '580.159.04',
      cuda_driver: '13.0',
    });
    // On a machine with a real nvidia-smi in a standard place, "absent" finds that one.
    if (!nvidiaSmiInstalled) expect(absent).toEqual({});
    expect(failing).toEqual({});
    expect(noDevices).toEqual({});
    expect(garbage).toEqual({});
  }, 60_000);
});
