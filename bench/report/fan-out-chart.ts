// W1's chart as SVG text, no browser or plotting library: delivered rows/s
// against S (subscriber counts on evenly spaced ticks) for the gateway and
// each baseline and peer, one polyline per system, with the gateway drawn
// on top and thicker.
import { formatRate } from '../scenarios/format.js';
import type { FanOutCell } from '../scenarios/fan-out.js';
import { SYSTEM_LABELS, type SystemName } from '../scenarios/servers.js';

const WIDTH = 760;
const HEIGHT = 440;
const MARGIN = { left: 78, right: 190, top: 56, bottom: 58 };
const COLORS: Record<SystemName, string> = {
  gateway: '#d62728',
  'zero-copy-relay': '#7f7f7f',
  'nats-server': '#1f77b4',
  'redis-server': '#2ca02c',
  'naive-relay': '#ff7f0e',
};
const DASHED: Partial<Record<SystemName, string>> = { 'zero-copy-relay': '6 4', 'naive-relay': '2 3' };
const ORDER: SystemName[] = ['zero-copy-relay', 'naive-relay', 'nats-server', 'redis-server', 'gateway'];

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round step for about `ticks` gridlines up to max. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 2.5 ? 2.5 : norm <= 5 ? 5 : 10) * mag;
}

export function fanOutSvg(cells: FanOutCell[], subtitle: string): string {
  const counts = [...new Set(cells.map((c) => c.subscribers))].sort((a, b) => a - b);
  const systems = ORDER.filter((s) => cells.some((c) => c.system === s && c.rowsPerSec !== null));
  const maxRate = Math.max(1, ...cells.map((c) => c.rowsPerSec ?? 0));
  const step = niceStep(maxRate, 5);
  const yMax = Math.ceil(maxRate / step) * step;
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (i: number) => MARGIN.left + (counts.length === 1 ? plotW / 2 : (i * plotW) / (counts.length - 1));
  const y = (v: number) => MARGIN.top + plotH - (v / yMax) * plotH;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`);
  out.push(`<text x="${MARGIN.left}" y="24" font-size="16" font-weight="bold">W1 fan-out: delivered rows/s by number of subscribers</text>`);
  out.push(`<text x="${MARGIN.left}" y="42" fill="#555555">${esc(subtitle)}</text>`);

  // Grid and y axis.
  for (let v = 0; v <= yMax + step / 2; v += step) {
    const yy = y(v).toFixed(1);
    out.push(`<line x1="${MARGIN.left}" y1="${yy}" x2="${MARGIN.left + plotW}" y2="${yy}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 8}" y="${yy}" text-anchor="end" dominant-baseline="middle" fill="#333333">${esc(formatRate(v))}</text>`);
  }
  out.push(
    `<text transform="translate(18 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#333333">rows/s delivered (all subscribers)</text>`,
  );
  // x axis.
  out.push(`<line x1="${MARGIN.left}" y1="${MARGIN.top + plotH}" x2="${MARGIN.left + plotW}" y2="${MARGIN.top + plotH}" stroke="#333333"/>`);
  counts.forEach((s, i) => {
    out.push(`<line x1="${x(i)}" y1="${MARGIN.top + plotH}" x2="${x(i)}" y2="${MARGIN.top + plotH + 5}" stroke="#333333"/>`);
    out.push(`<text x="${x(i)}" y="${MARGIN.top + plotH + 20}" text-anchor="middle" fill="#333333">S = ${s}</text>`);
  });
  out.push(
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 12}" text-anchor="middle" fill="#333333">subscribers (one process holding S sockets)</text>`,
  );

  // One line per system.
  for (const system of systems) {
    const points = counts
      .map((s, i) => {
        const c = cells.find((cell) => cell.system === system && cell.subscribers === s);
        return c?.rowsPerSec != null ? { x: x(i), y: y(c.rowsPerSec), v: c.rowsPerSec } : null;
      })
      .filter((p) => p !== null);
    const color = COLORS[system];
    const width = system === 'gateway' ? 3 : 2;
    const dash = DASHED[system] ? ` stroke-dasharray="${DASHED[system]}"` : '';
    if (points.length > 1) {
      const d = points.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      out.push(`<polyline points="${d}" fill="none" stroke="${color}" stroke-width="${width}"${dash}/>`);
    }
    for (const p of points) {
      out.push(`<circle cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="${system === 'gateway' ? 4.5 : 3.5}" fill="${color}">` +
        `<title>${esc(`${SYSTEM_LABELS[system]}: ${formatRate(p.v)} rows/s`)}</title></circle>`);
    }
  }

  // Legend, with the value at the largest S.
  const last = counts[counts.length - 1];
  out.push(`<text x="${MARGIN.left + plotW + 18}" y="${MARGIN.top - 8}" fill="#555555">rows/s at S = ${last}:</text>`);
  [...systems].reverse().forEach((system, i) => {
    const ly = MARGIN.top + 12 + i * 22;
    const lx = MARGIN.left + plotW + 18;
    const dash = DASHED[system] ? ` stroke-dasharray="${DASHED[system]}"` : '';
    const c = cells.find((cell) => cell.system === system && cell.subscribers === last);
    out.push(`<line x1="${lx}" y1="${ly}" x2="${lx + 24}" y2="${ly}" stroke="${COLORS[system]}" stroke-width="${system === 'gateway' ? 3 : 2}"${dash}/>`);
    out.push(
      `<text x="${lx + 30}" y="${ly}" dominant-baseline="middle"${system === 'gateway' ? ' font-weight="bold"' : ''}>` +
        `${esc(SYSTEM_LABELS[system])}${c?.rowsPerSec != null ? ` (${esc(formatRate(c.rowsPerSec))})` : ''}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
