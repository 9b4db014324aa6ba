// Reading the condition language's JSON Schema (GET /api/v1/conditions/schema) into what the
// builder needs: the kinds of condition node, each one's discriminating field, operators and
// other options. Nothing here knows the condition language itself: a new leaf or operator on
// the server appears in the builder without a console change.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type Obj = Record<string, Json>;

/** A JSON Schema node, as much of it as the builder reads. */
export interface Schema {
  $ref?: string;
  $defs?: Record<string, Schema>;
  type?: string;
  title?: string;
  description?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema;
  prefixItems?: Schema[];
  enum?: Json[];
  const?: Json;
  minimum?: number;
  maximum?: number;
}

/** One kind of condition node (`all`, `event`, `trait`...) as the schema defines it. */
export interface NodeKind {
  /** The field that names the kind, e.g. `event` (it is also the key of the value). */
  field: string;
  title: string;
  description: string;
  /** The definition itself. */
  def: Schema;
  /** Comparison operators when exactly one of them is required (leaves), in schema order. */
  operators: string[];
  /** Group kinds hold a list (`all`, `any`) or one node (`not`) of conditions. */
  group: "list" | "single" | null;
}

export class ConditionSchema {
  readonly root: Schema;
  readonly kinds: NodeKind[];

  constructor(root: Schema) {
    this.root = root;
    this.kinds = this.variants(root).map((def) => this.kindOf(def));
  }

  /** Follow `$ref`s to the definition they name. */
  resolve(schema: Schema): Schema {
    let s = schema;
    for (let i = 0; s.$ref && i < 20; i++) {
      const name = s.$ref.replace(/^#\/\$defs\//, "");
      s = this.root.$defs?.[name] ?? {};
    }
    return s;
  }

  /** The alternatives of a union (`anyOf`/`oneOf` of refs), resolved. */
  variants(schema: Schema): Schema[] {
    const list = schema.anyOf ?? schema.oneOf ?? [];
    return list.map((s) => this.resolve(s));
  }

  /** Whether a schema holds a condition node (a union of the condition kinds). */
  isCondition(schema: Schema): boolean {
    const list = schema.anyOf ?? schema.oneOf;
    return !!list && list.length > 1 && list.every((s) => !!s.$ref) && this.variants(schema).every((d) => !!d.required?.length);
  }

  /** Operators: a definition whose `oneOf` lists one required field per alternative. */
  operatorsOf(def: Schema): string[] {
    const alts = def.oneOf ?? [];
    if (!alts.length || !alts.every((a) => a.required?.length === 1)) return [];
    return alts.map((a) => a.required![0]);
  }

  private kindOf(def: Schema): NodeKind {
    const field = def.required?.[0] ?? Object.keys(def.properties ?? {})[0] ?? "?";
    const prop = this.resolve(def.properties?.[field] ?? {});
    let group: NodeKind["group"] = null;
    if (prop.type === "array" && prop.items && this.isCondition(prop.items)) group = "list";
    else if (this.isCondition(prop)) group = "single";
    return {
      field,
      title: def.title ?? field,
      description: def.description ?? "",
      def,
      operators: this.operatorsOf(def),
      group,
    };
  }

  /** The kind of a condition value (the first of its keys that names a kind). */
  kindOfValue(value: Json): NodeKind | null {
    if (!value || typeof value !== "object" || Array.isArray(value)) return null;
    return this.kinds.find((k) => k.field in value) ?? null;
  }

  kind(field: string): NodeKind | undefined {
    return this.kinds.find((k) => k.field === field);
  }

  /** A fresh node of a kind, with the first operator when it has some. */
  blank(field: string): Obj {
    const kind = this.kind(field);
    if (!kind) return {};
    if (kind.group === "list") return { [field]: [] };
    if (kind.group === "single") return { [field]: this.blank(this.defaultLeaf()) };
    const prop = this.resolve(kind.def.properties?.[field] ?? {});
    const out: Obj = { [field]: prop.type === "object" || prop.properties ? this.blankObject(prop) : "" };
    return out;
  }

  /** An object field (e.g. a bucket spec): its required fields, empty. */
  blankObject(def: Schema): Obj {
    const out: Obj = {};
    for (const r of def.required ?? []) out[r] = "";
    return out;
  }

  /** The leaf a new condition starts as: events first, it is what most segments read. */
  defaultLeaf(): string {
    return this.kinds.find((k) => k.field === "event")?.field ?? this.kinds.find((k) => !k.group)?.field ?? "all";
  }

  /** Options of a definition besides its kind field and its operators (and `type`). */
  optionsOf(def: Schema, skip: string[]): Array<[string, Schema]> {
    const ops = new Set(this.operatorsOf(def));
    return Object.entries(def.properties ?? {}).filter(([name]) => !skip.includes(name) && !ops.has(name));
  }
}

/** The JSON types a scalar field accepts. */
export function scalarTypes(schema: Schema, resolve: (s: Schema) => Schema): Set<string> {
  const s = resolve(schema);
  const out = new Set<string>();
  if (s.const !== undefined) out.add(typeof s.const);
  if (s.type) out.add(s.type === "integer" ? "number" : s.type);
  for (const alt of s.anyOf ?? s.oneOf ?? []) for (const t of scalarTypes(alt, resolve)) out.add(t);
  return out;
}

/** Text typed in a field, as the JSON value the schema wants (numbers and booleans parsed). */
export function coerce(text: string, types: Set<string>): Json {
  const t = text.trim();
  if (types.has("number") && t !== "" && /^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (types.has("boolean") && (t === "true" || t === "false")) return t === "true";
  return types.has("string") || types.size === 0 ? text : t === "" ? "" : text;
}

/** A value as the text a field shows. */
export function asText(value: Json | undefined): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** Humanise a schema name: `first_performed` → "first performed". */
export function words(name: string): string {
  return name.replace(/_/g, " ");
}

/** The condition as the API receives it: a copy without `undefined` holes. Empty fields are
 * sent as they are, so the server names the one to fill in (with its JSON path). */
export function prune(value: Json): Json {
  return JSON.parse(JSON.stringify(value ?? null)) as Json;
}
