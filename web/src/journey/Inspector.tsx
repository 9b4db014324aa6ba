// The builder's side panel: the selected step's fields, the trigger, or the journey's own
// settings when nothing is selected. Every edit is a patch on the document (undoable).
import { useEffect, useMemo, useState } from "react";
import { Icon } from "../components/icons";
import { Button } from "../components/ui";
import {
  NODE_ID_PATTERN,
  NODE_SPECS,
  TRIGGER_ID,
  armName,
  branchesOf,
  outputs,
  targetOf,
  triggerKind,
  type JourneyDoc,
  type JourneyNode,
  type Obj,
} from "./model";
import { CheckboxField, KeyValueField, ListField, NumberField, SelectField, TextAreaField, TextField, WeekdaysField, YamlField } from "./fields";
import type { Issue, Issues } from "./validate";

export const CHANNELS = ["email", "sms", "whatsapp", "push", "web_push", "in_app", "webhook"];

export interface Suggestions {
  channels: string[];
  templates: string[];
  segments: string[];
  events: string[];
}

type Patch = (patch: Obj, key?: string) => void;

function fieldError(issues: Issue[] | undefined, field: string): string | undefined {
  return issues?.find((i) => i.severity === "error" && (i.field === field || i.field?.startsWith(`${field}.`)))?.message;
}

const CONDITION_HINT = "YAML in the condition language, e.g. {trait: plan, eq: pro} or {event: Order Completed, within: 30d}";

