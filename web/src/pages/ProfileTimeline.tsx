// A profile's timeline: its events (every source, the platform's own included) and the messages
// sent to it, newest first, a page at a time.
import { useEffect, useState } from "react";
import { ApiError, get, listFrom, nextCursor } from "../api";
import { Icon } from "../components/icons";
import { Badge, Button, Card, EmptyState, ErrorState, Loading, NotAvailable, formatTime, show } from "../components/ui";
import { Link } from "../router";
import { useApi } from "../session";

type Obj = Record<string, unknown>;

export interface TimelineEvent {
  seq?: number;
  message_id?: string;
  type?: string;
  event?: string | null;
  user_id?: string | null;
  anonymous_id?: string | null;
  timestamp_ms?: number;
  received_ms?: number;
  payload?: Obj;
}

export function KeyValues({ data, empty, testid }: { data?: Obj | null; empty: string; testid?: string }) {
  const entries = Object.entries(data ?? {});
  if (!entries.length) return <p className="muted">{empty}</p>;
  return (
    <dl className="kv-list" data-testid={testid}>
      {entries
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => (
          <div key={k}>
            <dt className="mono">{k}</dt>
            <dd>{show(v)}</dd>
          </div>
        ))}
    </dl>
  );
}

const TYPE_ICON: Record<string, string> = { track: "zap", identify: "userEdit", page: "file", screen: "file", group: "users", alias: "key" };

function eventTitle(e: TimelineEvent): string {
  const p = e.payload ?? {};
  switch (e.type) {
    case "track":
      return e.event || String(p.event ?? "Event");
    case "identify":
      return "Identified";
    case "page": {
      const props = (p.properties ?? {}) as Obj;
      return `Viewed page ${String(p.name ?? props.title ?? props.path ?? "")}`.trim();
    }
    case "screen":
      return `Viewed screen ${String(p.name ?? "")}`.trim();
    case "group":
      return `Joined group ${String(p.groupId ?? "")}`;
    case "alias":
      return `Aliased from ${String(p.previousId ?? "")}`;
    default:
      return e.event || e.type || "Event";
  }
}

function eventDetail(e: TimelineEvent): Obj {
  const p = e.payload ?? {};
  if (e.type === "identify" || e.type === "group") return (p.traits as Obj) ?? {};
  return (p.properties as Obj) ?? {};
}

/** A message sent (or held, or failed) to this person, as the messages API lists it. */
export interface MessageRow {
  id: string;
  channel: string;
  template: string;
  status: string;
  journey_key?: string | null;
  node_id?: string | null;
  reason?: string | null;
  detail?: string | null;
  created_ms: number;
  sent_ms?: number | null;
  address?: string | null;
}

const MESSAGE_TONE: Record<string, string> = { failed: "error", dead: "error", skipped: "warning", queued: "info", claimed: "info", sending: "info" };

function MessageItem({ m }: { m: MessageRow }) {
  return (
    <li className="tl-item tl-message" data-testid="timeline-message">
      <span className="tl-icon" aria-hidden="true">
        <Icon name="send" size={14} />
      </span>
      <div className="tl-body">
        <div className="tl-head">
          <span className="tl-title">
            {m.channel} message <span className="mono small">{m.template}</span>
          </span>
          <Badge tone={MESSAGE_TONE[m.status] ?? "success"}>{m.status}</Badge>
          <time className="tl-time muted small" dateTime={new Date(m.created_ms).toISOString()} title={formatTime(m.created_ms)}>
            {formatTime(m.created_ms)}
          </time>
        </div>
        <p className="muted small">
          {m.journey_key ? (
            <>
              from journey <Link to={`/journeys/${encodeURIComponent(m.journey_key)}`}>{m.journey_key}</Link>
              {m.node_id ? ` (step ${m.node_id})` : ""}
            </>
          ) : (
            "sent through the API"
          )}
          {m.address ? ` · to ${m.address}` : ""}
          {m.reason ? ` · ${m.reason}${m.detail ? `: ${m.detail}` : ""}` : ""}
        </p>
      </div>
    </li>
  );
}

