// The console's building blocks: page headers, cards, and the loading / error / empty states
// that every page uses so that each one says what is happening and what to do next.
import type { ButtonHTMLAttributes, ReactNode } from "react";
import type { ApiError } from "../api";
import { Icon } from "./icons";

type Tone = "primary" | "secondary" | "ghost" | "danger";

export function Button({
  tone = "secondary",
  icon,
  children,
  className,
  type = "button",
  ...rest
}: ButtonHTMLAttributes<HTMLButtonElement> & { tone?: Tone; icon?: string; children?: ReactNode }) {
  return (
    <button type={type} className={`btn btn-${tone}${className ? ` ${className}` : ""}`} {...rest}>
      {icon ? <Icon name={icon} /> : null}
      {children}
    </button>
  );
}

export function PageHeader({
  title,
  description,
  actions,
  back,
}: {
  title: ReactNode;
  description?: ReactNode;
  actions?: ReactNode;
  back?: ReactNode;
}) {
  return (
    <header className="page-header">
      <div>
        {back}
        <h1>{title}</h1>
        {description ? <p className="page-description">{description}</p> : null}
      </div>
      {actions ? <div className="page-actions">{actions}</div> : null}
    </header>
  );
}

export function Card({
  title,
  actions,
  children,
  className,
  id,
}: {
  title?: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  className?: string;
  id?: string;
}) {
  const headingId = id ? `${id}-title` : undefined;
  return (
    <section className={`card${className ? ` ${className}` : ""}`} aria-labelledby={headingId} id={id}>
      {title || actions ? (
        <div className="card-header">
          {title ? <h2 id={headingId}>{title}</h2> : <span />}
          {actions ? <div className="card-actions">{actions}</div> : null}
        </div>
      ) : null}
      <div className="card-body">{children}</div>
    </section>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div className="state state-loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      <span>{label}</span>
    </div>
  );
}

export function EmptyState({
  icon = "inbox",
  title,
  children,
  action,
  compact,
}: {
  icon?: string;
  title: ReactNode;
  children?: ReactNode;
  action?: ReactNode;
  compact?: boolean;
}) {
  return (
    <div className={`state state-empty${compact ? " compact" : ""}`}>
      <div className="state-icon" aria-hidden="true">
        <Icon name={icon} size={compact ? 18 : 22} />
      </div>
      <p className="state-title">{title}</p>
      {children ? <div className="state-text">{children}</div> : null}
      {action ? <div className="state-action">{action}</div> : null}
    </div>
  );
}

/** A capability whose API is not on this server yet: say what it will do and where it comes from. */
export function NotAvailable({
  title,
  children,
  compact,
}: {
  title: ReactNode;
  children?: ReactNode;
  compact?: boolean;
}) {
  return (
    <div className={`state state-unavailable${compact ? " compact" : ""}`} data-testid="not-available">
      <div className="state-icon" aria-hidden="true">
        <Icon name="clock" size={compact ? 18 : 22} />
      </div>
      <p className="state-title">{title}</p>
      {children ? <div className="state-text">{children}</div> : null}
    </div>
  );
}

export function ErrorState({ error, onRetry }: { error: ApiError | Error; onRetry?: () => void }) {
  const status = "status" in error ? (error as ApiError).status : 0;
  const hint =
    status === 0
      ? "The server did not answer. Is `legato serve` still running?"
      : status === 403
        ? "Your key's role cannot see this. Ask for an admin key."
        : status >= 500
          ? "The server hit a problem; its log says more."
          : null;
  return (
    <div className="state state-error" role="alert">
      <div className="state-icon" aria-hidden="true">
        <Icon name="alert" size={20} />
      </div>
      <p className="state-title">{error.message}</p>
      {hint ? <p className="state-text">{hint}</p> : null}
      {onRetry ? (
        <div className="state-action">
          <Button icon="refresh" onClick={onRetry}>
            Try again
          </Button>
        </div>
      ) : null}
    </div>
  );
}

export function Badge({ tone = "neutral", children }: { tone?: string; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

export function Field({
  label,
  hint,
  error,
  children,
  className,
}: {
  label: ReactNode;
  hint?: ReactNode;
  error?: ReactNode;
  children: ReactNode;
  className?: string;
}) {
  return (
    <label className={`field${error ? " has-error" : ""}${className ? ` ${className}` : ""}`}>
      <span className="field-label">{label}</span>
      {children}
      {error ? <span className="field-error">{error}</span> : hint ? <span className="field-hint">{hint}</span> : null}
    </label>
  );
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function formatTime(value: unknown): string {
  const ms = toMs(value);
  return ms === null ? "—" : dateTime.format(new Date(ms));
}

export function formatDate(value: unknown): string {
  const ms = toMs(value);
  return ms === null ? "—" : dateOnly.format(new Date(ms));
}

export function toMs(value: unknown): number | null {
  if (typeof value === "number" && Number.isFinite(value)) return value;
  if (typeof value === "string" && value) {
    const t = Date.parse(value);
    return Number.isNaN(t) ? null : t;
  }
  return null;
}

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function timeAgo(value: unknown, now = Date.now()): string {
  const ms = toMs(value);
  if (ms === null) return "—";
  const seconds = Math.round((ms - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(seconds, "second");
  if (abs < 3600) return relative.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relative.format(Math.round(seconds / 3600), "hour");
  if (abs < 86400 * 30) return relative.format(Math.round(seconds / 86400), "day");
  return dateOnly.format(new Date(ms));
}

export function formatNumber(n: number): string {
  return new Intl.NumberFormat().format(n);
}

/** Render any JSON value compactly for tables (strings as-is, the rest as JSON). */
export function show(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}
