// Undo/redo over immutable snapshots of the builder (document + positions). Consecutive edits of
// one field coalesce into one step, and a drag is one step from where it started.
import { useCallback, useReducer } from "react";
import type { JourneyDoc, Positions } from "./model";

export interface Snapshot {
  doc: JourneyDoc;
  positions: Positions;
}

interface State {
  past: Snapshot[];
  present: Snapshot;
  future: Snapshot[];
  /** The key of the last edit, so that typing in one field is one undo step. */
  lastKey: string | null;
  lastAt: number;
  /** Where a drag started, pushed to `past` when it ends. */
  dragBase: Snapshot | null;
  /** Bumped by every change; lets the page know about unsaved edits. */
  revision: number;
}

export type Update = Snapshot | ((present: Snapshot) => Snapshot);

type Action =
  | { type: "set"; next: Update; key?: string; now: number }
  | { type: "transient"; next: Update }
  | { type: "dragStart" }
  | { type: "dragEnd" }
  | { type: "undo" }
  | { type: "redo" }
  | { type: "reset"; present: Snapshot };

const LIMIT = 200;
const COALESCE_MS = 1200;

function reducer(state: State, action: Action): State {
  switch (action.type) {
    case "set": {
      const next = typeof action.next === "function" ? action.next(state.present) : action.next;
      if (next === state.present) return state;
      const coalesce = action.key && action.key === state.lastKey && action.now - state.lastAt < COALESCE_MS;
      return {
        ...state,
        past: coalesce ? state.past : [...state.past, state.present].slice(-LIMIT),
        present: next,
        future: [],
        lastKey: action.key ?? null,
        lastAt: action.now,
        revision: state.revision + 1,
      };
    }
    case "transient": {
      const next = typeof action.next === "function" ? action.next(state.present) : action.next;
      return next === state.present ? state : { ...state, present: next };
    }
    case "dragStart":
      return state.dragBase ? state : { ...state, dragBase: state.present };
    case "dragEnd":
      if (!state.dragBase) return state;
      if (state.dragBase === state.present) return { ...state, dragBase: null };
      return {
        ...state,
        past: [...state.past, state.dragBase].slice(-LIMIT),
        future: [],
        dragBase: null,
        lastKey: null,
        revision: state.revision + 1,
      };
    case "undo": {
      if (!state.past.length) return state;
      const previous = state.past[state.past.length - 1];
      return {
        ...state,
        past: state.past.slice(0, -1),
        present: previous,
        future: [state.present, ...state.future],
        lastKey: null,
        revision: state.revision + 1,
      };
    }
    case "redo": {
      if (!state.future.length) return state;
      const [next, ...rest] = state.future;
      return {
        ...state,
        past: [...state.past, state.present],
        present: next,
        future: rest,
        lastKey: null,
        revision: state.revision + 1,
      };
    }
    case "reset":
      return { past: [], present: action.present, future: [], lastKey: null, lastAt: 0, dragBase: null, revision: 0 };
  }
}

export function useHistory(initial: () => Snapshot) {
  const [state, dispatch] = useReducer(reducer, undefined, () => ({
    past: [],
    present: initial(),
    future: [],
    lastKey: null,
    lastAt: 0,
    dragBase: null,
    revision: 0,
  }));
  const set = useCallback((next: Update, key?: string) => dispatch({ type: "set", next, key, now: Date.now() }), []);
  const transient = useCallback((next: Update) => dispatch({ type: "transient", next }), []);
  const dragStart = useCallback(() => dispatch({ type: "dragStart" }), []);
  const dragEnd = useCallback(() => dispatch({ type: "dragEnd" }), []);
  const undo = useCallback(() => dispatch({ type: "undo" }), []);
  const redo = useCallback(() => dispatch({ type: "redo" }), []);
  const reset = useCallback((present: Snapshot) => dispatch({ type: "reset", present }), []);
  return {
    present: state.present,
    canUndo: state.past.length > 0,
    canRedo: state.future.length > 0,
    revision: state.revision,
    set,
    transient,
    dragStart,
    dragEnd,
    undo,
    redo,
    reset,
  };
}
