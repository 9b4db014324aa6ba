// Auto-layout: a layered top-down drawing. Each step sits one layer below the deepest step that
// leads to it (back edges of loops ignored), siblings keep their output order (then left of
// else), and each layer is centred under its parents without overlaps.
import { TRIGGER_ID, outputs, targetOf, type JourneyDoc, type Positions } from "./model";

export const NODE_WIDTH = 232;
export const NODE_HEIGHT = 86;
const GAP_X = 48;
const GAP_Y = 64;

export function autoLayout(doc: JourneyDoc): Positions {
  const byId = new Map(doc.nodes.map((n) => [n.id, n]));
  const children = new Map<string, string[]>();
  children.set(TRIGGER_ID, doc.start && byId.has(doc.start) ? [doc.start] : []);
  for (const n of doc.nodes) {
    const kids: string[] = [];
    for (const o of outputs(n)) {
      const t = targetOf(n, o.handle);
      if (t && byId.has(t) && !kids.includes(t)) kids.push(t);
    }
    children.set(n.id, kids);
  }

  // Depth-first order from the trigger; edges to a node on the current path are back edges.
  const order: string[] = [];
  const onPath = new Set<string>();
  const done = new Set<string>();
  const forward = new Map<string, string[]>();
  const dfs = (root: string) => {
    const stack: Array<{ id: string; i: number }> = [{ id: root, i: 0 }];
    onPath.add(root);
    forward.set(root, []);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const kids = children.get(top.id) ?? [];
      if (top.i < kids.length) {
        const k = kids[top.i++];
        if (onPath.has(k)) continue;
        (forward.get(top.id) as string[]).push(k);
        if (done.has(k)) continue;
        onPath.add(k);
        forward.set(k, []);
        stack.push({ id: k, i: 0 });
      } else {
        stack.pop();
        onPath.delete(top.id);
        done.add(top.id);
        order.push(top.id);
      }
    }
  };
  dfs(TRIGGER_ID);
  const unreachable = doc.nodes.map((n) => n.id).filter((id) => !done.has(id));
  for (const id of unreachable) if (!done.has(id)) dfs(id);
  order.reverse(); // topological order of the forward edges

  const layer = new Map<string, number>();
  for (const id of order) if (!layer.has(id)) layer.set(id, 0);
  for (const id of order) {
    const l = layer.get(id) as number;
    for (const k of forward.get(id) ?? []) layer.set(k, Math.max(layer.get(k) ?? 0, l + 1));
  }

  // Within a layer, order by the first parent's position, then by output order.
  const layers: string[][] = [];
  const rank = new Map<string, number>();
  const parents = new Map<string, string[]>();
  for (const id of order) for (const k of forward.get(id) ?? []) parents.set(k, [...(parents.get(k) ?? []), id]);
  const visitOrder: string[] = [];
  const seen = new Set<string>();
  const walk = (id: string) => {
    const queue = [id];
    while (queue.length) {
      const x = queue.shift() as string;
      if (seen.has(x)) continue;
      seen.add(x);
      visitOrder.push(x);
      for (const k of forward.get(x) ?? []) queue.push(k);
    }
  };
  walk(TRIGGER_ID);
  for (const id of order) walk(id);
  visitOrder.forEach((id, i) => rank.set(id, i));
  for (const id of visitOrder) {
    const l = layer.get(id) as number;
    (layers[l] ??= []).push(id);
  }

  const x = new Map<string, number>();
  const step = NODE_WIDTH + GAP_X;
  layers.forEach((ids) => {
    const wanted = ids.map((id) => {
      const ps = parents.get(id) ?? [];
      if (!ps.length) return { id, want: 0 };
      // Spread siblings under a parent in output order.
      const p = ps[0];
      const sib = forward.get(p) ?? [];
      const i = sib.indexOf(id);
      const px = x.get(p) ?? 0;
      const avg = ps.reduce((t, q) => t + (x.get(q) ?? 0), 0) / ps.length;
      return { id, want: ps.length > 1 ? avg : px + (i - (sib.length - 1) / 2) * step };
    });
    wanted.sort((a, b) => a.want - b.want || (rank.get(a.id) ?? 0) - (rank.get(b.id) ?? 0));
    // Push right to remove overlaps, then shift the run back to centre on the wishes.
    const placed: number[] = [];
    wanted.forEach((w, i) => {
      placed[i] = i === 0 ? w.want : Math.max(w.want, placed[i - 1] + step);
    });
    const drift = wanted.reduce((t, w, i) => t + (placed[i] - w.want), 0) / Math.max(1, wanted.length);
    wanted.forEach((w, i) => x.set(w.id, placed[i] - drift));
  });

  const positions: Positions = {};
  for (const id of visitOrder) {
    positions[id] = { x: Math.round(x.get(id) ?? 0), y: (layer.get(id) ?? 0) * (NODE_HEIGHT + GAP_Y) };
  }
  return positions;
}
