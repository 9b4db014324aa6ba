// The visual journey builder: palette, canvas (React Flow), side panel, YAML view, undo/redo,
// auto-layout, save / publish / pause against the journeys API, live per-node counts, and
// simulation results drawn on the draft.
//
// One immutable snapshot (document + positions) is the source of truth; the canvas's nodes and
// edges are derived from it through per-node caches so that unchanged nodes keep their object
// identity — with 200 nodes, a drag or a keystroke re-renders only the node it touches.
import {
  Background,
  BackgroundVariant,
  Controls,
  MarkerType,
  MiniMap,
  ReactFlow,
  useReactFlow,
  type Connection,
  type EdgeChange,
  type Edge as FlowEdge,
  type NodeChange,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import { ApiError, api } from "../api";
import { Icon } from "../components/icons";
import { Badge, Button } from "../components/ui";
import { Link, navigate } from "../router";
import { useSession } from "../session";
import { useHistory, type Snapshot } from "./history";
import { JourneyInspector, StepInspector, TriggerInspector, type Suggestions } from "./Inspector";
import { NODE_HEIGHT, NODE_WIDTH, autoLayout } from "./layout";
import {
  JOURNEY_ID,
  NODE_SPECS,
  TRIGGER_ID,
  addNode,
  connect,
  edgesOf,
  flowOrder,
  freshId,
  outputs,
  removeNodes,
  renameNode,
  targetOf,
  toDocument,
  updateNode,
  type JourneyDoc,
  type NodeType,
  type Obj,
  type Point,
} from "./model";
import { nodeTypes, type NodeStats, type SimStats, type StepData, type StepNode, type TriggerData, type TriggerNode } from "./NodeCard";
import { DRAG_MIME, Palette } from "./Palette";
import { rememberSavedRoute, saveDraft, saveLayout } from "./storage";
import { countIssues, validate, type Issue, type Issues } from "./validate";
import { SimulationPanel, simOnNodes, simulate, type SimulationReport } from "./SimulationPanel";
import { YamlPanel } from "./YamlPanel";

type FlowNode = StepNode | TriggerNode;

export interface ServerState {
  /** Whether the server has the journeys API (false: work is kept in this browser only). */
  api: boolean;
  /** Saved on the server under this key (locks the key). */
  saved: boolean;
  status: string | null;
  version: number | null;
}

interface Banner {
  tone: "info" | "success" | "error" | "warning";
  text: string;
}

const LIVE_STATUSES = new Set(["published", "active", "live", "running", "paused"]);

function sameIssues(a: Issue[] | undefined, b: Issue[] | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  return a.every((x, i) => x.message === b[i].message && x.severity === b[i].severity && x.field === b[i].field);
}

/** Keep the previous array for a node when its problems did not change (stable props → no re-render). */
function useStableIssues(issues: Issues): Issues {
  const previous = useRef<Issues>(new Map());
  return useMemo(() => {
    const out: Issues = new Map();
    for (const [id, list] of issues) {
      const old = previous.current.get(id);
      out.set(id, sameIssues(old, list) ? (old as Issue[]) : list);
    }
    previous.current = out;
    return out;
  }, [issues]);
}

function mergeIssues(a: Issues, b: Issues): Issues {
  if (!b.size) return a;
  const out: Issues = new Map(a);
  for (const [id, list] of b) out.set(id, [...(out.get(id) ?? []), ...list]);
  return out;
}

/** Problems from a 422 answer, placed on the node they name (or found from their JSON path). */
function serverIssues(err: ApiError, doc: JourneyDoc): Issues {
  const order = flowOrder(doc);
  const where = (node?: string | null, path?: string): string => {
    if (node) return node;
    const m = path?.match(/^\$\.nodes\[(\d+)\]/);
    if (m && order[Number(m[1])]) return order[Number(m[1])].id;
    if (path?.startsWith("$.trigger")) return TRIGGER_ID;
    return JOURNEY_ID;
  };
  const issues: Issues = new Map();
  const list = err.problems.length ? err.problems : [{ message: err.message, node: err.node, path: err.path }];
  for (const p of list) {
    const id = where(p.node, p.path);
    const issue: Issue = { severity: "error", message: `Server: ${p.message}` };
    issues.set(id, [...(issues.get(id) ?? []), issue]);
  }
  return issues;
}

/** Frame the whole journey, or for a long one its beginning at a readable zoom (the map shows the rest). */
function fitOptions(doc: JourneyDoc) {
  const options = { padding: 0.2, maxZoom: 1 };
  if (doc.nodes.length <= FIT_ALL_UP_TO) return options;
  const first = [TRIGGER_ID, ...flowOrder(doc).slice(0, FIT_ALL_UP_TO).map((n) => n.id)];
  return { ...options, nodes: first.map((id) => ({ id })) };
}
const FIT_ALL_UP_TO = 24;

/** Outputs taken when something did not happen: drawn dashed. */
const ALT_HANDLES = new Set(["else", "on_timeout", "on_failure", "default", "on_missing"]);

/** Per-node counters from `GET /journeys/{key}/stats`; the journey's totals go on the trigger. */
function statsFrom(body: unknown): Record<string, NodeStats> | null {
  if (!body || typeof body !== "object") return null;
  const { nodes, journey } = body as Obj;
  if (!nodes || typeof nodes !== "object") return null;
  const out = { ...(nodes as Record<string, NodeStats>) };
  if (journey && typeof journey === "object") {
    const j = journey as Obj;
    const n = (v: unknown) => (typeof v === "number" ? v : undefined);
    out[TRIGGER_ID] = { entered: n(j.entered), exited: n(j.exited), waiting: n(j.waiting), converted: n(j.converted) };
  }
  return out;
}

export function Builder({
  initial,
  routeKey,
  server: initialServer,
  restoredFrom,
}: {
  initial: Snapshot;
  routeKey: string;
  server: ServerState;
  restoredFrom: number | null;
}) {
  const { workspace, canAdmin } = useSession();
  const history = useHistory(() => initial);
  const { doc, positions } = history.present;
  const presentRef = useRef(history.present);
  presentRef.current = history.present;
  const flow = useReactFlow<FlowNode, FlowEdge>();
  const [initialFit] = useState(() => fitOptions(initial.doc));
  // A new journey starts with the trigger at the top centre, leaving room to drop steps below.
  const startView = useCallback(
    (instance: { setViewport: (v: { x: number; y: number; zoom: number }) => unknown }) => {
      if (initial.doc.nodes.length > 0) return;
      const box = document.querySelector(".builder-canvas")?.getBoundingClientRect();
      const at = initial.positions[TRIGGER_ID] ?? { x: 0, y: 0 };
      void instance.setViewport({ x: (box?.width ?? 800) / 2 - NODE_WIDTH / 2 - at.x, y: 48 - at.y, zoom: 1 });
    },
    [initial],
  );

  const [selected, setSelected] = useState<Set<string>>(() => new Set());
  const [selectedEdges, setSelectedEdges] = useState<Set<string>>(() => new Set());
  const [measured, setMeasured] = useState<Map<string, { width: number; height: number }>>(() => new Map());
  const [panel, setPanel] = useState<"inspect" | "yaml" | "simulate">("inspect");
  const [server, setServer] = useState<ServerState>(initialServer);
  // A restored local draft counts as unsaved work until it is saved.
  const [savedRevision, setSavedRevision] = useState(restoredFrom ? -1 : 0);
  const [busy, setBusy] = useState<string | null>(null);
  const [banner, setBanner] = useState<Banner | null>(
    restoredFrom
      ? { tone: "info", text: `Restored unsaved changes kept in this browser (${new Date(restoredFrom).toLocaleString()}).` }
      : !initialServer.api
        ? { tone: "warning", text: "This server has no journeys API yet: your work is kept in this browser. Download the YAML to keep it elsewhere." }
        : null,
  );
  const [remote, setRemote] = useState<{ doc: JourneyDoc; issues: Issues } | null>(null);
  const [stats, setStats] = useState<Record<string, NodeStats> | null>(null);
  // The last simulation, and the document it ran on (its counts go stale when the draft changes).
  const [simulation, setSimulation] = useState<{ report: SimulationReport; doc: JourneyDoc; nodes: Record<string, SimStats> } | null>(null);
  const [suggestions, setSuggestions] = useState<Suggestions>({ channels: [], templates: [], segments: [], events: [] });

  // --- validation ------------------------------------------------------------------------------
  const clientIssues = useMemo(() => validate(doc), [doc]);
  const allIssues = useMemo(
    () => (remote && remote.doc === doc ? mergeIssues(clientIssues, remote.issues) : clientIssues),
    [clientIssues, remote, doc],
  );
  const issues = useStableIssues(allIssues);
  const counts = useMemo(() => countIssues(issues), [issues]);

  // --- keep work: positions and unsaved drafts live in this browser -----------------------------
  const dirty = history.revision !== savedRevision;
  useEffect(() => {
    const t = setTimeout(() => {
      if (doc.key) saveLayout(workspace.id, doc.key, positions);
      saveDraft(workspace.id, routeKey, dirty || !server.saved ? { doc, positions, saved_ms: Date.now() } : null);
    }, 400);
    return () => clearTimeout(t);
  }, [doc, positions, dirty, routeKey, workspace.id, server.saved]);

  // --- suggestions for channel / template / segment fields (when those APIs exist) --------------
  useEffect(() => {
    let live = true;
    const names = async (path: string, field: string) => {
      try {
        const body = await api<unknown>("GET", path);
        const obj = body as Obj;
        const list = Array.isArray(body) ? body : Array.isArray(obj?.[field]) ? (obj[field] as unknown[]) : Array.isArray(obj?.items) ? (obj.items as unknown[]) : [];
        return list.map((x) => (typeof x === "string" ? x : String((x as Obj)?.key ?? ""))).filter(Boolean);
      } catch {
        return [];
      }
    };
    void Promise.all([names("/api/v1/channels", "channels"), names("/api/v1/templates", "templates"), names("/api/v1/segments", "segments")]).then(
      ([channels, templates, segments]) => {
        if (!live) return;
        const events = [...new Set(["Order Completed", "Checkout Started", "Product Viewed", "Signed Up", "Cart Viewed"])];
        setSuggestions({
          channels: [...new Set([...channels, "email", "sms", "whatsapp", "push", "web_push", "in_app", "webhook"])],
          templates,
          segments,
          events,
        });
      },
    );
    return () => {
      live = false;
    };
  }, []);

  // --- live per-node counts for published journeys ----------------------------------------------
  useEffect(() => {
    if (!server.api || !server.saved || !LIVE_STATUSES.has(server.status ?? "")) return;
    let live = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const body = await api<unknown>("GET", `/api/v1/journeys/${encodeURIComponent(doc.key)}/stats`);
        if (!live) return;
        setStats(statsFrom(body));
        timer = setTimeout(poll, 5000);
      } catch (err) {
        if (!live) return;
        if (err instanceof ApiError && err.notAvailable) setStats(null);
        else timer = setTimeout(poll, 15000);
      }
    };
    void poll();
    return () => {
      live = false;
      clearTimeout(timer);
    };
    // The key is fixed once saved; polling follows the status only.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [server.api, server.saved, server.status]);

  // --- derived canvas nodes and edges (cached per node) -----------------------------------------
  const nodeCache = useRef(new Map<string, { node: FlowNode; deps: unknown[] }>());
  const dataCache = useRef(new Map<string, { data: StepData | TriggerData; deps: unknown[] }>());
  const nodes = useMemo<FlowNode[]>(() => {
    const nextNodes = new Map<string, { node: FlowNode; deps: unknown[] }>();
    const nextData = new Map<string, { data: StepData | TriggerData; deps: unknown[] }>();
    const same = (a: unknown[], b: unknown[]) => a.length === b.length && a.every((x, i) => x === b[i]);
    const build = (id: string, type: "step" | "trigger", dataDeps: unknown[], makeData: () => StepData | TriggerData, fallback: Point): FlowNode => {
      const oldData = dataCache.current.get(id);
      const data = oldData && same(oldData.deps, dataDeps) ? oldData.data : makeData();
      nextData.set(id, { data, deps: dataDeps });
      const position = positions[id] ?? fallback;
      const deps = [data, position, selected.has(id), measured.get(id)];
      const old = nodeCache.current.get(id);
      const node =
        old && same(old.deps, deps)
          ? old.node
          : ({
              id,
              type,
              position,
              data,
              selected: selected.has(id),
              measured: measured.get(id),
              deletable: type !== "trigger",
              ariaLabel: type === "trigger" ? "Trigger" : undefined,
            } as FlowNode);
      nextNodes.set(id, { node, deps });
      return node;
    };
    const out: FlowNode[] = [];
    const triggerIssues = issues.get(TRIGGER_ID);
    const triggerStats = stats?.[TRIGGER_ID];
    const sims = simulation?.nodes;
    const triggerSim = sims?.[TRIGGER_ID];
    out.push(
      build(TRIGGER_ID, "trigger", [doc.trigger, triggerIssues, triggerStats, triggerSim], () => ({ trigger: doc.trigger, issues: triggerIssues, stats: triggerStats, sim: triggerSim }), {
        x: 0,
        y: 0,
      }),
    );
    doc.nodes.forEach((n, i) => {
      const nodeIssues = issues.get(n.id);
      const nodeStats = stats?.[n.id];
      const nodeSim = sims ? (sims[n.id] ?? { people: 0 }) : undefined;
      out.push(
        build(n.id, "step", [n, nodeIssues, nodeStats, nodeSim], () => ({ node: n, issues: nodeIssues, stats: nodeStats, sim: nodeSim }), {
          x: (i % 4) * (NODE_WIDTH + 40),
          y: (Math.floor(i / 4) + 1) * (NODE_HEIGHT + 60),
        }),
      );
    });
    nodeCache.current = nextNodes;
    dataCache.current = nextData;
    return out;
  }, [doc.nodes, doc.trigger, positions, selected, measured, issues, stats, simulation]);

  const edgeCache = useRef(new Map<string, FlowEdge>());
  const edges = useMemo<FlowEdge[]>(() => {
    const ids = new Set(doc.nodes.map((n) => n.id));
    const next = new Map<string, FlowEdge>();
    const out = edgesOf(doc)
      .filter((e) => ids.has(e.target))
      .map((e) => {
        const id = `${e.source}:${e.handle}`;
        const selectedEdge = selectedEdges.has(id);
        const old = edgeCache.current.get(id);
        // Same object for an unchanged edge: React Flow then skips re-rendering it.
        const edge =
          old && old.target === e.target && old.selected === selectedEdge
            ? old
            : ({
                id,
                source: e.source,
                sourceHandle: e.handle,
                target: e.target,
                targetHandle: "in",
                type: "smoothstep",
                selected: selectedEdge,
                markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
                className: ALT_HANDLES.has(e.handle) ? "edge-alt" : undefined,
                ariaLabel: `${e.source === TRIGGER_ID ? "Trigger" : e.source}${e.label && e.label !== "next" ? ` (${e.label})` : ""} to ${e.target}`,
              } satisfies FlowEdge);
        next.set(id, edge);
        return edge;
      });
    edgeCache.current = next;
    return out;
  }, [doc, selectedEdges]);

  // --- edits -----------------------------------------------------------------------------------
  const setDoc = useCallback((fn: (d: JourneyDoc) => JourneyDoc, key?: string) => history.set((s) => ({ ...s, doc: fn(s.doc) }), key), [history]);

  const select = useCallback((id: string | null) => {
    setSelected(id ? new Set([id]) : new Set());
    setSelectedEdges(new Set());
    setPanel("inspect");
  }, []);

  const addStep = useCallback(
    (type: NodeType, at?: Point) => {
      const s = presentRef.current;
      const id = freshId(s.doc, type);
      let position = at;
      let from: { id: string; handle: string } | null = null;
      const sel = [...selected];
      if (!position && sel.length === 1) {
        const anchor = s.positions[sel[0]];
        const anchorNode = s.doc.nodes.find((n) => n.id === sel[0]);
        if (anchor) {
          position = { x: anchor.x, y: anchor.y + NODE_HEIGHT + 64 };
          if (sel[0] === TRIGGER_ID) from = s.doc.start ? null : { id: TRIGGER_ID, handle: "next" };
          else if (anchorNode) {
            const outs = outputs(anchorNode);
            const i = outs.findIndex((o) => !targetOf(anchorNode, o.handle));
            if (i >= 0) {
              from = { id: anchorNode.id, handle: outs[i].handle };
              // Under its output: the middle one straight down, the others to the sides.
              position = { x: anchor.x + (i - (outs.length - 1) / 2) * (NODE_WIDTH + 40), y: position.y };
            }
          }
        }
      }
      if (!position) {
        const box = document.querySelector(".builder-canvas")?.getBoundingClientRect();
        const center = box ? flow.screenToFlowPosition({ x: box.left + box.width / 2, y: box.top + box.height / 2 }) : { x: 0, y: 0 };
        position = { x: center.x - NODE_WIDTH / 2, y: center.y - NODE_HEIGHT / 2 };
      }
      const pos = position;
      const link = from;
      history.set((cur) => {
        let d = addNode(cur.doc, type, id);
        if (link) d = connect(d, link.id, link.handle, id);
        return { doc: d, positions: { ...cur.positions, [id]: { x: Math.round(pos.x), y: Math.round(pos.y) } } };
      });
      select(id);
    },
    [history, selected, flow, select],
  );

  const onDragOver = useCallback((e: DragEvent) => {
    if (!e.dataTransfer.types.includes(DRAG_MIME)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
  }, []);

  const onDrop = useCallback(
    (e: DragEvent) => {
      const type = e.dataTransfer.getData(DRAG_MIME) as NodeType;
      if (!type || !(type in NODE_SPECS)) return;
      e.preventDefault();
      const p = flow.screenToFlowPosition({ x: e.clientX, y: e.clientY });
      addStep(type, { x: p.x - NODE_WIDTH / 2, y: p.y - 24 });
    },
    [flow, addStep],
  );

  const onNodesChange = useCallback(
    (changes: NodeChange<FlowNode>[]) => {
      let moved: Record<string, Point> | null = null;
      let dragEnded = false;
      let dragging = false;
      const removed = new Set<string>();
      let selection: Set<string> | null = null;
      let sizes: Map<string, { width: number; height: number }> | null = null;
      for (const c of changes) {
        if (c.type === "position") {
          if (c.position) (moved ??= {})[c.id] = { x: Math.round(c.position.x), y: Math.round(c.position.y) };
          if (c.dragging) dragging = true;
          else dragEnded = true;
        } else if (c.type === "select") {
          selection ??= new Set(selected);
          if (c.selected) selection.add(c.id);
          else selection.delete(c.id);
        } else if (c.type === "remove") {
          if (c.id !== TRIGGER_ID) removed.add(c.id);
        } else if (c.type === "dimensions" && c.dimensions) {
          sizes ??= new Map(measured);
          sizes.set(c.id, c.dimensions);
        }
      }
      if (sizes) setMeasured(sizes);
      if (selection) {
        setSelected(selection);
        setPanel("inspect");
      }
      if (moved) {
        const m = moved;
        if (dragging) history.dragStart();
        history.transient((s) => ({ ...s, positions: { ...s.positions, ...m } }));
      }
      if (dragEnded) history.dragEnd();
      if (removed.size) {
        history.set((s) => {
          const positionsLeft = { ...s.positions };
          for (const id of removed) delete positionsLeft[id];
          return { doc: removeNodes(s.doc, removed), positions: positionsLeft };
        });
        setSelected(new Set());
      }
    },
    [history, selected, measured],
  );

  const onEdgesChange = useCallback(
    (changes: EdgeChange<FlowEdge>[]) => {
      let selection: Set<string> | null = null;
      const removed: string[] = [];
      for (const c of changes) {
        if (c.type === "select") {
          selection ??= new Set(selectedEdges);
          if (c.selected) selection.add(c.id);
          else selection.delete(c.id);
        } else if (c.type === "remove") removed.push(c.id);
      }
      if (selection) setSelectedEdges(selection);
      if (removed.length) {
        setDoc((d) =>
          removed.reduce((acc, id) => {
            const cut = id.indexOf(":");
            return connect(acc, id.slice(0, cut), id.slice(cut + 1), null);
          }, d),
        );
      }
    },
    [selectedEdges, setDoc],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      if (!c.source || !c.target) return;
      setDoc((d) => connect(d, c.source, c.sourceHandle ?? "next", c.target));
    },
    [setDoc],
  );

  const isValidConnection = useCallback((c: Connection | FlowEdge) => c.target !== TRIGGER_ID && c.source !== c.target, []);

  const fit = useCallback(
    (duration = 200) => {
      setTimeout(() => void flow.fitView({ ...fitOptions(presentRef.current.doc), duration }), 40);
    },
    [flow],
  );

  const layout = useCallback(() => {
    history.set((s) => ({ ...s, positions: autoLayout(s.doc) }));
    fit();
  }, [history, fit]);

  // --- keyboard: undo / redo (text fields keep their own undo) ---------------------------------
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement | null;
      if (t && (t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName))) return;
      if (!(e.ctrlKey || e.metaKey)) return;
      const k = e.key.toLowerCase();
      if (k === "z" && !e.shiftKey) {
        e.preventDefault();
        history.undo();
      } else if ((k === "z" && e.shiftKey) || k === "y") {
        e.preventDefault();
        history.redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [history]);

  // --- server: save, publish, pause, resume, archive --------------------------------------------
  const notAvailable = useCallback(() => {
    setServer((s) => ({ ...s, api: false }));
    setBanner({
      tone: "warning",
      text: "This server has no journeys API yet, so the journey cannot be saved there. It is kept in this browser; download the YAML to keep it elsewhere.",
    });
  }, []);

  const save = useCallback(async (): Promise<boolean> => {
    const d = presentRef.current.doc;
    const revision = history.revision;
    setBusy("save");
    try {
      const body = await api<Obj | undefined>("PUT", `/api/v1/journeys/${encodeURIComponent(d.key)}`, { body: toDocument(d) });
      setRemote(null);
      setSavedRevision(revision);
      setServer((s) => ({
        ...s,
        api: true,
        saved: true,
        status: typeof body?.status === "string" ? body.status : s.status ?? "draft",
        version: typeof body?.version === "number" ? body.version : s.version,
      }));
      saveDraft(workspace.id, routeKey, null);
      setBanner({ tone: "success", text: "Draft saved." });
      if (doc.key) saveLayout(workspace.id, d.key, presentRef.current.positions);
      if (routeKey !== d.key) {
        rememberSavedRoute(d.key, routeKey);
        navigate(`/journeys/${encodeURIComponent(d.key)}`, { replace: true });
      }
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.notAvailable) notAvailable();
      else if (err instanceof ApiError && err.status === 422) {
        setRemote({ doc: d, issues: serverIssues(err, d) });
        setBanner({ tone: "error", text: `The server refused the journey: ${err.message}` });
      } else setBanner({ tone: "error", text: (err as Error).message });
      return false;
    } finally {
      setBusy(null);
    }
  }, [history.revision, notAvailable, routeKey, workspace.id]);

  const lifecycle = useCallback(
    async (action: "publish" | "pause" | "resume" | "archive") => {
      if (action === "publish" && counts.errors) {
        setBanner({ tone: "error", text: `Fix the ${counts.errors} problem${counts.errors > 1 ? "s" : ""} marked on the canvas before publishing.` });
        return;
      }
      if (action === "publish" && !(await save())) return;
      const d = presentRef.current.doc;
      setBusy(action);
      try {
        const body = await api<Obj | undefined>("POST", `/api/v1/journeys/${encodeURIComponent(d.key)}/${action}`);
        const fallback = { publish: "published", pause: "paused", resume: "published", archive: "archived" }[action];
        setServer((s) => ({
          ...s,
          status: typeof body?.status === "string" ? body.status : fallback,
          version: typeof body?.version === "number" ? body.version : s.version,
        }));
        setBanner({ tone: "success", text: { publish: "Published: new runs enter this version.", pause: "Paused: no one new enters; runs wait.", resume: "Resumed.", archive: "Archived." }[action] });
      } catch (err) {
        if (err instanceof ApiError && err.notAvailable) notAvailable();
        else if (err instanceof ApiError && err.status === 422) {
          setRemote({ doc: d, issues: serverIssues(err, d) });
          setBanner({ tone: "error", text: `The server refused to ${action}: ${err.message}` });
        } else setBanner({ tone: "error", text: (err as Error).message });
      } finally {
        setBusy(null);
      }
    },
    [counts.errors, save, notAvailable],
  );

  // --- side panel --------------------------------------------------------------------------------
  const onlySelected = selected.size === 1 ? [...selected][0] : null;
  const selectedNode = onlySelected && onlySelected !== TRIGGER_ID ? doc.nodes.find((n) => n.id === onlySelected) : undefined;
  const patchNode = useCallback((id: string, patch: Obj, key?: string) => setDoc((d) => updateNode(d, id, patch), key), [setDoc]);
  const rename = useCallback(
    (from: string, to: string) => {
      history.set((s) => {
        const positionsRenamed = { ...s.positions, [to]: s.positions[from] };
        delete positionsRenamed[from];
        return { doc: renameNode(s.doc, from, to), positions: positionsRenamed };
      });
      setSelected(new Set([to]));
    },
    [history],
  );
  const connectFrom = useCallback((source: string, handle: string, target: string | null) => setDoc((d) => connect(d, source, handle, target)), [setDoc]);
  const deleteStep = useCallback(
    (id: string) => {
      history.set((s) => {
        const left = { ...s.positions };
        delete left[id];
        return { doc: removeNodes(s.doc, new Set([id])), positions: left };
      });
      setSelected(new Set());
    },
    [history],
  );
  const focusNode = useCallback(
    (id: string) => {
      if (id === JOURNEY_ID) return select(null);
      select(id);
      const p = presentRef.current.positions[id];
      if (p) void flow.setCenter(p.x + NODE_WIDTH / 2, p.y + NODE_HEIGHT / 2, { zoom: Math.max(flow.getZoom(), 0.9), duration: 250 });
    },
    [flow, select],
  );
  const applyYaml = useCallback(
    (next: JourneyDoc) => {
      history.set((s) => {
        const missing = next.nodes.some((n) => !s.positions[n.id]);
        return { doc: next, positions: missing ? autoLayout(next) : s.positions };
      });
      setBanner({ tone: "success", text: "YAML applied to the canvas." });
      fit(0);
    },
    [history, fit],
  );

  const status = server.status;
  const live = status !== null && LIVE_STATUSES.has(status);
  const statusTone = status === "published" || status === "active" || status === "live" ? "success" : status === "paused" ? "warning" : status === "archived" ? "neutral" : "info";

  return (
    <div className="builder" data-testid="builder">
      <div className="builder-toolbar" role="toolbar" aria-label="Journey builder">
        <div className="toolbar-title">
          <Link to="/journeys" className="back-link" aria-label="Back to journeys">
            <Icon name="arrowLeft" size={16} />
          </Link>
          <div>
            <h1>{doc.name || doc.key || "Untitled journey"}</h1>
            <span className="toolbar-sub mono">{doc.key}</span>
          </div>
          <Badge tone={statusTone}>{status ?? (server.api ? "not saved" : "local draft")}</Badge>
          {server.version ? <Badge tone="neutral">v{server.version}</Badge> : null}
          {dirty && server.saved ? <span className="toolbar-sub">Unsaved changes</span> : null}
        </div>
        <div className="toolbar-group">
          <Button tone="ghost" icon="undo" onClick={history.undo} disabled={!history.canUndo} aria-label="Undo" title="Undo (Ctrl+Z)" />
          <Button tone="ghost" icon="redo" onClick={history.redo} disabled={!history.canRedo} aria-label="Redo" title="Redo (Ctrl+Shift+Z)" />
          <span className="toolbar-sep" aria-hidden="true" />
          <Button tone="ghost" icon="layout" onClick={layout}>
            Auto-layout
          </Button>
          <Button tone="ghost" icon="maximize" aria-label="Fit to screen" title="Fit to screen" onClick={() => void flow.fitView({ padding: 0.15, duration: 200 })} />
          <span className="toolbar-sep" aria-hidden="true" />
          <button
            type="button"
            className={`problems-pill ${counts.errors ? "has-errors" : counts.warnings ? "has-warnings" : "ok"}`}
            onClick={() => select(null)}
            data-testid="problems"
            aria-label={`${counts.errors} problems, ${counts.warnings} warnings`}
          >
            <Icon name={counts.errors ? "alert" : "check"} size={14} />
            {counts.errors ? `${counts.errors} problem${counts.errors > 1 ? "s" : ""}` : counts.warnings ? `${counts.warnings} warning${counts.warnings > 1 ? "s" : ""}` : "Valid"}
          </button>
          <Button tone={panel === "yaml" ? "primary" : "ghost"} icon="code" aria-pressed={panel === "yaml"} onClick={() => setPanel(panel === "yaml" ? "inspect" : "yaml")}>
            YAML
          </Button>
          {server.api ? (
            <Button tone={panel === "simulate" ? "primary" : "ghost"} icon="activity" aria-pressed={panel === "simulate"} onClick={() => setPanel(panel === "simulate" ? "inspect" : "simulate")}>
              Simulate
            </Button>
          ) : null}
          <span className="toolbar-sep" aria-hidden="true" />
          <Button icon="save" onClick={() => void save()} disabled={!canAdmin || busy !== null}>
            {busy === "save" ? "Saving…" : "Save draft"}
          </Button>
          {status === "paused" ? (
            <Button tone="primary" icon="play" onClick={() => void lifecycle("resume")} disabled={!canAdmin || busy !== null}>
              Resume
            </Button>
          ) : live ? (
            <Button icon="pause" onClick={() => void lifecycle("pause")} disabled={!canAdmin || busy !== null}>
              Pause
            </Button>
          ) : null}
          <Button tone="primary" icon="play" onClick={() => void lifecycle("publish")} disabled={!canAdmin || busy !== null}>
            {busy === "publish" ? "Publishing…" : live ? "Publish changes" : "Publish"}
          </Button>
          {server.saved && status !== "archived" ? <Button tone="ghost" icon="archive" aria-label="Archive journey" title="Archive" onClick={() => void lifecycle("archive")} disabled={!canAdmin || busy !== null} /> : null}
        </div>
      </div>
      {banner ? (
        <div className={`banner banner-${banner.tone}`} role={banner.tone === "error" ? "alert" : "status"} data-testid="builder-banner">
          <span>{banner.text}</span>
          <button type="button" className="icon-btn" aria-label="Dismiss" onClick={() => setBanner(null)}>
            <Icon name="x" size={14} />
          </button>
        </div>
      ) : null}
      <div className="builder-body">
        <Palette onAdd={addStep} />
        <div className="builder-canvas" onDragOver={onDragOver} onDrop={onDrop} data-testid="canvas">
          <ReactFlow<FlowNode, FlowEdge>
            nodes={nodes}
            edges={edges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            onPaneClick={() => select(null)}
            deleteKeyCode={["Backspace", "Delete"]}
            connectionRadius={36}
            fitView={initial.doc.nodes.length > 0}
            fitViewOptions={initialFit}
            onInit={startView}
            minZoom={0.1}
            maxZoom={1.75}
            onlyRenderVisibleElements={doc.nodes.length > 80}
            proOptions={{ hideAttribution: true }}
            ariaLabelConfig={{ "node.a11yDescription.default": "Press Enter to select this step; arrow keys move it; Delete removes it." }}
          >
            <Background variant={BackgroundVariant.Dots} gap={18} size={1.2} color="#cbd5e1" />
            <Controls showInteractive={false} position="bottom-left" />
            {doc.nodes.length > 12 ? <MiniMap pannable zoomable nodeStrokeWidth={2} className="minimap" ariaLabel="Overview of the journey" /> : null}
          </ReactFlow>
          {doc.nodes.length === 0 ? (
            <div className="canvas-hint" aria-hidden="true">
              <Icon name="grip" size={18} /> Drag a step from the palette, then connect the trigger to it.
            </div>
          ) : null}
        </div>
        <aside className={`builder-panel${panel !== "inspect" ? " wide" : ""}`} aria-label={panel === "yaml" ? "YAML" : panel === "simulate" ? "Simulation" : "Configure"}>
          {panel === "yaml" ? (
            <YamlPanel doc={doc} onApply={applyYaml} onClose={() => setPanel("inspect")} />
          ) : panel === "simulate" ? (
            <SimulationPanel
              report={simulation?.report ?? null}
              stale={!!simulation && simulation.doc !== doc}
              onRun={async (since) => {
                const report = await simulate(doc.key, toDocument(doc), since);
                setSimulation({ report, doc, nodes: simOnNodes(report, TRIGGER_ID) });
              }}
              onClear={() => setSimulation(null)}
              onClose={() => setPanel("inspect")}
            />
          ) : selectedNode ? (
            <StepInspector
              key={selectedNode.id}
              node={selectedNode}
              doc={doc}
              issues={issues.get(selectedNode.id)}
              suggestions={suggestions}
              onPatch={patchNode}
              onRename={rename}
              onConnect={connectFrom}
              onDelete={deleteStep}
            />
          ) : onlySelected === TRIGGER_ID ? (
            <TriggerInspector
              doc={doc}
              issues={issues.get(TRIGGER_ID)}
              suggestions={suggestions}
              onTrigger={(trigger, key) => setDoc((d) => ({ ...d, trigger }), key)}
              onConnect={connectFrom}
            />
          ) : (
            <JourneyInspector
              doc={doc}
              issues={issues.get(JOURNEY_ID)}
              keyLocked={server.saved}
              onDoc={(patch, key) =>
                setDoc((d) => {
                  const next = { ...d, ...patch } as JourneyDoc;
                  for (const [k, v] of Object.entries(patch)) if (v === undefined) delete next[k];
                  return next;
                }, key)
              }
              onSelect={focusNode}
              problems={issues}
            />
          )}
        </aside>
      </div>
    </div>
  );
}
