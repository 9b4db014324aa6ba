// The condition builder, generated from the condition language's JSON Schema: every kind of
// node (all / any / not, event, trait, computed trait, segment, random bucket), operator and
// option the server's schema lists becomes a labelled form control. It edits the same JSON the
// API stores, so what you build is exactly what `PUT /api/v1/segments/{key}` receives.
import { createContext, useContext, useId, type ReactNode } from "react";
import { Button } from "../components/ui";
import { ConditionSchema, asText, coerce, scalarTypes, words, type Json, type Obj, type Schema } from "./schema";

/** Names the builder can suggest for a kind field (e.g. segment keys for `segment`). */
export type Suggestions = Record<string, string[]>;

const Ctx = createContext<{ schema: ConditionSchema; suggestions: Suggestions } | null>(null);

function useCtx() {
  const c = useContext(Ctx);
  if (!c) throw new Error("condition builder outside its provider");
  return c;
}

const OPERATOR_LABELS: Record<string, string> = {
  eq: "equals",
  ne: "does not equal",
  gt: "is greater than",
  gte: "is at least",
  lt: "is less than",
  lte: "is at most",
  between: "is between",
  in: "is one of",
  not_in: "is none of",
  contains: "contains",
  starts_with: "starts with",
  ends_with: "ends with",
  exists: "exists",
  not_exists: "does not exist",
  before: "is before",
  after: "is after",
  between_dates: "is between dates",
  within_last: "is within the last",
  within_next: "is within the next",
};

const KIND_LABELS: Record<string, string> = {
  all: "All of",
  any: "Any of",
  not: "Not",
  event: "Event",
  trait: "Trait",
  computed_trait: "Computed trait",
  segment: "In segment",
  random_bucket: "Random bucket",
};

const label = (map: Record<string, string>, name: string) => map[name] ?? words(name);

function isObj(v: Json | undefined): v is Obj {
  return !!v && typeof v === "object" && !Array.isArray(v);
}

/** The whole builder: one root condition. */
export function ConditionBuilder({
  schema,
  value,
  onChange,
  suggestions = {},
}: {
  schema: ConditionSchema;
  value: Json;
  onChange: (v: Json) => void;
  suggestions?: Suggestions;
}) {
  return (
    <Ctx.Provider value={{ schema, suggestions }}>
      <div className="cond-builder" data-testid="condition-builder">
        <ConditionNode value={value} onChange={onChange} depth={0} />
      </div>
    </Ctx.Provider>
  );
}

function ConditionNode({ value, onChange, onRemove, depth }: { value: Json; onChange: (v: Json) => void; onRemove?: () => void; depth: number }) {
  const { schema } = useCtx();
  const kind = schema.kindOfValue(value);
  const id = useId();
  const node = isObj(value) ? value : {};
  return (
    <div className={`cond-node${kind?.group ? " cond-group" : ""}`} role="group" aria-label={kind ? label(KIND_LABELS, kind.field) : "Condition"}>
      <div className="cond-row">
        <label className="sr-only" htmlFor={`${id}-kind`}>
          Condition kind
        </label>
        <select
          id={`${id}-kind`}
          className="input cond-kind"
          value={kind?.field ?? ""}
          title={kind?.description}
          onChange={(e) => onChange(schema.blank(e.target.value))}
        >
          {kind ? null : <option value="">Choose…</option>}
          {schema.kinds.map((k) => (
            <option key={k.field} value={k.field}>
              {label(KIND_LABELS, k.field)}
            </option>
          ))}
        </select>
        {kind && !kind.group ? <ObjectFields def={kind.def} value={node} onChange={onChange} keyField={kind.field} keyLabel={label(KIND_LABELS, kind.field)} /> : null}
        {onRemove ? <Button tone="ghost" icon="x" className="cond-remove" aria-label="Remove this condition" onClick={onRemove} /> : null}
      </div>
      {kind?.group === "list" ? (
        <GroupList items={Array.isArray(node[kind.field]) ? (node[kind.field] as Json[]) : []} onChange={(items) => onChange({ ...node, [kind.field]: items })} depth={depth} />
      ) : null}
      {kind?.group === "single" ? (
        <div className="cond-children">
          <ConditionNode value={node[kind.field] ?? null} onChange={(v) => onChange({ ...node, [kind.field]: v })} depth={depth + 1} />
        </div>
      ) : null}
    </div>
  );
}

