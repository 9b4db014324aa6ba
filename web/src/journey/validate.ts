// Client-side checks of the journey being drawn, shown on the nodes as the user works. They
// mirror the server's (`journeys.py` field rules and `journey_validation.py` graph rules); the
// server stays the judge on save and its 422 answers are shown on the nodes the same way.
import {
  JOURNEY_ID,
  KEY_PATTERN,
  NODE_ID_PATTERN,
  TRIGGER_ID,
  WAIT_TYPES,
  armName,
  branchesOf,
  outputs,
  targetOf,
  triggerKind,
  type JourneyDoc,
  type JourneyNode,
  type Obj,
} from "./model";

export interface Issue {
  severity: "error" | "warning";
  message: string;
  field?: string;
}

export type Issues = Map<string, Issue[]>;

const DURATION = /^\s*(\d+\s*(ms|s|m|h|d|w)\s*)+$/;
const SIGNED_DURATION = /^-?(\d+(ms|s|m|h|d|w))+$/;
const TIME_OF_DAY = /^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$/;
const TRAIT = /^[A-Za-z_$][A-Za-z0-9_\-.$]{0,127}$/;
const PROPERTY_PATH = /^properties(\.[^.\s][^.]*)+$/;
const URL_PATTERN = /^https?:\/\/[^\s/]+/;
const WEEKDAYS = new Set(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]);

function isDuration(v: unknown): boolean {
  if (typeof v === "number") return Number.isInteger(v) && v > 0;
  return typeof v === "string" && DURATION.test(v) && /[1-9]/.test(v);
}

function text(v: unknown): string {
  return typeof v === "string" ? v.trim() : "";
}

