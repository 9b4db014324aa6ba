// YAML in and out, in YAML 1.1 like the server's PyYAML: `on`, `yes` and `10:30` are quoted
// when written, and read back the way the server would read them.
import YAML, { isScalar, isSeq } from "yaml";

export function toYaml(value: unknown): string {
  if (value === undefined || value === null) return "";
  const doc = new YAML.Document(value, { version: "1.1" });
  // Short lists of scalars read best inline: `weekdays: [mon, fri]`.
  YAML.visit(doc, {
    Seq(_, node) {
      if (isSeq(node) && node.items.length <= 8 && node.items.every((i) => isScalar(i))) node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0 });
}

export function parseYaml(text: string): unknown {
  const doc = YAML.parseDocument(text, { version: "1.1", prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const line = e.linePos?.[0];
    throw new Error(line ? `Line ${line.line}, column ${line.col}: ${e.message.split("\n")[0]}` : e.message.split("\n")[0]);
  }
  return doc.toJS();
}

/** A single value typed in a form: numbers and booleans as such, anything else as text. */
export function scalar(text: string): unknown {
  const t = text.trim();
  if (t === "") return "";
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  if (t === "true") return true;
  if (t === "false") return false;
  if (t === "null") return null;
  return text;
}

export function scalarText(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}
