/**
 * Report renderers (pure): the per-model result type, the Markdown summary table, and one self-contained
 * HTML report — an inline SVG chart drawn by inline JS from embedded JSON (the three metrics against
 * training step, baselines as horizontal reference lines, a set selector) and a per-problem drill-down in
 * `<details>` elements. No network is needed to view it. When the chart has been drawn the script sets
 * `data-chart="ok"` on <body> (tests read it from Chromium's --dump-dom).
 */
import type { TestRecord } from "./evaluate.ts";
import { METRIC_LABELS, METRICS, pct, type MetricName, type ProblemTally, type Summary } from "./metrics.ts";

export interface ModelInfo {
  /** Unique name: the checkpoint name, `baseline-random`, `baseline-prompted`, or an explicit model name. */
  name: string;
  kind: "checkpoint" | "baseline" | "model";
  step: number | null;
  epoch: number | null;
  /** Checkpoint folder (checkpoints only). */
  path?: string;
  /** Name sent as `model` in requests (adapter name or base model). */
  requestModel: string;
  /** Prompt template used (`utgen_ut` or `random_joint_ut`). */
  template: string;
  trainName?: string;
}

export interface ProblemResult {
  taskId: string;
  entryPoint: string;
  tests: TestRecord[];
}

export interface SetResult {
  set: string;
  source: string;
  summary: Summary;
  /** "he": scored as he_intrinsic_eval.py (metrics.ts); absent: the default "mbpp". */
  scoring?: "mbpp" | "he";
  /** Per-problem tallies pooled over runs (for bootstrap and selection). */
  tallies: ProblemTally[];
  problems: ProblemResult[];
}

export interface ModelResult {
  model: ModelInfo;
  settings: { n: number; runs: number; temperature: number; top_p: number; max_tokens: number };
  sets: Record<string, SetResult>;
}

export const METRIC_COLORS: Record<MetricName, string> = {
  attack: "#d62728",
  outputCorrect: "#1f77b4",
  both: "#2ca02c",
};

/** Baselines first, then checkpoints by step, then other models by name. */
export function orderModels(results: ModelResult[]): ModelResult[] {
  const rank = (m: ModelInfo) => (m.kind === "baseline" ? 0 : m.kind === "checkpoint" ? 1 : 2);
  return [...results].sort(
    (a, b) =>
      rank(a.model) - rank(b.model) ||
      (a.model.step ?? Infinity) - (b.model.step ?? Infinity) ||
      a.model.name.localeCompare(b.model.name),
  );
}

function setNames(results: ModelResult[]): string[] {
  const names: string[] = [];
  for (const r of results) for (const s of Object.keys(r.sets)) if (!names.includes(s)) names.push(s);
  return names;
}

const cell = (s: Summary, m: MetricName) =>
  `${pct(s.metrics[m].value)} [${pct(s.metrics[m].ci.lo)}, ${pct(s.metrics[m].ci.hi)}]`;

function failuresText(s: Summary): string {
  const e = Object.entries(s.failures).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, v]) => `${k} ${v}`).join(", ") : "–";
}

/** The checkpoint `select` chose, shown in the reports it re-renders. */
export interface SelectionNote {
  name: string;
  reason: string;
}

export interface RenderOptions {
  bootstrapSamples: number;
  seed: number;
  selection?: SelectionNote;
}

const mark = (name: string, o: RenderOptions) => (o.selection?.name === name ? `${name} ★` : name);

