/**
 * Parsing the trainer's console output into progress events.
 *
 * Three formats appear in the log of a TRL / transformers run:
 *  - our callback's lines `[utgen] {"event":"log","step":10,"max_steps":200,"epoch":0.5,"loss":1.23,…}`
 *    (trainers/sft_train.py) — exact, with the global step;
 *  - transformers' own log lines, Python `str(dict)` text with values pre-formatted as strings:
 *    `{'loss': '1.2345', 'grad_norm': '0.51', 'learning_rate': '4.9e-06', 'epoch': '0.5'}` (no step);
 *  - tqdm bars, updated with carriage returns: ` 5%|▌         | 10/200 [00:31<09:50,  3.11s/it]`.
 * When the callback's lines are present, the dict lines repeat them and are not recorded twice (our
 * callback runs before transformers' progress callback, so its line comes first).
 */

export type Metrics = Record<string, number | string | boolean | null>;

export type ProgressEvent =
  | { kind: "begin"; step: number; maxSteps: number; epoch: number | null }
  | { kind: "log"; source: "callback" | "stdout"; step: number | null; maxSteps: number | null; epoch: number | null; metrics: Metrics }
  | { kind: "save"; step: number; epoch: number | null; checkpoint: string | null }
  | { kind: "end"; step: number; maxSteps: number; epoch: number | null }
  | { kind: "bar"; current: number; total: number; secondsPerStep: number | null; described: boolean };

export const CALLBACK_PREFIX = "[utgen] ";

const num = (v: unknown): number | null => {
  if (typeof v === "number") return Number.isFinite(v) ? v : null;
  if (typeof v === "string" && v.trim() !== "" && !Number.isNaN(Number(v))) return Number(v);
  return null;
};

/** Parse Python `str(dict)` text of flat scalars (what transformers prints for logs). */
export function parsePythonDict(line: string): Metrics | null {
  const t = line.trim();
  if (!t.startsWith("{'") || !t.endsWith("}")) return null;
  const out: Metrics = {};
  const re = /'([^'\\]+)':\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^,}]+)\s*(?:,|\})/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(t))) {
    consumed++;
    const raw = m[2].trim();
    let v: number | string | boolean | null;
    if (raw.startsWith("'") || raw.startsWith('"')) {
      const s = raw.slice(1, -1).replace(/\\(.)/g, "$1");
      v = num(s) ?? s;
    } else if (raw === "None" || raw === "nan" || raw === "inf" || raw === "-inf") v = null;
    else if (raw === "True" || raw === "False") v = raw === "True";
    else v = num(raw) ?? raw;
    out[m[1]] = v;
  }
  return consumed ? out : null;
}

const BAR_RE = /(\d+)%\|[^|]*\|\s*(\d+)\/(\d+)\s*\[[^\]]*?(?:,\s*([\d.]+)(s\/it|it\/s))?\]/;

/**
 * A tqdm bar. `described` bars carry a label ("Loading checkpoint shards:", "Map:", "Tokenizing …"):
 * the Trainer's own training and evaluation bars have none.
 */
export function parseTqdm(line: string): { current: number; total: number; secondsPerStep: number | null; described: boolean } | null {
  const m = BAR_RE.exec(line);
  if (!m) return null;
  const rate = m[4] ? Number(m[4]) : null;
  const secondsPerStep = rate === null || rate === 0 ? null : m[5] === "s/it" ? rate : 1 / rate;
  return { current: Number(m[2]), total: Number(m[3]), secondsPerStep, described: line.slice(0, m.index).trim() !== "" };
}

/** One console line → an event (or null). */
export function parseLine(line: string): ProgressEvent | null {
  const at = line.indexOf(CALLBACK_PREFIX);
  if (at >= 0) {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line.slice(at + CALLBACK_PREFIX.length));
    } catch {
      return null;
    }
    const step = num(rec.step) ?? 0;
    const maxSteps = num(rec.max_steps) ?? 0;
    const epoch = num(rec.epoch);
    switch (rec.event) {
      case "begin":
        return { kind: "begin", step, maxSteps, epoch };
      case "end":
        return { kind: "end", step, maxSteps, epoch };
      case "save":
        return { kind: "save", step, epoch, checkpoint: typeof rec.checkpoint === "string" ? rec.checkpoint : null };
      case "log": {
        const metrics: Metrics = {};
        for (const [k, v] of Object.entries(rec)) {
          if (["event", "step", "max_steps", "epoch", "time"].includes(k)) continue;
          if (v === null || ["number", "string", "boolean"].includes(typeof v)) metrics[k] = v as Metrics[string];
        }
        return { kind: "log", source: "callback", step, maxSteps, epoch, metrics };
      }
      default:
        return null;
    }
  }
  const dict = parsePythonDict(line);
  if (dict) {
    const { epoch, ...metrics } = dict;
    return { kind: "log", source: "stdout", step: null, maxSteps: null, epoch: num(epoch), metrics };
  }
  const bar = parseTqdm(line);
  return bar ? { kind: "bar", ...bar } : null;
}

