// Messages: every delivery with its outcome, the failures (with their reasons) and the dead
// letters, both replayable once the cause is fixed. Reads the messages API only.
import { Fragment, useState } from "react";
import { api } from "../api";
import { Badge, Button, Card, EmptyState, ErrorState, Loading, NotAvailable, PageHeader, formatNumber, formatTime } from "../components/ui";
import { Link } from "../router";
import { useApi, useSession } from "../session";
import type { MessageRow } from "./ProfileTimeline";

interface Row extends MessageRow {
  profile_id?: string | null;
  attempts?: number;
  provider?: string | null;
  provider_message_id?: string | null;
  delivered_ms?: number | null;
  opened_ms?: number | null;
  clicked_ms?: number | null;
  updated_ms?: number;
  source?: string;
}

const TABS = [
  { id: "all", label: "Deliveries", path: "/api/v1/messages", empty: "No messages yet", hint: "Messages appear here once a published journey reaches a message step, or when you call the send API (POST /api/v1/messages)." },
  { id: "failed", label: "Failures", path: "/api/v1/messages/failures", empty: "No failures", hint: "Messages a provider refused for good (a bounce, an invalid number) show here with the reason." },
  { id: "dead", label: "Dead letters", path: "/api/v1/messages/dead-letters", empty: "No dead letters", hint: "Messages that ran out of retries land here, ready to replay once the provider is back." },
] as const;

const TONE: Record<string, string> = { failed: "error", dead: "error", skipped: "warning", queued: "info", claimed: "info", sending: "info", sent: "success", delivered: "success", opened: "success", clicked: "success" };

const PAGE = 50;

function Table({ tab, channel, onReplayed }: { tab: (typeof TABS)[number]; channel: string; onReplayed: () => void }) {
  const { canAdmin } = useSession();
  const [before, setBefore] = useState<Array<string | null>>([null]);
  const cursor = before[before.length - 1];
  const query = { limit: PAGE, before: cursor, ...(tab.id === "all" && channel ? { channel } : {}) };
  const { data, error, loading, reload } = useApi<{ messages: Row[]; next: string | null }>(tab.path, query);
  const [open, setOpen] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const replayable = tab.id !== "all";

  const replay = async (ids: string[] | null) => {
    setNotice(null);
    try {
      const r = await api<{ replayed: string[] }>("POST", ids && ids.length === 1 ? `/api/v1/messages/${encodeURIComponent(ids[0])}/replay` : "/api/v1/messages/replay", {
        body: ids && ids.length === 1 ? undefined : ids ? { ids } : { all: true },
      });
      setNotice(`${formatNumber(r.replayed.length)} message${r.replayed.length === 1 ? "" : "s"} queued again.`);
      reload();
      onReplayed();
    } catch (err) {
      setNotice((err as Error).message);
    }
  };

  const shown = notice ? (
    <p className="notice" role="status" data-testid="replay-notice">
      {notice}
    </p>
  ) : null;
  if (loading) return <Loading label="Loading messages…" />;
  if (error?.notAvailable) return <NotAvailable title="The messages API is not on this server yet">Deliveries, failures with their reasons, and dead letters to replay.</NotAvailable>;
  if (error) return <ErrorState error={error} onRetry={reload} />;
  const rows = data?.messages ?? [];
  if (!rows.length && before.length === 1) {
    return (
      <>
        {shown}
        <EmptyState icon={tab.id === "all" ? "send" : "check"} title={tab.empty}>
          {tab.hint}
        </EmptyState>
      </>
    );
  }
  return (
    <>
      {shown}
      {replayable && canAdmin ? (
        <div className="card-intro">
          <Button icon="refresh" onClick={() => void replay(null)}>
            Replay all {tab.label.toLowerCase()}
          </Button>
        </div>
      ) : null}
      <table className="table" aria-label={tab.label} data-testid={`messages-${tab.id}`}>
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">To</th>
            <th scope="col">Channel</th>
            <th scope="col">Template</th>
            <th scope="col">From</th>
            <th scope="col">Status</th>
            {replayable && canAdmin ? <th scope="col" className="actions">Actions</th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.map((m) => (
            <Fragment key={m.id}>
              <tr>
                <td>
                  <button type="button" className="link-btn" aria-expanded={open === m.id} onClick={() => setOpen(open === m.id ? null : m.id)}>
                    {formatTime(m.created_ms)}
                  </button>
                </td>
                <td>
                  {m.profile_id ? (
                    <Link to={`/profiles/${encodeURIComponent(m.profile_id)}`} className="mono small">
                      {m.address ?? m.profile_id}
                    </Link>
                  ) : (
                    <span className="mono small">{m.address ?? "—"}</span>
                  )}
                </td>
                <td>
                  <Badge tone="info">{m.channel}</Badge>
                </td>
                <td className="mono small">
                  <Link to={`/templates/${encodeURIComponent(m.template)}`}>{m.template}</Link>
                </td>
                <td className="small">{m.journey_key ? <Link to={`/journeys/${encodeURIComponent(m.journey_key)}`}>{m.journey_key}</Link> : (m.source ?? "api")}</td>
                <td>
                  <Badge tone={TONE[m.status] ?? "neutral"}>{m.status}</Badge>
                  {m.reason ? <div className="muted small">{m.reason}</div> : null}
                </td>
                {replayable && canAdmin ? (
                  <td className="actions">
                    <Button tone="ghost" icon="refresh" aria-label={`Replay message ${m.id}`} onClick={() => void replay([m.id])}>
                      Replay
                    </Button>
                  </td>
                ) : null}
              </tr>
              {open === m.id ? (
                <tr className="is-muted">
                  <td colSpan={replayable && canAdmin ? 7 : 6}>
                    <dl className="preview-meta" data-testid="message-detail">
                      <dt>Id</dt>
                      <dd className="mono small">{m.id}</dd>
                      <dt>Attempts</dt>
                      <dd>{m.attempts ?? 0}</dd>
                      <dt>Provider</dt>
                      <dd>
                        {m.provider ?? "—"} {m.provider_message_id ? <span className="mono small">({m.provider_message_id})</span> : null}
                      </dd>
                      {m.detail ? (
                        <>
                          <dt>Last error</dt>
                          <dd>{m.detail}</dd>
                        </>
                      ) : null}
                      <dt>Sent · delivered · opened · clicked</dt>
                      <dd>{[m.sent_ms, m.delivered_ms, m.opened_ms, m.clicked_ms].map((t) => (t ? formatTime(t) : "—")).join(" · ")}</dd>
                    </dl>
                  </td>
                </tr>
              ) : null}
            </Fragment>
          ))}
        </tbody>
      </table>
      <div className="load-more">
        <Button disabled={before.length === 1} onClick={() => setBefore((b) => b.slice(0, -1))}>
          Newer
        </Button>
        <Button disabled={!data?.next} onClick={() => setBefore((b) => [...b, data?.next ?? null])}>
          Older
        </Button>
      </div>
    </>
  );
}

