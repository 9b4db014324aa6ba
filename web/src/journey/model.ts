// The journey document as the builder edits it. The source of truth for its shape is
// `legato.domain.journeys` (the server validates the same document): field names here match it
// exactly. The builder only ever edits this document; the canvas is drawn from it.

export const TRIGGER_ID = "__trigger__";
export const JOURNEY_ID = "__journey__";

export type NodeType =
  | "message"
  | "wait"
  | "wait_until"
  | "wait_for_event"
  | "branch"
  | "split"
  | "random_split"
  | "update_profile"
  | "webhook"
  | "emit_event"
  | "exit";

export const NODE_TYPES: NodeType[] = [
  "message",
  "wait",
  "wait_until",
  "wait_for_event",
  "branch",
  "split",
  "random_split",
  "update_profile",
  "webhook",
  "emit_event",
  "exit",
];

/** Node types a loop must pass through (mirrors WAIT_NODE_TYPES in the domain). */
export const WAIT_TYPES = new Set<string>(["wait", "wait_until", "wait_for_event"]);

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Obj = { [key: string]: unknown };

export interface JourneyNode extends Obj {
  id: string;
  type: NodeType;
  label?: string;
}

export interface JourneyDoc extends Obj {
  kind: "Journey";
  key: string;
  name?: string;
  trigger: Obj;
  start?: string;
  nodes: JourneyNode[];
}

export interface Point {
  x: number;
  y: number;
}
export type Positions = Record<string, Point>;

export type Category = "message" | "timing" | "logic" | "action" | "exit";

export interface NodeSpec {
  type: NodeType;
  title: string;
  description: string;
  icon: string;
  category: Category;
  /** A new node's fields (besides id and type); required fields left empty on purpose. */
  defaults: () => Obj;
  /** Field order in the exported document, before the edge fields. */
  fields: string[];
}

export const NODE_SPECS: Record<NodeType, NodeSpec> = {
  message: {
    type: "message",
    title: "Message",
    description: "Send a template on a channel",
    icon: "mail",
    category: "message",
    defaults: () => ({ channel: "", template: "" }),
    fields: ["channel", "template", "topic"],
  },
  wait: {
    type: "wait",
    title: "Wait",
    description: "Pause for a fixed time",
    icon: "hourglass",
    category: "timing",
    defaults: () => ({ duration: "1d" }),
    fields: ["duration"],
  },
  wait_until: {
    type: "wait_until",
    title: "Wait until",
    description: "Until a local time or a date trait",
    icon: "calendar",
    category: "timing",
    defaults: () => ({ time: "09:00" }),
    fields: ["time", "weekdays", "date_trait", "offset"],
  },
  wait_for_event: {
    type: "wait_for_event",
    title: "Wait for event",
    description: "Until an event happens, or time out",
    icon: "clock",
    category: "timing",
    defaults: () => ({ event: "", timeout: "1d" }),
    fields: ["event", "where", "match", "timeout"],
  },
  branch: {
    type: "branch",
    title: "Branch",
    description: "If / else on a condition",
    icon: "branch",
    category: "logic",
    defaults: () => ({ condition: null }),
    fields: ["condition"],
  },
  split: {
    type: "split",
    title: "Split",
    description: "First matching of several conditions",
    icon: "split",
    category: "logic",
    defaults: () => ({ branches: [{ name: "A", condition: null }] }),
    fields: ["branches"],
  },
  random_split: {
    type: "random_split",
    title: "Random split",
    description: "Weighted A/B test, sticky per person",
    icon: "shuffle",
    category: "logic",
    defaults: () => ({
      branches: [
        { name: "A", weight: 50 },
        { name: "B", weight: 50 },
      ],
    }),
    fields: ["branches", "holdout"],
  },
  update_profile: {
    type: "update_profile",
    title: "Update profile",
    description: "Set, unset or increment traits",
    icon: "userEdit",
    category: "action",
    defaults: () => ({ set: {} }),
    fields: ["set", "unset", "increment"],
  },
  webhook: {
    type: "webhook",
    title: "Webhook",
    description: "Call an HTTP endpoint",
    icon: "globe",
    category: "action",
    defaults: () => ({ url: "", method: "POST" }),
    fields: ["url", "method", "headers", "body", "response", "timeout", "give_up_after"],
  },
  emit_event: {
    type: "emit_event",
    title: "Emit event",
    description: "Record an event for the person",
    icon: "zap",
    category: "action",
    defaults: () => ({ event: "" }),
    fields: ["event", "properties"],
  },
  exit: {
    type: "exit",
    title: "Exit",
    description: "End the journey here",
    icon: "logoExit",
    category: "exit",
    defaults: () => ({}),
    fields: ["reason"],
  },
};

