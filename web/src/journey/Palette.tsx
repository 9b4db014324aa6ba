// The palette of step types. Drag one onto the canvas, or press it (mouse or keyboard) to add it
// below the selected step, connected to it.
import { memo, type DragEvent } from "react";
import { Icon } from "../components/icons";
import { NODE_SPECS, NODE_TYPES, type Category, type NodeType } from "./model";

export const DRAG_MIME = "application/x-legato-step";

const GROUPS: Array<{ title: string; category: Category }> = [
  { title: "Messages", category: "message" },
  { title: "Timing", category: "timing" },
  { title: "Logic", category: "logic" },
  { title: "Actions", category: "action" },
  { title: "End", category: "exit" },
];

export const Palette = memo(function Palette({ onAdd }: { onAdd: (type: NodeType) => void }) {
  const start = (e: DragEvent<HTMLButtonElement>, type: NodeType) => {
    e.dataTransfer.setData(DRAG_MIME, type);
    e.dataTransfer.setData("text/plain", type);
    e.dataTransfer.effectAllowed = "move";
  };
  return (
    <nav className="palette" aria-label="Steps to add">
      <p className="palette-help">Drag a step onto the canvas, or press it to add it after the selected step.</p>
      {GROUPS.map((g) => (
        <div key={g.category} className="palette-group">
          <h3 className="section-label">{g.title}</h3>
          {NODE_TYPES.filter((t) => NODE_SPECS[t].category === g.category).map((t) => {
            const spec = NODE_SPECS[t];
            return (
              <button
                key={t}
                type="button"
                draggable
                className={`palette-item jnode-${spec.category}`}
                data-testid={`palette-${t}`}
                onDragStart={(e) => start(e, t)}
                onClick={() => onAdd(t)}
                title={spec.description}
              >
                <span className="jnode-icon" aria-hidden="true">
                  <Icon name={spec.icon} size={14} />
                </span>
                <span className="palette-text">
                  <span className="palette-title">{spec.title}</span>
                  <span className="palette-desc">{spec.description}</span>
                </span>
              </button>
            );
          })}
        </div>
      ))}
    </nav>
  );
});
