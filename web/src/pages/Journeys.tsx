// Journeys: the list (with status) and the route that loads one journey into the builder.
// The journeys API may not be on the server yet; then drafts live in this browser.
import { ReactFlowProvider } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useEffect, useState } from "react";
import { ApiError, api, listFrom } from "../api";
import { Icon } from "../components/icons";
import { Badge, Button, Card, EmptyState, ErrorState, Loading, NotAvailable, PageHeader, formatTime, timeAgo } from "../components/ui";
import { Builder, type ServerState } from "../journey/Builder";
import type { Snapshot } from "../journey/history";
import { autoLayout } from "../journey/layout";
import { TRIGGER_ID, fromDocument, newJourney, type Obj } from "../journey/model";
import { builderRouteKey, listDrafts, loadDraft, loadLayout } from "../journey/storage";
import { Link, navigate } from "../router";
import { useApi, useSession } from "../session";

interface JourneySummary {
  key: string;
  name?: string | null;
  status?: string | null;
  version?: number | null;
  updated_ms?: number | null;
}

const statusTone = (s?: string | null) =>
  s === "published" || s === "active" || s === "live" ? "success" : s === "paused" ? "warning" : s === "archived" ? "neutral" : "info";

function newDraftRoute(): string {
  return `/journeys/new?draft=${Date.now().toString(36)}`;
}