export function Timeline({ profileId }: { profileId: string }) {
  const messages = useApi<{ messages: MessageRow[] }>("/api/v1/messages", { profile_id: profileId, limit: 50 });
  const [events, setEvents] = useState<TimelineEvent[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [state, setState] = useState<{ loading: boolean; error: ApiError | null }>({ loading: true, error: null });
  const [tick, setTick] = useState(0);

  useEffect(() => {
    let live = true;
    setState({ loading: true, error: null });
    get<unknown>(`/api/v1/profiles/${encodeURIComponent(profileId)}/events`, { limit: 25 }).then(
      (body) => {
        if (!live) return;
        setEvents(listFrom<TimelineEvent>(body, "events"));
        setCursor(nextCursor(body));
        setState({ loading: false, error: null });
      },
      (err: ApiError) => live && setState({ loading: false, error: err }),
    );
    return () => {
      live = false;
    };
  }, [profileId, tick]);

  const more = async () => {
    if (!cursor) return;
    const body = await get<unknown>(`/api/v1/profiles/${encodeURIComponent(profileId)}/events`, { limit: 25, cursor });
    setEvents((e) => [...e, ...listFrom<TimelineEvent>(body, "events")]);
    setCursor(nextCursor(body));
  };

  return (
    <Card
      title="Timeline"
      actions={
        <Button tone="ghost" icon="refresh" onClick={() => setTick((t) => t + 1)} aria-label="Refresh timeline">
          Refresh
        </Button>
      }
    >
      {state.loading ? (
        <Loading label="Loading events…" />
      ) : state.error?.notAvailable ? (
        <NotAvailable title="The timeline API is not on this server yet" compact />
      ) : state.error ? (
        <ErrorState error={state.error} onRetry={() => setTick((t) => t + 1)} />
      ) : events.length === 0 && !(messages.data?.messages.length ?? 0) ? (
        <EmptyState icon="activity" title="No events yet" compact>
          Events this person sends through any source appear here, newest first.
        </EmptyState>
      ) : (
        <>
          <ol className="timeline" data-testid="timeline">
            {interleave(events, messages.data?.messages ?? [], !!cursor).map((item, i) => {
              if ("template" in item) return <MessageItem key={`m:${item.id}`} m={item} />;
              const e = item;
              const detail = eventDetail(e);
              const hasDetail = Object.keys(detail).length > 0;
              return (
                <li key={e.message_id ?? e.seq ?? i} className={`tl-item tl-${e.type ?? "track"}`}>
                  <span className="tl-icon" aria-hidden="true">
                    <Icon name={TYPE_ICON[e.type ?? ""] ?? "zap"} size={14} />
                  </span>
                  <div className="tl-body">
                    <div className="tl-head">
                      <span className="tl-title">{eventTitle(e)}</span>
                      <Badge tone="neutral">{e.type ?? "event"}</Badge>
                      <time className="tl-time muted small" dateTime={e.timestamp_ms ? new Date(e.timestamp_ms).toISOString() : undefined} title={formatTime(e.timestamp_ms)}>
                        {formatTime(e.timestamp_ms)}
                      </time>
                    </div>
                    {hasDetail ? (
                      <details className="tl-details">
                        <summary>
                          {Object.keys(detail).length} {e.type === "identify" || e.type === "group" ? "traits" : "properties"}
                        </summary>
                        <KeyValues data={detail} empty="" />
                      </details>
                    ) : null}
                  </div>
                </li>
              );
            })}
          </ol>
          {cursor ? (
            <div className="load-more">
              <Button onClick={() => void more()}>Load older events</Button>
            </div>
          ) : null}
        </>
      )}
    </Card>
  );
}

/** Events and messages in one list, newest first. Messages older than the last event loaded
 * wait until older events are (so paging keeps the order). */
function interleave(events: TimelineEvent[], messages: MessageRow[], more: boolean): Array<TimelineEvent | MessageRow> {
  const oldest = events.length ? (events[events.length - 1].timestamp_ms ?? 0) : 0;
  const shown = messages.filter((m) => !more || m.created_ms >= oldest);
  const out: Array<TimelineEvent | MessageRow> = [...events, ...shown];
  const at = (x: TimelineEvent | MessageRow) => ("template" in x ? x.created_ms : (x.timestamp_ms ?? 0));
  return out.sort((a, b) => at(b) - at(a));
}

