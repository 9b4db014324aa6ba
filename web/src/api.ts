// The admin API client. Every call the console makes goes through `api()`, with the admin key
// as a Bearer token; there is no other way to reach the server's data.

const KEY_STORAGE = "legato.adminKey";

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // Private mode without storage: the key lives for this page only.
  }
}

/** One problem the server reported, located by JSON path and (for journeys) node id. */
export interface Problem {
  path?: string;
  message: string;
  node?: string | null;
}

/** An answer other than 2xx, with what the server said about it. */
export class ApiError extends Error {
  readonly status: number;
  readonly kind: string;
  readonly path?: string;
  readonly node?: string;
  readonly problems: Problem[];
  /** Everything the server said (e.g. `line` and `column` of a template syntax error). */
  readonly body: Record<string, unknown>;

  constructor(status: number, body: unknown, fallback: string) {
    const obj = (body && typeof body === "object" ? body : {}) as Record<string, unknown>;
    const message =
      (typeof obj.message === "string" && obj.message) ||
      (typeof obj.detail === "string" && obj.detail) ||
      fallback;
    super(message);
    this.status = status;
    this.body = obj;
    this.kind = typeof obj.error === "string" ? obj.error : "";
    this.path = typeof obj.path === "string" ? obj.path : undefined;
    this.node = typeof obj.node === "string" ? obj.node : undefined;
    const list = Array.isArray(obj.errors) ? obj.errors : Array.isArray(obj.problems) ? obj.problems : [];
    this.problems = list
      .filter((p): p is Record<string, unknown> => !!p && typeof p === "object")
      .map((p) => ({
        path: typeof p.path === "string" ? p.path : undefined,
        message: typeof p.message === "string" ? p.message : String(p.msg ?? ""),
        node: typeof p.node === "string" ? p.node : null,
      }));
  }

  /**
   * The route itself does not exist on this server (a capability that has not landed yet), as
   * opposed to a Legato `NotFound` about a missing record, which carries an `error` field.
   */
  get notAvailable(): boolean {
    return (this.status === 404 && this.kind === "") || this.status === 405 || this.status === 501;
  }
}

/** Called when the server rejects the key, so the app can go back to the login screen. */
let onUnauthorized: (() => void) | null = null;
export function setUnauthorizedHandler(handler: (() => void) | null): void {
  onUnauthorized = handler;
}

export type Query = Record<string, string | number | undefined | null>;

// --- what this server offers ----------------------------------------------------------------------
// Capabilities land one by one (journeys, segments, messages...). Rather than calling a route to
// find out that it 404s, the console reads the server's OpenAPI document once and treats routes
// that are not in it as "not available on this server yet".

interface Route {
  method: string;
  pattern: RegExp;
}

let routes: Promise<Route[] | null> | null = null;

function compile(template: string): RegExp {
  const parts = template.split("/").map((seg) => (/^\{.+\}$/.test(seg) ? "[^/]+" : seg.replace(/[.*+?^$()|[\]\\]/g, "\\$&")));
  return new RegExp(`^${parts.join("/")}$`);
}

/** Routes of the foundation, on every server: not worth waiting for the OpenAPI document. */
const CORE = /^\/api\/v1\/(workspace|keys)(\/|\?|$)/;

/** Start reading the server's OpenAPI document (once per page load). */
export function loadRoutes(): Promise<Route[] | null> {
  routes ??= fetch("/openapi.json", { headers: { Accept: "application/json" } })
    .then((r) => (r.ok ? r.json() : null))
    .then((spec: { paths?: Record<string, Record<string, unknown>> } | null) => {
      if (!spec?.paths) return null;
      const out: Route[] = [];
      for (const [template, ops] of Object.entries(spec.paths)) {
        for (const method of Object.keys(ops)) out.push({ method: method.toUpperCase(), pattern: compile(template) });
      }
      return out;
    })
    .catch(() => null);
  return routes;
}

/** Whether the server documents `method path`; true when it publishes no OpenAPI to ask. */
export async function offers(method: string, path: string): Promise<boolean> {
  const known = await loadRoutes();
  if (!known) return true;
  const bare = path.split("?")[0];
  return known.some((r) => r.method === method && r.pattern.test(bare));
}

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.append(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export interface CallOptions {
  key?: string;
  body?: unknown;
  query?: Query;
  signal?: AbortSignal;
}

export async function api<T>(method: string, path: string, options: CallOptions = {}): Promise<T> {
  if (path.startsWith("/api/") && !CORE.test(path) && !(await offers(method, path))) {
    throw new ApiError(404, null, `${method} ${path.split("?")[0]} is not available on this server yet.`);
  }
  const key = options.key ?? storedKey();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(withQuery(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    });
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    throw new ApiError(0, null, "Cannot reach the Legato server. Check that `legato serve` is running.");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { message: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, body, `${response.status} ${response.statusText}`);
    if (response.status === 401 && !options.key && onUnauthorized) onUnauthorized();
    throw error;
  }
  return body as T;
}

export const get = <T>(path: string, query?: Query, signal?: AbortSignal) =>
  api<T>("GET", path, { query, signal });

/** Pull a list out of an answer whose envelope we do not control yet (`{items}`, `{x: []}`, `[]`). */
export function listFrom<T>(body: unknown, ...names: string[]): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === "object") {
    const obj = body as Record<string, unknown>;
    for (const name of [...names, "items", "data", "results"]) {
      if (Array.isArray(obj[name])) return obj[name] as T[];
    }
  }
  return [];
}

/** The cursor of the next page, whichever name the answer uses. */
export function nextCursor(body: unknown): string | null {
  if (!body || typeof body !== "object") return null;
  const obj = body as Record<string, unknown>;
  for (const name of ["next_cursor", "cursor", "next"]) {
    const v = obj[name];
    if (typeof v === "string" && v) return v;
  }
  return null;
}