function StepFields({ node, patch, issues, s }: { node: JourneyNode; patch: Patch; issues?: Issue[]; s: Suggestions }) {
  const err = (f: string) => fieldError(issues, f);
  const on = (field: string) => (v: unknown) => patch({ [field]: v === "" ? undefined : v }, `${node.id}.${field}`);
  switch (node.type) {
    case "message":
      return (
        <>
          <TextField label="Channel" name="channel" value={node.channel} onChange={on("channel")} error={err("channel")} options={s.channels} placeholder="email" mono />
          <TextField label="Template" name="template" value={node.template} onChange={on("template")} error={err("template")} options={s.templates} placeholder="welcome_email" mono />
          <TextField label="Subscription topic" name="topic" value={node.topic} onChange={on("topic")} error={err("topic")} hint="Optional: consent to this topic is checked at send time." mono />
        </>
      );
    case "wait":
      return <TextField label="Duration" name="duration" value={node.duration} onChange={on("duration")} error={err("duration")} hint="e.g. 30m, 1h, 1d, 2w" mono />;
    case "wait_until": {
      const byTrait = typeof node.date_trait === "string";
      return (
        <>
          <SelectField
            label="Wait until"
            value={byTrait ? "trait" : "time"}
            onChange={(v) =>
              patch(v === "trait" ? { time: undefined, weekdays: undefined, date_trait: "" } : { date_trait: undefined, offset: undefined, on_missing: undefined, time: "09:00" })
            }
            options={[
              { value: "time", label: "A time of day (profile's timezone)" },
              { value: "trait", label: "A date held in a trait" },
            ]}
          />
          {byTrait ? (
            <>
              <TextField label="Date trait" name="date_trait" value={node.date_trait} onChange={(v) => patch({ date_trait: v }, `${node.id}.date_trait`)} error={err("date_trait")} placeholder="birthday" mono />
              <TextField label="Offset" name="offset" value={node.offset} onChange={on("offset")} error={err("offset")} hint="Before or after the date: -1d, 2h" mono />
            </>
          ) : (
            <>
              <TextField label="Time of day" name="time" value={node.time} onChange={on("time")} error={err("time")} hint="24-hour, e.g. 09:00" mono />
              <WeekdaysField label="On weekdays" value={node.weekdays} onChange={(v) => patch({ weekdays: v.length ? v : undefined })} error={err("weekdays")} hint="None ticked: any day." />
            </>
          )}
        </>
      );
    }
    case "wait_for_event":
      return (
        <>
          <TextField label="Event" name="event" value={node.event} onChange={on("event")} error={err("event")} options={s.events} placeholder="Order Completed" />
          <TextField label="Timeout" name="timeout" value={node.timeout} onChange={on("timeout")} error={err("timeout")} hint="How long to wait before taking the timeout path" mono />
          <KeyValueField
            label="Match the trigger"
            value={node.match}
            onChange={(v) => patch({ match: v }, `${node.id}.match`)}
            error={err("match")}
            keyPlaceholder="properties.cart_id"
            valuePlaceholder="trigger.properties.cart_id"
            hint="Only events whose property equals this value count."
            raw
          />
          <YamlField label="Filter (where)" value={node.where} onChange={(v) => patch({ where: v }, `${node.id}.where`)} hint="Optional property filters" rows={3} />
        </>
      );
    case "branch":
      return <YamlField label="Condition" name="condition" value={node.condition} onChange={(v) => patch({ condition: v ?? null }, `${node.id}.condition`)} error={err("condition")} hint={CONDITION_HINT} rows={5} placeholder="trait: plan\neq: pro" />;
    case "split":
    case "random_split": {
      const random = node.type === "random_split";
      const arms = branchesOf(node);
      const setArm = (i: number, arm: Obj, key?: string) => patch({ branches: arms.map((b, j) => (j === i ? arm : b)) }, key);
      return (
        <>
          {arms.map((arm, i) => (
            <fieldset className="arm" key={i}>
              <legend>
                Branch {armName(arm, i)}
                <button
                  type="button"
                  className="icon-btn"
                  aria-label={`Remove branch ${armName(arm, i)}`}
                  disabled={arms.length <= 1}
                  onClick={() => patch({ branches: arms.filter((_, j) => j !== i) })}
                >
                  <Icon name="trash" size={14} />
                </button>
              </legend>
              <TextField label="Name" value={arm.name} onChange={(v) => setArm(i, { ...arm, name: v || undefined }, `${node.id}.b${i}.name`)} />
              {random ? (
                <NumberField label="Weight" value={arm.weight} min={0} onChange={(v) => setArm(i, { ...arm, weight: v }, `${node.id}.b${i}.weight`)} error={err(`branches.${i}`)} />
              ) : (
                <YamlField label="Condition" value={arm.condition} onChange={(v) => setArm(i, { ...arm, condition: v ?? null }, `${node.id}.b${i}.condition`)} error={err(`branches.${i}`)} rows={3} />
              )}
            </fieldset>
          ))}
          <Button
            icon="plus"
            tone="ghost"
            className="btn-sm"
            onClick={() => patch({ branches: [...arms, random ? { name: armName({}, arms.length), weight: 50 } : { name: armName({}, arms.length), condition: null }] })}
          >
            Add branch
          </Button>
          {random ? <NumberField label="Holdout %" value={node.holdout} min={0} max={99} onChange={(v) => patch({ holdout: v })} error={err("holdout")} hint="Optional control group that exits here" /> : null}
        </>
      );
    }
    case "update_profile":
      return (
        <>
          <KeyValueField label="Set traits" value={node.set} onChange={(v) => patch({ set: v }, `${node.id}.set`)} error={err("set")} keyPlaceholder="trait" valuePlaceholder="value or trigger.properties.x" />
          <ListField label="Unset traits" value={node.unset} onChange={(v) => patch({ unset: v }, `${node.id}.unset`)} placeholder="trait_a, trait_b" />
          <KeyValueField label="Increment traits" value={node.increment} onChange={(v) => patch({ increment: v }, `${node.id}.increment`)} keyPlaceholder="trait" valuePlaceholder="1" numeric />
        </>
      );
    case "webhook":
      return (
        <>
          <TextField label="URL" name="url" value={node.url} onChange={on("url")} error={err("url")} placeholder="https://example.com/hook" mono />
          <SelectField label="Method" value={String(node.method ?? "POST")} onChange={(v) => patch({ method: v })} options={["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => ({ value: m, label: m }))} />
          <KeyValueField label="Headers" value={node.headers} onChange={(v) => patch({ headers: v }, `${node.id}.headers`)} keyPlaceholder="X-Header" raw />
          <TextAreaField label="Body" value={node.body} onChange={on("body")} hint={'A Liquid template, e.g. {"id": "{{ profile.user_id }}"}'} rows={3} />
          <TextField label="Timeout" value={node.timeout} onChange={on("timeout")} hint="Default 10s, at most 60s" mono />
          <TextField label="Give up after" value={node.give_up_after} onChange={on("give_up_after")} hint="Retries stop after this (default 1h)" mono />
        </>
      );
    case "emit_event":
      return (
        <>
          <TextField label="Event name" name="event" value={node.event} onChange={on("event")} error={err("event")} placeholder="Journey Milestone" />
          <KeyValueField label="Properties" value={node.properties} onChange={(v) => patch({ properties: v }, `${node.id}.properties`)} />
        </>
      );
    case "exit":
      return <TextField label="Reason" value={node.reason} onChange={on("reason")} hint="Optional, shown in reports" />;
  }
}

function OutputsFields({ node, doc, onConnect }: { node: JourneyNode; doc: JourneyDoc; onConnect: (handle: string, target: string | null) => void }) {
  const outs = outputs(node);
  // Rebuilt only when the list of steps changes, not on every keystroke in a field.
  const names = doc.nodes.map((n) => `${n.id}\u0000${n.label ?? ""}`).join("\u0001");
  const choices = useMemo(
    () => [{ value: "", label: "— not connected —" }, ...doc.nodes.filter((n) => n.id !== node.id).map((n) => ({ value: n.id, label: n.label ? `${n.label} (${n.id})` : n.id }))],
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [names, node.id],
  );
  if (!outs.length) return null;
  return (
    <fieldset className="outputs">
      <legend className="section-label">Connections</legend>
      {outs.map((o) => (
        <SelectField key={o.handle} label={outs.length > 1 ? `Then, on “${o.label}”` : "Next step"} value={targetOf(node, o.handle) ?? ""} onChange={(v) => onConnect(o.handle, v || null)} options={choices} />
      ))}
    </fieldset>
  );
}

function IssueList({ issues }: { issues?: Issue[] }) {
  if (!issues?.length) {
    return (
      <p className="inspector-ok" data-testid="inspector-ok">
        <Icon name="check" size={14} /> Ready
      </p>
    );
  }
  return (
    <ul className="issue-list" aria-label="Problems with this step">
      {issues.map((i, n) => (
        <li key={n} className={`issue issue-${i.severity}`}>
          <Icon name="alert" size={13} />
          {i.message}
        </li>
      ))}
    </ul>
  );
}

function IdField({ node, doc, onRename }: { node: JourneyNode; doc: JourneyDoc; onRename: (id: string) => void }) {
  const [text, setText] = useState(node.id);
  useEffect(() => setText(node.id), [node.id]);
  const problem = !NODE_ID_PATTERN.test(text)
    ? "Start with a letter; letters, digits, _ and - only"
    : text !== node.id && doc.nodes.some((n) => n.id === text)
      ? `“${text}” is taken`
      : null;
  const commit = () => {
    if (!problem && text !== node.id) onRename(text);
    else setText(node.id);
  };
  return (
    <div className={`field${problem ? " has-error" : ""}`}>
      <label className="field-label" htmlFor="step-id">
        ID
      </label>
      <input
        id="step-id"
        className="input mono"
        value={text}
        onChange={(e) => setText(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === "Enter") commit();
          if (e.key === "Escape") setText(node.id);
        }}
      />
      {problem ? <span className="field-error">{problem}</span> : <span className="field-hint">Other steps refer to this step by its ID.</span>}
    </div>
  );
}

export function StepInspector({
  node,
  doc,
  issues,
  suggestions,
  onPatch,
  onRename,
  onConnect,
  onDelete,
}: {
  node: JourneyNode;
  doc: JourneyDoc;
  issues?: Issue[];
  suggestions: Suggestions;
  onPatch: (id: string, patch: Obj, key?: string) => void;
  onRename: (from: string, to: string) => void;
  onConnect: (source: string, handle: string, target: string | null) => void;
  onDelete: (id: string) => void;
}) {
  const spec = NODE_SPECS[node.type];
  const patch: Patch = (p, key) => onPatch(node.id, p, key);
  return (
    <div className="inspector-body" data-testid="inspector" data-node={node.id}>
      <div className={`inspector-kind jnode-${spec.category}`}>
        <span className="jnode-icon" aria-hidden="true">
          <Icon name={spec.icon} size={16} />
        </span>
        <div>
          <h2>{spec.title}</h2>
          <p>{spec.description}</p>
        </div>
      </div>
      <IssueList issues={issues} />
      <IdField node={node} doc={doc} onRename={(to) => onRename(node.id, to)} />
      <TextField label="Label" name="label" value={node.label} onChange={(v) => patch({ label: v || undefined }, `${node.id}.label`)} hint="Shown on the canvas instead of the ID" />
      <StepFields node={node} patch={patch} issues={issues} s={suggestions} />
      <OutputsFields node={node} doc={doc} onConnect={(h, t) => onConnect(node.id, h, t)} />
      <div className="inspector-footer">
        <Button tone="danger" icon="trash" onClick={() => onDelete(node.id)}>
          Delete step
        </Button>
      </div>
    </div>
  );
}

export function TriggerInspector({
  doc,
  issues,
  suggestions,
  onTrigger,
  onConnect,
}: {
  doc: JourneyDoc;
  issues?: Issue[];
  suggestions: Suggestions;
  onTrigger: (trigger: Obj, key?: string) => void;
  onConnect: (source: string, handle: string, target: string | null) => void;
}) {
  const t = doc.trigger;
  const kind = triggerKind(t);
  const err = (f: string) => fieldError(issues, f);
  const schedule = (t.schedule && typeof t.schedule === "object" ? t.schedule : {}) as Obj;
  const setSchedule = (patch: Obj, key?: string) => {
    const next = { ...schedule, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined || v === "") delete next[k];
    onTrigger({ ...t, schedule: next }, key);
  };
  const kinds = {
    event: { event: "" },
    segment: { segment: "", change: "entered" },
    schedule: { segment: "", schedule: { every: "week", time: "09:00", weekdays: ["mon"] } },
    api: { api: true },
  } as Record<string, Obj>;
  return (
    <div className="inspector-body" data-testid="inspector" data-node={TRIGGER_ID}>
      <div className="inspector-kind jnode-trigger">
        <span className="jnode-icon" aria-hidden="true">
          <Icon name="bolt" size={16} />
        </span>
        <div>
          <h2>Trigger</h2>
          <p>Who enters the journey, and when</p>
        </div>
      </div>
      <IssueList issues={issues} />
      <SelectField
        label="Starts when"
        value={kind}
        onChange={(v) => onTrigger(kinds[v])}
        options={[
          { value: "event", label: "The person does an event" },
          { value: "segment", label: "The person enters or leaves a segment" },
          { value: "schedule", label: "On a schedule, for a segment" },
          { value: "api", label: "An API call enrols the person" },
        ]}
      />
      {kind === "event" ? (
        <>
          <TextField label="Event" name="trigger-event" value={t.event} onChange={(v) => onTrigger({ ...t, event: v }, "trigger.event")} error={err("event")} options={suggestions.events} placeholder="Checkout Started" />
          <TextField label="Entry key" value={t.key} onChange={(v) => onTrigger({ ...t, key: v || undefined }, "trigger.key")} error={err("key")} hint="Optional: one run per value, e.g. properties.cart_id" mono />
          <YamlField label="Filter (where)" value={t.where} onChange={(v) => onTrigger({ ...t, where: v }, "trigger.where")} hint="Optional property filters on the event" rows={3} />
        </>
      ) : null}
      {kind === "segment" || kind === "schedule" ? (
        <TextField label="Segment" name="trigger-segment" value={t.segment} onChange={(v) => onTrigger({ ...t, segment: v }, "trigger.segment")} error={err("segment")} options={suggestions.segments} mono />
      ) : null}
      {kind === "segment" ? (
        <SelectField label="When the person" value={String(t.change ?? "entered")} onChange={(v) => onTrigger({ ...t, change: v })} options={[{ value: "entered", label: "enters the segment" }, { value: "exited", label: "leaves the segment" }]} />
      ) : null}
      {kind === "schedule" ? (
        <>
          <SelectField
            label="Repeat"
            value={String(schedule.every ?? "once")}
            onChange={(v) => onTrigger({ ...t, schedule: v === "once" ? { at: "" } : { every: v, time: schedule.time ?? "09:00", ...(v === "week" ? { weekdays: ["mon"] } : {}), ...(v === "month" ? { day_of_month: 1 } : {}) } })}
            options={[
              { value: "once", label: "Once" },
              { value: "day", label: "Every day" },
              { value: "week", label: "Every week" },
              { value: "month", label: "Every month" },
            ]}
          />
          {schedule.every ? (
            <>
              <TextField label="Time" value={schedule.time} onChange={(v) => setSchedule({ time: v }, "trigger.time")} hint="24-hour, e.g. 09:00" mono />
              {schedule.every === "week" ? <WeekdaysField label="Weekdays" value={schedule.weekdays} onChange={(v) => setSchedule({ weekdays: v.length ? v : undefined })} /> : null}
              {schedule.every === "month" ? <NumberField label="Day of month" value={schedule.day_of_month} min={1} max={31} onChange={(v) => setSchedule({ day_of_month: v })} /> : null}
            </>
          ) : (
            <TextField label="At (local date and time)" value={schedule.at} onChange={(v) => setSchedule({ at: v }, "trigger.at")} hint="e.g. 2025-12-01T09:00" mono />
          )}
          {err("schedule") ? <p className="field-error">{err("schedule")}</p> : null}
          <CheckboxField label="At each person's local time" checked={t.local_time === true} onChange={(v) => onTrigger({ ...t, local_time: v || undefined })} />
        </>
      ) : null}
      <fieldset className="outputs">
        <legend className="section-label">Connections</legend>
        <SelectField
          label="First step"
          value={doc.start ?? ""}
          onChange={(v) => onConnect(TRIGGER_ID, "next", v || null)}
          options={[{ value: "", label: "— not connected —" }, ...doc.nodes.map((n) => ({ value: n.id, label: n.label ? `${n.label} (${n.id})` : n.id }))]}
        />
      </fieldset>
    </div>
  );
}

export function JourneyInspector({
  doc,
  issues,
  keyLocked,
  onDoc,
  onSelect,
  problems,
}: {
  doc: JourneyDoc;
  issues?: Issue[];
  keyLocked: boolean;
  onDoc: (patch: Obj, key?: string) => void;
  onSelect: (id: string) => void;
  problems: Issues;
}) {
  const goal = (doc.goal && typeof doc.goal === "object" ? doc.goal : {}) as Obj;
  const entry = (doc.entry && typeof doc.entry === "object" ? doc.entry : {}) as Obj;
  const settings = (doc.settings && typeof doc.settings === "object" ? doc.settings : {}) as Obj;
  const setIn = (field: string, current: Obj, patch: Obj, key?: string) => {
    const next = { ...current, ...patch };
    for (const [k, v] of Object.entries(patch)) if (v === undefined || v === "") delete next[k];
    onDoc({ [field]: Object.keys(next).length ? next : undefined }, key);
  };
  const all = [...problems.entries()].flatMap(([id, list]) => list.map((i) => ({ id, ...i })));
  const errors = all.filter((p) => p.severity === "error");
  const warnings = all.filter((p) => p.severity === "warning");
  return (
    <div className="inspector-body" data-testid="inspector" data-node="">
      <div className="inspector-kind jnode-journey">
        <span className="jnode-icon" aria-hidden="true">
          <Icon name="route" size={16} />
        </span>
        <div>
          <h2>Journey</h2>
          <p>Select a step to configure it</p>
        </div>
      </div>
      <section aria-label="Problems" className="problems">
        <h3 className="section-label">Problems</h3>
        {all.length === 0 ? (
          <p className="inspector-ok">
            <Icon name="check" size={14} /> No problems found
          </p>
        ) : (
          <ul className="issue-list">
            {[...errors, ...warnings].slice(0, 40).map((p, n) => (
              <li key={n} className={`issue issue-${p.severity}`}>
                <Icon name="alert" size={13} />
                <button type="button" className="link-btn" onClick={() => onSelect(p.id)}>
                  {p.id === TRIGGER_ID ? "Trigger" : p.id === "__journey__" ? "Journey" : p.id}
                </button>
                : {p.message}
              </li>
            ))}
          </ul>
        )}
      </section>
      <TextField label="Name" name="journey-name" value={doc.name} onChange={(v) => onDoc({ name: v || undefined }, "doc.name")} />
      <TextField
        label="Key"
        name="journey-key"
        value={doc.key}
        onChange={(v) => onDoc({ key: v }, "doc.key")}
        error={fieldError(issues, "key")}
        readOnly={keyLocked}
        hint={keyLocked ? "The key names a saved journey and cannot change." : "Lowercase, e.g. abandoned_cart. Names the journey in the API."}
        mono
      />
      <TextField label="Description" value={doc.description} onChange={(v) => onDoc({ description: v || undefined }, "doc.description")} />
      <h3 className="section-label">Goal</h3>
      <TextField label="Conversion event" value={goal.event} onChange={(v) => setIn("goal", goal, { event: v }, "goal.event")} placeholder="Order Completed" />
      <TextField label="Within" value={goal.within} onChange={(v) => setIn("goal", goal, { within: v }, "goal.within")} hint="Counted when it happens within this time of entry, e.g. 7d" mono />
      <h3 className="section-label">Entry</h3>
      <SelectField
        label="Re-entry"
        value={String(entry.re_entry ?? "never")}
        onChange={(v) => setIn("entry", entry, { re_entry: v === "never" ? undefined : v })}
        options={[
          { value: "never", label: "Never: once per person" },
          { value: "after_exit", label: "After the last run ended" },
          { value: "always", label: "Always" },
        ]}
      />
      <NumberField label="Max entries per person" value={entry.max_entries} min={1} onChange={(v) => setIn("entry", entry, { max_entries: v })} />
      <h3 className="section-label">Settings</h3>
      <TextField label="Timezone" value={settings.timezone} onChange={(v) => setIn("settings", settings, { timezone: v }, "settings.timezone")} hint="Default UTC; each person's timezone trait wins" placeholder="UTC" />
      <SelectField
        label="Frequency caps"
        value={String(settings.frequency_cap ?? "apply")}
        onChange={(v) => setIn("settings", settings, { frequency_cap: v === "apply" ? undefined : v })}
        options={[
          { value: "apply", label: "Apply (marketing)" },
          { value: "exempt", label: "Exempt (transactional)" },
        ]}
      />
    </div>
  );
}
