// Small hand-drawn SVG charts (no chart library): a column chart and horizontal bars.
// Each has an accessible name describing its data, and a <title> per mark for hover.
import { formatNumber } from "./ui";

export interface Datum {
  label: string;
  value: number;
}

function niceMax(max: number): number {
  if (max <= 0) return 1;
  const exp = Math.pow(10, Math.floor(Math.log10(max)));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * exp >= max) return step * exp;
  }
  return 10 * exp;
}

export function ColumnChart({ data, label, height = 180 }: { data: Datum[]; label: string; height?: number }) {
  const width = 560;
  const pad = { top: 12, right: 8, bottom: 26, left: 40 };
  const innerW = width - pad.left - pad.right;
  const innerH = height - pad.top - pad.bottom;
  const max = niceMax(Math.max(0, ...data.map((d) => d.value)));
  const band = innerW / Math.max(1, data.length);
  const barW = Math.max(4, Math.min(36, band * 0.62));
  const ticks = [0, 0.5, 1].map((f) => f * max);
  const every = Math.ceil(data.length / 8);
  const summary = `${label}: ${data.map((d) => `${d.label} ${formatNumber(d.value)}`).join(", ")}`;
  return (
    <svg className="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={summary} preserveAspectRatio="none">
      {ticks.map((t) => {
        const y = pad.top + innerH - (t / max) * innerH;
        return (
          <g key={t}>
            <line x1={pad.left} x2={width - pad.right} y1={y} y2={y} className="chart-grid" />
            <text x={pad.left - 6} y={y + 4} className="chart-tick" textAnchor="end">
              {formatNumber(Math.round(t))}
            </text>
          </g>
        );
      })}
      {data.map((d, i) => {
        const h = (d.value / max) * innerH;
        const x = pad.left + i * band + (band - barW) / 2;
        return (
          <g key={d.label}>
            <rect x={x} y={pad.top + innerH - h} width={barW} height={Math.max(h, d.value > 0 ? 1 : 0)} rx={3} className="chart-bar">
              <title>{`${d.label}: ${formatNumber(d.value)}`}</title>
            </rect>
            {i % every === 0 ? (
              <text x={x + barW / 2} y={height - 8} className="chart-tick" textAnchor="middle">
                {d.label}
              </text>
            ) : null}
          </g>
        );
      })}
    </svg>
  );
}

export function BarList({ data, label, unit }: { data: Datum[]; label: string; unit?: string }) {
  const max = Math.max(1, ...data.map((d) => d.value));
  return (
    <ul className="barlist" aria-label={label}>
      {data.map((d) => (
        <li key={d.label}>
          <span className="barlist-label">{d.label}</span>
          <span className="barlist-track" aria-hidden="true">
            <span className="barlist-fill" style={{ width: `${(d.value / max) * 100}%` }} />
          </span>
          <span className="barlist-value">
            {formatNumber(d.value)}
            {unit ? ` ${unit}` : ""}
          </span>
        </li>
      ))}
    </ul>
  );
}