export function renderMarkdown(results: ModelResult[], opts: RenderOptions): string {
  const ordered = orderModels(results);
  const st = ordered[0]?.settings;
  const lines = ["# Validation summary", ""];
  if (opts.selection) lines.push(`**Selected (★):** ${opts.selection.reason}`, "");
  if (st)
    lines.push(
      `${st.n} unit tests per problem × ${st.runs} runs, temperature ${st.temperature}, top-p ${st.top_p}, ` +
        `max_tokens ${st.max_tokens}. Values are percentages of all generated tests with a 95% bootstrap ` +
        `interval over problems (${opts.bootstrapSamples} resamples, seed ${opts.seed}). Unparsable responses ` +
        "count as failures of all three metrics; a missing or unparsable output fails output accuracy only.",
      "",
    );
  for (const set of setNames(ordered)) {
    const any = ordered.find((r) => r.sets[set])!.sets[set];
    lines.push(`## ${set}`, "", `${any.summary.problems} problems · ${any.source}`, "");
    if (any.scoring === "he")
      lines.push(
        "Scored as the reference's he_intrinsic_eval.py: an unparsable response counts (as a failure) in the attack " +
          "rate only — output accuracy and Acc∩Attack are over the parsed responses — and an input whose gold output " +
          "is None is never an attack.",
        "",
      );
    lines.push(
      `| Model | Kind | Step | ${METRICS.map((m) => METRIC_LABELS[m]).join(" | ")} | Run std (Acc∩Attack) | Valid inputs | Unparsable |`,
      `|---|---|---:|${METRICS.map(() => "---:").join("|")}|---:|---:|---|`,
    );
    for (const r of ordered) {
      const s = r.sets[set]?.summary;
      if (!s) continue;
      lines.push(
        `| ${mark(r.model.name, opts)} | ${r.model.kind} | ${r.model.step ?? "–"} | ${METRICS.map((m) => cell(s, m)).join(" | ")} | ` +
          `${pct(s.metrics.both.runStd)} | ${s.validInputs}/${s.tests} | ${failuresText(s)} |`,
      );
    }
    lines.push("");
  }
  return lines.join("\n");
}

const esc = (s: unknown) =>
  String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/** JSON safe to embed in a <script> element. */
export function embedJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(/>/g, "\\u003e").replace(/&/g, "\\u0026").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

function chartData(results: ModelResult[]) {
  return {
    sets: setNames(results),
    metrics: METRICS.map((m) => ({ key: m, label: METRIC_LABELS[m], color: METRIC_COLORS[m] })),
    models: orderModels(results).map((r) => ({
      name: r.model.name,
      kind: r.model.kind,
      step: r.model.step,
      sets: Object.fromEntries(
        Object.entries(r.sets).map(([k, s]) => [
          k,
          Object.fromEntries(METRICS.map((m) => [m, { v: s.summary.metrics[m].value, lo: s.summary.metrics[m].ci.lo, hi: s.summary.metrics[m].ci.hi }])),
        ]),
      ),
    })),
  };
}