/** One outgoing connection point of a node: its handle id, label and document field. */
export interface Output {
  handle: string;
  label: string;
}

/** The outputs a node offers, in document order. */
export function outputs(node: JourneyNode): Output[] {
  switch (node.type) {
    case "message":
    case "wait":
    case "update_profile":
    case "emit_event":
      return [{ handle: "next", label: "next" }];
    case "wait_until":
      return node.date_trait
        ? [
            { handle: "next", label: "next" },
            { handle: "on_missing", label: "missing" },
          ]
        : [{ handle: "next", label: "next" }];
    case "wait_for_event":
      return [
        { handle: "on_event", label: "event" },
        { handle: "on_timeout", label: "timeout" },
      ];
    case "branch":
      return [
        { handle: "then", label: "then" },
        { handle: "else", label: "else" },
      ];
    case "split": {
      const arms = branchesOf(node).map((b, i) => ({ handle: `branches.${i}`, label: armName(b, i) }));
      return [...arms, { handle: "default", label: "default" }];
    }
    case "random_split":
      return branchesOf(node).map((b, i) => ({ handle: `branches.${i}`, label: armName(b, i) }));
    case "webhook":
      return [
        { handle: "on_success", label: "success" },
        { handle: "on_failure", label: "failure" },
      ];
    case "exit":
      return [];
  }
}

export function branchesOf(node: Obj): Obj[] {
  return Array.isArray(node.branches) ? (node.branches as Obj[]) : [];
}

export function armName(branch: Obj, index: number): string {
  return typeof branch.name === "string" && branch.name ? branch.name : String.fromCharCode(65 + index);
}

export const EDGE_FIELDS = ["next", "on_event", "on_timeout", "then", "else", "default", "on_success", "on_failure", "on_missing"];

export function targetOf(node: JourneyNode, handle: string): string | null {
  if (handle.startsWith("branches.")) {
    const arm = branchesOf(node)[Number(handle.slice(9))];
    return arm && typeof arm.next === "string" && arm.next ? arm.next : null;
  }
  const v = node[handle];
  return typeof v === "string" && v ? v : null;
}

export function withTarget(node: JourneyNode, handle: string, target: string | null): JourneyNode {
  if (handle.startsWith("branches.")) {
    const index = Number(handle.slice(9));
    const branches = branchesOf(node).map((b, i) => {
      if (i !== index) return b;
      const copy = { ...b };
      if (target) copy.next = target;
      else delete copy.next;
      return copy;
    });
    return { ...node, branches };
  }
  const copy: JourneyNode = { ...node };
  if (target) copy[handle] = target;
  else delete copy[handle];
  return copy;
}

/** Every edge of the document as (source, handle, target), the trigger's first. */
export interface Edge {
  source: string;
  handle: string;
  target: string;
  label: string;
}

export function edgesOf(doc: JourneyDoc): Edge[] {
  const edges: Edge[] = [];
  if (doc.start) edges.push({ source: TRIGGER_ID, handle: "next", target: doc.start, label: "" });
  for (const node of doc.nodes) {
    for (const out of outputs(node)) {
      const target = targetOf(node, out.handle);
      if (target) edges.push({ source: node.id, handle: out.handle, target, label: out.label });
    }
  }
  return edges;
}

