// Segments: the list, the editor (a condition builder generated from the condition language's
// JSON Schema, with a live count while you edit) and one segment's page (members, size).
import { useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { ApiError, api, listFrom } from "../api";
import { ColumnChart } from "../components/charts";
import { Icon } from "../components/icons";
import { Badge, Button, Card, EmptyState, ErrorState, Field, Loading, NotAvailable, PageHeader, formatDate, formatNumber, formatTime } from "../components/ui";
import { ConditionBuilder } from "../conditions/ConditionBuilder";
import { ConditionSchema, prune, type Json, type Schema } from "../conditions/schema";
import { Link, navigate } from "../router";
import { useApi, useSession } from "../session";

interface SegmentInfo {
  key: string;
  name: string;
  description?: string | null;
  static: boolean;
  version: number;
  state: string;
  document: Record<string, Json>;
  members: number;
  created_ms: number;
  updated_ms: number;
}

interface Member {
  profile_id: string;
  entered_ms: number;
}

export function SegmentsPage() {
  const { canAdmin } = useSession();
  const { data, error, loading, reload } = useApi<unknown>("/api/v1/segments");
  const rows = listFrom<SegmentInfo>(data, "segments");
  return (
    <>
      <PageHeader
        title="Segments"
        description="Groups of people defined by what they did and who they are, kept up to date on every event."
        actions={
          canAdmin ? (
            <Button tone="primary" icon="plus" onClick={() => navigate("/segments/new")}>
              New segment
            </Button>
          ) : null
        }
      />
      <Card>
        {loading ? (
          <Loading label="Loading segments…" />
        ) : error?.notAvailable ? (
          <NotAvailable title="Segments are not on this server yet">This page holds a condition builder, a live count while you edit, the members and the size over time.</NotAvailable>
        ) : error ? (
          <ErrorState error={error} onRetry={reload} />
        ) : rows.length === 0 ? (
          <EmptyState icon="layers" title="No segments yet" action={canAdmin ? <Button tone="primary" icon="plus" onClick={() => navigate("/segments/new")}>Create a segment</Button> : null}>
            Build one here from conditions on events and traits, or apply a YAML document with <code>legato apply -f segment.yaml</code>.
          </EmptyState>
        ) : (
          <table className="table" aria-label="Segments" data-testid="segments-table">
            <thead>
              <tr>
                <th scope="col">Segment</th>
                <th scope="col">Key</th>
                <th scope="col">State</th>
                <th scope="col" className="num">
                  Members
                </th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((s) => (
                <tr key={s.key}>
                  <td>
                    <Link to={`/segments/${encodeURIComponent(s.key)}`} className="row-link">
                      {s.name || s.key}
                    </Link>
                    {s.static ? (
                      <>
                        {" "}
                        <Badge tone="violet">static</Badge>
                      </>
                    ) : null}
                  </td>
                  <td className="mono small">{s.key}</td>
                  <td>
                    <Badge tone={s.state === "ready" ? "success" : "warning"}>{s.state}</Badge>
                  </td>
                  <td className="num">{formatNumber(s.members)}</td>
                  <td>{formatTime(s.updated_ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </>
  );
}

/** The schema, the segments and the computed traits the builder suggests names from. */
function useBuilderData() {
  const schema = useApi<Schema>("/api/v1/conditions/schema");
  const segments = useApi<unknown>("/api/v1/segments");
  const traits = useApi<unknown>("/api/v1/computed-traits");
  const parsed = useMemo(() => (schema.data ? new ConditionSchema(schema.data) : null), [schema.data]);
  const suggestions = useMemo(
    () => ({
      segment: listFrom<SegmentInfo>(segments.data, "segments").map((s) => s.key),
      computed_trait: listFrom<{ key: string }>(traits.data, "computed_traits").map((t) => t.key),
    }),
    [segments.data, traits.data],
  );
  return { schema, parsed, suggestions };
}

type Preview = { state: "idle" | "counting" | "incomplete" } | { state: "done"; count: number } | { state: "error"; message: string };

/** Whether a field is still empty somewhere: no use asking the server to count then. */
function incomplete(value: Json): boolean {
  if (value === "" || value === null) return true;
  if (Array.isArray(value)) return value.some(incomplete);
  if (typeof value === "object") return Object.values(value).some(incomplete);
  return false;
}

/** Counts the condition on the server a moment after each change (nothing is saved). */
function useLiveCount(condition: Json): Preview {
  const [preview, setPreview] = useState<Preview>({ state: "idle" });
  const text = JSON.stringify(prune(condition));
  useEffect(() => {
    const controller = new AbortController();
    if (incomplete(JSON.parse(text) as Json)) {
      setPreview({ state: "incomplete" });
      return;
    }
    setPreview({ state: "counting" });
    const timer = window.setTimeout(() => {
      api<{ count: number }>("POST", "/api/v1/segments/preview", { body: { condition: JSON.parse(text) as Json }, signal: controller.signal }).then(
        (r) => setPreview({ state: "done", count: r.count }),
        (err: unknown) => {
          if ((err as Error).name === "AbortError") return;
          const e = err as ApiError;
          setPreview({ state: "error", message: e.path ? `${e.message} (at ${e.path})` : e.message });
        },
      );
    }, 350);
    return () => {
      window.clearTimeout(timer);
      controller.abort();
    };
  }, [text]);
  return preview;
}

const KEY_RE = /^[a-z][a-z0-9_]*$/;

export function SegmentEditor({ segmentKey }: { segmentKey: string | null }) {
  const { parsed, schema, suggestions } = useBuilderData();
  const existing = useApi<SegmentInfo>(segmentKey ? `/api/v1/segments/${encodeURIComponent(segmentKey)}` : null);
  const [key, setKey] = useState(segmentKey ?? "");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [condition, setCondition] = useState<Json>(null);
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const seeded = useRef(false);

  useEffect(() => {
    if (seeded.current) return;
    if (segmentKey && existing.data) {
      seeded.current = true;
      setName(existing.data.name ?? "");
      setDescription(existing.data.description ?? "");
      setCondition(existing.data.document.condition ?? { all: [] });
    } else if (!segmentKey && parsed) {
      seeded.current = true;
      setCondition({ all: [parsed.blank(parsed.defaultLeaf())] });
    }
  }, [segmentKey, existing.data, parsed]);

  const preview = useLiveCount(condition);
  const back = (
    <Link to={segmentKey ? `/segments/${encodeURIComponent(segmentKey)}` : "/segments"} className="back">
      <Icon name="arrowLeft" size={14} /> {segmentKey ? "Segment" : "Segments"}
    </Link>
  );
  if (schema.loading || existing.loading) return <Loading label="Loading the condition language…" />;
  if (schema.error || existing.error || !parsed) {
    return (
      <>
        <PageHeader title={segmentKey ? "Edit segment" : "New segment"} back={back} />
        <Card>
          <ErrorState error={schema.error ?? existing.error ?? new Error("The server sent no condition schema.")} onRetry={schema.error ? schema.reload : existing.reload} />
        </Card>
      </>
    );
  }

  const keyError = key && !KEY_RE.test(key) ? "Lower-case letters, digits and _, starting with a letter." : null;
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    if (!key || keyError) {
      setError(keyError ?? "Give the segment a key, e.g. repeat_buyers.");
      return;
    }
    setSaving(true);
    try {
      const document = { kind: "Segment", key, ...(name.trim() ? { name: name.trim() } : {}), ...(description.trim() ? { description: description.trim() } : {}), condition: prune(condition) };
      await api("PUT", `/api/v1/segments/${encodeURIComponent(key)}`, { body: document });
      navigate(`/segments/${encodeURIComponent(key)}`);
    } catch (err) {
      const a = err as ApiError;
      setError(a.path ? `${a.message} (at ${a.path})` : a.message);
    } finally {
      setSaving(false);
    }
  };

  return (
    <>
      <PageHeader title={segmentKey ? `Edit ${name || segmentKey}` : "New segment"} back={back} description="Membership is computed over all history when you save, then kept up to date on every event." />
      <form onSubmit={save} aria-label="Segment">
        <Card>
          <div className="form-grid">
            <Field label="Key" hint="Journeys and other segments refer to it." error={keyError}>
              <input className="input mono" name="key" value={key} readOnly={!!segmentKey} onChange={(e) => setKey(e.target.value)} placeholder="repeat_buyers" autoComplete="off" />
            </Field>
            <Field label="Name">
              <input className="input" name="name" value={name} onChange={(e) => setName(e.target.value)} placeholder="Repeat buyers" maxLength={200} />
            </Field>
            <Field label="Description" className="span-2">
              <input className="input" name="description" value={description} onChange={(e) => setDescription(e.target.value)} maxLength={1000} />
            </Field>
          </div>
        </Card>
        <Card
          title="Conditions"
          actions={
            <div className="live-count" role="status" aria-live="polite" data-testid="live-count">
              {preview.state === "counting" ? (
                <span className="muted">Counting…</span>
              ) : preview.state === "done" ? (
                <span>
                  <strong data-testid="live-count-value">{formatNumber(preview.count)}</strong> {preview.count === 1 ? "person matches" : "people match"} now
                </span>
              ) : preview.state === "incomplete" ? (
                <span className="muted">Fill in every field to see how many people match</span>
              ) : preview.state === "error" ? (
                <span className="field-error">{preview.message}</span>
              ) : null}
            </div>
          }
        >
          <ConditionBuilder schema={parsed} value={condition} onChange={setCondition} suggestions={suggestions} />
          <details className="cond-json">
            <summary>As JSON (what the API stores)</summary>
            <pre className="code-block mono" data-testid="condition-json">
              {JSON.stringify(prune(condition), null, 2)}
            </pre>
          </details>
        </Card>
        {error ? (
          <p className="notice notice-error" role="alert" data-testid="segment-error">
            {error}
          </p>
        ) : null}
        <div className="form-actions">
          <Button type="submit" tone="primary" icon="save" disabled={saving}>
            {saving ? "Saving and computing…" : "Save segment"}
          </Button>
          <Button onClick={() => navigate(segmentKey ? `/segments/${encodeURIComponent(segmentKey)}` : "/segments")}>Cancel</Button>
        </div>
      </form>
    </>
  );
}

interface DaySize {
  day: string;
  start_ms: number;
  members: number | null;
  entered: number;
  exited: number;
}

/** How many days of history the chart asks for (`GET /segments/{key}/sizes?days=`). */
const SIZE_DAYS = 90;

/** Members at the end of each day, from the segment's logged entries and exits (the sizes API). */
function SizeOverTime({ segmentKey }: { segmentKey: string }) {
  const { data, error, loading, reload } = useApi<{ days: DaySize[] }>(`/api/v1/segments/${encodeURIComponent(segmentKey)}/sizes`, { days: SIZE_DAYS });
  if (loading) return <Loading label="Reading the size history…" />;
  if (error) return <ErrorState error={error} onRetry={reload} />;
  const known = (data?.days ?? []).filter((d): d is DaySize & { members: number } => d.members !== null);
  if (known.length === 0) return <p className="muted">No history yet.</p>;
  const points = known.map((d) => ({ label: formatDate(d.start_ms).replace(/,? \d{4}$/, ""), value: d.members }));
  const entered = known.reduce((n, d) => n + d.entered, 0);
  const exited = known.reduce((n, d) => n + d.exited, 0);
  return (
    <div data-testid="segment-sizes">
      <ColumnChart data={points} label={`Members at the end of each day since ${formatDate(known[0].start_ms)}`} />
      <p className="muted small" data-testid="segment-size-summary">
        Members at the end of each day{known.length < SIZE_DAYS ? ` since the segment was created (${formatDate(known[0].start_ms)})` : `, last ${SIZE_DAYS} days`}: {formatNumber(entered)} entered, {formatNumber(exited)} left.
      </p>
    </div>
  );
}

function Members({ segmentKey }: { segmentKey: string }) {
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const cursor = cursors[cursors.length - 1];
  const page = useApi<{ members: Member[]; next_cursor: string | null }>(`/api/v1/segments/${encodeURIComponent(segmentKey)}/members`, { limit: 25, cursor });
  if (page.loading) return <Loading label="Loading members…" />;
  if (page.error) return <ErrorState error={page.error} onRetry={page.reload} />;
  const members = page.data?.members ?? [];
  if (!members.length && cursors.length === 1) {
    return (
      <EmptyState icon="users" title="Nobody is in this segment right now" compact>
        People enter as soon as an event or a trait change makes the condition true.
      </EmptyState>
    );
  }
  return (
    <>
      <table className="table" aria-label="Members" data-testid="members-table">
        <thead>
          <tr>
            <th scope="col">Profile</th>
            <th scope="col">Entered</th>
          </tr>
        </thead>
        <tbody>
          {members.map((m) => (
            <tr key={m.profile_id}>
              <td>
                <Link to={`/profiles/${encodeURIComponent(m.profile_id)}`} className="row-link mono small">
                  {m.profile_id}
                </Link>
              </td>
              <td>{formatTime(m.entered_ms)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <div className="load-more">
        <Button disabled={cursors.length === 1} onClick={() => setCursors((c) => c.slice(0, -1))}>
          Previous
        </Button>
        <Button disabled={!page.data?.next_cursor} onClick={() => setCursors((c) => [...c, page.data?.next_cursor ?? null])}>
          Next
        </Button>
      </div>
    </>
  );
}

export function SegmentPage({ segmentKey }: { segmentKey: string }) {
  const { canAdmin } = useSession();
  const { data, error, loading, reload } = useApi<SegmentInfo>(`/api/v1/segments/${encodeURIComponent(segmentKey)}`);
  const [deleteError, setDeleteError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const back = (
    <Link to="/segments" className="back">
      <Icon name="arrowLeft" size={14} /> Segments
    </Link>
  );
  if (loading) return <Loading label="Loading segment…" />;
  if (error || !data) {
    return (
      <>
        <PageHeader title="Segment" back={back} />
        <Card>
          {error?.status === 404 ? (
            <EmptyState icon="layers" title={`There is no segment ${segmentKey}`} action={<Button onClick={() => navigate("/segments")}>All segments</Button>} />
          ) : (
            <ErrorState error={error ?? new Error("Empty answer")} onRetry={reload} />
          )}
        </Card>
      </>
    );
  }
  const remove = async () => {
    setDeleteError(null);
    try {
      await api("DELETE", `/api/v1/segments/${encodeURIComponent(segmentKey)}`);
      navigate("/segments");
    } catch (err) {
      setDeleteError((err as Error).message);
    }
  };
  return (
    <>
      <PageHeader
        back={back}
        title={data.name || data.key}
        description={
          <>
            <span className="mono small">{data.key}</span> · version {data.version} · updated {formatTime(data.updated_ms)}
            {data.description ? ` · ${data.description}` : ""}
          </>
        }
        actions={
          canAdmin ? (
            <>
              {!data.static ? (
                <Button icon="code" onClick={() => navigate(`/segments/${encodeURIComponent(segmentKey)}/edit`)}>
                  Edit conditions
                </Button>
              ) : null}
              {confirming ? (
                <>
                  <Button tone="danger" icon="trash" onClick={() => void remove()}>
                    Delete for good
                  </Button>
                  <Button tone="ghost" onClick={() => setConfirming(false)}>
                    Keep
                  </Button>
                </>
              ) : (
                <Button tone="ghost" icon="trash" onClick={() => setConfirming(true)}>
                  Delete
                </Button>
              )}
            </>
          ) : null
        }
      />
      {deleteError ? (
        <p className="notice notice-error" role="alert">
          {deleteError}
        </p>
      ) : null}
      <div className="stat-row">
        <div className="stat">
          <span className="stat-label">Members now</span>
          <span className="stat-value" data-testid="segment-members">
            {formatNumber(data.members)}
          </span>
        </div>
        <div className="stat">
          <span className="stat-label">State</span>
          <span className="stat-value small-value">{data.state}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Kind</span>
          <span className="stat-value small-value">{data.static ? "static (uploaded)" : "computed"}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Created</span>
          <span className="stat-value small-value">{formatDate(data.created_ms)}</span>
        </div>
      </div>
      <div className="grid-2">
        <Card title="Size over time">
          <SizeOverTime key={data.version} segmentKey={segmentKey} />
        </Card>
        <Card title="Condition">
          {data.static ? (
            <p className="muted">A static segment: its members are uploaded as CSV (POST …/upload), not computed.</p>
          ) : (
            <pre className="code-block mono" data-testid="segment-condition">
              {JSON.stringify(data.document.condition, null, 2)}
            </pre>
          )}
        </Card>
      </div>
      <Card title="Members">
        <Members segmentKey={segmentKey} />
      </Card>
    </>
  );
}
