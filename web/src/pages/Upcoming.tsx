// Segments, Templates and Messages. Each lists what the server has when its API exists, and
// otherwise shows what the page will hold and how to get there — never a broken screen.
import type { ReactNode } from "react";
import { listFrom } from "../api";
import { Icon } from "../components/icons";
import { Badge, Card, EmptyState, ErrorState, Loading, NotAvailable, PageHeader, formatNumber, formatTime, show } from "../components/ui";
import { useApi } from "../session";

type Obj = Record<string, unknown>;

interface Column {
  label: string;
  value: (row: Obj) => ReactNode;
  num?: boolean;
}

function Listing({
  path,
  field,
  columns,
  empty,
  unavailable,
  label,
}: {
  path: string;
  field: string;
  columns: Column[];
  empty: ReactNode;
  unavailable: ReactNode;
  label: string;
}) {
  const { data, error, loading, reload } = useApi<unknown>(path);
  if (loading) return <Loading />;
  if (error?.notAvailable) return <>{unavailable}</>;
  if (error) return <ErrorState error={error} onRetry={reload} />;
  const rows = listFrom<Obj>(data, field);
  if (!rows.length) return <>{empty}</>;
  return (
    <table className="table" aria-label={label}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c.label} scope="col" className={c.num ? "num" : undefined}>
              {c.label}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row, i) => (
          <tr key={String(row.key ?? row.id ?? i)}>
            {columns.map((c) => (
              <td key={c.label} className={c.num ? "num" : undefined}>
                {c.value(row)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Preview({ items }: { items: Array<{ icon: string; title: string; text: string }> }) {
  return (
    <ul className="preview-grid">
      {items.map((i) => (
        <li key={i.title} className="preview-item">
          <span className="tile-icon" aria-hidden="true">
            <Icon name={i.icon} size={18} />
          </span>
          <div>
            <p className="preview-title">{i.title}</p>
            <p className="muted small">{i.text}</p>
          </div>
        </li>
      ))}
    </ul>
  );
}

const SEGMENT_EXAMPLE = `kind: Segment
key: repeat_buyers
name: Repeat buyers
condition:
  all:
    - {event: Order Completed, count: {gte: 2}, within: 30d}
    - {trait: country, in: [ES, MX, FR]}`;

export function SegmentsPage() {
  return (
    <>
      <PageHeader title="Segments" description="Groups of people defined by what they did and who they are, kept up to date on every event." />
      <Card>
        <Listing
          path="/api/v1/segments"
          field="segments"
          label="Segments"
          columns={[
            { label: "Segment", value: (r) => <strong>{show(r.name ?? r.key)}</strong> },
            { label: "Key", value: (r) => <span className="mono small">{show(r.key)}</span> },
            { label: "Members", value: (r) => (typeof r.count === "number" ? formatNumber(r.count) : typeof r.size === "number" ? formatNumber(r.size) : "—"), num: true },
            { label: "Updated", value: (r) => formatTime(r.updated_ms) },
          ]}
          empty={
            <EmptyState icon="layers" title="No segments yet">
              Define one in YAML and apply it with <code>legato apply -f segment.yaml</code>; membership is computed over all history, then kept per event.
            </EmptyState>
          }
          unavailable={
            <NotAvailable title="Segments arrive with the condition language and real-time segments">
              This page will hold a condition builder generated from the condition language, a live count while you edit, the members, and the size over time.
            </NotAvailable>
          }
        />
      </Card>
      <div className="grid-2">
        <Card title="What a segment looks like">
          <pre className="code-block mono">{SEGMENT_EXAMPLE}</pre>
        </Card>
        <Card title="What you will do here">
          <Preview
            items={[
              { icon: "layers", title: "Build conditions", text: "Traits, events with counts and time windows, other segments, random buckets — all, any, not." },
              { icon: "users", title: "Preview the count", text: "See how many people match while you edit, before saving." },
              { icon: "chart", title: "Watch it over time", text: "Members now, entries and exits, size per day." },
            ]}
          />
        </Card>
      </div>
    </>
  );
}

export function TemplatesPage() {
  return (
    <>
      <PageHeader title="Templates" description="The content of every message: email, SMS, WhatsApp, push and in-app, personalised with Liquid." />
      <Card>
        <Listing
          path="/api/v1/templates"
          field="templates"
          label="Templates"
          columns={[
            { label: "Template", value: (r) => <strong>{show(r.name ?? r.key)}</strong> },
            { label: "Key", value: (r) => <span className="mono small">{show(r.key)}</span> },
            { label: "Channel", value: (r) => <Badge tone="info">{show(r.channel)}</Badge> },
            { label: "Updated", value: (r) => formatTime(r.updated_ms) },
          ]}
          empty={
            <EmptyState icon="file" title="No templates yet">
              Apply one with <code>legato apply -f template.yaml</code> (kind: Template, with a key, a channel and its content).
            </EmptyState>
          }
          unavailable={
            <NotAvailable title="Templates arrive with omnichannel delivery">
              This page will hold an editor with Liquid highlighting and each channel's fields (subject, MJML body, SMS text, push title), and a live preview rendered by the server for a
              profile you choose.
            </NotAvailable>
          }
        />
      </Card>
      <Card title="What you will do here">
        <Preview
          items={[
            { icon: "mail", title: "Email in MJML", text: "Responsive emails compiled on save, with a plain-text part and one-click unsubscribe." },
            { icon: "send", title: "SMS, WhatsApp, push, in-app", text: "Channel-specific fields, per-locale variants chosen from each profile's locale." },
            { icon: "users", title: "Preview for a real person", text: "Render with a profile's traits and the journey's data before anything is sent." },
          ]}
        />
      </Card>
    </>
  );
}

export function MessagesPage() {
  return (
    <>
      <PageHeader title="Messages" description="Every delivery: what was sent to whom, on which channel, and what happened to it." />
      <Card>
        <Listing
          path="/api/v1/messages"
          field="messages"
          label="Messages"
          columns={[
            { label: "When", value: (r) => formatTime(r.created_ms ?? r.sent_ms) },
            { label: "Channel", value: (r) => <Badge tone="info">{show(r.channel)}</Badge> },
            { label: "Template", value: (r) => <span className="mono small">{show(r.template)}</span> },
            { label: "Status", value: (r) => <Badge tone={r.status === "failed" || r.status === "dead" ? "error" : "success"}>{show(r.status)}</Badge> },
          ]}
          empty={
            <EmptyState icon="send" title="No messages yet">
              Messages appear here once a published journey reaches a message step, or when you call the transactional send API.
            </EmptyState>
          }
          unavailable={
            <NotAvailable title="Messages arrive with omnichannel delivery">
              This page will list deliveries, failures with their reasons, and dead letters you can replay once the cause is fixed.
            </NotAvailable>
          }
        />
      </Card>
      <Card title="What you will see here">
        <Preview
          items={[
            { icon: "check", title: "Deliveries", text: "Sent, delivered, opened, clicked — every outcome is also an event on the person's timeline." },
            { icon: "alert", title: "Failures", text: "Bounces, invalid numbers, provider errors, and messages held by consent, caps or quiet hours." },
            { icon: "refresh", title: "Dead letters", text: "Messages that ran out of retries, ready to replay." },
          ]}
        />
      </Card>
    </>
  );
}