export const NODE_ID_PATTERN = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
export const KEY_PATTERN = /^[a-z0-9][a-z0-9_\-.]{0,127}$/;

export function freshId(doc: JourneyDoc, type: string): string {
  const taken = new Set(doc.nodes.map((n) => n.id));
  for (let i = 1; ; i++) {
    const id = `${type}_${i}`;
    if (!taken.has(id)) return id;
  }
}

export function newJourney(key = "new_journey"): JourneyDoc {
  return { kind: "Journey", key, name: "New journey", trigger: { event: "" }, nodes: [] };
}

// --- edits: each returns a new document and leaves the old one untouched (for undo) ----------

export function addNode(doc: JourneyDoc, type: NodeType, id = freshId(doc, type)): JourneyDoc {
  const node = { id, type, ...NODE_SPECS[type].defaults() } as JourneyNode;
  return { ...doc, nodes: [...doc.nodes, node] };
}

export function updateNode(doc: JourneyDoc, id: string, patch: Obj): JourneyDoc {
  return {
    ...doc,
    nodes: doc.nodes.map((n) => {
      if (n.id !== id) return n;
      const next = { ...n, ...patch } as JourneyNode;
      for (const [k, v] of Object.entries(patch)) if (v === undefined) delete next[k];
      return next;
    }),
  };
}

export function connect(doc: JourneyDoc, source: string, handle: string, target: string | null): JourneyDoc {
  if (source === TRIGGER_ID) {
    const copy = { ...doc };
    if (target) copy.start = target;
    else delete copy.start;
    return copy;
  }
  return { ...doc, nodes: doc.nodes.map((n) => (n.id === source ? withTarget(n, handle, target) : n)) };
}

function retarget(node: JourneyNode, map: (target: string) => string | null): JourneyNode {
  let out = node;
  for (const o of outputs(node)) {
    const t = targetOf(node, o.handle);
    if (t === null) continue;
    const mapped = map(t);
    if (mapped !== t) out = withTarget(out, o.handle, mapped);
  }
  return out;
}

export function removeNodes(doc: JourneyDoc, ids: Set<string>): JourneyDoc {
  const nodes = doc.nodes.filter((n) => !ids.has(n.id)).map((n) => retarget(n, (t) => (ids.has(t) ? null : t)));
  const copy: JourneyDoc = { ...doc, nodes };
  if (copy.start && ids.has(copy.start)) delete copy.start;
  return copy;
}

export function renameNode(doc: JourneyDoc, from: string, to: string): JourneyDoc {
  const nodes = doc.nodes.map((n) => {
    const renamed = n.id === from ? { ...n, id: to } : n;
    return retarget(renamed, (t) => (t === from ? to : t));
  });
  return { ...doc, nodes, ...(doc.start === from ? { start: to } : {}) };
}

// --- the document as written: flow order, canonical field order, empty values left out --------

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.keys(v as object).length === 0;
  return false;
}

function pruned(obj: Obj, order: string[] = []): Obj {
  const out: Obj = {};
  const keys = [...order.filter((k) => k in obj), ...Object.keys(obj).filter((k) => !order.includes(k))];
  for (const k of keys) if (!isEmpty(obj[k])) out[k] = obj[k];
  return out;
}

/** Nodes in flow order: breadth-first from the start, then any unreachable ones as they were. */
export function flowOrder(doc: JourneyDoc): JourneyNode[] {
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const seen = new Set<string>();
  const order: JourneyNode[] = [];
  const queue = doc.start && byId.has(doc.start) ? [doc.start] : [];
  while (queue.length) {
    const id = queue.shift() as string;
    if (seen.has(id)) continue;
    seen.add(id);
    const node = byId.get(id) as JourneyNode;
    order.push(node);
    for (const o of outputs(node)) {
      const t = targetOf(node, o.handle);
      if (t && byId.has(t) && !seen.has(t)) queue.push(t);
    }
  }
  for (const n of doc.nodes) if (!seen.has(n.id)) order.push(n);
  return order;
}

