// Form controls for the builder's side panel. Each is a real labelled form control; structured
// values (conditions, filters) are edited as YAML and only written back when they parse.
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import { Icon } from "../components/icons";
import type { Obj } from "./model";
import { parseYaml, scalar, scalarText, toYaml } from "./yaml";

interface Base {
  label: ReactNode;
  hint?: ReactNode;
  error?: string;
}

function Wrap({ label, hint, error, children, htmlFor }: Base & { children: ReactNode; htmlFor?: string }) {
  return (
    <div className={`field${error ? " has-error" : ""}`}>
      <label className="field-label" htmlFor={htmlFor}>
        {label}
      </label>
      {children}
      {error ? (
        <span className="field-error" role="alert">
          {error}
        </span>
      ) : hint ? (
        <span className="field-hint">{hint}</span>
      ) : null}
    </div>
  );
}

export function TextField({
  label,
  hint,
  error,
  value,
  onChange,
  placeholder,
  options,
  name,
  mono,
  readOnly,
}: Base & {
  value: unknown;
  onChange: (v: string) => void;
  placeholder?: string;
  options?: string[];
  name?: string;
  mono?: boolean;
  readOnly?: boolean;
}) {
  const id = useId();
  const listId = options?.length ? `${id}-list` : undefined;
  return (
    <Wrap label={label} hint={hint} error={error} htmlFor={id}>
      <input
        id={id}
        name={name}
        className={`input${mono ? " mono" : ""}`}
        value={scalarText(value)}
        placeholder={placeholder}
        list={listId}
        readOnly={readOnly}
        aria-invalid={error ? true : undefined}
        onChange={(e) => onChange(e.target.value)}
        autoComplete="off"
        spellCheck={false}
      />
      {listId ? (
        <datalist id={listId}>
          {options?.map((o) => (
            <option key={o} value={o} />
          ))}
        </datalist>
      ) : null}
    </Wrap>
  );
}

export function NumberField({
  label,
  hint,
  error,
  value,
  onChange,
  min,
  max,
  step,
  name,
}: Base & { value: unknown; onChange: (v: number | undefined) => void; min?: number; max?: number; step?: number; name?: string }) {
  const id = useId();
  return (
    <Wrap label={label} hint={hint} error={error} htmlFor={id}>
      <input
        id={id}
        name={name}
        type="number"
        className="input"
        value={value === undefined || value === null ? "" : String(value)}
        min={min}
        max={max}
        step={step}
        aria-invalid={error ? true : undefined}
        onChange={(e) => onChange(e.target.value === "" ? undefined : Number(e.target.value))}
      />
    </Wrap>
  );
}

export function SelectField({
  label,
  hint,
  error,
  value,
  onChange,
  options,
  name,
}: Base & { value: string; onChange: (v: string) => void; options: Array<{ value: string; label: string }>; name?: string }) {
  const id = useId();
  return (
    <Wrap label={label} hint={hint} error={error} htmlFor={id}>
      <select id={id} name={name} className="input" value={value} onChange={(e) => onChange(e.target.value)}>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </Wrap>
  );
}

export function CheckboxField({ label, checked, onChange, hint }: { label: ReactNode; checked: boolean; onChange: (v: boolean) => void; hint?: ReactNode }) {
  return (
    <div className="field field-check">
      <label className="check">
        <input type="checkbox" checked={checked} onChange={(e) => onChange(e.target.checked)} />
        <span>{label}</span>
      </label>
      {hint ? <span className="field-hint">{hint}</span> : null}
    </div>
  );
}

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

export function WeekdaysField({ label, value, onChange, error, hint }: Base & { value: unknown; onChange: (v: string[]) => void }) {
  const days = Array.isArray(value) ? (value as string[]) : [];
  return (
    <fieldset className={`field weekdays${error ? " has-error" : ""}`}>
      <legend className="field-label">{label}</legend>
      <div className="weekday-row">
        {DAYS.map((d) => (
          <label key={d} className={`weekday${days.includes(d) ? " on" : ""}`}>
            <input
              type="checkbox"
              checked={days.includes(d)}
              onChange={(e) => onChange(e.target.checked ? DAYS.filter((x) => x === d || days.includes(x)) : days.filter((x) => x !== d))}
            />
            <span>{d}</span>
          </label>
        ))}
      </div>
      {error ? <span className="field-error">{error}</span> : hint ? <span className="field-hint">{hint}</span> : null}
    </fieldset>
  );
}

/** Structured value as YAML text; `onChange` receives the parsed value (undefined when empty). */
export function YamlField({
  label,
  hint,
  error,
  value,
  onChange,
  placeholder,
  rows = 4,
  name,
}: Base & { value: unknown; onChange: (v: unknown) => void; placeholder?: string; rows?: number; name?: string }) {
  const id = useId();
  const emitted = useRef<unknown>(value);
  const [text, setText] = useState(() => toYaml(value).trimEnd());
  const [parseError, setParseError] = useState<string | null>(null);
  useEffect(() => {
    // The value changed from outside (undo, another node): show it.
    if (value !== emitted.current) {
      emitted.current = value;
      setText(toYaml(value).trimEnd());
      setParseError(null);
    }
  }, [value]);
  const change = (t: string) => {
    setText(t);
    if (!t.trim()) {
      setParseError(null);
      emitted.current = undefined;
      onChange(undefined);
      return;
    }
    try {
      const parsed = parseYaml(t);
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("Write a mapping, e.g. {trait: plan, eq: pro}");
      setParseError(null);
      emitted.current = parsed;
      onChange(parsed);
    } catch (err) {
      setParseError((err as Error).message);
    }
  };
  return (
    <Wrap label={label} hint={hint} error={parseError ?? error} htmlFor={id}>
      <textarea
        id={id}
        name={name}
        className="input mono"
        rows={rows}
        value={text}
        placeholder={placeholder}
        spellCheck={false}
        aria-invalid={parseError || error ? true : undefined}
        onChange={(e) => change(e.target.value)}
      />
    </Wrap>
  );
}

