/**
 * UTDebug summaries and reports: per (set, method) pass@1 with a bootstrap interval, the per-round curve and
 * the bookkeeping (edits kept / discarded, early stops, UTs, model calls); `summary.md` with the paper's
 * layouts — Table 2 (methods × sets), Table 4 (ablations with Δ) — per-round curves and paired differences
 * between methods; `report.html` with the same tables, the curves as inline SVG and every problem's trace
 * (suite with votes, feedback, reply, validation, decision) in <details> elements. No network needed.
 */
import { embedJson } from "../validation/report.ts";
import type { ProblemTrace, RoundTrace } from "./loop.ts";
import type { CallTally } from "./llm.ts";
import { bootstrapMean, ciText, pairedDiff, pct, signed, type BootOpts } from "./stats.ts";

export interface MethodSummary {
  problems: number;
  pass_at_1: number;
  ci: [number, number];
  initial_pass_at_1: number;
  /** pass@1 after round 0 … m. */
  per_round: number[];
  stopped_early: number;
  edits: { accepted: number; backtracked: number; unvalidated: number };
  /** Mean UTs per built suite (UT methods). */
  uts_per_suite?: number;
  /** Share of built UTs whose output equals gold's on their input (diagnostics; UT methods). */
  ut_output_accuracy?: number;
  llm: CallTally;
}

export interface MethodInfo {
  name: string;
  base?: string;
  ablation?: string;
}

export interface SetResult {
  name: string;
  source: string;
  /** Problems in the file (after limit) and those left out, with why. */
  rows: number;
  dropped: { taskId: string; reason: string; detail?: string }[];
  methods: { info: MethodInfo; summary: MethodSummary; traces: ProblemTrace[] }[];
}

export function summarize(traces: ProblemTrace[], rounds: number, boot: BootOpts): MethodSummary {
  const outcome = traces.map((t) => (t.pass ? 1 : 0));
  const b = bootstrapMean(outcome, boot);
  const perRound = Array.from({ length: rounds + 1 }, (_, r) => (traces.length ? traces.filter((t) => t.curve[r]).length / traces.length : 0));
  const suites = traces.reduce((a, t) => a + t.uts.suites, 0);
  const built = traces.reduce((a, t) => a + t.uts.built, 0);
  const diag = traces.flatMap((t) => t.rounds.flatMap((r) => r.suite?.uts ?? [])).filter((u) => u.gold && !u.oracle);
  const sum = (f: (t: ProblemTrace) => number) => traces.reduce((a, t) => a + f(t), 0);
  return {
    problems: traces.length,
    pass_at_1: b.value,
    ci: [b.ci.lo, b.ci.hi],
    initial_pass_at_1: perRound[0] ?? 0,
    per_round: perRound,
    stopped_early: traces.filter((t) => t.stoppedAt !== undefined).length,
    edits: { accepted: sum((t) => t.edits.accepted), backtracked: sum((t) => t.edits.backtracked), unvalidated: sum((t) => t.edits.unvalidated) },
    ...(suites ? { uts_per_suite: built / suites } : {}),
    ...(diag.length ? { ut_output_accuracy: diag.filter((u) => u.gold!.outputCorrect).length / diag.length } : {}),
    llm: { requests: sum((t) => t.llm.requests), cached: sum((t) => t.llm.cached), failures: sum((t) => t.llm.failures) },
  };
}

/** Outcomes of two methods on the problems both have, in the same order. */
function paired(a: ProblemTrace[], b: ProblemTrace[]): [number[], number[]] {
  const byId = new Map(b.map((t) => [t.taskId, t]));
  const xs: number[] = [];
  const ys: number[] = [];
  for (const t of a) {
    const u = byId.get(t.taskId);
    if (!u) continue;
    xs.push(t.pass ? 1 : 0);
    ys.push(u.pass ? 1 : 0);
  }
  return [xs, ys];
}

export interface ReportOptions {
  rounds: number;
  boot: BootOpts;
  /** One line of settings (n, k, rounds, flow …). */
  settings: string;
}

const esc = (s: unknown) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

const ciOf = (s: MethodSummary) => ciText(s.pass_at_1, { lo: s.ci[0], hi: s.ci[1] });
const ABL_LABEL: Record<string, string> = { "no-sc": "− Output test-time scaling", "no-backtrack": "− Backtracking" };

