// The 360° view's cards read from other APIs: the journeys a person is in (with the step each
// run is at) and their consent per channel and topic.
import { Badge, Card, ErrorState, Loading, NotAvailable, formatTime, timeAgo } from "../components/ui";
import { Link } from "../router";
import { useApi } from "../session";

interface RunRow {
  run_id: string;
  journey: string;
  version: number;
  status: string;
  node: string | null;
  entered_ms: number;
  updated_ms: number;
}

const RUN_TONE: Record<string, string> = { waiting: "info", converted: "success", exited: "neutral" };

export function JourneysCard({ profileId }: { profileId: string }) {
  const runs = useApi<{ runs: RunRow[] }>(`/api/v1/profiles/${encodeURIComponent(profileId)}/journeys`);
  const journeys = useApi<{ journeys: Array<{ key: string; name?: string | null }> }>("/api/v1/journeys");
  const names = new Map((journeys.data?.journeys ?? []).map((j) => [j.key, j.name || j.key]));
  return (
    <Card title="Journeys">
      {runs.loading ? (
        <Loading label="Loading journeys…" />
      ) : runs.error?.notAvailable ? (
        <NotAvailable title="This server does not list a profile's journeys" compact>
          Each journey this person is in, and the step each run is at.
        </NotAvailable>
      ) : runs.error ? (
        <ErrorState error={runs.error} onRetry={runs.reload} />
      ) : !runs.data?.runs.length ? (
        <p className="muted">In no journey yet. People enter when they do what a published journey listens to.</p>
      ) : (
        <ul className="identity-list" data-testid="profile-journeys">
          {runs.data.runs.map((r) => (
            <li key={r.run_id}>
              <span>
                <Link to={`/journeys/${encodeURIComponent(r.journey)}`}>{names.get(r.journey) ?? r.journey}</Link>{" "}
                <span className="muted small">v{r.version}</span>
              </span>
              <span className="run-state">
                <Badge tone={RUN_TONE[r.status] ?? "neutral"}>{r.status}</Badge>
                {r.node ? (
                  <span className="mono small" title="The step this run is at">
                    at {r.node}
                  </span>
                ) : null}
                <span className="muted small" title={`entered ${formatTime(r.entered_ms)}`}>
                  {timeAgo(r.updated_ms)}
                </span>
              </span>
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}

interface ConsentLine {
  channel: string;
  topic: string | null;
  name?: string | null;
  subscribed: boolean;
  pending?: boolean;
}

interface ConsentRecord {
  channel: string;
  topic?: string | null;
  status: string;
  source?: string;
  at_ms?: number;
  recorded_ms?: number;
}

export function ConsentCard({ profileId }: { profileId: string }) {
  const consent = useApi<{ preferences: ConsentLine[]; records: ConsentRecord[] }>(`/api/v1/consent/${encodeURIComponent(profileId)}`);
  return (
    <Card title="Consent">
      {consent.loading ? (
        <Loading label="Loading consent…" />
      ) : consent.error?.notAvailable ? (
        <NotAvailable title="Consent is not on this server yet" compact>
          Subscriptions per channel and topic, with the record of every change.
        </NotAvailable>
      ) : consent.error ? (
        <ErrorState error={consent.error} onRetry={consent.reload} />
      ) : !consent.data?.preferences.length ? (
        <p className="muted">No channel or topic is configured yet, so there is nothing to consent to.</p>
      ) : (
        <>
          <ul className="identity-list" data-testid="consent">
            {consent.data.preferences.map((c) => (
              <li key={`${c.channel}:${c.topic ?? ""}`}>
                <span>
                  <span className="chip-kind">{c.channel}</span> {c.name || c.topic || "all messages"}
                </span>
                <Badge tone={c.pending ? "warning" : c.subscribed ? "success" : "neutral"}>{c.pending ? "pending" : c.subscribed ? "subscribed" : "unsubscribed"}</Badge>
              </li>
            ))}
          </ul>
          {consent.data.records.length ? (
            <details className="tl-details">
              <summary>
                {consent.data.records.length} recorded change{consent.data.records.length > 1 ? "s" : ""}
              </summary>
              <ul className="identity-list">
                {consent.data.records.slice(0, 20).map((r, i) => (
                  <li key={i}>
                    <span>
                      {r.channel}
                      {r.topic ? ` / ${r.topic}` : ""}: {r.status}
                    </span>
                    <span className="muted small">
                      {r.source ?? ""} {formatTime(r.at_ms ?? r.recorded_ms)}
                    </span>
                  </li>
                ))}
              </ul>
            </details>
          ) : null}
        </>
      )}
    </Card>
  );
}

