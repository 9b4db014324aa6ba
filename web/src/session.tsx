// Who is signed in: the admin key (kept in sessionStorage, so it ends with the tab) and the
// workspace that `GET /api/v1/workspace` says it belongs to.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { ApiError, api, get, setUnauthorizedHandler, storeKey, storedKey, type Query } from "./api";

export interface Workspace {
  id: string;
  name: string;
  created_ms?: number;
  role?: string | null;
}

interface Session {
  workspace: Workspace;
  signOut: (reason?: string) => void;
  canAdmin: boolean;
}

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in session");
  return s;
}

export async function signIn(key: string): Promise<Workspace> {
  const ws = await api<Workspace>("GET", "/api/v1/workspace", { key });
  storeKey(key);
  return ws;
}

type State =
  | { phase: "checking" }
  | { phase: "signed-out"; reason?: string }
  | { phase: "signed-in"; workspace: Workspace };

export function SessionProvider({
  children,
  login,
}: {
  children: ReactNode;
  login: (props: { reason?: string; onSignedIn: (ws: Workspace) => void }) => ReactNode;
}) {
  const [state, setState] = useState<State>(() => (storedKey() ? { phase: "checking" } : { phase: "signed-out" }));

  const signOut = useCallback((reason?: string) => {
    storeKey(null);
    setState({ phase: "signed-out", reason });
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => signOut("The server no longer accepts this admin key. Sign in again."));
    return () => setUnauthorizedHandler(null);
  }, [signOut]);

  useEffect(() => {
    if (state.phase !== "checking") return;
    const key = storedKey();
    if (!key) {
      setState({ phase: "signed-out" });
      return;
    }
    let live = true;
    api<Workspace>("GET", "/api/v1/workspace", { key })
      .then((workspace) => live && setState({ phase: "signed-in", workspace }))
      .catch((err: ApiError) => {
        if (!live) return;
        if (err.status === 401) signOut("Your admin key was revoked or is no longer valid. Sign in again.");
        else setState({ phase: "signed-out", reason: err.message });
      });
    return () => {
      live = false;
    };
  }, [state.phase, signOut]);

  if (state.phase === "checking") {
    return (
      <div className="boot" role="status" aria-live="polite">
        <span className="spinner" aria-hidden="true" /> Connecting to Legato…
      </div>
    );
  }
  if (state.phase === "signed-out") {
    return <>{login({ reason: state.reason, onSignedIn: (workspace) => setState({ phase: "signed-in", workspace }) })}</>;
  }
  const value: Session = {
    workspace: state.workspace,
    signOut,
    canAdmin: (state.workspace.role ?? "admin") === "admin",
  };
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export interface Loaded<T> {
  data: T | null;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

/** GET `path` (skipped when null), re-fetched when path/query change or on `reload()`. */
export function useApi<T>(path: string | null, query?: Query): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(path !== null);
  const [tick, setTick] = useState(0);
  const queryKey = JSON.stringify(query ?? {});

  useEffect(() => {
    if (path === null) {
      setLoading(false);
      return;
    }
    const controller = new AbortController();
    setLoading(true);
    setError(null);
    get<T>(path, JSON.parse(queryKey) as Query, controller.signal)
      .then((body) => {
        setData(body);
        setLoading(false);
      })
      .catch((err: unknown) => {
        if ((err as Error).name === "AbortError") return;
        setError(err instanceof ApiError ? err : new ApiError(0, null, String(err)));
        setData(null);
        setLoading(false);
      });
    return () => controller.abort();
  }, [path, queryKey, tick]);

  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}