function GroupList({ items, onChange, depth }: { items: Json[]; onChange: (items: Json[]) => void; depth: number }) {
  const { schema } = useCtx();
  return (
    <div className="cond-children">
      {items.length === 0 ? <p className="muted small">No conditions in this group yet.</p> : null}
      {items.map((item, i) => (
        <ConditionNode
          key={i}
          value={item}
          depth={depth + 1}
          onChange={(v) => onChange(items.map((x, j) => (j === i ? v : x)))}
          onRemove={() => onChange(items.filter((_, j) => j !== i))}
        />
      ))}
      <div className="cond-add">
        <Button tone="ghost" icon="plus" onClick={() => onChange([...items, schema.blank(schema.defaultLeaf())])}>
          Add condition
        </Button>
        {depth < 3 ? (
          <Button tone="ghost" icon="layers" onClick={() => onChange([...items, schema.blank("any")])}>
            Add group
          </Button>
        ) : null}
      </div>
    </div>
  );
}

/**
 * An object of the schema (a leaf, a property filter, a count, a bucket): its key field, its
 * operator with the operator's value, and its other options (added on demand).
 */
function ObjectFields({ def, value, onChange, keyField, keyLabel }: { def: Schema; value: Obj; onChange: (v: Obj) => void; keyField?: string; keyLabel?: string }) {
  const { schema, suggestions } = useCtx();
  const operators = schema.operatorsOf(def);
  const keyFields = keyField ? [keyField] : (def.required ?? []).filter((r) => !operators.includes(r));
  const op = operators.find((o) => o in value) ?? null;
  const options = schema.optionsOf(def, keyFields);
  const shown = options.filter(([name]) => name in value);
  const hidden = options.filter(([name]) => !(name in value));
  const id = useId();
  const set = (name: string, v: Json | undefined) => {
    const next = { ...value };
    if (v === undefined) delete next[name];
    else next[name] = v;
    onChange(next);
  };
  return (
    <div className="cond-fields">
      {keyFields.map((name) => (
        <ValueInput key={name} name={name} label={keyField === name && keyLabel ? `${keyLabel} name` : words(name)} schema={def.properties?.[name] ?? {}} value={value[name]} onChange={(v) => set(name, v)} suggestions={suggestions[name]} />
      ))}
      {operators.length ? (
        <>
          <label className="sr-only" htmlFor={`${id}-op`}>
            Operator
          </label>
          <select
            id={`${id}-op`}
            className="input cond-op"
            value={op ?? ""}
            onChange={(e) => {
              const next = { ...value };
              const old = op !== null ? next[op] : undefined;
              for (const o of operators) delete next[o];
              const target = schema.resolve(def.properties?.[e.target.value] ?? {});
              next[e.target.value] = target.const !== undefined ? target.const : typeof old === "string" || typeof old === "number" ? old : "";
              onChange(next);
            }}
          >
            {op === null ? <option value="">operator…</option> : null}
            {operators.map((o) => (
              <option key={o} value={o}>
                {label(OPERATOR_LABELS, o)}
              </option>
            ))}
          </select>
          {op !== null ? <ValueInput name={op} label="Value" schema={def.properties?.[op] ?? {}} value={value[op]} onChange={(v) => set(op, v ?? "")} /> : null}
        </>
      ) : null}
      {shown.map(([name, s]) => (
        <div key={name} className="cond-option">
          <ValueInput name={name} label={words(name)} schema={s} value={value[name]} onChange={(v) => set(name, v)} showLabel />
          <Button tone="ghost" icon="x" className="cond-remove" aria-label={`Remove ${words(name)}`} onClick={() => set(name, undefined)} />
        </div>
      ))}
      {hidden.length ? (
        <>
          <label className="sr-only" htmlFor={`${id}-more`}>
            Add an option
          </label>
          <select
            id={`${id}-more`}
            className="input cond-more"
            value=""
            onChange={(e) => {
              const name = e.target.value;
              const s = schema.resolve(def.properties?.[name] ?? {});
              set(name, initial(schema, s));
            }}
          >
            <option value="">+ option…</option>
            {hidden.map(([name, s]) => (
              <option key={name} value={name} title={s.description}>
                {words(name)}
              </option>
            ))}
          </select>
        </>
      ) : null}
    </div>
  );
}

/** A new value for an option: an empty list, object or text, as its schema says. */
function initial(schema: ConditionSchema, s: Schema): Json {
  if (s.type === "boolean") return true;
  if (s.const !== undefined) return s.const;
  if (s.enum?.length) return s.enum[0];
  if (s.type === "array" && s.prefixItems) return s.prefixItems.map(() => "");
  if (s.type === "array") return [];
  if (s.properties) {
    const ops = schema.operatorsOf(s);
    return ops.length ? { [ops[0]]: "" } : schema.blankObject(s);
  }
  return "";
}

