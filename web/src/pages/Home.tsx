// Home: where the workspace stands and what to do next. Every number comes from the admin API;
// a chart whose data source has not landed says so instead of drawing made-up numbers.
import { useEffect, useState } from "react";
import { ApiError, get, listFrom } from "../api";
import { BarList, ColumnChart, type Datum } from "../components/charts";
import { Icon } from "../components/icons";
import { Card, PageHeader, formatNumber } from "../components/ui";
import { listDrafts } from "../journey/storage";
import { Link } from "../router";
import { useApi, useSession } from "../session";

type Obj = Record<string, unknown>;
const LIVE = new Set(["published", "active", "live", "running"]);
const PROFILE_SAMPLE = 100;

interface JourneyRow {
  key: string;
  name?: string | null;
  status?: string | null;
}

interface JourneyTotals {
  label: string;
  entered: number;
  converted: number;
}

/** Per-journey totals from `GET /journeys/{key}/stats`: entries at the start, conversions anywhere. */
function useJourneyTotals(journeys: JourneyRow[] | null): JourneyTotals[] | null {
  const [totals, setTotals] = useState<JourneyTotals[] | null>(null);
  const keys = (journeys ?? []).filter((j) => LIVE.has(j.status ?? "")).slice(0, 8);
  const signature = keys.map((j) => j.key).join(",");
  useEffect(() => {
    if (!signature) {
      setTotals(null);
      return;
    }
    let live = true;
    Promise.all(
      keys.map(async (j) => {
        try {
          const body = await get<Obj>(`/api/v1/journeys/${encodeURIComponent(j.key)}/stats`);
          const totals = (body?.journey ?? null) as Obj | null;
          const values = Object.values((body?.nodes ?? {}) as Record<string, Obj>);
          // The journey's own totals when the server gives them, else derived from the nodes.
          const entered = totals ? Number(totals.entered) || 0 : Math.max(0, ...values.map((v) => Number(v.entered) || 0));
          const converted = totals ? Number(totals.converted) || 0 : values.reduce((t, v) => t + (Number(v.converted) || 0), 0);
          return { label: j.name || j.key, entered, converted };
        } catch {
          return null;
        }
      }),
    ).then((rows) => {
      if (live) {
        const ok = rows.filter((r): r is JourneyTotals => r !== null);
        setTotals(ok.length ? ok : null);
      }
    });
    return () => {
      live = false;
    };
    // `signature` stands for `keys`.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [signature]);
  return totals;
}

function Tile({ label, value, note, icon, to }: { label: string; value: string; note: string; icon: string; to?: string }) {
  const body = (
    <>
      <span className="tile-icon" aria-hidden="true">
        <Icon name={icon} size={18} />
      </span>
      <span className="tile-label">{label}</span>
      <span className="tile-value">{value}</span>
      <span className="tile-note">{note}</span>
    </>
  );
  return to ? (
    <Link to={to} className="tile tile-link">
      {body}
    </Link>
  ) : (
    <div className="tile">{body}</div>
  );
}

const GHOST: Datum[] = [3, 5, 4, 7, 6, 9, 8, 11, 9, 12, 10, 13, 12, 15].map((v, i) => ({ label: String(i + 1), value: v }));

function Placeholder({ title, children }: { title: string; children: string }) {
  return (
    <div className="chart-placeholder" data-testid="chart-placeholder">
      <div className="ghost" aria-hidden="true">
        <ColumnChart data={GHOST} label="" height={150} />
      </div>
      <div className="chart-placeholder-text">
        <p className="state-title">{title}</p>
        <p className="state-text">{children}</p>
      </div>
    </div>
  );
}

function Step({ done, title, children, to, action }: { done: boolean; title: string; children: string; to: string; action: string }) {
  return (
    <li className={`checklist-item${done ? " done" : ""}`}>
      <span className="check-dot" aria-hidden="true">
        {done ? <Icon name="check" size={14} /> : null}
      </span>
      <div className="checklist-text">
        <span className="checklist-title">
          {title}
          <span className="sr-only">{done ? " (done)" : " (to do)"}</span>
        </span>
        <span className="muted small">{children}</span>
      </div>
      {done ? null : (
        <Link to={to} className="btn btn-secondary btn-sm">
          {action}
        </Link>
      )}
    </li>
  );
}

export function HomePage() {
  const { workspace } = useSession();
  const profiles = useApi<unknown>("/api/v1/profiles", { limit: PROFILE_SAMPLE });
  const journeysQ = useApi<unknown>("/api/v1/journeys");
  const [messagesUnavailable, setMessagesUnavailable] = useState<boolean | null>(null);

  useEffect(() => {
    let live = true;
    get("/api/v1/messages", { limit: 1 }).then(
      () => live && setMessagesUnavailable(false),
      (err: ApiError) => live && setMessagesUnavailable(err.notAvailable || err.status !== 200),
    );
    return () => {
      live = false;
    };
  }, []);

  const profileList = listFrom<Obj>(profiles.data, "profiles");
  const moreProfiles = !!(profiles.data && (profiles.data as Obj).next_cursor);
  const journeys = journeysQ.error ? null : listFrom<JourneyRow>(journeysQ.data, "journeys");
  const activeJourneys = journeys?.filter((j) => LIVE.has(j.status ?? "")) ?? [];
  const totals = useJourneyTotals(journeys);
  const localDrafts = listDrafts(workspace.id).length;
  const events = profileList.reduce((t, p) => t + (Number(p.event_count) || 0), 0);

  return (
    <>
      <PageHeader title="Overview" description={`Workspace ${workspace.name}`} />
      <div className="tiles">
        <Tile
          icon="users"
          label="Profiles"
          to="/profiles"
          value={profiles.loading ? "…" : profiles.error ? "—" : `${formatNumber(profileList.length)}${moreProfiles ? "+" : ""}`}
          note={profiles.error ? (profiles.error.notAvailable ? "Profiles API not on this server yet" : profiles.error.message) : "people with at least one identifier"}
        />
        <Tile
          icon="activity"
          label="Events received"
          value={profiles.loading ? "…" : profiles.error || moreProfiles ? "—" : formatNumber(events)}
          note={moreProfiles || profiles.error ? "totals arrive with the analytics rollups" : "attributed to profiles, all time"}
        />
        <Tile
          icon="route"
          label="Active journeys"
          to="/journeys"
          value={journeysQ.loading ? "…" : journeys ? formatNumber(activeJourneys.length) : "—"}
          note={journeys ? `${journeys.length} in total` : localDrafts ? `${localDrafts} draft${localDrafts > 1 ? "s" : ""} in this browser` : "arrives with the journey engine"}
        />
        <Tile
          icon="target"
          label="Conversions"
          value={totals ? formatNumber(totals.reduce((t, j) => t + j.converted, 0)) : "—"}
          note={totals ? "reached a journey goal" : "counted once journeys run"}
        />
      </div>

      <div className="grid-2">
        <Card title="Get started">
          <ol className="checklist">
            <Step done title="Create a workspace" to="/settings" action="Settings">
              Done — you are signed in to it.
            </Step>
            <Step done={profileList.length > 0} title="Send your first events" to="/settings" action="Get a write key">
              Point a Segment or RudderStack SDK at this server, or POST to /v1/batch.
            </Step>
            <Step done={(journeys?.length ?? 0) > 0 || localDrafts > 0} title="Build a journey" to="/journeys" action="Open builder">
              Drag a trigger, waits and messages onto the canvas.
            </Step>
            <Step done={activeJourneys.length > 0} title="Publish it" to="/journeys" action="Journeys">
              New people enter the published version; counts appear on each step.
            </Step>
          </ol>
        </Card>
        <Card title="Events today">
          <Placeholder title="No event chart yet">
            Events per hour and per source arrive with the analytics rollups. Until then, each profile's timeline shows its events.
          </Placeholder>
        </Card>
        <Card title="Active journeys">
          {totals ? (
            <BarList data={totals.map((t) => ({ label: t.label, value: t.entered }))} label="People who entered each active journey" unit="entered" />
          ) : (
            <Placeholder title={journeys ? "No journey is running" : "No journeys on this server yet"}>
              {journeys ? "Publish a journey to see how many people enter each one." : "Entries per journey appear here once the journey engine runs journeys."}
            </Placeholder>
          )}
        </Card>
        <Card title="Messages by channel">
          <Placeholder title="No messages yet">
            {messagesUnavailable === false
              ? "Messages sent by journeys are counted per channel here."
              : "Deliveries per channel — email, SMS, WhatsApp, push, in-app — arrive with omnichannel delivery."}
          </Placeholder>
        </Card>
        <Card title="Conversions" className="span-2">
          {totals && totals.some((t) => t.converted > 0) ? (
            <BarList data={totals.map((t) => ({ label: t.label, value: t.converted }))} label="Conversions per journey" unit="converted" />
          ) : (
            <Placeholder title="No conversions yet">
              Give a journey a goal (for example Order Completed within 7 days); people who reach it are counted here, per journey.
            </Placeholder>
          )}
        </Card>
      </div>
    </>
  );
}
