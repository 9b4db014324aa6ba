// What the builder keeps in this browser: node positions (the journey document has no place for
// them yet) and unsaved drafts, so that work survives a reload or a server without journeys API.
import type { JourneyDoc, Positions } from "./model";

const PREFIX = "legato.";

function read<T>(key: string): T | null {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    return raw ? (JSON.parse(raw) as T) : null;
  } catch {
    return null;
  }
}

function write(key: string, value: unknown): void {
  try {
    if (value === null) localStorage.removeItem(PREFIX + key);
    else localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: positions fall back to auto-layout next time.
  }
}

export interface LocalDraft {
  doc: JourneyDoc;
  positions: Positions;
  saved_ms: number;
}

export const layoutKey = (ws: string, key: string) => `layout.${ws}.${key}`;
export const draftKey = (ws: string, routeKey: string) => `draft.${ws}.${routeKey}`;

export const loadLayout = (ws: string, key: string) => read<Positions>(layoutKey(ws, key));
export const saveLayout = (ws: string, key: string, positions: Positions) => write(layoutKey(ws, key), positions);
export const loadDraft = (ws: string, routeKey: string) => read<LocalDraft>(draftKey(ws, routeKey));
export const saveDraft = (ws: string, routeKey: string, draft: LocalDraft | null) => write(draftKey(ws, routeKey), draft);

/** Drafts kept in this browser for a workspace (the journeys API may not exist yet). */
export function listDrafts(ws: string): Array<{ routeKey: string; draft: LocalDraft }> {
  const out: Array<{ routeKey: string; draft: LocalDraft }> = [];
  const prefix = `${PREFIX}draft.${ws}.`;
  try {
    for (let i = 0; i < localStorage.length; i++) {
      const k = localStorage.key(i);
      if (!k || !k.startsWith(prefix)) continue;
      const draft = read<LocalDraft>(k.slice(PREFIX.length));
      if (draft?.doc) out.push({ routeKey: k.slice(prefix.length), draft });
    }
  } catch {
    return out;
  }
  return out.sort((a, b) => b.draft.saved_ms - a.draft.saved_ms);
}

// A new journey is edited under `new:<token>` until its first save gives it a key. The builder
// then moves to /journeys/<key> without reloading: this map keeps its identity across the move.
const savedRoutes = new Map<string, string>();

export function rememberSavedRoute(key: string, routeKey: string): void {
  savedRoutes.set(key, routeKey);
}

/** The builder identity behind /journeys/<key> (its `new:` token when it was saved from there). */
export function builderRouteKey(key: string): string {
  return savedRoutes.get(key) ?? key;
}