/** One value, drawn from its schema: checkbox, select, pair, list, nested object or text. */
function ValueInput({
  name,
  label: text,
  schema: raw,
  value,
  onChange,
  suggestions,
  showLabel,
}: {
  name: string;
  label: string;
  schema: Schema;
  value: Json | undefined;
  onChange: (v: Json | undefined) => void;
  suggestions?: string[];
  showLabel?: boolean;
}) {
  const { schema } = useCtx();
  const id = useId();
  const s = schema.resolve(raw);
  const lab = (
    <label className={showLabel ? "cond-label" : "sr-only"} htmlFor={id}>
      {text}
    </label>
  );
  const wrap = (control: ReactNode) => (
    <span className="cond-value" title={s.description}>
      {lab}
      {control}
    </span>
  );

  if (s.const !== undefined) return showLabel ? <span className="cond-label">{text}</span> : null;
  if (s.type === "boolean") {
    return (
      <label className="check cond-check">
        <input type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} /> {text}
      </label>
    );
  }
  if (s.enum?.length) {
    return wrap(
      <select id={id} className="input" value={asText(value)} onChange={(e) => onChange(e.target.value)}>
        {s.enum.map((v) => (
          <option key={asText(v)} value={asText(v)}>
            {asText(v)}
          </option>
        ))}
      </select>,
    );
  }
  if (s.type === "array" && s.prefixItems) {
    const pair = Array.isArray(value) ? value : ["", ""];
    return (
      <span className="cond-value cond-pair" role="group" aria-label={text}>
        {showLabel ? <span className="cond-label">{text}</span> : null}
        {s.prefixItems.map((item, i) => (
          <input
            key={i}
            className="input"
            aria-label={`${text} ${i === 0 ? "from" : "to"}`}
            value={asText(pair[i])}
            onChange={(e) => onChange(pair.map((x, j) => (j === i ? coerce(e.target.value, scalarTypes(item, (q) => schema.resolve(q))) : x)))}
          />
        ))}
      </span>
    );
  }
  if (s.type === "array" && s.items) {
    const item = schema.resolve(s.items);
    const list = Array.isArray(value) ? value : [];
    if (item.properties) {
      return (
        <fieldset className="cond-sub">
          <legend className="cond-label">{text}</legend>
          {list.map((x, i) => (
            <div key={i} className="cond-row">
              <ObjectFields def={item} value={isObj(x) ? x : {}} onChange={(v) => onChange(list.map((y, j) => (j === i ? v : y)))} />
              <Button tone="ghost" icon="x" className="cond-remove" aria-label={`Remove ${words(name)} ${i + 1}`} onClick={() => onChange(list.filter((_, j) => j !== i))} />
            </div>
          ))}
          <Button tone="ghost" icon="plus" onClick={() => onChange([...list, initial(schema, item)])}>
            Add {words(name).replace(/s$/, "")}
          </Button>
        </fieldset>
      );
    }
    const types = scalarTypes(item, (q) => schema.resolve(q));
    return wrap(
      <input
        id={id}
        className="input"
        placeholder="a, b, c"
        value={list.map(asText).join(", ")}
        onChange={(e) =>
          onChange(
            e.target.value
              .split(",")
              .map((p) => p.trim())
              .filter((p) => p !== "")
              .map((p) => coerce(p, types)),
          )
        }
      />,
    );
  }
  if (s.properties) {
    return (
      <fieldset className="cond-sub cond-inline">
        <legend className="cond-label">{text}</legend>
        <ObjectFields def={s} value={isObj(value) ? value : {}} onChange={onChange} />
      </fieldset>
    );
  }
  const types = scalarTypes(s, (q) => schema.resolve(q));
  const listId = suggestions?.length ? `${id}-list` : undefined;
  return wrap(
    <>
      <input
        id={id}
        className="input"
        value={asText(value)}
        list={listId}
        placeholder={name === "within" || name === "within_last" || name === "within_next" ? "e.g. 30d" : types.has("number") && !types.has("string") ? "number" : undefined}
        inputMode={types.has("number") && !types.has("string") ? "decimal" : undefined}
        autoComplete="off"
        spellCheck={false}
        onChange={(e) => onChange(coerce(e.target.value, types))}
      />
      {listId ? (
        <datalist id={listId}>
          {suggestions?.map((o) => (
            <option key={o} value={o} />
          ))}
        </datalist>
      ) : null}
    </>,
  );
}