const CHART_JS = String.raw`
(function () {
  var NS = "http://www.w3.org/2000/svg";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var svg = document.getElementById("chart");
  var pick = document.getElementById("set-pick");
  function el(name, attrs, text) {
    var e = document.createElementNS(NS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  }
  function draw(set) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var W = 900, H = 420, L = 60, R = 200, T = 20, B = 50;
    var pts = data.models.filter(function (m) { return m.kind === "checkpoint" && m.step !== null && m.sets[set]; })
      .sort(function (a, b) { return a.step - b.step; });
    var base = data.models.filter(function (m) { return m.kind === "baseline" && m.sets[set]; });
    var steps = pts.map(function (m) { return m.step; });
    var x0 = steps.length ? Math.min.apply(null, steps) : 0, x1 = steps.length ? Math.max.apply(null, steps) : 1;
    if (x1 === x0) { x0 = x0 - 1; x1 = x1 + 1; }
    function X(s) { return L + (s - x0) / (x1 - x0) * (W - L - R); }
    function Y(v) { return T + (1 - v) * (H - T - B); }
    el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, fill: "#ffffff", stroke: "#999999" });
    for (var g = 0; g <= 10; g += 2) {
      var y = Y(g / 10);
      el("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "#e5e5e5" });
      el("text", { x: L - 8, y: y + 4, "text-anchor": "end", "font-size": 12 }, (g * 10) + "%");
    }
    steps.forEach(function (s) {
      el("text", { x: X(s), y: H - B + 18, "text-anchor": "middle", "font-size": 12 }, String(s));
    });
    el("text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle", "font-size": 13 }, "training step");
    var dashes = ["8 4", "2 4", "12 4 2 4", "4 4"];
    var ly = T + 10;
    base.forEach(function (b, bi) {
      data.metrics.forEach(function (m) {
        var v = b.sets[set][m.key].v;
        el("line", { x1: L, x2: W - R, y1: Y(v), y2: Y(v), stroke: m.color, "stroke-width": 1.5,
          "stroke-dasharray": dashes[bi % dashes.length], opacity: 0.8, "class": "baseline" });
      });
      el("line", { x1: W - R + 12, x2: W - R + 40, y1: ly + 140, y2: ly + 140, stroke: "#555555", "stroke-dasharray": dashes[bi % dashes.length] });
      el("text", { x: W - R + 46, y: ly + 144, "font-size": 12 }, b.name);
      ly += 18;
    });
    data.metrics.forEach(function (m, mi) {
      var p = pts.map(function (c) { return X(c.step) + "," + Y(c.sets[set][m.key].v); }).join(" ");
      if (pts.length > 1) el("polyline", { points: p, fill: "none", stroke: m.color, "stroke-width": 3, "class": "metric-line" });
      pts.forEach(function (c) {
        var s = c.sets[set][m.key];
        var xo = X(c.step) + (mi - 1) * 5;
        el("line", { x1: xo, x2: xo, y1: Y(s.lo), y2: Y(s.hi), stroke: m.color, "stroke-width": 1.5, opacity: 0.5, "class": "ci" });
        var dot = el("circle", { cx: X(c.step), cy: Y(s.v), r: 5, fill: m.color, "class": "metric-dot" });
        var t = document.createElementNS(NS, "title");
        t.textContent = c.name + " · " + m.label + ": " + (100 * s.v).toFixed(2) + "% [" + (100 * s.lo).toFixed(2) + ", " + (100 * s.hi).toFixed(2) + "]";
        dot.appendChild(t);
      });
      el("rect", { x: W - R + 12, y: T + 4 + mi * 22, width: 24, height: 12, fill: m.color });
      el("text", { x: W - R + 44, y: T + 15 + mi * 22, "font-size": 13 }, m.label);
    });
    if (!pts.length) el("text", { x: (L + W - R) / 2, y: (T + H - B) / 2, "text-anchor": "middle", "font-size": 14 }, "no checkpoints with a step on this set");
  }
  try {
    data.sets.forEach(function (s) { var o = document.createElement("option"); o.value = s; o.textContent = s; pick.appendChild(o); });
    pick.addEventListener("change", function () { draw(pick.value); });
    if (data.sets.length) draw(data.sets[0]);
    document.body.setAttribute("data-chart", "ok");
  } catch (e) {
    document.body.setAttribute("data-chart", "error: " + e.message);
    console.error(e);
  }
})();
`;

function testRow(t: TestRecord): string {
  const flag = (b: boolean) => (b ? `<td class="y">✓</td>` : `<td class="n">✗</td>`);
  const ex = (o?: { status: string; value?: string; error?: string }) =>
    o ? (o.status === "ok" ? `<code>${esc(o.value)}</code>` : `<span class="st">${esc(o.status)}</span> ${esc(o.error ?? "")}`) : "";
  if (t.parse !== "ok")
    return `<tr><td>${t.run}.${t.sample}</td><td colspan="4"><span class="st">${esc(t.parse)}</span> ${esc(t.parseDetail ?? "")}` +
      (t.raw ? `<details><summary>response</summary><pre>${esc(t.raw)}</pre></details>` : "") +
      `</td>${flag(false)}${flag(false)}${flag(false)}</tr>`;
  const pred = t.outputParse === "ok" ? `<code>${esc(t.predicted)}</code>` : `<span class="st">${esc(t.outputParse)}</span> ${esc(t.predicted ?? "")}`;
  return `<tr><td>${t.run}.${t.sample}</td><td><code>${esc(t.input)}</code></td><td>${pred}</td><td>${ex(t.gold)}</td><td>${ex(t.buggy)}</td>${flag(t.attack)}${flag(t.outputCorrect)}${flag(t.both)}</tr>`;
}

/** Test rows embedded in the HTML at most; above it the drill-down lists per-problem counts only. */
export const MAX_TEST_ROWS = 20_000;

