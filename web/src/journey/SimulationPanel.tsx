// Simulation of the draft on the canvas: `POST /api/v1/journeys/{key}/simulate` replays the
// workspace's recent events through the document being edited, on a simulated clock, sending
// nothing. The totals show here; per-node counts are drawn on the nodes by the builder.
import { useState, type FormEvent } from "react";
import { ApiError, api } from "../api";
import { Button, formatNumber, formatTime } from "../components/ui";
import type { SimStats } from "./NodeCard";

/** The answer of the simulate route (`SimulationReport.to_dict()`). */
export interface SimulationReport {
  journey: string;
  start_ms: number;
  end_ms: number;
  events: number;
  people: number;
  entered: number;
  converted: number;
  refused: Record<string, number>;
  exited: Record<string, number>;
  nodes: Record<string, { people: number; visits?: number; waiting?: number }>;
  messages: Record<string, Record<string, number>>;
  webhooks: number;
  emitted: number;
}

/** Per-node counts to draw, the trigger (`triggerId`) holding the people who entered. */
export function simOnNodes(report: SimulationReport, triggerId: string): Record<string, SimStats> {
  return { ...report.nodes, [triggerId]: { people: report.entered } };
}

export function simulate(key: string, document: unknown, since: string): Promise<SimulationReport> {
  return api<SimulationReport>("POST", `/api/v1/journeys/${encodeURIComponent(key || "draft")}/simulate`, { body: { document, since } });
}

function Counts({ title, data }: { title: string; data: Record<string, number> }) {
  const entries = Object.entries(data);
  if (!entries.length) return null;
  return (
    <>
      <h3 className="section-label">{title}</h3>
      <dl className="preview-meta">
        {entries.map(([k, v]) => (
          <div key={k} style={{ display: "contents" }}>
            <dt>{k.replace(/_/g, " ")}</dt>
            <dd>{formatNumber(v)}</dd>
          </div>
        ))}
      </dl>
    </>
  );
}

export function SimulationPanel({
  report,
  stale,
  onRun,
  onClear,
  onClose,
}: {
  report: SimulationReport | null;
  stale: boolean;
  onRun: (since: string) => Promise<void>;
  onClear: () => void;
  onClose: () => void;
}) {
  const [since, setSince] = useState("30d");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onRun(since);
    } catch (err) {
      const a = err as ApiError;
      setError(a.node ? `${a.message} (step ${a.node})` : a.path ? `${a.message} (at ${a.path})` : a.message);
    } finally {
      setBusy(false);
    }
  };
  const messages = Object.fromEntries(Object.entries(report?.messages ?? {}).map(([ch, days]) => [ch, Object.values(days).reduce((a, b) => a + b, 0)]));
  return (
    <div className="sim-panel" data-testid="simulation-panel">
      <div className="yaml-head">
        <h2>Simulate this draft</h2>
        <Button tone="ghost" icon="x" aria-label="Close simulation" onClick={onClose} />
      </div>
      <p className="muted small">Replays the events this workspace logged through the journey as it is on the canvas, on a simulated clock. Nothing is sent and nothing is saved.</p>
      <form onSubmit={run} className="cond-row" aria-label="Simulation">
        <label className="field grow">
          <span className="field-label">Replay the last</span>
          <input className="input" value={since} onChange={(e) => setSince(e.target.value)} placeholder="30d" />
        </label>
        <Button type="submit" tone="primary" icon="play" disabled={busy}>
          {busy ? "Simulating…" : "Run simulation"}
        </Button>
      </form>
      {error ? (
        <p className="notice notice-error" role="alert" data-testid="simulation-error">
          {error}
        </p>
      ) : null}
      {report ? (
        <div data-testid="simulation-result" role="status">
          {stale ? <p className="notice notice-warning">The draft changed since this simulation: run it again to update the counts.</p> : null}
          <p className="muted small">
            {formatTime(report.start_ms)} – {formatTime(report.end_ms)}
          </p>
          <dl className="preview-meta">
            <dt>Events replayed</dt>
            <dd>{formatNumber(report.events)}</dd>
            <dt>People seen</dt>
            <dd>{formatNumber(report.people)}</dd>
            <dt>Entered</dt>
            <dd data-testid="sim-entered">{formatNumber(report.entered)}</dd>
            <dt>Converted</dt>
            <dd>{formatNumber(report.converted)}</dd>
            <dt>Webhook calls</dt>
            <dd>{formatNumber(report.webhooks)}</dd>
          </dl>
          <Counts title="Messages by channel" data={messages} />
          <Counts title="Exits by reason" data={report.exited} />
          <Counts title="Entries refused" data={report.refused} />
          <p className="muted small">Each step on the canvas shows how many people reached it and how many were still waiting at the end.</p>
          <Button tone="ghost" icon="x" onClick={onClear}>
            Clear from the canvas
          </Button>
        </div>
      ) : null}
    </div>
  );
}
