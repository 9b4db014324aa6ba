// Settings: the workspace, its API keys (list, create, revoke), channel providers, subscription
// topics, and the delivery policy (quiet hours, frequency caps).
import { useState, type FormEvent } from "react";
import { api } from "../api";
import { Icon } from "../components/icons";
import { Badge, Button, Card, EmptyState, ErrorState, Loading, PageHeader, formatTime } from "../components/ui";
import { useApi, useSession } from "../session";
import { ChannelsCard, PolicyCard, TopicsCard } from "./SettingsDelivery";

interface KeyRow {
  id: string;
  kind: string;
  role?: string | null;
  label?: string | null;
  created_ms?: number | null;
  revoked_ms?: number | null;
}

interface Created {
  id: string;
  kind: string;
  role?: string | null;
  key: string;
}

function CreateKey({ onCreated }: { onCreated: (c: Created) => void }) {
  const [kind, setKind] = useState("write");
  const [role, setRole] = useState("admin");
  const [label, setLabel] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const created = await api<Created>("POST", "/api/v1/keys", { body: { kind, role: kind === "admin" ? role : null, label: label.trim() } });
      setLabel("");
      onCreated(created);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="inline-form" onSubmit={submit} aria-label="Create a key">
      <label className="field">
        <span className="field-label">Kind</span>
        <select className="input" name="kind" value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="write">Write key (SDKs, tracking API)</option>
          <option value="admin">Admin key (console, admin API)</option>
        </select>
      </label>
      {kind === "admin" ? (
        <label className="field">
          <span className="field-label">Role</span>
          <select className="input" name="role" value={role} onChange={(e) => setRole(e.target.value)}>
            <option value="admin">admin: read and change</option>
            <option value="viewer">viewer: read only</option>
          </select>
        </label>
      ) : null}
      <label className="field grow">
        <span className="field-label">Label</span>
        <input className="input" name="label" value={label} maxLength={200} placeholder="e.g. iOS app, CRM sync" onChange={(e) => setLabel(e.target.value)} />
      </label>
      <Button type="submit" tone="primary" icon="plus" disabled={busy}>
        {busy ? "Creating…" : "Create key"}
      </Button>
      {error ? (
        <p className="field-error full" role="alert">
          {error}
        </p>
      ) : null}
    </form>
  );
}

function NewSecret({ created, onDone }: { created: Created; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="secret-box" role="status" data-testid="new-key">
      <div>
        <p className="secret-title">
          <Icon name="key" /> New {created.kind} key created — copy it now, it is shown only once.
        </p>
        <code className="secret mono">{created.key}</code>
      </div>
      <div className="secret-actions">
        <Button
          icon="copy"
          onClick={() =>
            void navigator.clipboard?.writeText(created.key).then(
              () => setCopied(true),
              () => setCopied(false),
            )
          }
        >
          {copied ? "Copied" : "Copy"}
        </Button>
        <Button tone="ghost" onClick={onDone}>
          Done
        </Button>
      </div>
    </div>
  );
}

function KeysCard() {
  const { data, error, loading, reload } = useApi<{ keys: KeyRow[] }>("/api/v1/keys");
  const [created, setCreated] = useState<Created | null>(null);
  const [confirming, setConfirming] = useState<string | null>(null);
  const [revokeError, setRevokeError] = useState<string | null>(null);
  const keys = data?.keys ?? [];
  const revoke = async (id: string) => {
    setRevokeError(null);
    try {
      await api("DELETE", `/api/v1/keys/${encodeURIComponent(id)}`);
      setConfirming(null);
      reload();
    } catch (err) {
      setRevokeError((err as Error).message);
    }
  };
  return (
    <Card title="API keys" id="keys">
      <p className="muted card-intro">
        Write keys let SDKs and servers send events to the tracking API. Admin keys open this console and the admin API; a viewer key can only read.
      </p>
      {created ? <NewSecret created={created} onDone={() => setCreated(null)} /> : null}
      <CreateKey
        onCreated={(c) => {
          setCreated(c);
          reload();
        }}
      />
      {revokeError ? (
        <p className="notice notice-error" role="alert">
          {revokeError}
        </p>
      ) : null}
      {loading && !data ? (
        <Loading label="Loading keys…" />
      ) : error ? (
        error.status === 403 ? (
          <EmptyState icon="key" title="Only admin keys can see the workspace's keys" compact>
            You signed in with a viewer key.
          </EmptyState>
        ) : (
          <ErrorState error={error} onRetry={reload} />
        )
      ) : keys.length === 0 ? (
        <EmptyState icon="key" title="No keys" compact>
          Create a write key above to start sending events.
        </EmptyState>
      ) : (
        <table className="table" aria-label="API keys">
          <thead>
            <tr>
              <th scope="col">Label</th>
              <th scope="col">Kind</th>
              <th scope="col">Created</th>
              <th scope="col">Status</th>
              <th scope="col">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} className={k.revoked_ms ? "is-muted" : undefined}>
                <td>
                  <div>{k.label || "—"}</div>
                  <div className="muted mono small">{k.id}</div>
                </td>
                <td>
                  <Badge tone={k.kind === "admin" ? "violet" : "info"}>{k.kind === "admin" ? `admin · ${k.role ?? "admin"}` : "write"}</Badge>
                </td>
                <td>{formatTime(k.created_ms)}</td>
                <td>{k.revoked_ms ? <Badge tone="neutral">revoked {formatTime(k.revoked_ms)}</Badge> : <Badge tone="success">active</Badge>}</td>
                <td className="actions">
                  {k.revoked_ms ? null : confirming === k.id ? (
                    <span className="confirm">
                      <Button tone="danger" onClick={() => void revoke(k.id)}>
                        Revoke now
                      </Button>
                      <Button tone="ghost" onClick={() => setConfirming(null)}>
                        Cancel
                      </Button>
                    </span>
                  ) : (
                    <Button tone="ghost" icon="trash" onClick={() => setConfirming(k.id)} aria-label={`Revoke ${k.label || k.id}`}>
                      Revoke
                    </Button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Card>
  );
}

function WorkspaceCard() {
  const { workspace } = useSession();
  return (
    <Card title="Workspace">
      <dl className="facts">
        <div>
          <dt>Name</dt>
          <dd data-testid="workspace-name">{workspace.name}</dd>
        </div>
        <div>
          <dt>ID</dt>
          <dd className="mono">{workspace.id}</dd>
        </div>
        <div>
          <dt>Created</dt>
          <dd>{formatTime(workspace.created_ms)}</dd>
        </div>
        <div>
          <dt>Your access</dt>
          <dd>{workspace.role ?? "admin"}</dd>
        </div>
      </dl>
    </Card>
  );
}

export function SettingsPage() {
  return (
    <>
      <PageHeader title="Settings" description="Your workspace, its keys, and how messages are delivered." />
      <div className="grid-2">
        <WorkspaceCard />
        <Card title="Connect a source">
          <p className="muted card-intro">Point any Segment or RudderStack SDK at this server with a write key, or call the tracking API directly:</p>
          <pre className="code-block mono">{`curl -u WRITE_KEY: ${window.location.origin}/v1/track \\
  -H 'Content-Type: application/json' \\
  -d '{"userId":"u1","event":"Signed Up"}'`}</pre>
        </Card>
      </div>
      <KeysCard />
      <div className="grid-2">
        <ChannelsCard />
        <TopicsCard />
      </div>
      <PolicyCard />
    </>
  );
}
