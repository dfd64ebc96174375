/**
 * Prompt templates: versioned files `stages/prompts/<name>.v<N>.md` holding the UTGen App. E prompts.
 * A file starts with an HTML comment (provenance: what is verbatim, what was restored and from where);
 * everything after it is the prompt. `hash` is the sha256 of the whole file and joins the LLM cache keys
 * and stage fingerprints, so editing a template (even its header) re-asks the model.
 * `render` fills `{placeholder}`s in one pass (values are never re-scanned) and throws a one-line
 * UserError when a placeholder has no value.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../../pipeline/errors.ts";
import { sha256 } from "../../pipeline/util.ts";

export const PROMPTS_DIR = path.dirname(fileURLToPath(import.meta.url));

/** The templates shipped with the project (latest versions are picked by loadTemplate). */
export const TEMPLATE_NAMES = [
  "utgen_ut",
  "random_ut",
  "random_joint_ut",
  "corrupt_code",
  "rationalize_output",
  // UTDebug (stages/debug): the debugger chat, its feedback turns and the self-consistency fallback.
  "code_generation",
  "he_code_generation",
  "ut_feedback",
  "no_ut_feedback",
  "unit_output",
] as const;
export type TemplateName = (typeof TEMPLATE_NAMES)[number];

export interface PromptTemplate {
  name: string;
  /** "v1", "v2" … (from the file name). */
  version: string;
  /** The prompt text (header comment removed). */
  text: string;
  /** sha256 of the template file. */
  hash: string;
  /** Placeholder names in order of first appearance. */
  placeholders: string[];
  render(vars: Record<string, string>): string;
}

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
const cache = new Map<string, Promise<PromptTemplate>>();

/**
 * Load `name` (latest version) or `name.vN` (that version) from `dir` (default: this folder).
 * Throws a one-line UserError naming the available templates when it does not exist.
 */
export function loadTemplate(name: string, dir: string = PROMPTS_DIR): Promise<PromptTemplate> {
  const key = `${dir}\0${name}`;
  let p = cache.get(key);
  if (!p) {
    p = load(name, dir);
    cache.set(key, p);
    p.catch(() => cache.delete(key));
  }
  return p;
}

async function load(name: string, dir: string): Promise<PromptTemplate> {
  const m = /^([a-z0-9_]+)(?:\.(v\d+))?$/.exec(name);
  if (!m) throw new UserError(`prompt template name "${name}" is not valid: use a name like "utgen_ut" or "utgen_ut.v1"`);
  const [, base, wanted] = m;
  const files = (await fsp.readdir(dir).catch(() => [] as string[])).filter((f) => /^[a-z0-9_]+\.v\d+\.md$/.test(f));
  const versions = files
    .map((f) => /^([a-z0-9_]+)\.v(\d+)\.md$/.exec(f)!)
    .filter((x) => x[1] === base)
    .map((x) => Number(x[2]))
    .sort((a, b) => a - b);
  const version = wanted ? Number(wanted.slice(1)) : versions.at(-1);
  if (version === undefined || !versions.includes(version)) {
    const avail = [...new Set(files.map((f) => f.replace(/\.md$/, "")))].sort().join(", ");
    throw new UserError(`prompt template "${name}" not found in ${dir}: available are ${avail || "none"}`);
  }
  const file = path.join(dir, `${base}.v${version}.md`);
  const raw = await fsp.readFile(file, "utf8");
  return makeTemplate(base, `v${version}`, raw);
}

/** Build a template from file content (exported for tests of the rendering rules). */
export function makeTemplate(name: string, version: string, raw: string): PromptTemplate {
  const text = stripHeader(raw).replace(/\r\n/g, "\n").replace(/\n+$/, "");
  const placeholders = [...new Set([...text.matchAll(PLACEHOLDER)].map((x) => x[1]))];
  return {
    name,
    version,
    text,
    hash: sha256(raw),
    placeholders,
    render(vars: Record<string, string>): string {
      const missing = placeholders.filter((p) => typeof vars[p] !== "string");
      if (missing.length)
        throw new UserError(`prompt template ${name}.${version} needs ${missing.map((p) => `{${p}}`).join(", ")}: pass ${missing.join(", ")} to render()`);
      return text.replace(PLACEHOLDER, (all, p: string) => vars[p]);
    },
  };
}

function stripHeader(raw: string): string {
  const s = raw.replace(/^\uFEFF/, "");
  if (!s.startsWith("<!--")) return s;
  const end = s.indexOf("-->");
  if (end < 0) return s;
  return s.slice(end + 3).replace(/^\r?\n/, "");
}
