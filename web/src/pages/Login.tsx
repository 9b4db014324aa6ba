// Sign in with an admin key (user accounts may come later). The key is checked against
// `GET /api/v1/workspace` and kept in sessionStorage: it is forgotten when the tab closes.
import { useState, type FormEvent } from "react";
import { ApiError } from "../api";
import { Icon } from "../components/icons";
import { signIn, type Workspace } from "../session";

export function Login({ reason, onSignedIn }: { reason?: string; onSignedIn: (ws: Workspace) => void }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = key.trim();
    if (!value) {
      setError("Paste an admin key first.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await signIn(value));
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      setError(
        status === 401
          ? "That key was not accepted: it is unknown, revoked, or a write key. Use an admin key (it starts with ak_)."
          : status === 0
            ? "Cannot reach the Legato server. Check that `legato serve` is running."
            : (err as Error).message,
      );
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="login">
      <div className="login-card">
        <div className="brand brand-large">
          <span className="brand-mark" aria-hidden="true">
            L
          </span>
          <span className="brand-name">Legato</span>
        </div>
        <h1>Sign in to the console</h1>
        <p className="muted">Use an admin key of your workspace. It stays in this browser tab only.</p>
        {reason ? (
          <p className="notice notice-warning" role="status">
            {reason}
          </p>
        ) : null}
        <form onSubmit={submit} noValidate>
          <div className={`field${error ? " has-error" : ""}`}>
            <label className="field-label" htmlFor="admin-key">
              Admin key
            </label>
            <input
              id="admin-key"
              name="admin-key"
              className="input mono"
              type="password"
              autoComplete="off"
              spellCheck={false}
              placeholder="ak_…"
              value={key}
              onChange={(e) => setKey(e.target.value)}
              aria-invalid={error ? true : undefined}
              aria-describedby={error ? "login-error" : "login-hint"}
              autoFocus
            />
            {error ? (
              <span className="field-error" id="login-error" role="alert">
                {error}
              </span>
            ) : (
              <span className="field-hint" id="login-hint">
                No key yet? Run <code>legato workspace create NAME --json</code> and copy <code>admin_key</code>.
              </span>
            )}
          </div>
          <button type="submit" className="btn btn-primary btn-block" disabled={busy}>
            {busy ? <span className="spinner spinner-light" aria-hidden="true" /> : <Icon name="key" />}
            {busy ? "Checking…" : "Sign in"}
          </button>
        </form>
      </div>
      <p className="login-foot muted small">
        The admin API is documented at <a href="/docs">/docs</a>.
      </p>
    </main>
  );
}
