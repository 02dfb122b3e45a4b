// Child processes of the benchmark: spawn with a bounded start-up, stop with a bounded shutdown,
// sample peak memory, and make sure nothing outlives the run (an interrupted benchmark kills what
// it started, and only that).
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const children = new Set();
const cleanups = new Set();

/** Registers async work to run if the benchmark is interrupted (dropping a database, ...). */
export function onInterrupt(work) {
  cleanups.add(work);
  return () => cleanups.delete(work);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write(`\n${signal}: stopping child processes and cleaning up\n`);
    for (const child of children) child.kill('SIGKILL');
    Promise.allSettled([...cleanups].map((work) => work())).finally(() => process.exit(130));
  });
}
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function track(child, name) {
  children.add(child);
  child.benchName = name;
  child.tail = [];
  const keep = (chunk) => {
    child.tail.push(chunk.toString());
    if (child.tail.length > 50) child.tail.shift();
  };
  child.stderr?.on('data', keep);
  child.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    });
  });
  return child;
}

/** A `node` child running a script of ours with IPC. */
export function forkScript(path, args, { env, nodeArgs = [], name } = {}) {
  const child = fork(path, args, {
    env: env ?? process.env,
    execArgv: nodeArgs,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  return track(child, name ?? path);
}

/** A `node` child without IPC (the countersign CLI). */
export function spawnNode(args, { env, nodeArgs = [], name, cwd } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, ...args], {
    env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return track(child, name ?? args.join(' '));
}

/** Resolves with the first IPC message of `type`, or rejects on exit or after `timeoutMs`. */
export function nextMessage(child, type, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => finish(new Error(`${child.benchName}: no "${type}" within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onMessage = (message) => {
      if (message?.type === type) finish(undefined, message);
    };
    const onExit = (code, signal) =>
      finish(new Error(`${child.benchName} exited (${code ?? signal}) ${lastWords(child)}`));
    function finish(err, value) {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** The child's last stderr lines, for error messages. */
export function lastWords(child) {
  const text = child.tail.join('').trim();
  return text ? `\n--- ${child.benchName} stderr (tail) ---\n${text.slice(-2000)}` : '';
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stopChild(child, graceMs = 15_000) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const result = await child.exited;
  clearTimeout(timer);
  return result;
}

/** An unused loopback TCP port (released at once; the child binds it a moment later). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Peak resident set size of a live process in MB (Linux /proc VmHWM), or undefined elsewhere. */
export function peakRssMB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmHWM:\s+(\d+)\s+kB/m.exec(status) ?? /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? (Number(match[1]) * 1024) / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, or undefined without /proc. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which sits in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** CPU seconds the whole machine has spent busy (every process, kernel included) and lost to steal. */
export function machineCpuSeconds() {
  try {
    // cpu  user nice system idle iowait irq softirq steal ...
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0].trim().split(/\s+/).slice(1).map(Number);
    const [user, nice, system, , , irq, softirq, steal] = fields;
    return { busy: (user + nice + system + irq + softirq) / CLOCK_TICKS, steal: (steal ?? 0) / CLOCK_TICKS };
  } catch {
    return undefined;
  }
}

/**
 * Starts counting what the benchmark itself spends around a measurement: the load generator (this
 * process) and the receiver process, and the whole machine's busy CPU. The returned function gives
 * those in µs per unit of `work` since (fields undefined where /proc is not available). With the
 * system under test's own CPU, they say how much of the machine a rate leaves it.
 */
export function harnessMeter(receiverPid) {
  const load0 = process.cpuUsage();
  const receiver0 = cpuSeconds(receiverPid);
  const machine0 = machineCpuSeconds();
  return (work) => {
    if (!(work > 0)) return {};
    const load = process.cpuUsage(load0);
    const receiver1 = cpuSeconds(receiverPid);
    const machine1 = machineCpuSeconds();
    const per = (seconds) => (seconds === undefined ? undefined : (seconds * 1e6) / work);
    return {
      loadUsPerUnit: (load.user + load.system) / work,
      receiverUsPerUnit: receiver0 === undefined || receiver1 === undefined ? undefined : per(receiver1 - receiver0),
      machineUsPerUnit: machine0 && machine1 ? per(machine1.busy - machine0.busy) : undefined,
      stealUsPerUnit: machine0 && machine1 ? per(machine1.steal - machine0.steal) : undefined,
    };
  };
}
