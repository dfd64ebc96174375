import { execFile } from "node:child_process";
import { existsSync, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { METRIC_COLORS, embedJson, renderHtml, renderMarkdown } from "../stages/validation/report.ts";
import { countColor, decodePng } from "./fixtures/validate/png.ts";
import { fakeResult } from "./fixtures/validate/results.ts";

const run = promisify(execFile);
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].find((p) => existsSync(p));

const results = [
  fakeResult({ name: "baseline-random", kind: "baseline" }, { attack: 0.25, outputCorrect: 0.6, both: 0.1 }),
  fakeResult({ name: "baseline-prompted", kind: "baseline" }, { attack: 0.45, outputCorrect: 0.4, both: 0.15 }),
  fakeResult({ name: "r-step30", step: 30 }, { attack: 0.5, outputCorrect: 0.55, both: 0.3 }),
  fakeResult({ name: "r-step10", step: 10 }, { attack: 0.4, outputCorrect: 0.45, both: 0.2 }),
  fakeResult({ name: "r-step20", step: 20 }, { attack: 0.55, outputCorrect: 0.5, both: 0.35 }),
];
const opts = { bootstrapSamples: 100, seed: 0 };

describe("markdown summary", () => {
  it("lists baselines first, then checkpoints by step, with percentages and intervals", () => {
    const md = renderMarkdown(results, opts);
    const rows = md.split("\n").filter((l) => l.startsWith("| ") && !l.startsWith("| Model"));
    expect(rows.map((r) => r.split("|")[1].trim())).toEqual(["baseline-prompted", "baseline-random", "r-step10", "r-step20", "r-step30"]);
    const step20 = rows.find((r) => r.includes("r-step20"))!;
    expect(step20).toContain("| 20 |");
    expect(step20).toContain("55.00 [");
    expect(step20).toContain("35.00 [");
    expect(md).toContain("## mbppplus_fix_hard");
  });
});

describe("HTML report", () => {
  it("is self-contained and escapes data", () => {
    const html = renderHtml(results, opts);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).toContain("f(0, &#39;&lt;b&gt;&amp;x&#39;)");
    expect(html).not.toContain("f(0, '<b>&x')");
    expect((html.match(/<details class="problem">/g) ?? []).length).toBe(5 * 5);
    expect(embedJson({ s: "</script><!--" })).not.toContain("</script>");
    expect(JSON.parse(embedJson({ s: "</script>&\u2028" }))).toEqual({ s: "</script>&\u2028" });
  });

  it("lists per-problem counts only when there are more tests than it embeds", () => {
    const html = renderHtml(results, { ...opts, maxTestRows: 50 });
    expect(html).toContain("100 generated tests are more than the 50");
    expect(html).not.toContain('<details class="problem">');
    expect((html.match(/<div class="problem">/g) ?? []).length).toBe(25);
    expect(html).toContain("T0 <code>f</code> — attack");
  });

  it("renders in headless Chromium without errors and draws the chart", async () => {
    // fails (not skips) without a browser, so a green suite always covered the report's rendering
    expect(CHROMIUM, "chromium is not installed: `npm install` installs it as root (scripts/setup-system.mjs), or run apt-get install chromium").toBeDefined();
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "report-"));
    const file = path.join(dir, "report.html");
    await fsp.writeFile(file, renderHtml(results, opts));
    const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", `--user-data-dir=${path.join(dir, "profile")}`];
    const dom = await run(CHROMIUM!, [...flags, "--enable-logging=stderr", "--v=0", "--dump-dom", `file://${file}`], { timeout: 60_000, maxBuffer: 64 << 20 });
    expect(dom.stdout).toContain('data-chart="ok"');
    expect(dom.stderr).not.toMatch(/Uncaught|CONSOLE.*error/i);
    // The chart's SVG elements exist: 3 metric lines, 3×3 dots, 2 baselines × 3 metric reference lines.
    expect((dom.stdout.match(/class="metric-line"/g) ?? []).length).toBe(3);
    expect((dom.stdout.match(/class="metric-dot"/g) ?? []).length).toBe(9);
    expect((dom.stdout.match(/class="baseline"/g) ?? []).length).toBe(6);

    const shot = path.join(dir, "shot.png");
    await run(CHROMIUM!, [...flags, `--screenshot=${shot}`, "--window-size=1000,760", `file://${file}`], { timeout: 60_000 });
    const img = decodePng(await fsp.readFile(shot));
    expect(img.width).toBe(1000);
    // The chart area (the SVG sits below the title, intro and set picker) has pixels in every metric colour.
    const area = { x0: 0, y0: 100, x1: 1000, y1: 760 };
    const counts = Object.fromEntries(Object.entries(METRIC_COLORS).map(([m, c]) => [m, countColor(img, c, area)]));
    for (const [m, n] of Object.entries(counts)) expect(n, `pixels in the ${m} colour`).toBeGreaterThan(100);

    // Negative control: the same page without its script shows none of those colours.
    const noJs = path.join(dir, "nojs.html");
    await fsp.writeFile(noJs, renderHtml(results, opts).replace(/<script>[\s\S]*?<\/script>/, ""));
    const shot2 = path.join(dir, "shot2.png");
    await run(CHROMIUM!, [...flags, `--screenshot=${shot2}`, "--window-size=1000,760", `file://${noJs}`], { timeout: 60_000 });
    const img2 = decodePng(await fsp.readFile(shot2));
    for (const c of Object.values(METRIC_COLORS)) expect(countColor(img2, c, area)).toBe(0);
    await fsp.rm(dir, { recursive: true, force: true });
  });
  if (!CHROMIUM) console.warn("report.test: chromium not found (apt-get install chromium): screenshot test skipped");
});