export function JourneysPage() {
  const { workspace, canAdmin } = useSession();
  const { data, error, loading, reload } = useApi<unknown>("/api/v1/journeys");
  const drafts = listDrafts(workspace.id).filter((d) => d.routeKey.startsWith("new:") || error?.notAvailable);
  const journeys = listFrom<JourneySummary>(data, "journeys");

  const newButton = canAdmin ? (
    <Button tone="primary" icon="plus" onClick={() => navigate(newDraftRoute())}>
      New journey
    </Button>
  ) : null;

  return (
    <>
      <PageHeader title="Journeys" description="Multi-step, multi-channel flows that react to what each customer does." actions={newButton} />
      {loading ? (
        <Card>
          <Loading label="Loading journeys…" />
        </Card>
      ) : error?.notAvailable ? (
        <Card>
          <NotAvailable title="Journeys cannot be stored on this server yet">
            <p>
              The journeys API arrives with the journey engine. You can already design journeys here: they are kept in this browser, and the YAML view downloads a file
              for <code>legato apply -f</code>.
            </p>
          </NotAvailable>
        </Card>
      ) : error ? (
        <Card>
          <ErrorState error={error} onRetry={reload} />
        </Card>
      ) : journeys.length === 0 && drafts.length === 0 ? (
        <Card>
          <EmptyState
            icon="route"
            title="No journeys yet"
            action={newButton}
          >
            Build your first journey: pick a trigger (an event such as <em>Checkout Started</em>), then drag steps — messages, waits, branches — onto the canvas.
          </EmptyState>
        </Card>
      ) : journeys.length ? (
        <Card title="On this server">
          <table className="table" aria-label="Journeys">
            <thead>
              <tr>
                <th scope="col">Journey</th>
                <th scope="col">Status</th>
                <th scope="col">Version</th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {journeys.map((j) => (
                <tr key={j.key}>
                  <td>
                    <Link to={`/journeys/${encodeURIComponent(j.key)}`} className="row-link">
                      {j.name || j.key}
                    </Link>
                    <div className="muted mono small">{j.key}</div>
                  </td>
                  <td>
                    <Badge tone={statusTone(j.status)}>{j.status ?? "draft"}</Badge>
                  </td>
                  <td>{j.version ? `v${j.version}` : "—"}</td>
                  <td title={formatTime(j.updated_ms)}>{j.updated_ms ? timeAgo(j.updated_ms) : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Card>
      ) : null}
      {drafts.length ? (
        <Card title="Drafts in this browser" className="mt">
          <ul className="draft-list">
            {drafts.map(({ routeKey, draft }) => (
              <li key={routeKey}>
                <Icon name="file" />
                <Link to={routeKey.startsWith("new:") ? `/journeys/new?draft=${encodeURIComponent(routeKey.slice(4))}` : `/journeys/${encodeURIComponent(routeKey)}`}>
                  {draft.doc.name || draft.doc.key || "Untitled journey"}
                </Link>
                <span className="muted small">
                  {draft.doc.nodes.length} steps · edited {timeAgo(draft.saved_ms)}
                </span>
              </li>
            ))}
          </ul>
        </Card>
      ) : null}
    </>
  );
}

function documentFrom(body: unknown): unknown {
  if (!body || typeof body !== "object") return null;
  const o = body as Obj;
  for (const k of ["document", "draft", "doc", "journey"]) {
    if (o[k] && typeof o[k] === "object") return o[k];
  }
  return o.kind === "Journey" || Array.isArray(o.nodes) ? o : null;
}

function withPositions(ws: string, snapshotDoc: Snapshot["doc"], saved?: Snapshot["positions"] | null): Snapshot {
  const positions = saved ?? loadLayout(ws, snapshotDoc.key) ?? {};
  const complete = positions[TRIGGER_ID] && snapshotDoc.nodes.every((n) => positions[n.id]);
  return { doc: snapshotDoc, positions: complete ? positions : autoLayout(snapshotDoc) };
}

type Loaded = { snapshot: Snapshot; server: ServerState; restoredFrom: number | null };

export function JourneyRoute({ journeyKey, draftToken }: { journeyKey: string | null; draftToken: string | null }) {
  const { workspace } = useSession();
  // Stays `new:<token>` after the first save moved the URL to /journeys/<key>: no reload.
  const routeKey = journeyKey ? builderRouteKey(journeyKey) : `new:${draftToken ?? "default"}`;
  const [state, setState] = useState<{ loaded?: Loaded; error?: Error; missing?: boolean }>({});

  useEffect(() => {
    let live = true;
    setState({});
    const local = loadDraft(workspace.id, routeKey);
    const load = async (): Promise<Loaded> => {
      if (routeKey.startsWith("new:")) {
        let hasApi = true;
        try {
          await api("GET", "/api/v1/journeys", { query: { limit: 1 } });
        } catch (err) {
          if (err instanceof ApiError && err.notAvailable) hasApi = false;
        }
        const doc = local?.doc ?? newJourney();
        return {
          snapshot: withPositions(workspace.id, doc, local?.positions),
          server: { api: hasApi, saved: false, status: null, version: null },
          restoredFrom: local ? local.saved_ms : null,
        };
      }
      try {
        const body = await api<Obj>("GET", `/api/v1/journeys/${encodeURIComponent(journeyKey ?? routeKey)}`);
        const server: ServerState = {
          api: true,
          saved: true,
          status: typeof body.status === "string" ? body.status : "draft",
          version: typeof body.version === "number" ? body.version : null,
        };
        if (local) return { snapshot: withPositions(workspace.id, local.doc, local.positions), server, restoredFrom: local.saved_ms };
        const doc = fromDocument(documentFrom(body));
        return { snapshot: withPositions(workspace.id, doc), server, restoredFrom: null };
      } catch (err) {
        if (err instanceof ApiError && err.notAvailable && local) {
          return {
            snapshot: withPositions(workspace.id, local.doc, local.positions),
            server: { api: false, saved: false, status: null, version: null },
            restoredFrom: local.saved_ms,
          };
        }
        throw err;
      }
    };
    load().then(
      (loaded) => live && setState({ loaded }),
      (error: Error) => live && setState({ error, missing: error instanceof ApiError && (error.notAvailable || error.status === 404) }),
    );
    return () => {
      live = false;
    };
    // `journeyKey` only matters through `routeKey` (see above).
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [routeKey, workspace.id]);

  if (state.error) {
    return (
      <>
        <PageHeader
          title={journeyKey ?? "Journey"}
          back={
            <Link to="/journeys" className="back">
              <Icon name="arrowLeft" size={14} /> Journeys
            </Link>
          }
        />
        <Card>
          {state.missing ? (
            <EmptyState icon="route" title={`There is no journey “${journeyKey}” here`} action={<Button onClick={() => navigate("/journeys")}>See all journeys</Button>}>
              It may have been archived or never saved on this server.
            </EmptyState>
          ) : (
            <ErrorState error={state.error} />
          )}
        </Card>
      </>
    );
  }
  if (!state.loaded) return <Loading label="Opening the journey…" />;
  return (
    <ReactFlowProvider>
      <Builder key={routeKey} routeKey={routeKey} initial={state.loaded.snapshot} server={state.loaded.server} restoredFrom={state.loaded.restoredFrom} />
    </ReactFlowProvider>
  );
}
