// The summary table (figure, baseline, ratio, aim) of a run, as aligned text
// for the terminal and as Markdown for docs/benchmarks.md.
import { formatRate, formatRatio } from '../scenarios/format.js';
import type { SummaryRow } from '../scenarios/types.js';
import type { MicroResultFile, ResultFile, ScenarioResultFile } from './result-file.js';

export type TableStyle = 'text' | 'markdown';

export function renderTable(headers: string[], rows: string[][], style: TableStyle): string {
  if (style === 'markdown') {
    const esc = (c: string) => c.replace(/\|/g, '\\|');
    return [
      `| ${headers.map(esc).join(' | ')} |`,
      `|${headers.map(() => '---').join('|')}|`,
      ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    ].join('\n');
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function aimCell(row: SummaryRow): string {
  if (row.aim === undefined) return '';
  const mark = row.met === true ? 'met' : row.met === false ? 'MISSED' : '?';
  return `${row.aim} (${mark})`;
}

export const SUMMARY_HEADERS = ['', 'case', 'figure', 'gateway', 'baseline', 'ratio', 'aim'];

export function summaryCells(row: SummaryRow): string[] {
  return [
    row.scenario,
    row.case,
    row.figure,
    row.display,
    row.baseline ? `${row.baseline.name}: ${row.baseline.display}` : '',
    row.ratio !== undefined ? formatRatio(row.ratio) : '',
    aimCell(row),
  ];
}

export function scenarioRows(results: ScenarioResultFile[]): string[][] {
  const rows: string[][] = [];
  for (const r of results) {
    if (!r.ok) rows.push([r.id, '', 'FAILED', r.error?.split('\n')[0] ?? '', '', '', '']);
    else if (r.skippedReason !== undefined) rows.push([r.id, '', 'skipped', r.skippedReason, '', '', '']);
    else for (const s of r.summary) rows.push(summaryCells(s));
  }
  return rows;
}

export function microRows(results: MicroResultFile[]): string[][] {
  const rows: string[][] = [];
  for (const r of results) {
    if (!r.ok) {
      rows.push([r.id, 'FAILED', r.error?.split('\n')[0] ?? '', '', '']);
      continue;
    }
    r.rows.forEach((row, i) => {
      rows.push([
        i === 0 ? r.id : '',
        row.name,
        row.perSecond > 0 ? `${formatRate(row.perSecond)}/s` : '',
        row.bytesPerSecond > 0 ? `${formatRate(row.bytesPerSecond)}B/s` : '',
        row.baseline ? 'baseline' : formatRatio(row.ratio),
      ]);
    });
  }
  return rows;
}

export const MICRO_HEADERS = ['', 'case', 'per second', 'bytes/s', 'vs baseline'];

/** The whole summary of a run for the terminal: micro-benchmarks, then scenarios, then skipped systems. */
export function renderSummary(results: ResultFile[], style: TableStyle): string {
  const micro = results.filter((r): r is MicroResultFile => r.kind === 'micro');
  const scenarios = results.filter((r): r is ScenarioResultFile => r.kind === 'scenario');
  const parts: string[] = [];
  if (micro.length > 0) parts.push(renderTable(MICRO_HEADERS, microRows(micro), style));
  if (scenarios.length > 0) parts.push(renderTable(SUMMARY_HEADERS, scenarioRows(scenarios), style));
  const skipped = new Map<string, string>();
  for (const r of scenarios) for (const s of r.skipped) skipped.set(s.system, s.reason);
  if (skipped.size > 0) parts.push([...skipped].map(([system, reason]) => `skipped ${system}: ${reason}`).join('\n'));
  return parts.join('\n\n');
}