const TOP_ORDER = ["kind", "key", "name", "description", "trigger", "entry", "exit_criteria", "goal", "settings", "start", "nodes"];

/** The document as saved and shown as YAML: what `parse_journey` on the server reads. */
export function toDocument(doc: JourneyDoc): Obj {
  const nodes = flowOrder(doc).map((n) => {
    const spec = NODE_SPECS[n.type];
    const order = ["id", "type", "label", ...(spec ? spec.fields : [])];
    const edgeKeys = EDGE_FIELDS.filter((k) => k in n);
    const body = pruned(
      Object.fromEntries(Object.entries(n).filter(([k]) => !edgeKeys.includes(k))),
      order,
    );
    if (Array.isArray(body.branches)) body.branches = (body.branches as Obj[]).map((b) => pruned(b, ["name", "condition", "weight", "next"]));
    for (const k of edgeKeys) if (!isEmpty(n[k])) body[k] = n[k];
    return body;
  });
  const out = pruned({ ...doc, nodes: undefined, start: undefined }, TOP_ORDER);
  out.trigger = pruned(doc.trigger ?? {});
  for (const k of ["entry", "goal", "settings"]) {
    if (out[k] && typeof out[k] === "object" && !Array.isArray(out[k])) {
      const p = pruned(out[k] as Obj);
      if (isEmpty(p)) delete out[k];
      else out[k] = p;
    }
  }
  const ordered: Obj = {};
  for (const k of TOP_ORDER) {
    if (k === "nodes") ordered.nodes = nodes;
    else if (k === "start") {
      if (doc.start && nodes.length && (nodes[0] as Obj).id !== doc.start) ordered.start = doc.start;
    } else if (k in out) ordered[k] = out[k];
  }
  for (const k of Object.keys(out)) if (!(k in ordered)) ordered[k] = out[k];
  return ordered;
}

/** Read a document (parsed YAML/JSON) into the builder's form: `start` explicit. */
export function fromDocument(raw: unknown): JourneyDoc {
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) {
    throw new Error("A journey document is a mapping with kind: Journey, key, trigger and nodes.");
  }
  const obj = raw as Obj;
  if (obj.kind !== undefined && obj.kind !== "Journey") throw new Error(`kind must be Journey, not ${JSON.stringify(obj.kind)}.`);
  if (!Array.isArray(obj.nodes)) throw new Error("`nodes` must be a list of steps.");
  const nodes = (obj.nodes as unknown[]).map((n, i) => {
    if (!n || typeof n !== "object" || Array.isArray(n)) throw new Error(`nodes[${i}] is not a mapping.`);
    const node = n as Obj;
    if (typeof node.id !== "string" || !node.id) throw new Error(`nodes[${i}] has no id.`);
    if (typeof node.type !== "string" || !NODE_TYPES.includes(node.type as NodeType)) {
      throw new Error(`node ${JSON.stringify(node.id)}: unknown type ${JSON.stringify(node.type)} (expected one of ${NODE_TYPES.join(", ")}).`);
    }
    return node as JourneyNode;
  });
  const trigger = obj.trigger && typeof obj.trigger === "object" && !Array.isArray(obj.trigger) ? (obj.trigger as Obj) : {};
  const doc: JourneyDoc = {
    ...obj,
    kind: "Journey",
    key: typeof obj.key === "string" ? obj.key : "",
    trigger,
    nodes,
  };
  const start = typeof obj.start === "string" && obj.start ? obj.start : nodes[0]?.id;
  if (start) doc.start = start;
  else delete doc.start;
  return doc;
}

// --- short descriptions for the canvas ------------------------------------------------------

