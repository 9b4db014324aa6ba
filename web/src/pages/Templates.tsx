// Templates: the list, and the editor — Liquid-highlighted fields chosen by the channel's kind
// (email: subject, MJML or HTML, text; SMS and WhatsApp: body; push: title, body, link...), and
// a live preview of the unsaved draft rendered by the server as you type, for a person you
// choose (`POST /templates/preview`); its syntax errors show on the field they are in.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { ApiError, api, listFrom } from "../api";
import { Icon } from "../components/icons";
import { LiquidEditor } from "../components/LiquidEditor";
import { Badge, Button, Card, EmptyState, ErrorState, Field, Loading, NotAvailable, PageHeader, formatTime } from "../components/ui";
import { Link, navigate } from "../router";
import { useApi, useSession } from "../session";

type Doc = Record<string, unknown>;

/** The channel kind each provider serves (a template's fields depend on the kind). */
const PROVIDER_KIND: Record<string, string> = { smtp: "email", twilio: "sms", whatsapp: "whatsapp", webpush: "webpush", fcm: "push", webhook: "webhook" };
const BUILTIN_CHANNELS: Record<string, string> = { inapp: "inapp", web: "web" };

/** Content fields per kind, in the order an author fills them; `rows` > 1 is a long text. */
const FIELDS: Record<string, Array<{ name: string; label: string; rows: number; hint?: string }>> = {
  email: [
    { name: "subject", label: "Subject", rows: 1 },
    { name: "from_address", label: "From (optional)", rows: 1, hint: "Overrides the channel's sender, e.g. Shop <news@shop.example>" },
    { name: "mjml", label: "Body (MJML)", rows: 12, hint: "Responsive email markup, compiled to HTML when saved. Or use HTML below instead." },
    { name: "html", label: "Body (HTML)", rows: 6 },
    { name: "text", label: "Plain text (optional)", rows: 4, hint: "Derived from the HTML when empty." },
  ],
  sms: [{ name: "body", label: "Message", rows: 4, hint: "Keep it under 160 characters to fit one SMS." }],
  whatsapp: [{ name: "body", label: "Message", rows: 5, hint: "Session messages only; pre-approved templates are set in YAML (whatsapp_template)." }],
  push: [
    { name: "title", label: "Title", rows: 1 },
    { name: "body", label: "Body", rows: 3 },
    { name: "url", label: "Link (optional)", rows: 1 },
    { name: "image", label: "Image URL (optional)", rows: 1 },
  ],
  webpush: [
    { name: "title", label: "Title", rows: 1 },
    { name: "body", label: "Body", rows: 3 },
    { name: "url", label: "Link (optional)", rows: 1 },
    { name: "icon", label: "Icon URL (optional)", rows: 1 },
  ],
  inapp: [
    { name: "title", label: "Title", rows: 1 },
    { name: "body", label: "Body", rows: 4 },
    { name: "url", label: "Link (optional)", rows: 1 },
    { name: "image", label: "Image URL (optional)", rows: 1 },
  ],
  web: [
    { name: "title", label: "Title", rows: 1 },
    { name: "body", label: "Body", rows: 4 },
    { name: "url", label: "Link (optional)", rows: 1 },
  ],
  webhook: [{ name: "payload", label: "Payload (JSON, Liquid in strings)", rows: 8 }],
};
const ALL_FIELDS = [...new Set(Object.values(FIELDS).flatMap((f) => f.map((x) => x.name)))];

interface Channel {
  key: string;
  kind: string;
}

function useChannels(): { channels: Channel[]; loading: boolean; error: ApiError | null } {
  const { data, loading, error } = useApi<unknown>("/api/v1/channels");
  const configured = listFrom<Doc>(data, "channels").map((c) => {
    const provider = String(c.provider ?? (Array.isArray(c.providers) ? (c.providers[0] as Doc)?.provider : "") ?? "");
    return { key: String(c.key), kind: PROVIDER_KIND[provider] ?? String(c.key) };
  });
  const builtins = Object.entries(BUILTIN_CHANNELS).map(([key, kind]) => ({ key, kind }));
  return { channels: [...configured, ...builtins.filter((b) => !configured.some((c) => c.key === b.key))], loading, error: error?.notAvailable ? null : error };
}