/** A row of metrics.jsonl. */
export interface MetricRow {
  time: string;
  step: number | null;
  max_steps: number | null;
  epoch: number | null;
  source: "callback" | "stdout";
  /** Optimizer steps and training samples per second since the previous row (effective batch). */
  steps_per_s?: number;
  samples_per_s?: number;
  tokens_per_s?: number;
  [metric: string]: unknown;
}

/** The live state of a run, folded from events. */
export class ProgressState {
  step = 0;
  maxSteps = 0;
  epoch: number | null = null;
  last: Metrics = {};
  secondsPerStep: number | null = null;
  callbackSeen = false;
  private barTotal: number | null = null;
  private prev: { t: number; step: number; tokens: number | null } | null = null;

  constructor(private readonly effectiveBatch: number, private readonly now: () => number = Date.now) {}

  /** Fold one event in; returns the metrics row to record, if any. */
  apply(ev: ProgressEvent): MetricRow | null {
    switch (ev.kind) {
      case "begin":
      case "end":
        this.callbackSeen = true;
        this.step = ev.step;
        if (ev.maxSteps) this.maxSteps = ev.maxSteps;
        this.epoch = ev.epoch ?? this.epoch;
        return null;
      case "save":
        this.callbackSeen = true;
        this.step = Math.max(this.step, ev.step);
        return null;
      case "bar":
        // Labelled bars (shard loading, dataset maps) and evaluation bars (other totals) are not training
        // progress: follow the first unlabelled bar, or the one whose total is max_steps when known.
        if (ev.described) return null;
        if (this.maxSteps ? ev.total !== this.maxSteps : this.barTotal !== null && ev.total !== this.barTotal) return null;
        this.barTotal = ev.total;
        if (!this.maxSteps) this.maxSteps = ev.total;
        this.step = Math.max(this.step, ev.current);
        if (ev.secondsPerStep !== null) this.secondsPerStep = ev.secondsPerStep;
        return null;
      case "log": {
        if (ev.source === "callback") this.callbackSeen = true;
        else if (this.callbackSeen) return null; // transformers' copy of a line the callback already gave
        if (ev.step !== null) this.step = ev.step;
        if (ev.maxSteps) this.maxSteps = ev.maxSteps;
        if (ev.epoch !== null) this.epoch = ev.epoch;
        this.last = { ...this.last, ...ev.metrics };
        const t = this.now();
        const row: MetricRow = {
          time: new Date(t).toISOString(),
          step: ev.step ?? (this.step || null),
          max_steps: this.maxSteps || null,
          epoch: ev.epoch,
          source: ev.source,
          ...ev.metrics,
        };
        const tokens = num(ev.metrics.num_tokens);
        const step = row.step;
        if (this.prev && step !== null && t > this.prev.t && step > this.prev.step) {
          const dt = (t - this.prev.t) / 1000;
          row.steps_per_s = round((step - this.prev.step) / dt);
          row.samples_per_s = round(((step - this.prev.step) * this.effectiveBatch) / dt);
          if (tokens !== null && this.prev.tokens !== null) row.tokens_per_s = round((tokens - this.prev.tokens) / dt);
        }
        if (step !== null && (ev.metrics.loss !== undefined || tokens !== null)) this.prev = { t, step, tokens };
        return row;
      }
    }
  }

  /** "epoch 1.50 | loss 1.2345 | lr 4.9e-06 | 3.1 s/step" */
  summary(): string {
    const parts: string[] = [];
    if (this.epoch !== null) parts.push(`epoch ${this.epoch.toFixed(2)}`);
    const loss = num(this.last.loss);
    if (loss !== null) parts.push(`loss ${loss.toFixed(4)}`);
    const lr = num(this.last.learning_rate);
    if (lr !== null) parts.push(`lr ${lr.toExponential(2)}`);
    const gn = num(this.last.grad_norm);
    if (gn !== null) parts.push(`grad ${gn.toFixed(3)}`);
    if (this.secondsPerStep !== null) parts.push(`${this.secondsPerStep.toFixed(2)} s/step`);
    return parts.join(" | ");
  }
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Split a byte stream into lines on \n and \r (tqdm redraws with \r); `push` returns complete lines,
 * `flush` the remainder.
 */
export class LineSplitter {
  private buf = "";
  push(chunk: string): string[] {
    this.buf += chunk;
    const parts = this.buf.split(/\r\n|\r|\n/);
    this.buf = parts.pop() ?? "";
    return parts;
  }
  flush(): string[] {
    const rest = this.buf;
    this.buf = "";
    return rest ? [rest] : [];
  }
}