function clip(s: string, n = 48): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export function conditionSummary(c: unknown): string {
  if (!c || typeof c !== "object") return "";
  const o = c as Obj;
  for (const comb of ["all", "any"]) {
    if (Array.isArray(o[comb])) {
      const parts = (o[comb] as unknown[]).map(conditionSummary);
      return clip(parts.join(comb === "all" ? " and " : " or "));
    }
  }
  if (o.not) return clip(`not (${conditionSummary(o.not)})`);
  if (typeof o.trait === "string") {
    const op = Object.keys(o).find((k) => k !== "trait");
    return clip(op ? `${o.trait} ${op} ${typeof o[op] === "object" ? JSON.stringify(o[op]) : String(o[op])}` : o.trait);
  }
  if (typeof o.event === "string") return clip(`${o.not_performed || o.performed === false ? "did not do" : "did"} ${o.event}`);
  if (typeof o.segment === "string") return clip(`in segment ${o.segment}`);
  return clip(JSON.stringify(c));
}

export function summary(node: JourneyNode): string {
  const s = (v: unknown) => (typeof v === "string" || typeof v === "number" ? String(v) : "");
  switch (node.type) {
    case "message":
      return [s(node.channel), s(node.template)].filter(Boolean).join(" · ") || "Choose channel and template";
    case "wait":
      return s(node.duration) ? `for ${s(node.duration)}` : "Set a duration";
    case "wait_until":
      if (node.date_trait) return `${s(node.offset) || "on"} ${s(node.offset) ? "from " : ""}${s(node.date_trait)}`;
      return `until ${s(node.time) || "?"}${Array.isArray(node.weekdays) && node.weekdays.length ? ` on ${(node.weekdays as string[]).join(", ")}` : ""}`;
    case "wait_for_event":
      return node.event ? clip(`${s(node.event)} · up to ${s(node.timeout) || "?"}`) : "Choose an event";
    case "branch":
      return conditionSummary(node.condition) || "Set a condition";
    case "split":
      return `${branchesOf(node).length} branches + default`;
    case "random_split": {
      const arms = branchesOf(node);
      const total = arms.reduce((t, b) => t + (Number(b.weight) || 0), 0) || 1;
      return clip(arms.map((b, i) => `${armName(b, i)} ${Math.round(((Number(b.weight) || 0) / total) * 100)}%`).join(" · "));
    }
    case "update_profile": {
      const names = [
        ...Object.keys((node.set as Obj) ?? {}),
        ...((node.unset as string[]) ?? []),
        ...Object.keys((node.increment as Obj) ?? {}),
      ];
      return names.length ? clip(`traits: ${names.join(", ")}`) : "Choose traits to change";
    }
    case "webhook": {
      const url = s(node.url);
      let host = url;
      try {
        host = new URL(url).host;
      } catch {
        // not a URL yet; show what was typed
      }
      return url ? clip(`${s(node.method) || "POST"} ${host}`) : "Set a URL";
    }
    case "emit_event":
      return s(node.event) || "Name the event";
    case "exit":
      return s(node.reason) || "End of journey";
  }
}

export function triggerSummary(trigger: Obj): { kind: string; text: string } {
  const s = (v: unknown) => (typeof v === "string" ? v : "");
  const kind = typeof trigger.type === "string" ? trigger.type : triggerKind(trigger);
  switch (kind) {
    case "segment":
      return { kind, text: s(trigger.segment) ? `${s(trigger.change) === "exited" ? "Exits" : "Enters"} segment ${s(trigger.segment)}` : "Choose a segment" };
    case "schedule":
      return { kind, text: s(trigger.segment) ? `Scheduled send to ${s(trigger.segment)}` : "Choose a segment and schedule" };
    case "api":
      return { kind, text: "Enrolled through the API" };
    default:
      return { kind: "event", text: s(trigger.event) ? `When ${s(trigger.event)} happens` : "Choose the event that starts the journey" };
  }
}

export function triggerKind(trigger: Obj): "event" | "segment" | "schedule" | "api" {
  if (typeof trigger.type === "string") return trigger.type as "event";
  if ("schedule" in trigger) return "schedule";
  if ("api" in trigger) return "api";
  if ("segment" in trigger && !("event" in trigger)) return "segment";
  return "event";
}
