// Settings of delivery: channel providers, subscription topics, and the workspace's delivery
// policy (quiet hours, frequency caps, default timezone), edited through the delivery API.
import { useEffect, useState, type FormEvent } from "react";
import { ApiError, api, listFrom } from "../api";
import { Badge, Button, Card, EmptyState, ErrorState, Loading, NotAvailable, formatTime } from "../components/ui";
import { useApi, useSession } from "../session";

type Doc = Record<string, unknown>;

const SECRET = /(token|secret|password|pass|key|credentials|private)/i;

/** Provider settings with secrets masked: the console never shows a credential. */
function masked(settings: unknown): string {
  if (!settings || typeof settings !== "object") return "";
  return Object.entries(settings as Doc)
    .map(([k, v]) => `${k}: ${SECRET.test(k) ? "••••" : typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" · ");
}

function providersOf(c: Doc): Doc[] {
  if (Array.isArray(c.providers) && c.providers.length) return c.providers as Doc[];
  return [{ name: c.key, provider: c.provider, settings: c.settings }];
}

export function ChannelsCard() {
  const { data, error, loading, reload } = useApi<unknown>("/api/v1/channels");
  const rows = listFrom<Doc>(data, "channels");
  return (
    <Card title="Channel providers" id="channels">
      {loading ? (
        <Loading />
      ) : error?.notAvailable ? (
        <NotAvailable title="Channels are not on this server yet" compact>
          Email over SMTP, SMS, WhatsApp, web and mobile push, webhooks and in-app, each with failover between providers.
        </NotAvailable>
      ) : error ? (
        <ErrorState error={error} onRetry={reload} />
      ) : rows.length === 0 ? (
        <EmptyState icon="send" title="No channel is configured" compact>
          In-app messages work without one. Add email, SMS or push with <code>legato apply -f channels.yaml</code> (kind: Channel, a provider and its settings).
        </EmptyState>
      ) : (
        <table className="table" aria-label="Channels" data-testid="channels-table">
          <thead>
            <tr>
              <th scope="col">Channel</th>
              <th scope="col">Providers, in failover order</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr key={String(c.key)}>
                <td className="mono">{String(c.key)}</td>
                <td>
                  {providersOf(c).map((p, i) => (
                    <div key={i}>
                      <Badge tone="info">{String(p.provider)}</Badge> <span className="muted small">{masked(p.settings)}</span>
                    </div>
                  ))}
                </td>
                <td>{formatTime(c.updated_ms)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

export function TopicsCard() {
  const { data, error, loading, reload } = useApi<unknown>("/api/v1/topics");
  const rows = listFrom<Doc>(data, "topics");
  return (
    <Card title="Subscription topics" id="topics">
      {loading ? (
        <Loading />
      ) : error?.notAvailable ? (
        <NotAvailable title="Topics are not on this server yet" compact />
      ) : error ? (
        <ErrorState error={error} onRetry={reload} />
      ) : rows.length === 0 ? (
        <EmptyState icon="mail" title="No subscription topics" compact>
          Topics let people leave the newsletter and keep their receipts. Apply one with kind: SubscriptionTopic.
        </EmptyState>
      ) : (
        <table className="table" aria-label="Subscription topics" data-testid="topics-table">
          <thead>
            <tr>
              <th scope="col">Topic</th>
              <th scope="col">Channel</th>
              <th scope="col">Mode</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((t) => (
              <tr key={`${String(t.channel)}:${String(t.key)}`}>
                <td>
                  {String(t.name || t.key)} <span className="muted mono small">{String(t.key)}</span>
                </td>
                <td>{String(t.channel)}</td>
                <td>
                  {String(t.mode ?? "opt_out")}
                  {t.double_opt_in ? (
                    <>
                      {" "}
                      <Badge tone="violet">double opt-in</Badge>
                    </>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

interface Cap {
  limit: number | string;
  window: string;
  channel?: string | null;
}

interface Quiet {
  start: string;
  end: string;
  action: string;
  channels: string[];
  include_transactional: boolean;
}

/** Quiet hours and frequency caps: the workspace's delivery policy, edited and saved whole. */
export function PolicyCard() {
  const { canAdmin } = useSession();
  const { data, error, loading, reload } = useApi<Doc>("/api/v1/delivery-policy");
  const [caps, setCaps] = useState<Cap[]>([]);
  const [quiet, setQuiet] = useState<Quiet[]>([]);
  const [zone, setZone] = useState("UTC");
  const [message, setMessage] = useState<{ tone: string; text: string } | null>(null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    if (!data) return;
    setCaps(((data.frequency_caps as Cap[]) ?? []).map((c) => ({ ...c })));
    setQuiet(((data.quiet_hours as Quiet[]) ?? []).map((q) => ({ ...q, channels: [...(q.channels ?? [])] })));
    setZone(String(data.default_timezone ?? "UTC"));
  }, [data]);

  if (loading) return <Card title="Quiet hours and frequency caps"><Loading /></Card>;
  if (error?.notAvailable) {
    return (
      <Card title="Quiet hours and frequency caps">
        <NotAvailable title="The delivery policy is not on this server yet" compact>
          Limits such as “at most 3 marketing messages in 7 days” and nights without messages, in each person's timezone.
        </NotAvailable>
      </Card>
    );
  }
  if (error || !data) return <Card title="Quiet hours and frequency caps"><ErrorState error={error ?? new Error("Empty answer")} onRetry={reload} /></Card>;

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setMessage(null);
    setSaving(true);
    const { kind: _k, version: _v, updated_ms: _u, ...rest } = data;
    const body = {
      ...rest,
      default_timezone: zone,
      frequency_caps: caps.map((c) => ({ limit: Number(c.limit), window: c.window, ...(c.channel ? { channel: c.channel } : {}) })),
      quiet_hours: quiet,
    };
    try {
      await api("PUT", "/api/v1/delivery-policy", { body });
      setMessage({ tone: "success", text: "Saved: the new rules apply to the next message sent." });
    } catch (err) {
      const a = err as ApiError;
      setMessage({ tone: "error", text: a.path ? `${a.message} (at ${a.path})` : a.message });
    } finally {
      setSaving(false);
    }
  };
  const disabled = !canAdmin;
  return (
    <Card title="Quiet hours and frequency caps" id="policy">
      <form onSubmit={save} aria-label="Delivery policy" className="policy-form">
        <p className="muted card-intro">Checked at send time for every marketing message, whatever the journey says; transactional messages are exempt unless a window says otherwise.</p>
        <fieldset className="cond-sub" disabled={disabled}>
          <legend className="cond-label">Frequency caps</legend>
          {caps.length === 0 ? <p className="muted small">No cap: people may get any number of messages.</p> : null}
          {caps.map((c, i) => (
            <div className="cond-row" key={i} data-testid="cap-row">
              at most
              <input className="input" aria-label={`Cap ${i + 1} limit`} inputMode="numeric" value={String(c.limit)} onChange={(e) => setCaps(caps.map((x, j) => (j === i ? { ...x, limit: e.target.value } : x)))} />
              messages in
              <input className="input" aria-label={`Cap ${i + 1} window`} placeholder="7d" value={c.window} onChange={(e) => setCaps(caps.map((x, j) => (j === i ? { ...x, window: e.target.value } : x)))} />
              on
              <input className="input" aria-label={`Cap ${i + 1} channel`} placeholder="every channel" value={c.channel ?? ""} onChange={(e) => setCaps(caps.map((x, j) => (j === i ? { ...x, channel: e.target.value || null } : x)))} />
              <Button tone="ghost" icon="x" aria-label={`Remove cap ${i + 1}`} onClick={() => setCaps(caps.filter((_, j) => j !== i))} />
            </div>
          ))}
          <Button tone="ghost" icon="plus" onClick={() => setCaps([...caps, { limit: 3, window: "7d", channel: null }])}>
            Add a cap
          </Button>
        </fieldset>
        <fieldset className="cond-sub" disabled={disabled}>
          <legend className="cond-label">Quiet hours (each person's local time)</legend>
          {quiet.length === 0 ? <p className="muted small">No quiet hours: messages go out at any time.</p> : null}
          {quiet.map((q, i) => (
            <div className="cond-row" key={i} data-testid="quiet-row">
              from
              <input className="input" type="time" aria-label={`Quiet hours ${i + 1} start`} value={q.start} onChange={(e) => setQuiet(quiet.map((x, j) => (j === i ? { ...x, start: e.target.value } : x)))} />
              to
              <input className="input" type="time" aria-label={`Quiet hours ${i + 1} end`} value={q.end} onChange={(e) => setQuiet(quiet.map((x, j) => (j === i ? { ...x, end: e.target.value } : x)))} />
              <select className="input" aria-label={`Quiet hours ${i + 1} action`} value={q.action} onChange={(e) => setQuiet(quiet.map((x, j) => (j === i ? { ...x, action: e.target.value } : x)))}>
                <option value="defer">hold until the end</option>
                <option value="drop">drop the message</option>
              </select>
              <input className="input" aria-label={`Quiet hours ${i + 1} channels`} placeholder="every channel" value={q.channels.join(", ")} onChange={(e) => setQuiet(quiet.map((x, j) => (j === i ? { ...x, channels: e.target.value.split(",").map((s) => s.trim()).filter(Boolean) } : x)))} />
              <label className="check">
                <input type="checkbox" checked={q.include_transactional} onChange={(e) => setQuiet(quiet.map((x, j) => (j === i ? { ...x, include_transactional: e.target.checked } : x)))} /> transactional too
              </label>
              <Button tone="ghost" icon="x" aria-label={`Remove quiet hours ${i + 1}`} onClick={() => setQuiet(quiet.filter((_, j) => j !== i))} />
            </div>
          ))}
          <Button tone="ghost" icon="plus" onClick={() => setQuiet([...quiet, { start: "21:00", end: "08:00", action: "defer", channels: [], include_transactional: false }])}>
            Add quiet hours
          </Button>
        </fieldset>
        <label className="field">
          <span className="field-label">Default timezone (for people without a timezone trait)</span>
          <input className="input" value={zone} disabled={disabled} onChange={(e) => setZone(e.target.value)} placeholder="Europe/Madrid" />
        </label>
        {message ? (
          <p className={`notice${message.tone === "error" ? " notice-error" : ""}`} role={message.tone === "error" ? "alert" : "status"} data-testid="policy-message">
            {message.text}
          </p>
        ) : null}
        {canAdmin ? (
          <div className="form-actions">
            <Button type="submit" tone="primary" icon="save" disabled={saving}>
              {saving ? "Saving…" : "Save delivery policy"}
            </Button>
          </div>
        ) : null}
      </form>
    </Card>
  );
}