export function TemplatesPage() {
  const { canAdmin } = useSession();
  const { data, error, loading, reload } = useApi<unknown>("/api/v1/templates");
  const rows = listFrom<Doc>(data, "templates");
  return (
    <>
      <PageHeader
        title="Templates"
        description="The content of every message: email, SMS, WhatsApp, push and in-app, personalised with Liquid."
        actions={
          canAdmin ? (
            <Button tone="primary" icon="plus" onClick={() => navigate("/templates/new")}>
              New template
            </Button>
          ) : null
        }
      />
      <Card>
        {loading ? (
          <Loading label="Loading templates…" />
        ) : error?.notAvailable ? (
          <NotAvailable title="Templates are not on this server yet">An editor with Liquid highlighting and each channel's fields, and a preview rendered for a person you choose.</NotAvailable>
        ) : error ? (
          <ErrorState error={error} onRetry={reload} />
        ) : rows.length === 0 ? (
          <EmptyState icon="file" title="No templates yet" action={canAdmin ? <Button tone="primary" icon="plus" onClick={() => navigate("/templates/new")}>Write a template</Button> : null}>
            Journeys' message steps and the send API name a template. Write one here, or apply YAML with <code>legato apply -f template.yaml</code>.
          </EmptyState>
        ) : (
          <table className="table" aria-label="Templates" data-testid="templates-table">
            <thead>
              <tr>
                <th scope="col">Template</th>
                <th scope="col">Channel</th>
                <th scope="col">Topic</th>
                <th scope="col">Category</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((t) => (
                <tr key={String(t.key)}>
                  <td>
                    <Link to={`/templates/${encodeURIComponent(String(t.key))}`} className="row-link mono">
                      {String(t.key)}
                    </Link>
                    <span className="muted small"> v{String(t.version ?? 1)}</span>
                  </td>
                  <td>
                    <Badge tone="info">{String(t.channel)}</Badge>
                  </td>
                  <td>{t.topic ? String(t.topic) : <span className="muted">—</span>}</td>
                  <td>{String(t.category ?? "marketing")}</td>
                  <td>{formatTime(t.updated_ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}

function errorText(err: ApiError): string {
  const b = err.body;
  const where = [b.path ? `${String(b.path)}` : "", typeof b.line === "number" ? `line ${b.line}` : "", typeof b.column === "number" ? `column ${b.column}` : ""].filter(Boolean).join(", ");
  return where && !err.message.includes(where) ? `${err.message} (${where})` : err.message;
}

/** The Template document the editor holds, as saving sends it (only this kind's fields), or the
 *  problem that keeps it from being one. */
function documentOf(doc: Doc, fields: Array<{ name: string }>): Doc | ApiError {
  const body: Doc = { kind: "Template", channel: doc.channel, category: doc.category ?? "marketing" };
  const key = String(doc.key ?? "").trim();
  if (key) body.key = key;
  if (doc.topic) body.topic = doc.topic;
  for (const f of fields) {
    const v = doc[f.name];
    if (v === undefined || v === "") continue;
    if (f.name === "payload" && typeof v === "string") {
      try {
        body.payload = JSON.parse(v);
      } catch {
        return new ApiError(422, { message: "The payload is not valid JSON.", path: "payload" }, "");
      }
    } else body[f.name] = v;
  }
  for (const extra of ["locales", "placement", "expires_after", "reply_to", "data", "whatsapp_template", "event_type"]) if (doc[extra] !== undefined) body[extra] = doc[extra];
  return body;
}

export function TemplateEditor({ templateKey }: { templateKey: string | null }) {
  const { canAdmin } = useSession();
  const existing = useApi<Doc>(templateKey ? `/api/v1/templates/${encodeURIComponent(templateKey)}` : null);
  const { channels, loading: channelsLoading } = useChannels();
  const topics = useApi<unknown>("/api/v1/topics");
  const [doc, setDoc] = useState<Doc>({ key: "", channel: "", category: "marketing" });
  const [seeded, setSeeded] = useState(false);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [saved, setSaved] = useState(0);
  // What the live preview found wrong with the unsaved draft (shown on its field).
  const [draftError, setDraftError] = useState<ApiError | null>(null);

  useEffect(() => {
    if (seeded) return;
    if (templateKey && existing.data) {
      const { version: _v, updated_ms: _u, ...rest } = existing.data;
      setDoc(rest);
      setSeeded(true);
    } else if (!templateKey && !channelsLoading) {
      setDoc((d) => ({ ...d, channel: channels[0]?.key ?? "" }));
      setSeeded(true);
    }
  }, [seeded, templateKey, existing.data, channels, channelsLoading]);

  const back = (
    <Link to="/templates" className="back">
      <Icon name="arrowLeft" size={14} /> Templates
    </Link>
  );
  if (existing.loading || !seeded) return <Loading label="Loading template…" />;
  if (existing.error) {
    return (
      <>
        <PageHeader title="Template" back={back} />
        <Card>
          {existing.error.status === 404 ? <EmptyState icon="file" title={`There is no template ${templateKey}`} /> : <ErrorState error={existing.error} onRetry={existing.reload} />}
        </Card>
      </>
    );
  }

  const kind = channels.find((c) => c.key === doc.channel)?.kind ?? String(doc.channel || "email");
  const fields = FIELDS[kind] ?? FIELDS.email;
  const channelTopics = listFrom<Doc>(topics.data, "topics").filter((t) => !doc.channel || t.channel === doc.channel);
  const set = (name: string, value: unknown) => setDoc((d) => ({ ...d, [name]: value }));
  const fieldText = (name: string) => (name === "payload" && doc.payload !== undefined && typeof doc.payload !== "string" ? JSON.stringify(doc.payload, null, 2) : String(doc[name] ?? ""));

  const draft = documentOf(doc, fields);
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const key = String(doc.key ?? "").trim();
    if (!key) {
      setError(new ApiError(422, { message: "Give the template a key, e.g. welcome_email.", path: "key" }, ""));
      return;
    }
    if (draft instanceof ApiError) {
      setError(draft);
      return;
    }
    const body: Doc = { ...draft, key };
    setSaving(true);
    try {
      await api("PUT", `/api/v1/templates/${encodeURIComponent(key)}`, { body });
      setSaved((n) => n + 1);
      if (!templateKey) navigate(`/templates/${encodeURIComponent(key)}`, { replace: true });
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setSaving(false);
    }
  };

  return (
    <>
      <PageHeader title={templateKey ? templateKey : "New template"} back={back} description="Every text field may use Liquid: {{ profile.traits.first_name }}, {{ trigger.properties.order_id }}, {% if %}…{% endif %}." />
      <div className="template-grid">
        <form onSubmit={save} aria-label="Template">
          <Card>
            <div className="form-grid">
              <Field label="Key">
                <input className="input mono" name="key" value={String(doc.key ?? "")} readOnly={!!templateKey} onChange={(e) => set("key", e.target.value)} placeholder="welcome_email" autoComplete="off" />
              </Field>
              <Field label="Channel" hint={`Kind: ${kind}`}>
                <select className="input" name="channel" value={String(doc.channel ?? "")} onChange={(e) => set("channel", e.target.value)}>
                  {channels.map((c) => (
                    <option key={c.key} value={c.key}>
                      {c.key}
                    </option>
                  ))}
                  {doc.channel && !channels.some((c) => c.key === doc.channel) ? <option value={String(doc.channel)}>{String(doc.channel)}</option> : null}
                </select>
              </Field>
              <Field label="Category" hint="Transactional messages skip caps, topics and quiet hours.">
                <select className="input" name="category" value={String(doc.category ?? "marketing")} onChange={(e) => set("category", e.target.value)}>
                  <option value="marketing">marketing</option>
                  <option value="transactional">transactional</option>
                </select>
              </Field>
              <Field label="Subscription topic">
                <select className="input" name="topic" value={String(doc.topic ?? "")} onChange={(e) => set("topic", e.target.value || undefined)}>
                  <option value="">none (the channel's consent)</option>
                  {channelTopics.map((t) => (
                    <option key={String(t.key)} value={String(t.key)}>
                      {String(t.name || t.key)}
                    </option>
                  ))}
                </select>
              </Field>
            </div>
          </Card>
          <Card title={`${kind} content`}>
            {fields.map((f) => (
              <LiquidEditor key={`${kind}:${f.name}`} name={f.name} label={f.label} rows={f.rows} hint={f.hint} value={fieldText(f.name)} onChange={(v) => set(f.name, v)} error={error?.body.path === f.name ? errorText(error) : draftError?.body.path === f.name ? errorText(draftError) : null} />
            ))}
            {ALL_FIELDS.filter((n) => !fields.some((f) => f.name === n) && doc[n]).length ? (
              <p className="muted small">Fields of other channel kinds are kept out of what is saved.</p>
            ) : null}
          </Card>
          {error && error.body.path !== undefined && fields.some((f) => f.name === error.body.path) ? null : error ? (
            <p className="notice notice-error" role="alert" data-testid="template-error">
              {errorText(error)}
            </p>
          ) : null}
          {canAdmin ? (
            <div className="form-actions">
              <Button type="submit" tone="primary" icon="save" disabled={saving}>
                {saving ? "Saving…" : "Save template"}
              </Button>
              {saved ? (
                <span className="muted small" role="status" data-testid="template-saved">
                  Saved.
                </span>
              ) : null}
            </div>
          ) : null}
        </form>
        <PreviewPanel draft={draft} written={fields.some((f) => fieldText(f.name).trim() !== "")} kind={kind} onProblem={setDraftError} />
      </div>
    </>
  );
}

interface Rendered {
  template: string;
  channel: string;
  kind: string;
  locale: string | null;
  profile_id: string | null;
  content: Record<string, unknown>;
}

const WHO = [
  { value: "user_id", label: "User ID" },
  { value: "email", label: "Email" },
  { value: "phone", label: "Phone" },
  { value: "profile_id", label: "Profile ID" },
];

/** How long the editor must be still before the draft is rendered again. */
const PREVIEW_DELAY_MS = 400;

function PreviewPanel({ draft, written, kind, onProblem }: { draft: Doc | ApiError; written: boolean; kind: string; onProblem: (problem: ApiError | null) => void }) {
  const [whoKind, setWhoKind] = useState("user_id");
  const [who, setWho] = useState("");
  // The person the preview is rendered for, once chosen (null: nobody, which checks the syntax).
  const [person, setPerson] = useState<Record<string, string> | null>(null);
  const [eventText, setEventText] = useState("");
  const [result, setResult] = useState<Rendered | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const latest = useRef(0);
  const request = JSON.stringify({ draft: draft instanceof ApiError ? draft.message : draft, written, person, eventText });

  // Render the unsaved draft again whenever it (or the person, or the trigger) changes and the
  // editor has been still for a moment; an answer to an older request is dropped.
  useEffect(() => {
    const ask = ++latest.current;
    if (!written) {
      // Nothing written yet: no preview, and no complaint about the fields still empty.
      setResult(null);
      setError(null);
      onProblem(null);
      return;
    }
    if (draft instanceof ApiError) {
      setResult(null);
      setError(errorText(draft));
      onProblem(draft);
      return;
    }
    let event: unknown = {};
    if (eventText.trim()) {
      try {
        event = { name: "Preview", properties: JSON.parse(eventText) as unknown };
      } catch {
        setError("The trigger properties are not valid JSON.");
        return;
      }
    }
    const timer = window.setTimeout(async () => {
      setBusy(true);
      try {
        const rendered = await api<Rendered>("POST", "/api/v1/templates/preview", { body: { template: draft, ...(person ? { to: person } : {}), event } });
        if (ask !== latest.current) return;
        setResult(rendered);
        setError(null);
        onProblem(null);
      } catch (err) {
        if (ask !== latest.current) return;
        const problem = err as ApiError;
        setResult(null);
        setError(errorText(problem));
        onProblem(problem.status === 422 ? problem : null);
      } finally {
        if (ask === latest.current) setBusy(false);
      }
    }, PREVIEW_DELAY_MS);
    return () => window.clearTimeout(timer);
    // `request` stands for draft, written, person and eventText; onProblem is a state setter.
  }, [request]);

  return (
    <Card title="Preview" className="preview-card">
      <form
        className="search-bar"
        aria-label="Preview for a person"
        onSubmit={(e) => {
          e.preventDefault();
          setPerson(who.trim() ? { [whoKind]: who.trim() } : null);
        }}
      >
        <label className="sr-only" htmlFor="preview-kind">
          Identify the person by
        </label>
        <select id="preview-kind" className="input search-kind" value={whoKind} onChange={(e) => setWhoKind(e.target.value)}>
          {WHO.map((w) => (
            <option key={w.value} value={w.value}>
              {w.label}
            </option>
          ))}
        </select>
        <label className="sr-only" htmlFor="preview-who">
          Person
        </label>
        <input id="preview-who" className="input" value={who} onChange={(e) => setWho(e.target.value)} placeholder="who to render for" />
        <Button type="submit" tone="primary" icon="play">
          Render
        </Button>
        <label className="field full">
          <span className="field-label">Trigger properties (optional JSON)</span>
          <input className="input mono" value={eventText} onChange={(e) => setEventText(e.target.value)} placeholder='{"order_id": "o-1"}' />
        </label>
      </form>
      <p className="muted small" role="status" data-testid="preview-state">
        {busy ? "Rendering…" : written ? `The unsaved draft as it would be sent, rendered by the server as you type${person ? "" : ", for nobody yet: choose a person to use their traits, locale and links"}.` : "Write the content: the preview follows as you type."}
      </p>
      {error ? (
        <p className="notice notice-error" role="alert" data-testid="preview-error">
          {error}
        </p>
      ) : null}
      {result ? <RenderedView r={result} kind={kind} /> : null}
    </Card>
  );
}

const PLACEHOLDER =
  "data:image/svg+xml;utf8," +
  encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60"><rect width="120" height="60" fill="#e2e8f0"/><text x="60" y="35" font-size="11" text-anchor="middle" fill="#64748b">remote image</text></svg>');
const REMOTE_URL = /url\(\s*['"]?(?:https?:)?\/\/[^)]*\)/gi;

/**
 * The rendered email made safe to show inside the console: no script, no remote stylesheet,
 * font or image (the console's content policy would refuse them, and a preview should not
 * tell a tracker that someone looked). Remote images become a grey placeholder.
 */
export function offline(html: string): string {
  const doc = new DOMParser().parseFromString(html, "text/html");
  doc.querySelectorAll("script, link, base, meta[http-equiv], iframe, object, embed").forEach((el) => el.remove());
  doc.querySelectorAll("style").forEach((el) => {
    el.textContent = (el.textContent ?? "").replace(/@import[^;]+;/gi, "").replace(REMOTE_URL, "none");
  });
  doc.querySelectorAll<HTMLElement>("[style]").forEach((el) => el.setAttribute("style", (el.getAttribute("style") ?? "").replace(REMOTE_URL, "none")));
  doc.querySelectorAll("img").forEach((img) => {
    const src = img.getAttribute("src") ?? "";
    if (!src.startsWith("data:")) img.setAttribute("src", PLACEHOLDER);
    img.removeAttribute("srcset");
  });
  doc.querySelectorAll("[background]").forEach((el) => el.removeAttribute("background"));
  return "<!doctype html>" + doc.documentElement.outerHTML;
}

function RenderedView({ r, kind }: { r: Rendered; kind: string }) {
  const c = r.content;
  const html = typeof c.html === "string" ? c.html : null;
  const meta = Object.entries(c).filter(([k, v]) => k !== "html" && k !== "text" && k !== "body" && v !== null && v !== undefined && v !== "" && typeof v !== "object");
  return (
    <div data-testid="preview-result">
      <dl className="preview-meta">
        <dt>Rendered for</dt>
        <dd>
          {r.profile_id ? (
            <Link to={`/profiles/${encodeURIComponent(r.profile_id)}`} className="mono small">
              {r.profile_id}
            </Link>
          ) : (
            "nobody known (no profile)"
          )}
          {r.locale ? ` · locale ${r.locale}` : ""}
        </dd>
        {meta.map(([k, v]) => (
          <div key={k} style={{ display: "contents" }}>
            <dt>{k.replace(/_/g, " ")}</dt>
            <dd data-testid={`preview-${k}`}>{String(v)}</dd>
          </div>
        ))}
      </dl>
      {html ? <p className="muted small">Remote images and fonts are not loaded in the preview.</p> : null}
      {html ? (
        // Sandboxed: the rendered email runs no script and cannot reach the console.
        <iframe className="preview-frame" title={`${kind} preview`} sandbox="" srcDoc={offline(html)} data-testid="preview-html" />
      ) : null}
      {typeof c.body === "string" ? <pre className="preview-text" data-testid="preview-body">{c.body}</pre> : null}
      {typeof c.text === "string" && !html ? <pre className="preview-text">{c.text}</pre> : null}
      {c.payload !== undefined && c.payload !== null ? <pre className="preview-text">{JSON.stringify(c.payload, null, 2)}</pre> : null}
    </div>
  );
}
