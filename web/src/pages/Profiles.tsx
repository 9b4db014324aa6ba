// Profiles: find a person by any identifier or trait, list profiles, and the 360° view of one
// person (identities, traits, computed traits, segments, groups, journeys with the step each run
// is at, consent, and a timeline of events and messages).
import { useEffect, useState, type FormEvent } from "react";
import { ApiError, get, listFrom, nextCursor } from "../api";
import { ConsentCard, JourneysCard } from "./ProfileCards";
import { KeyValues, Timeline } from "./ProfileTimeline";
import { Icon } from "../components/icons";
import { Button, Card, EmptyState, ErrorState, Loading, NotAvailable, PageHeader, formatNumber, formatTime, timeAgo } from "../components/ui";
import { Link, navigate, useLocation } from "../router";
import { useApi } from "../session";

type Obj = Record<string, unknown>;

export interface Identity {
  kind: string;
  value: string;
  created_ms?: number;
}

export interface Profile {
  id: string;
  identities?: Identity[];
  traits?: Obj;
  computed_traits?: Obj | null;
  segments?: unknown;
  groups?: Array<{ group_id: string; traits?: Obj; joined_ms?: number }>;
  journeys?: unknown;
  first_seen_ms?: number;
  last_seen_ms?: number;
  event_count?: number;
  merged_from?: string[];
}

const KINDS = [
  { value: "user_id", label: "User ID" },
  { value: "email", label: "Email" },
  { value: "anonymous_id", label: "Anonymous ID" },
  { value: "phone", label: "Phone" },
  { value: "trait", label: "Trait" },
];

export function displayName(p: Profile): string {
  const t = p.traits ?? {};
  const full = [t.first_name ?? t.firstName, t.last_name ?? t.lastName].filter((x) => typeof x === "string" && x).join(" ");
  if (typeof t.name === "string" && t.name) return t.name;
  if (full) return full;
  if (typeof t.email === "string" && t.email) return t.email;
  const user = p.identities?.find((i) => i.kind === "user_id");
  if (user) return user.value;
  return "Anonymous visitor";
}

function subtitle(p: Profile): string {
  const t = p.traits ?? {};
  const email = typeof t.email === "string" ? t.email : p.identities?.find((i) => i.kind === "email")?.value;
  const user = p.identities?.find((i) => i.kind === "user_id")?.value;
  return [user ? `user ${user}` : null, email && email !== displayName(p) ? email : null].filter(Boolean).join(" · ") || p.id;
}

function Avatar({ p }: { p: Profile }) {
  const name = displayName(p);
  const letters = name === "Anonymous visitor" ? "?" : name.replace(/[^A-Za-z0-9 ]/g, "").split(" ").filter(Boolean).slice(0, 2).map((w) => w[0]?.toUpperCase()).join("") || "?";
  let hash = 0;
  for (const ch of p.id) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return (
    <span className={`avatar avatar-${hash % 6}`} aria-hidden="true">
      {letters}
    </span>
  );
}

function SearchForm({ initialKind, initialValue, initialTrait }: { initialKind: string; initialValue: string; initialTrait: string }) {
  const [kind, setKind] = useState(initialKind);
  const [value, setValue] = useState(initialValue);
  const [trait, setTrait] = useState(initialTrait);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(null);
    const v = value.trim();
    if (kind === "trait") {
      if (!trait.trim()) {
        setError("Name the trait to filter on, e.g. plan.");
        return;
      }
      navigate(`/profiles?trait=${encodeURIComponent(trait.trim())}&value=${encodeURIComponent(v)}`);
      return;
    }
    if (!v) {
      setError("Type the identifier to look up.");
      return;
    }
    setBusy(true);
    try {
      const profile = await get<Profile>("/api/v1/profiles/lookup", { [kind]: v });
      navigate(`/profiles/${encodeURIComponent(profile.id)}`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404 && !err.notAvailable) setError(`No profile has ${KINDS.find((k) => k.value === kind)?.label.toLowerCase()} “${v}”.`);
      else if (err instanceof ApiError && err.notAvailable) setError("Profile lookup is not available on this server yet.");
      else setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="search-bar" onSubmit={submit} role="search" aria-label="Find a profile">
      <label className="sr-only" htmlFor="search-kind">
        Search by
      </label>
      <select id="search-kind" className="input search-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
        {KINDS.map((k) => (
          <option key={k.value} value={k.value}>
            {k.label}
          </option>
        ))}
      </select>
      {kind === "trait" ? (
        <>
          <label className="sr-only" htmlFor="search-trait">
            Trait
          </label>
          <input id="search-trait" className="input search-trait mono" placeholder="trait, e.g. plan" value={trait} onChange={(e) => setTrait(e.target.value)} />
        </>
      ) : null}
      <label className="sr-only" htmlFor="search-value">
        {kind === "trait" ? "Value" : "Identifier"}
      </label>
      <div className="search-input">
        <Icon name="search" />
        <input
          id="search-value"
          className="input"
          placeholder={kind === "trait" ? "value, e.g. pro" : kind === "email" ? "ann@example.com" : kind === "phone" ? "+14155550100" : "Identifier"}
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
      </div>
      <Button type="submit" tone="primary" disabled={busy}>
        {busy ? "Searching…" : "Search"}
      </Button>
      {error ? (
        <p className="field-error full" role="alert" data-testid="search-error">
          {error}
        </p>
      ) : null}
    </form>
  );
}