function isMapping(v: unknown): v is Obj {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

function nodeIssues(node: JourneyNode): Issue[] {
  const out: Issue[] = [];
  const need = (field: string, what: string) => out.push({ severity: "error", field, message: `${what} is required` });
  const bad = (field: string, message: string) => out.push({ severity: "error", field, message });
  if (!NODE_ID_PATTERN.test(node.id)) bad("id", "ID must start with a letter and use letters, digits, _ or - (64 at most)");
  switch (node.type) {
    case "message":
      if (!text(node.channel)) need("channel", "Channel");
      else if (!KEY_PATTERN.test(text(node.channel))) bad("channel", "Channel key: lowercase letters, digits, _ - .");
      if (!text(node.template)) need("template", "Template");
      else if (!KEY_PATTERN.test(text(node.template))) bad("template", "Template key: lowercase letters, digits, _ - .");
      if (text(node.topic) && !KEY_PATTERN.test(text(node.topic))) bad("topic", "Topic key: lowercase letters, digits, _ - .");
      break;
    case "wait":
      if (node.duration === undefined || node.duration === "") need("duration", "Duration");
      else if (!isDuration(node.duration)) bad("duration", "Duration looks like 30m, 1h, 7d or 2w");
      break;
    case "wait_until":
      if (text(node.date_trait)) {
        if (!TRAIT.test(text(node.date_trait))) bad("date_trait", "Not a trait name");
        if (Array.isArray(node.weekdays) && node.weekdays.length) bad("weekdays", "Weekdays go with a time of day, not a date trait");
        if (text(node.offset) && !SIGNED_DURATION.test(text(node.offset))) bad("offset", "Offset looks like -1d or 2h");
      } else {
        if (!text(node.time)) need("time", "A time of day (or a date trait)");
        else if (!TIME_OF_DAY.test(text(node.time))) bad("time", "Time of day looks like 09:00");
        if (text(node.offset)) bad("offset", "An offset goes with a date trait");
      }
      if (Array.isArray(node.weekdays) && node.weekdays.some((d) => !WEEKDAYS.has(String(d)))) bad("weekdays", "Weekdays are mon … sun");
      break;
    case "wait_for_event":
      if (!text(node.event)) need("event", "Event");
      if (node.timeout === undefined || node.timeout === "") need("timeout", "Timeout");
      else if (!isDuration(node.timeout)) bad("timeout", "Timeout looks like 1h or 3d");
      if (isMapping(node.match)) {
        for (const k of Object.keys(node.match)) if (!PROPERTY_PATH.test(k)) bad("match", `“${k}” must be a property path such as properties.cart_id`);
      }
      break;
    case "branch":
      if (!isMapping(node.condition) || !Object.keys(node.condition).length) need("condition", "Condition");
      break;
    case "split": {
      const arms = branchesOf(node);
      if (!arms.length) bad("branches", "A split needs at least one branch");
      arms.forEach((b, i) => {
        if (!isMapping(b.condition) || !Object.keys(b.condition).length) bad(`branches.${i}`, `Branch ${armName(b, i)} needs a condition`);
      });
      break;
    }
    case "random_split": {
      const arms = branchesOf(node);
      if (!arms.length) bad("branches", "A random split needs at least one branch");
      arms.forEach((b, i) => {
        const w = Number(b.weight);
        if (!(w > 0)) bad(`branches.${i}`, `Branch ${armName(b, i)} needs a weight above 0`);
      });
      if (node.holdout !== undefined && node.holdout !== null && node.holdout !== "") {
        const h = Number(node.holdout);
        if (!(h > 0 && h < 100)) bad("holdout", "Holdout is a percentage between 0 and 100");
      }
      break;
    }
    case "update_profile": {
      const set = isMapping(node.set) ? Object.keys(node.set) : [];
      const unset = Array.isArray(node.unset) ? (node.unset as string[]) : [];
      const inc = isMapping(node.increment) ? Object.keys(node.increment) : [];
      if (!set.length && !unset.length && !inc.length) bad("set", "Set, unset or increment at least one trait");
      const seen = new Set<string>();
      for (const name of [...set, ...unset, ...inc]) {
        if (!TRAIT.test(name)) bad("set", `“${name}” is not a trait name`);
        if (seen.has(name)) bad("set", `Trait “${name}” is changed twice`);
        seen.add(name);
      }
      break;
    }
    case "webhook":
      if (!text(node.url)) need("url", "URL");
      else if (!URL_PATTERN.test(text(node.url))) bad("url", "URL starts with http:// or https://");
      break;
    case "emit_event":
      if (!text(node.event)) need("event", "Event name");
      break;
    case "exit":
      break;
  }
  return out;
}

function triggerIssues(trigger: Obj): Issue[] {
  const out: Issue[] = [];
  const kind = triggerKind(trigger);
  if (kind === "event") {
    if (!text(trigger.event)) out.push({ severity: "error", field: "event", message: "Choose the event that starts the journey" });
    if (text(trigger.key) && !PROPERTY_PATH.test(text(trigger.key))) out.push({ severity: "error", field: "key", message: "Entry key is a property path such as properties.cart_id" });
  } else if (kind === "segment" || kind === "schedule") {
    if (!text(trigger.segment)) out.push({ severity: "error", field: "segment", message: "Choose a segment" });
    else if (!KEY_PATTERN.test(text(trigger.segment))) out.push({ severity: "error", field: "segment", message: "Segment key: lowercase letters, digits, _ - ." });
    if (kind === "schedule") {
      const s = isMapping(trigger.schedule) ? trigger.schedule : {};
      if (!s.at && !s.every) out.push({ severity: "error", field: "schedule", message: "A schedule has a date (at) or a repeat (every)" });
      if (s.every && !text(s.time)) out.push({ severity: "error", field: "schedule", message: "A recurring schedule needs a time of day" });
      if (s.every === "week" && !(Array.isArray(s.weekdays) && s.weekdays.length)) out.push({ severity: "error", field: "schedule", message: "A weekly schedule needs weekdays" });
      if (s.every === "month" && !s.day_of_month) out.push({ severity: "error", field: "schedule", message: "A monthly schedule needs a day of the month" });
    }
  }
  return out;
}

/** Every problem of the document, keyed by node id (the trigger and journey have ids of their own). */
export function validate(doc: JourneyDoc): Issues {
  const issues: Issues = new Map();
  const add = (id: string, issue: Issue) => {
    const list = issues.get(id);
    if (list) list.push(issue);
    else issues.set(id, [issue]);
  };

  if (!KEY_PATTERN.test(doc.key)) add(JOURNEY_ID, { severity: "error", field: "key", message: "Key: lowercase letters, digits, _ - . (it names the journey in the API)" });
  for (const i of triggerIssues(doc.trigger)) add(TRIGGER_ID, i);

  const byId = new Map<string, JourneyNode>();
  for (const node of doc.nodes) {
    if (byId.has(node.id)) add(node.id, { severity: "error", field: "id", message: `ID “${node.id}” is used by two steps` });
    byId.set(node.id, node);
  }
  for (const node of doc.nodes) for (const i of nodeIssues(node)) add(node.id, i);

  if (!doc.nodes.length) {
    add(TRIGGER_ID, { severity: "error", message: "Add a first step: drag one from the palette" });
    return issues;
  }
  if (!doc.start) add(TRIGGER_ID, { severity: "error", message: "Connect the trigger to the first step" });
  else if (!byId.has(doc.start)) add(TRIGGER_ID, { severity: "error", message: `The first step “${doc.start}” does not exist` });

  // Dangling edges and open outputs.
  for (const node of doc.nodes) {
    for (const out of outputs(node)) {
      const target = targetOf(node, out.handle);
      if (target && !byId.has(target)) {
        add(node.id, { severity: "error", field: out.handle, message: `“${out.label}” goes to “${target}”, which does not exist` });
      } else if (!target && out.handle !== "on_missing") {
        add(node.id, {
          severity: "warning",
          field: out.handle,
          message: out.handle === "next" ? "Not connected: runs end after this step" : `“${out.label}” is not connected: runs taking it end here`,
        });
      }
    }
  }

  // Reachability from the start.
  const reached = new Set<string>();
  if (doc.start && byId.has(doc.start)) {
    const stack = [doc.start];
    while (stack.length) {
      const id = stack.pop() as string;
      if (reached.has(id)) continue;
      reached.add(id);
      const node = byId.get(id) as JourneyNode;
      for (const out of outputs(node)) {
        const t = targetOf(node, out.handle);
        if (t && byId.has(t) && !reached.has(t)) stack.push(t);
      }
    }
    for (const node of doc.nodes) {
      if (!reached.has(node.id)) add(node.id, { severity: "error", message: "Unreachable: no path from the trigger leads here" });
    }
  }

  // Loops must pass through a wait: look for cycles among non-wait steps only.
  const state = new Map<string, 1 | 2>();
  const loopNodes = new Set<string>();
  const visit = (id: string, path: string[]) => {
    state.set(id, 1);
    path.push(id);
    const node = byId.get(id) as JourneyNode;
    for (const out of outputs(node)) {
      const t = targetOf(node, out.handle);
      if (!t || !byId.has(t) || WAIT_TYPES.has((byId.get(t) as JourneyNode).type)) continue;
      if (state.get(t) === 1) {
        for (const n of path.slice(path.indexOf(t))) loopNodes.add(n);
      } else if (!state.has(t)) visit(t, path);
    }
    path.pop();
    state.set(id, 2);
  };
  for (const node of doc.nodes) if (!WAIT_TYPES.has(node.type) && !state.has(node.id)) visit(node.id, []);
  for (const id of loopNodes) add(id, { severity: "error", message: "In a loop with no wait: add a wait so a run cannot spin" });

  // Errors before warnings on every node (what blocks publishing comes first).
  for (const list of issues.values()) list.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1));
  return issues;
}

export function countIssues(issues: Issues): { errors: number; warnings: number } {
  let errors = 0;
  let warnings = 0;
  for (const list of issues.values()) {
    for (const i of list) {
      if (i.severity === "error") errors++;
      else warnings++;
    }
  }
  return { errors, warnings };
}
