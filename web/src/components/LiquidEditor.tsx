// A plain textarea with Liquid highlighting: the text is drawn twice, once in a <pre> where
// `{{ output }}`, `{% tags %}` and `{% comment %}` blocks are coloured, and once in a transparent
// textarea on top that the person types into. Native editing, selection, undo and screen
// readers keep working because the textarea is the real control.
import { useId, useRef, type ReactNode } from "react";

const TOKEN = /(\{%-?\s*comment\s*-?%\}[\s\S]*?\{%-?\s*endcomment\s*-?%\}|\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\})/g;

/** The text split into plain runs and Liquid tokens, each token with its class. */
export function liquidTokens(text: string): Array<{ text: string; kind: "text" | "output" | "tag" | "comment" }> {
  const out: Array<{ text: string; kind: "text" | "output" | "tag" | "comment" }> = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const at = m.index ?? 0;
    if (at > last) out.push({ text: text.slice(last, at), kind: "text" });
    const t = m[0];
    out.push({ text: t, kind: /^\{%-?\s*comment/.test(t) ? "comment" : t.startsWith("{{") ? "output" : "tag" });
    last = at + t.length;
  }
  if (last < text.length) out.push({ text: text.slice(last), kind: "text" });
  return out;
}

export function LiquidEditor({
  label,
  value,
  onChange,
  rows = 3,
  hint,
  error,
  name,
}: {
  label: ReactNode;
  value: string;
  onChange: (v: string) => void;
  rows?: number;
  hint?: ReactNode;
  error?: string | null;
  name?: string;
}) {
  const id = useId();
  const pre = useRef<HTMLPreElement>(null);
  return (
    <div className={`field${error ? " has-error" : ""}`}>
      <label className="field-label" htmlFor={id}>
        {label}
      </label>
      <div className="liquid-editor">
        <pre ref={pre} aria-hidden="true" data-testid={name ? `liquid-${name}` : undefined}>
          {liquidTokens(value).map((t, i) =>
            t.kind === "text" ? (
              t.text
            ) : (
              <span key={i} className={`lq-${t.kind}`}>
                {t.text}
              </span>
            ),
          )}
          {/* A trailing newline in a textarea shows an empty line; the <pre> needs one too. */}
          {value.endsWith("\n") ? " " : null}
        </pre>
        <textarea
          id={id}
          name={name}
          rows={rows}
          value={value}
          spellCheck={false}
          aria-invalid={error ? true : undefined}
          onChange={(e) => onChange(e.target.value)}
          onScroll={(e) => {
            if (pre.current) pre.current.scrollTop = e.currentTarget.scrollTop;
          }}
        />
      </div>
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