export function ProfilesPage() {
  const { query } = useLocation();
  const trait = query.get("trait") ?? "";
  const traitValue = query.get("value") ?? "";
  const [pages, setPages] = useState<Profile[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const filter = trait ? { [`trait.${trait}`]: traitValue } : {};
  const first = useApi<unknown>("/api/v1/profiles", { limit: 25, ...filter });

  useEffect(() => {
    setPages(listFrom<Profile>(first.data, "profiles"));
    setCursor(nextCursor(first.data));
  }, [first.data]);

  const more = async () => {
    if (!cursor) return;
    setLoadingMore(true);
    try {
      const body = await get<unknown>("/api/v1/profiles", { limit: 25, cursor, ...filter });
      setPages((p) => [...p, ...listFrom<Profile>(body, "profiles")]);
      setCursor(nextCursor(body));
    } finally {
      setLoadingMore(false);
    }
  };

  return (
    <>
      <PageHeader title="Profiles" description="Everyone Legato knows: one profile per person, across devices and identifiers." />
      <Card>
        <SearchForm key={`${trait}|${traitValue}`} initialKind={trait ? "trait" : "user_id"} initialValue={traitValue} initialTrait={trait} />
      </Card>
      <Card
        title={trait ? `Profiles with ${trait} = ${traitValue || "(empty)"}` : "All profiles"}
        actions={
          trait ? (
            <Button tone="ghost" icon="x" onClick={() => navigate("/profiles")}>
              Clear filter
            </Button>
          ) : null
        }
      >
        {first.loading ? (
          <Loading label="Loading profiles…" />
        ) : first.error?.notAvailable ? (
          <NotAvailable title="The profiles API is not on this server yet">
            Profiles appear here once ingestion and identity resolution are running: each person with their identifiers, traits and timeline.
          </NotAvailable>
        ) : first.error ? (
          <ErrorState error={first.error} onRetry={first.reload} />
        ) : pages.length === 0 ? (
          <EmptyState icon="users" title={trait ? "No profile matches this filter" : "No profiles yet"}>
            {trait ? (
              "Trait values match as text: 42, true or pro."
            ) : (
              <>
                Send events to the tracking API (<code>POST /v1/batch</code> with a write key) or point a Segment / RudderStack SDK at this server. See <Link to="/settings">Settings</Link> for a
                write key.
              </>
            )}
          </EmptyState>
        ) : (
          <>
            <table className="table" aria-label="Profiles" data-testid="profiles-table">
              <thead>
                <tr>
                  <th scope="col">Person</th>
                  <th scope="col">Identifiers</th>
                  <th scope="col" className="num">
                    Events
                  </th>
                  <th scope="col">Last seen</th>
                </tr>
              </thead>
              <tbody>
                {pages.map((p) => (
                  <tr key={p.id}>
                    <td>
                      <div className="person">
                        <Avatar p={p} />
                        <div>
                          <Link to={`/profiles/${encodeURIComponent(p.id)}`} className="row-link">
                            {displayName(p)}
                          </Link>
                          <div className="muted small">{subtitle(p)}</div>
                        </div>
                      </div>
                    </td>
                    <td>
                      <div className="chips">
                        {(p.identities ?? []).slice(0, 3).map((i) => (
                          <span className="chip" key={`${i.kind}:${i.value}`} title={`${i.kind}: ${i.value}`}>
                            <span className="chip-kind">{i.kind}</span> {i.value.length > 22 ? `${i.value.slice(0, 21)}…` : i.value}
                          </span>
                        ))}
                        {(p.identities?.length ?? 0) > 3 ? <span className="muted small">+{(p.identities?.length ?? 0) - 3}</span> : null}
                      </div>
                    </td>
                    <td className="num">{p.event_count !== undefined ? formatNumber(p.event_count) : "—"}</td>
                    <td title={formatTime(p.last_seen_ms)}>{timeAgo(p.last_seen_ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {cursor ? (
              <div className="load-more">
                <Button onClick={() => void more()} disabled={loadingMore}>
                  {loadingMore ? "Loading…" : "Load more"}
                </Button>
              </div>
            ) : null}
          </>
        )}
      </Card>
    </>
  );
}

// --- one profile ----------------------------------------------------------------------------------

function segmentsOf(p: Profile): string[] {
  const s = p.segments;
  if (Array.isArray(s)) return s.map((x) => (typeof x === "string" ? x : String((x as Obj)?.key ?? (x as Obj)?.segment ?? ""))).filter(Boolean);
  if (s && typeof s === "object") return Object.keys(s);
  return [];
}

export function ProfilePage({ id }: { id: string }) {
  const { data, error, loading, reload } = useApi<Profile>(`/api/v1/profiles/${encodeURIComponent(id)}`);
  const back = (
    <Link to="/profiles" className="back">
      <Icon name="arrowLeft" size={14} /> Profiles
    </Link>
  );
  if (loading) return <Loading label="Loading profile…" />;
  if (error || !data) {
    return (
      <>
        <PageHeader title="Profile" back={back} />
        <Card>
          {error?.status === 404 && !error.notAvailable ? (
            <EmptyState icon="users" title="No such profile" action={<Button onClick={() => navigate("/profiles")}>Search profiles</Button>}>
              It may have been merged into another profile, or the link is wrong.
            </EmptyState>
          ) : error?.notAvailable ? (
            <NotAvailable title="The profiles API is not on this server yet" />
          ) : (
            <ErrorState error={error ?? new Error("Empty answer")} onRetry={reload} />
          )}
        </Card>
      </>
    );
  }
  const p = data;
  const segments = segmentsOf(p);
  return (
    <>
      <PageHeader
        back={back}
        title={
          <span className="person person-large">
            <Avatar p={p} />
            <span data-testid="profile-name">{displayName(p)}</span>
          </span>
        }
        description={
          <>
            <span className="mono small">{p.id}</span>
            {p.merged_from?.length ? ` · merged from ${p.merged_from.length} profile${p.merged_from.length > 1 ? "s" : ""}` : ""}
          </>
        }
      />
      <div className="stat-row">
        <div className="stat">
          <span className="stat-label">Events</span>
          <span className="stat-value">{p.event_count !== undefined ? formatNumber(p.event_count) : "—"}</span>
        </div>
        <div className="stat">
          <span className="stat-label">First seen</span>
          <span className="stat-value small-value">{formatTime(p.first_seen_ms)}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Last seen</span>
          <span className="stat-value small-value">{timeAgo(p.last_seen_ms)}</span>
        </div>
        <div className="stat">
          <span className="stat-label">Segments</span>
          <span className="stat-value">{p.segments === undefined ? "—" : segments.length}</span>
        </div>
      </div>
      <div className="profile-grid">
        <div className="profile-side">
          <Card title="Identities">
            {(p.identities ?? []).length ? (
              <ul className="identity-list" data-testid="identities">
                {(p.identities ?? []).map((i) => (
                  <li key={`${i.kind}:${i.value}`}>
                    <span className="chip-kind">{i.kind}</span>
                    <span className="mono">{i.value}</span>
                  </li>
                ))}
              </ul>
            ) : (
              <p className="muted">No identifiers.</p>
            )}
          </Card>
          <Card title="Traits">
            <KeyValues data={p.traits} empty="No traits yet: identify calls set them." testid="traits" />
          </Card>
          <Card title="Computed traits">
            {p.computed_traits === undefined ? (
              <NotAvailable title="Arrives with computed traits" compact>
                Lifetime value, order counts and other aggregates kept up to date on every event.
              </NotAvailable>
            ) : (
              <KeyValues data={p.computed_traits} empty="No computed traits are defined." testid="computed-traits" />
            )}
          </Card>
          <Card title="Segments">
            {p.segments === undefined ? (
              <NotAvailable title="Arrives with segments" compact />
            ) : segments.length ? (
              <div className="chips" data-testid="profile-segments">
                {segments.map((s) => (
                  <Link className="chip" key={s} to={`/segments/${encodeURIComponent(s)}`}>
                    {s}
                  </Link>
                ))}
              </div>
            ) : (
              <p className="muted">In no segment right now.</p>
            )}
          </Card>
          {p.groups?.length ? (
            <Card title="Groups">
              <ul className="identity-list">
                {p.groups.map((g) => (
                  <li key={g.group_id}>
                    <span className="mono">{g.group_id}</span>
                    <span className="muted small">joined {timeAgo(g.joined_ms)}</span>
                  </li>
                ))}
              </ul>
            </Card>
          ) : null}
        </div>
        <div className="profile-main">
          <Timeline profileId={p.id} />
          <div className="grid-2">
            <JourneysCard profileId={p.id} />
            <ConsentCard profileId={p.id} />
          </div>
        </div>
      </div>
    </>
  );
}
