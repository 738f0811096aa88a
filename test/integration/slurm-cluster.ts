/**
 * A real single-node Slurm (Debian's slurm-wlm) for the tests that train through it: installed with
 * apt-get when missing (as root, idempotent), configured in a directory of its own (SLURM_CONF, so
 * /etc/slurm is left alone), its daemons started directly (no systemd here) and stopped afterwards.
 * The node offers one stand-in GPU through GRES (gres.conf `File=/dev/null`), so `--gres=gpu:1`
 * schedules on a machine without one. Recipe: ../shared/notes/slurm-single-node.md.
 */
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { isAlive } from '../../src/dev/process.ts';

const exec = promisify(execFile);

/** Everything of this cluster's: config, state, spool, logs, pid files. */
export const SLURM_DIR = process.env.FACTORY_TEST_SLURM_DIR ?? '/tmp/factory-slurm';
export const SLURM_CONF = path.join(SLURM_DIR, 'slurm.conf');
export const JOBCOMP_LOG = path.join(SLURM_DIR, 'log', 'jobcomp.log');
export const PARTITION = 'factory';

function slurmConf(host: string): string {
  return `ClusterName=factoryci
SlurmctldHost=${host}
SlurmUser=root
AuthType=auth/munge
MailProg=/bin/true
MpiDefault=none
StateSaveLocation=${SLURM_DIR}/state
SlurmdSpoolDir=${SLURM_DIR}/spool
SlurmctldPidFile=${SLURM_DIR}/slurmctld.pid
SlurmdPidFile=${SLURM_DIR}/slurmd.pid
SlurmctldLogFile=${SLURM_DIR}/log/slurmctld.log
SlurmdLogFile=${SLURM_DIR}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
GresTypes=gpu
JobCompType=jobcomp/filetxt
JobCompLoc=${JOBCOMP_LOG}
ReturnToService=2
MinJobAge=300
SchedulerParameters=sched_interval=1,bf_interval=1
NodeName=${host} CPUs=${Math.max(1, os.cpus().length)} RealMemory=2000 Gres=gpu:1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`;
}

function gresConf(host: string): string {
  return `AutoDetect=off\nNodeName=${host} Name=gpu File=/dev/null Count=1\n`;
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin').split(':').some((d) => fs.existsSync(path.join(d, cmd)));
}

/** apt-get installs slurm-wlm when sbatch or slurmctld is missing (CI's clean machine); needs root. */
function ensureInstalled(): void {
  if (onPath('sbatch') && fs.existsSync('/usr/sbin/slurmctld') && fs.existsSync('/usr/sbin/munged')) return;
  if (process.getuid?.() !== 0) throw new Error('Slurm (slurm-wlm) is not installed and this is not root: `apt-get install slurm-wlm` first');
  const install = () =>
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'slurm-wlm'], {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: 'pipe',
      timeout: 300_000,
    });
  try {
    install();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'pipe', timeout: 300_000 });
    install();
  }
}

function pidFrom(file: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The environment the cluster's commands need (sbatch, squeue …): its config file. */
export const slurmEnv = { SLURM_CONF };

async function sinfoState(): Promise<string> {
  try {
    const { stdout } = await exec('sinfo', ['-h', '-o', '%T'], { env: { ...process.env, ...slurmEnv }, timeout: 10_000 });
    return stdout.trim();
  } catch {
    return '';
  }
}

export interface SlurmCluster {
  /** Whether this call started the daemons (and stop() stops them). */
  started: boolean;
  stop(): Promise<void>;
}

/**
 * Starts munged, slurmctld and slurmd (each only when not already running) and waits until the node
 * is idle. Sets SLURM_CONF in this process's environment, so workers it spawns find the cluster.
 */
export async function startSlurm(): Promise<SlurmCluster> {
  ensureInstalled();
  process.env.SLURM_CONF = SLURM_CONF;
  const host = os.hostname().split('.')[0]!;
  const ctld = pidFrom(path.join(SLURM_DIR, 'slurmctld.pid'));
  const slurmd = pidFrom(path.join(SLURM_DIR, 'slurmd.pid'));
  let started = false;
  let startedMunge = false;
  if (!ctld || !slurmd) {
    for (const d of ['state', 'spool', 'log']) fs.mkdirSync(path.join(SLURM_DIR, d), { recursive: true });
    // A past DRAIN would survive in the saved state; job ids start again at 1, so the jobcomp
    // records of an earlier cluster's jobs go too.
    fs.rmSync(path.join(SLURM_DIR, 'state'), { recursive: true, force: true });
    fs.mkdirSync(path.join(SLURM_DIR, 'state'));
    fs.rmSync(JOBCOMP_LOG, { force: true });
    fs.writeFileSync(SLURM_CONF, slurmConf(host));
    fs.writeFileSync(path.join(SLURM_DIR, 'gres.conf'), gresConf(host));
    if (!fs.existsSync('/run/munge/munge.socket.2')) {
      execFileSync('install', ['-d', '-o', 'munge', '-g', 'munge', '-m', '0755', '/run/munge']);
      execFileSync('runuser', ['-u', 'munge', '--', '/usr/sbin/munged']);
      startedMunge = true;
    }
    const daemonEnv = { ...process.env, SLURM_CONF };
    if (!ctld) execFileSync('/usr/sbin/slurmctld', [], { env: daemonEnv, stdio: 'pipe' });
    if (!slurmd) execFileSync('/usr/sbin/slurmd', [], { env: daemonEnv, stdio: 'pipe' });
    started = true;
  }
  for (const deadline = Date.now() + 60_000; ; await sleep(100)) {
    const state = await sinfoState();
    if (state === 'idle' || state === 'mixed' || state === 'allocated') break;
    if (Date.now() > deadline) throw new Error(`Slurm did not become idle (sinfo: ${state || 'no answer'}); see ${SLURM_DIR}/log`);
  }
  return {
    started,
    async stop() {
      if (!started) return;
      const env = { ...process.env, SLURM_CONF };
      // Running jobs outlive the daemons: cancel them first and wait until the queue is empty.
      await exec('scancel', ['--user', os.userInfo().username], { env }).catch(() => undefined);
      for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(200)) {
        const { stdout } = await exec('squeue', ['-h'], { env }).catch(() => ({ stdout: '' }));
        if (!stdout.trim()) break;
      }
      const pidFiles = [path.join(SLURM_DIR, 'slurmd.pid'), path.join(SLURM_DIR, 'slurmctld.pid')];
      if (startedMunge) pidFiles.push('/run/munge/munged.pid');
      for (const f of pidFiles) {
        const pid = pidFrom(f);
        if (pid) process.kill(pid, 'SIGTERM');
        for (let i = 0; pid && i < 100 && isAlive(pid); i++) await sleep(100);
      }
    },
  };
}
