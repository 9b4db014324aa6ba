// The same journey as a YAML document: view, copy, download, or edit and apply back to the
// canvas. What is shown is exactly what Save sends (as JSON) and `legato apply -f` reads.
import { useMemo, useRef, useState } from "react";
import { Button } from "../components/ui";
import { fromDocument, toDocument, type JourneyDoc } from "./model";
import { parseYaml, toYaml } from "./yaml";

export function download(filename: string, text: string, type = "application/yaml") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function YamlPanel({ doc, onApply, onClose }: { doc: JourneyDoc; onApply: (doc: JourneyDoc) => void; onClose: () => void }) {
  const yamlText = useMemo(() => toYaml(toDocument(doc)), [doc]);
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [copied, setCopied] = useState(false);
  const fileRef = useRef<HTMLInputElement>(null);

  const apply = (text: string) => {
    try {
      const next = fromDocument(parseYaml(text));
      onApply(next);
      setEditing(false);
      setError(null);
    } catch (err) {
      setError((err as Error).message);
    }
  };

  return (
    <div className="yaml-panel" data-testid="yaml-panel">
      <div className="yaml-head">
        <h2>Journey as YAML</h2>
        <Button tone="ghost" icon="x" aria-label="Close YAML view" onClick={onClose} />
      </div>
      <div className="yaml-actions">
        {editing ? (
          <>
            <Button tone="primary" icon="check" onClick={() => apply(draft)}>
              Apply to canvas
            </Button>
            <Button
              onClick={() => {
                setEditing(false);
                setError(null);
              }}
            >
              Cancel
            </Button>
          </>
        ) : (
          <>
            <Button icon="download" onClick={() => download(`${doc.key || "journey"}.yaml`, yamlText)}>
              Download
            </Button>
            <Button
              icon="copy"
              onClick={() => {
                void navigator.clipboard?.writeText(yamlText).then(
                  () => {
                    setCopied(true);
                    setTimeout(() => setCopied(false), 1500);
                  },
                  () => setError("The browser did not allow copying; select the text instead."),
                );
              }}
            >
              {copied ? "Copied" : "Copy"}
            </Button>
            <Button
              icon="code"
              onClick={() => {
                setDraft(yamlText);
                setEditing(true);
              }}
            >
              Edit
            </Button>
            <Button icon="upload" onClick={() => fileRef.current?.click()}>
              Open file
            </Button>
            <input
              ref={fileRef}
              type="file"
              accept=".yaml,.yml,.json,application/yaml,application/json"
              hidden
              data-testid="yaml-file"
              onChange={(e) => {
                const file = e.target.files?.[0];
                e.target.value = "";
                if (file) void file.text().then(apply);
              }}
            />
          </>
        )}
      </div>
      {error ? (
        <p className="yaml-error" role="alert">
          {error}
        </p>
      ) : null}
      {editing ? (
        <textarea
          className="yaml-editor mono"
          aria-label="Journey YAML"
          data-testid="yaml-editor"
          value={draft}
          spellCheck={false}
          onChange={(e) => setDraft(e.target.value)}
        />
      ) : (
        <pre className="yaml-view" data-testid="yaml-view" tabIndex={0} aria-label="Journey YAML">
          {yamlText}
        </pre>
      )}
    </div>
  );
}