export function MessagesPage() {
  const [tab, setTab] = useState<(typeof TABS)[number]["id"]>("all");
  const [channel, setChannel] = useState("");
  const counts = useApi<Record<string, number>>("/api/v1/messages/counts");
  const channels = useApi<{ channels: Array<{ key: string }> }>("/api/v1/channels");
  const current = TABS.find((t) => t.id === tab) ?? TABS[0];
  const total = Object.values(counts.data ?? {}).reduce((a, b) => a + b, 0);
  const countOf = (id: string) => (id === "all" ? total : (counts.data?.[id] ?? 0));
  return (
    <>
      <PageHeader title="Messages" description="Every delivery: what was sent to whom, on which channel, and what happened to it." />
      {counts.data ? (
        <div className="stat-row" data-testid="message-counts">
          {["sent", "delivered", "skipped", "failed"].map((s) => (
            <div className="stat" key={s}>
              <span className="stat-label">{s}</span>
              <span className="stat-value">{formatNumber(counts.data?.[s] ?? 0)}</span>
            </div>
          ))}
        </div>
      ) : null}
      <Card>
        <div className="tabs" role="tablist" aria-label="Which messages">
          {TABS.map((t) => (
            <button
              key={t.id}
              type="button"
              role="tab"
              id={`tab-${t.id}`}
              aria-selected={tab === t.id}
              aria-controls="messages-panel"
              className="tab"
              onClick={() => setTab(t.id)}
              onKeyDown={(e) => {
                const i = TABS.findIndex((x) => x.id === tab);
                if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
                  const next = TABS[(i + (e.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length];
                  setTab(next.id);
                  document.getElementById(`tab-${next.id}`)?.focus();
                }
              }}
              tabIndex={tab === t.id ? 0 : -1}
            >
              {t.label}
              {counts.data ? <Badge tone={t.id !== "all" && countOf(t.id) ? "error" : "neutral"}>{formatNumber(countOf(t.id))}</Badge> : null}
            </button>
          ))}
          {tab === "all" && channels.data?.channels.length ? (
            <label className="tab-filter">
              <span className="sr-only">Channel</span>
              <select className="input" value={channel} onChange={(e) => setChannel(e.target.value)} aria-label="Channel">
                <option value="">every channel</option>
                {channels.data.channels.map((c) => (
                  <option key={c.key} value={c.key}>
                    {c.key}
                  </option>
                ))}
              </select>
            </label>
          ) : null}
        </div>
        <div id="messages-panel" role="tabpanel" aria-labelledby={`tab-${tab}`}>
          <Table key={`${tab}:${channel}`} tab={current} channel={channel} onReplayed={counts.reload} />
        </div>
      </Card>
    </>
  );
}