function methodNames(sets: SetResult[]): MethodInfo[] {
  const out: MethodInfo[] = [];
  for (const s of sets) for (const m of s.methods) if (!out.some((x) => x.name === m.info.name)) out.push(m.info);
  return out;
}

export function renderMarkdown(sets: SetResult[], o: ReportOptions): string {
  const lines = ["# UTDebug summary", "", o.settings, ""];
  const methods = methodNames(sets);
  lines.push(`## pass@1 after ${o.rounds} round(s) (Table 2 layout)`, "");
  lines.push(
    "Percent of problems whose final code passes all private tests, with a 95% bootstrap interval over problems " +
      `(${o.boot.samples} resamples, seed ${o.boot.seed}).`,
    "",
  );
  lines.push(`| Method | ${sets.map((s) => s.name).join(" | ")} |`, `|---|${sets.map(() => "---:").join("|")}|`);
  for (const m of methods) lines.push(`| ${m.name} | ${sets.map((s) => { const r = s.methods.find((x) => x.info.name === m.name); return r ? ciOf(r.summary) : "–"; }).join(" | ")} |`);
  lines.push("");
  for (const s of sets) {
    lines.push(`## ${s.name}`, "", `${s.rows} problems in ${s.source}; ${s.rows - s.dropped.length} debugged${s.dropped.length ? `, ${s.dropped.length} left out (${countBy(s.dropped.map((d) => d.reason))})` : ""}.`, "");
    lines.push(`### pass@1 by round`, "");
    lines.push(`| Method | ${Array.from({ length: o.rounds + 1 }, (_, r) => `round ${r}`).join(" | ")} | stopped early | edits kept / discarded / unvalidated | UTs per suite | UT output acc. | model samples (new / cached / failed) |`);
    lines.push(`|---|${Array.from({ length: o.rounds + 1 }, () => "---:").join("|")}|---:|---:|---:|---:|---:|`);
    for (const m of s.methods) {
      const x = m.summary;
      lines.push(
        `| ${m.info.name} | ${x.per_round.map(pct).join(" | ")} | ${x.stopped_early} | ${x.edits.accepted} / ${x.edits.backtracked} / ${x.edits.unvalidated} | ${x.uts_per_suite?.toFixed(2) ?? "–"} | ${x.ut_output_accuracy !== undefined ? pct(x.ut_output_accuracy) : "–"} | ${x.llm.requests} / ${x.llm.cached} / ${x.llm.failures} |`,
      );
    }
    lines.push("");
    const abl = s.methods.filter((m) => m.info.ablation && m.info.base);
    if (abl.length) {
      lines.push("### Ablations (Table 4 layout)", "", "| UT method | Acc. | Δ |", "|---|---:|---:|");
      for (const base of [...new Set(abl.map((m) => m.info.base!))]) {
        const b = s.methods.find((m) => m.info.name === base);
        if (!b) continue;
        lines.push(`| ${base} | ${ciOf(b.summary)} | |`);
        for (const m of abl.filter((x) => x.info.base === base)) {
          const d = pairedDiff(...paired(m.traces, b.traces), o.boot);
          lines.push(`| ${ABL_LABEL[m.info.ablation!] ?? m.info.ablation} | ${ciOf(m.summary)} | ${signed(d.value)} [${signed(d.ci.lo)}, ${signed(d.ci.hi)}] |`);
        }
      }
      lines.push("");
    }
    if (s.methods.length > 1) {
      lines.push("### Paired differences", "", "Difference in pass@1 (points) on the same problems, with a paired bootstrap interval.", "", "| A − B | Δ pass@1 [95% CI] | problems |", "|---|---:|---:|");
      for (let i = 0; i < s.methods.length; i++)
        for (let k = i + 1; k < s.methods.length; k++) {
          const a = s.methods[i];
          const b = s.methods[k];
          const d = pairedDiff(...paired(a.traces, b.traces), o.boot);
          lines.push(`| ${a.info.name} − ${b.info.name} | ${signed(d.value)} [${signed(d.ci.lo)}, ${signed(d.ci.hi)}] | ${d.n} |`);
        }
      lines.push("");
    }
    if (s.dropped.length) {
      lines.push("### Left out", "", "| task | reason | detail |", "|---|---|---|");
      for (const d of s.dropped) lines.push(`| ${d.taskId} | ${d.reason} | ${(d.detail ?? "").replace(/\|/g, "\\|").slice(0, 160)} |`);
      lines.push("");
    }
  }
  return lines.join("\n");
}

