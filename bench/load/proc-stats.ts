// CPU time and memory of another process (the gateway, a relay, a peer)
// read from Linux's /proc, for figures such as "gateway CPU s per 1M
// delivered rows" and "gateway peak RSS". Each read throws if the process
// is gone (ENOENT): read before stopping it.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';

export interface ProcStats {
  userSeconds: number;
  systemSeconds: number;
  /** userSeconds + systemSeconds */
  cpuSeconds: number;
  /** VmRSS: resident memory now */
  rssBytes: number;
  /** VmHWM: the highest resident memory since start (or since resetPeakRss) */
  peakRssBytes: number;
}

let ticksPerSecond: number | undefined;

/** USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux, asked of getconf once. */
export function clockTicksPerSecond(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export function readCpu(pid: number): { userSeconds: number; systemSeconds: number; cpuSeconds: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = clockTicksPerSecond();
  const userSeconds = Number(fields[11]) / hz; // field 14, utime
  const systemSeconds = Number(fields[12]) / hz; // field 15, stime
  return { userSeconds, systemSeconds, cpuSeconds: userSeconds + systemSeconds };
}

export function readMemory(pid: number): { rssBytes: number; peakRssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  return { rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM') };
}

export function readProcStats(pid: number): ProcStats {
  return { ...readCpu(pid), ...readMemory(pid) };
}

/**
 * Resets VmHWM to the current RSS, so the next peak is that of one scenario
 * when a process serves several in a row (Linux >= 4.0; needs the right to
 * write /proc/<pid>/clear_refs, i.e. same user or root).
 */
export function resetPeakRss(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}