interface Row {
  key: string;
  value: string;
}

function rowsOf(value: unknown): Row[] {
  if (!value || typeof value !== "object" || Array.isArray(value)) return [];
  return Object.entries(value as Obj).map(([key, v]) => ({ key, value: scalarText(v) }));
}

/** A mapping edited as rows of key and value (values typed: 3 → number, true → boolean). */
export function KeyValueField({
  label,
  hint,
  error,
  value,
  onChange,
  keyPlaceholder = "name",
  valuePlaceholder = "value",
  raw,
  numeric,
}: Base & {
  value: unknown;
  onChange: (v: Obj | undefined) => void;
  keyPlaceholder?: string;
  valuePlaceholder?: string;
  raw?: boolean;
  numeric?: boolean;
}) {
  const groupId = useId();
  const emitted = useRef<unknown>(value);
  const [rows, setRows] = useState<Row[]>(() => rowsOf(value));
  useEffect(() => {
    if (value !== emitted.current) {
      emitted.current = value;
      setRows(rowsOf(value));
    }
  }, [value]);
  const commit = (next: Row[]) => {
    setRows(next);
    const obj: Obj = {};
    for (const r of next) {
      if (!r.key.trim()) continue;
      obj[r.key.trim()] = raw ? r.value : numeric ? (r.value === "" ? 0 : Number(r.value)) : scalar(r.value);
    }
    const out = Object.keys(obj).length ? obj : undefined;
    emitted.current = out;
    onChange(out);
  };
  return (
    <fieldset className={`field kv${error ? " has-error" : ""}`} aria-describedby={`${groupId}-hint`}>
      <legend className="field-label">{label}</legend>
      {rows.map((r, i) => (
        <div className="kv-row" key={i}>
          <input
            className="input mono"
            aria-label={`${typeof label === "string" ? label : "entry"} ${i + 1} name`}
            placeholder={keyPlaceholder}
            value={r.key}
            onChange={(e) => commit(rows.map((x, j) => (j === i ? { ...x, key: e.target.value } : x)))}
          />
          <input
            className="input mono"
            aria-label={`${typeof label === "string" ? label : "entry"} ${i + 1} value`}
            placeholder={valuePlaceholder}
            type={numeric ? "number" : "text"}
            value={r.value}
            onChange={(e) => commit(rows.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))}
          />
          <button type="button" className="icon-btn" aria-label={`Remove ${r.key || "entry"}`} onClick={() => commit(rows.filter((_, j) => j !== i))}>
            <Icon name="x" size={14} />
          </button>
        </div>
      ))}
      <button type="button" className="btn btn-ghost btn-sm" onClick={() => setRows([...rows, { key: "", value: "" }])}>
        <Icon name="plus" size={14} /> Add
      </button>
      {error ? <span className="field-error">{error}</span> : hint ? <span className="field-hint" id={`${groupId}-hint`}>{hint}</span> : null}
    </fieldset>
  );
}

/** A list of names typed comma-separated. */
export function ListField({ label, hint, error, value, onChange, placeholder }: Base & { value: unknown; onChange: (v: string[] | undefined) => void; placeholder?: string }) {
  const id = useId();
  const list = Array.isArray(value) ? (value as string[]) : [];
  const [text, setText] = useState(list.join(", "));
  const emitted = useRef<unknown>(value);
  useEffect(() => {
    if (value !== emitted.current) {
      emitted.current = value;
      setText(Array.isArray(value) ? (value as string[]).join(", ") : "");
    }
  }, [value]);
  return (
    <Wrap label={label} hint={hint} error={error} htmlFor={id}>
      <input
        id={id}
        className="input mono"
        value={text}
        placeholder={placeholder}
        onChange={(e) => {
          setText(e.target.value);
          const items = e.target.value.split(",").map((s) => s.trim()).filter(Boolean);
          const out = items.length ? items : undefined;
          emitted.current = out;
          onChange(out);
        }}
      />
    </Wrap>
  );
}

export function TextAreaField({ label, hint, error, value, onChange, rows = 4, placeholder }: Base & { value: unknown; onChange: (v: string) => void; rows?: number; placeholder?: string }) {
  const id = useId();
  return (
    <Wrap label={label} hint={hint} error={error} htmlFor={id}>
      <textarea id={id} className="input mono" rows={rows} value={scalarText(value)} placeholder={placeholder} spellCheck={false} onChange={(e) => onChange(e.target.value)} />
    </Wrap>
  );
}