function countBy(xs: string[]): string {
  const m = new Map<string, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return [...m].map(([k, v]) => `${k} ${v}`).join(", ");
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"];

/** Per-round pass@1 curves of every method on one set, as static SVG. */
function curveSvg(s: SetResult, rounds: number): string {
  const W = 640, H = 300, L = 50, R = 190, T = 15, B = 40;
  const X = (r: number) => L + (rounds ? r / rounds : 0) * (W - L - R);
  const Y = (v: number) => T + (1 - v) * (H - T - B);
  const parts = [`<svg class="curve" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="pass@1 by round, ${esc(s.name)}">`];
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="#fff" stroke="#999"/>`);
  for (let g = 0; g <= 10; g += 2) parts.push(`<line x1="${L}" x2="${W - R}" y1="${Y(g / 10)}" y2="${Y(g / 10)}" stroke="#eee"/><text x="${L - 6}" y="${Y(g / 10) + 4}" text-anchor="end" font-size="11">${g * 10}%</text>`);
  for (let r = 0; r <= rounds; r++) parts.push(`<text x="${X(r)}" y="${H - B + 16}" text-anchor="middle" font-size="11">${r}</text>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">debugging round</text>`);
  s.methods.forEach((m, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = m.summary.per_round.map((v, r) => `${X(r)},${Y(v)}`).join(" ");
    parts.push(`<polyline class="method-curve" points="${pts}" fill="none" stroke="${c}" stroke-width="2.5"/>`);
    m.summary.per_round.forEach((v, r) => parts.push(`<circle cx="${X(r)}" cy="${Y(v)}" r="3.5" fill="${c}"><title>${esc(m.info.name)} · round ${r}: ${pct(v)}%</title></circle>`));
    parts.push(`<rect x="${W - R + 10}" y="${T + 4 + i * 18}" width="14" height="10" fill="${c}"/><text x="${W - R + 30}" y="${T + 13 + i * 18}" font-size="11">${esc(m.info.name.slice(0, 26))}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

function roundHtml(r: RoundTrace): string {
  const out: string[] = [`<div class="round"><b>round ${r.round}</b> → pass@1 ${r.pass ? "✓" : "✗"} (${r.goldPassed}/${r.goldTotal} private tests), code ${esc(r.codeHash)}`];
  if (r.stop) out.push(` · <span class="st">stop: ${esc(r.stop)}</span>`);
  if (r.decision) out.push(` · <span class="st">${esc(r.decision)}</span>`);
  if (r.suite) {
    out.push(`<div>suite for the ${esc(r.suite.for)} code: ${r.suite.uts.length} UT(s) from ${r.suite.attempts.length} attempt(s)</div><table><tr><th>UT</th><th>expected</th><th>votes</th><th>gold (diagnostic)</th></tr>`);
    for (const u of r.suite.uts)
      out.push(
        `<tr><td><code>${esc(u.call)}</code></td><td><code>${esc(u.output)}</code></td><td>${u.votes ? `${u.votes.winner}/${u.votes.k} (${esc(u.votes.tally.map(([a, n]) => `${a}: ${n}`).join(", "))})` : u.oracle ? "oracle" : "–"}</td>` +
          `<td>${u.gold ? `${u.gold.outputCorrect ? "✓" : "✗"} <code>${esc(u.gold.value ?? u.gold.status)}</code>` : "–"}</td></tr>`,
      );
    out.push("</table>");
    const rej = r.suite.attempts.filter((a) => a.status !== "accepted");
    if (rej.length) out.push(`<div class="note">not kept: ${esc(rej.map((a) => `#${a.sample} ${a.status}${a.detail ? ` (${a.detail.slice(0, 80)})` : ""}`).join("; "))}</div>`);
  }
  if (r.before) out.push(`<div>code on the suite: ${r.before.passed}/${r.before.total} pass</div>`);
  if (r.critique) out.push(`<details><summary>critique (${r.critique.saysCorrect ? "says correct" : "says wrong"})</summary><pre>${esc(r.critique.text)}</pre></details>`);
  if (r.feedback) out.push(`<details><summary>feedback on UT ${r.feedback.ut}</summary><pre>${esc(r.feedback.text)}</pre></details>`);
  if (r.reply) out.push(`<details><summary>reply${r.reply.repair ? ` (${esc(r.reply.repair)})` : ""}${r.reply.error ? ` — error: ${esc(r.reply.error)}` : ""}</summary><pre>${esc(r.reply.code)}</pre></details>`);
  if (r.after) out.push(`<div>reply's code on the validating suite: ${r.after.passed}/${r.after.total} pass</div>`);
  out.push("</div>");
  return out.join("");
}

const CSS = `body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fff}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 6px;font-size:13px;vertical-align:top}
th{background:#f4f4f4}code,pre{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;word-break:break-all}
.st{color:#a60;font-weight:600}.note{color:#a60;font-size:12px}details{margin:3px 0 3px 12px}.round{margin:4px 0 8px 12px;border-left:3px solid #ddd;padding-left:8px}
summary{cursor:pointer}.pass{color:#2a7a2a}.fail{color:#a33}`;

/** The summary's Markdown (headings, pipe tables, paragraphs) as HTML. */
export function mdToHtml(md: string): string {
  const out: string[] = [];
  const lines = md.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const h = /^(#{1,4}) (.*)$/.exec(l);
    if (h) out.push(`<h${h[1].length + 1}>${esc(h[2])}</h${h[1].length + 1}>`);
    else if (l.startsWith("|")) {
      const rows: string[][] = [];
      for (; i < lines.length && lines[i].startsWith("|"); i++) rows.push(lines[i].slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|")));
      i--;
      const [head, , ...rest] = rows;
      out.push(`<table><thead><tr>${head.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>${rest.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join("")}</tr>`).join("")}</tbody></table>`);
    } else if (l.trim()) out.push(`<p>${esc(l)}</p>`);
  }
  return out.join("\n");
}

/** Problem traces embedded at most; above it the drill-down lists one line per problem. */
export const MAX_TRACES = 2000;

export function renderHtml(sets: SetResult[], o: ReportOptions & { title?: string }): string {
  const md = renderMarkdown(sets, o);
  const total = sets.reduce((a, s) => a + s.methods.reduce((b, m) => b + m.traces.length, 0), 0);
  const full = total <= MAX_TRACES;
  const body: string[] = [];
  for (const s of sets) {
    body.push(`<h2>${esc(s.name)}</h2>`, curveSvg(s, o.rounds));
    for (const m of s.methods) {
      body.push(`<details class="method"><summary><b>${esc(m.info.name)}</b> · pass@1 ${esc(ciOf(m.summary))}</summary>`);
      for (const t of m.traces) {
        const head = `<span class="${t.pass ? "pass" : "fail"}">${t.pass ? "✓" : "✗"}</span> ${esc(t.taskId)} <code>${esc(t.entryPoint)}</code> — rounds ${t.curve.map((x) => (x ? "✓" : "✗")).join("")}${t.stoppedAt !== undefined ? `, stopped after round ${t.stoppedAt}` : ""}`;
        body.push(full ? `<details class="problem"><summary>${head}</summary>${t.rounds.map(roundHtml).join("")}</details>` : `<div>${head}</div>`);
      }
      body.push("</details>");
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(o.title ?? "UTDebug report")}</title><style>${CSS}</style></head>
<body>
<h1>${esc(o.title ?? "UTDebug report")}</h1>
${mdToHtml(md.split("\n").slice(2).join("\n"))}
${full ? "" : `<p class="note">${total} problem traces are more than the ${MAX_TRACES} this page embeds: one line per problem; every trace is in the JSON files under results/.</p>`}
${body.join("\n")}
<script type="application/json" id="report-data">${embedJson(sets.map((s) => ({ set: s.name, methods: s.methods.map((m) => ({ name: m.info.name, ...m.summary })) })))}</script>
</body></html>
`;
}
