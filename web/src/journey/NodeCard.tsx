// The cards drawn on the canvas: one for the trigger, one for every step. Both are memoised and
// receive stable `data` objects, so moving one node of two hundred re-renders one card.
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import { memo } from "react";
import { Icon } from "../components/icons";
import { NODE_SPECS, outputs, summary, triggerSummary, type JourneyNode, type Obj } from "./model";
import type { Issue } from "./validate";

export interface NodeStats {
  entered?: number;
  exited?: number;
  waiting?: number;
  converted?: number;
}

/** What a simulation says about one node: distinct people who reached it, and those still
 * waiting there when the simulated window ended. */
export interface SimStats {
  people: number;
  visits?: number;
  waiting?: number;
}

export type StepData = { node: JourneyNode; issues?: Issue[]; stats?: NodeStats; sim?: SimStats };
export type TriggerData = { trigger: Obj; issues?: Issue[]; stats?: NodeStats; sim?: SimStats };
export type StepNode = Node<StepData, "step">;
export type TriggerNode = Node<TriggerData, "trigger">;

function IssueBadge({ issues }: { issues?: Issue[] }) {
  if (!issues?.length) return null;
  const errors = issues.filter((i) => i.severity === "error");
  const tone = errors.length ? "error" : "warning";
  const list = errors.length ? errors : issues;
  return (
    <span className={`jnode-issues jnode-issues-${tone}`} title={list.map((i) => i.message).join("\n")} data-testid="node-issues">
      <Icon name="alert" size={12} />
      {list.length}
    </span>
  );
}

const fmt = (n?: number) => (n === undefined ? "–" : n >= 10000 ? `${Math.round(n / 1000)}k` : String(n));

function Stats({ stats }: { stats?: NodeStats }) {
  if (!stats) return null;
  return (
    <div className="jnode-stats" data-testid="node-stats" aria-label={`entered ${stats.entered ?? 0}, waiting ${stats.waiting ?? 0}, converted ${stats.converted ?? 0}`}>
      <span title="entered">
        <Icon name="chevronRight" size={11} />
        {fmt(stats.entered)}
      </span>
      <span title="waiting here now">
        <Icon name="hourglass" size={11} />
        {fmt(stats.waiting)}
      </span>
      <span title="converted">
        <Icon name="target" size={11} />
        {fmt(stats.converted)}
      </span>
    </div>
  );
}

function Simulated({ sim }: { sim?: SimStats }) {
  if (!sim) return null;
  const text = `simulated: ${fmt(sim.people)} ${sim.people === 1 ? "person" : "people"}${sim.waiting ? `, ${fmt(sim.waiting)} still waiting` : ""}`;
  return (
    <div className="jnode-sim" data-testid="node-sim" aria-label={text}>
      <Icon name="play" size={11} />
      {text.replace("simulated: ", "")}
    </div>
  );
}

function firstError(issues?: Issue[]): string | null {
  const e = issues?.find((i) => i.severity === "error");
  return e ? e.message : null;
}

export const StepCard = memo(function StepCard({ data, selected }: NodeProps<StepNode>) {
  const { node, issues, stats, sim } = data;
  const spec = NODE_SPECS[node.type];
  const outs = outputs(node);
  const hasError = issues?.some((i) => i.severity === "error");
  const error = firstError(issues);
  return (
    <div
      className={`jnode jnode-${spec.category}${selected ? " is-selected" : ""}${hasError ? " has-error" : ""}`}
      data-testid={`node-${node.id}`}
      data-node-id={node.id}
      data-valid={hasError ? "false" : "true"}
    >
      <Handle type="target" position={Position.Top} id="in" className="jhandle jhandle-in" />
      <div className="jnode-head">
        <span className="jnode-icon" aria-hidden="true">
          <Icon name={spec.icon} size={14} />
        </span>
        <span className="jnode-type">{spec.title}</span>
        <IssueBadge issues={issues} />
      </div>
      <div className="jnode-title">{node.label || node.id}</div>
      <div className={`jnode-summary${error ? " is-error" : ""}`}>{error ?? summary(node)}</div>
      <Stats stats={stats} />
      <Simulated sim={sim} />
      {outs.map((o, i) => {
        const left = `${((i + 1) / (outs.length + 1)) * 100}%`;
        return (
          <div key={o.handle}>
            <Handle type="source" position={Position.Bottom} id={o.handle} className="jhandle jhandle-out" style={{ left }} />
            {outs.length > 1 ? (
              <span className="jnode-out-label" style={{ left }}>
                {o.label}
              </span>
            ) : null}
          </div>
        );
      })}
    </div>
  );
});

export const TriggerCard = memo(function TriggerCard({ data, selected }: NodeProps<TriggerNode>) {
  const { trigger, issues, stats, sim } = data;
  const t = triggerSummary(trigger);
  const hasError = issues?.some((i) => i.severity === "error");
  const error = firstError(issues);
  return (
    <div
      className={`jnode jnode-trigger${selected ? " is-selected" : ""}${hasError ? " has-error" : ""}`}
      data-testid="node-trigger"
      data-valid={hasError ? "false" : "true"}
    >
      <div className="jnode-head">
        <span className="jnode-icon" aria-hidden="true">
          <Icon name="bolt" size={14} />
        </span>
        <span className="jnode-type">Trigger · {t.kind}</span>
        <IssueBadge issues={issues} />
      </div>
      <div className="jnode-title">{t.text}</div>
      {error ? <div className="jnode-summary is-error">{error}</div> : null}
      <Stats stats={stats} />
      <Simulated sim={sim} />
      <Handle type="source" position={Position.Bottom} id="next" className="jhandle jhandle-out" />
    </div>
  );
});

export const nodeTypes = { step: StepCard, trigger: TriggerCard };