function drillDown(results: ModelResult[], maxTestRows: number): string {
  const total = results.reduce((a, r) => a + Object.values(r.sets).reduce((b, s) => b + s.summary.tests, 0), 0);
  const withTests = total <= maxTestRows;
  const out: string[] = [];
  if (!withTests)
    out.push(`<p class="note">${total} generated tests are more than the ${maxTestRows} this page embeds: per-problem counts only; ` +
      `every test (input, predicted, gold and buggy outputs, statuses) is in the per-model JSON files beside this report.</p>`);
  for (const r of orderModels(results)) {
    for (const [set, s] of Object.entries(r.sets)) {
      out.push(
        `<details class="model"><summary><b>${esc(r.model.name)}</b> · ${esc(set)} · ` +
          METRICS.map((m) => `${METRIC_LABELS[m]} ${pct(s.summary.metrics[m].value)}%`).join(" · ") +
          `</summary>`,
      );
      for (const p of s.problems) {
        const n = p.tests.length;
        const c = (m: MetricName) => p.tests.filter((t) => t[m]).length;
        const head = `${esc(p.taskId)} <code>${esc(p.entryPoint)}</code> — attack ${c("attack")}/${n}, output ${c("outputCorrect")}/${n}, both ${c("both")}/${n}`;
        if (!withTests) {
          out.push(`<div class="problem">${head}</div>`);
          continue;
        }
        out.push(
          `<details class="problem"><summary>${head}</summary><table><thead><tr><th>run.sample</th><th>input</th>` +
            `<th>predicted</th><th>gold</th><th>buggy</th><th>attack</th><th>output</th><th>both</th></tr></thead><tbody>` +
            p.tests.map(testRow).join("") +
            `</tbody></table></details>`,
        );
      }
      out.push(`</details>`);
    }
  }
  return out.join("\n");
}

const CSS = `body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 6px;font-size:13px;vertical-align:top}
th{background:#f4f4f4}code,pre{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-all}
td.y{color:#2a7a2a}td.n{color:#a33}.st{color:#a60;font-weight:600}details.model{margin:6px 0;border:1px solid #ccc;padding:4px 8px}
details.problem,div.problem{margin:2px 0 2px 16px}.note{color:#a60}summary{cursor:pointer}#chart{display:block;border:1px solid #eee}`;

export function renderHtml(
  results: ModelResult[],
  opts: RenderOptions & { title?: string; maxTestRows?: number },
): string {
  const ordered = orderModels(results);
  const tables: string[] = [];
  for (const set of setNames(ordered)) {
    tables.push(`<h3>${esc(set)}</h3><table><thead><tr><th>model</th><th>kind</th><th>step</th>` +
      METRICS.map((m) => `<th>${esc(METRIC_LABELS[m])}</th>`).join("") + `<th>unparsable</th></tr></thead><tbody>`);
    for (const r of ordered) {
      const s = r.sets[set]?.summary;
      if (!s) continue;
      tables.push(`<tr><td>${esc(mark(r.model.name, opts))}</td><td>${r.model.kind}</td><td>${r.model.step ?? "–"}</td>` +
        METRICS.map((m) => `<td>${esc(cell(s, m))}</td>`).join("") + `<td>${esc(failuresText(s))}</td></tr>`);
    }
    tables.push(`</tbody></table>`);
  }
  const title = opts.title ?? "Unit-test generator validation";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><style>${CSS}</style></head>
<body data-chart="pending">
<h1>${esc(title)}</h1>
<p>Attack rate, output accuracy and Acc∩Attack (percent of generated tests; 95% bootstrap interval over problems,
${opts.bootstrapSamples} resamples, seed ${opts.seed}) against training step. Baselines are horizontal reference lines.</p>
<label>Validation set: <select id="set-pick"></select></label>
<svg id="chart" xmlns="http://www.w3.org/2000/svg" width="900" height="420" viewBox="0 0 900 420" role="img" aria-label="metrics by training step"></svg>
${opts.selection ? `<p class="selected"><b>Selected (★):</b> ${esc(opts.selection.reason)}</p>` : ""}
<h2>Summary</h2>
${tables.join("\n")}
<h2>Per-problem results</h2>
${drillDown(ordered, opts.maxTestRows ?? MAX_TEST_ROWS)}
<script type="application/json" id="report-data">${embedJson(chartData(ordered))}</script>
<script>${CHART_JS}</script>
</body></html>
`;
}
