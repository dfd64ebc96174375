// Progress lines of long stages: done / total, rate and ETA from this run's own work (reused records count
// toward done, not toward the rate), plain periodic lines for logs, the terminal line's shape. Time is a
// fake clock and the periodic lines are driven by vitest's fake timers: nothing depends on machine speed.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createProgress, etaOf, fmtDuration, progressLine, rateOf, terminalLine } from "../pipeline/progress.ts";

afterEach(() => {
  vi.useRealTimers();
});

describe("progress lines", () => {
  it("rate and ETA count only this run's work; reused records shorten what is left", () => {
    const st = { done: 600, skipped: 400, total: 1000, elapsedS: 100, info: "" };
    expect(rateOf(st)).toBe(2); // 200 records of work in 100 s
    expect(etaOf(st)).toBe(200); // 400 left at 2/s
    expect(progressLine("attack", st)).toBe("attack: 600/1000 records (60%), 400 reused, 2.0 rec/s, ETA 3.3m, 1.7m elapsed");
  });

  it("without a total: the count and the rate, no ETA; durations in s, m, h", () => {
    const st = { done: 120, skipped: 0, total: undefined, elapsedS: 30, info: "requests=12" };
    expect(etaOf(st)).toBeUndefined();
    expect(progressLine("filter", st)).toBe("filter: 120 records, 4.0 rec/s, 30s elapsed | requests=12");
    expect(terminalLine("filter", st)).toBe("filter       120 records | 4.0 rec/s | 30s | requests=12");
    expect([fmtDuration(42), fmtDuration(95), fmtDuration(3 * 3600)]).toEqual(["42s", "1.6m", "3.0h"]);
  });

  it("before the first record the ETA is unknown, at the end it is 0", () => {
    expect(etaOf({ done: 0, skipped: 0, total: 10, elapsedS: 5, info: "" })).toBeUndefined();
    expect(progressLine("perturb", { done: 0, skipped: 0, total: 10, elapsedS: 5, info: "" })).toBe("perturb: 0/10 records (0%), 0.0 rec/s, ETA ?, 5s elapsed");
    expect(etaOf({ done: 10, skipped: 0, total: 10, elapsedS: 5, info: "" })).toBe(0);
  });

  it("the terminal line has a bar proportional to done / total", () => {
    const line = terminalLine("attack", { done: 250, skipped: 0, total: 1000, elapsedS: 50, info: "" }, 8);
    expect(line).toBe("attack       ██░░░░░░ 250/1000 25% | 5.0 rec/s | ETA 2.5m | 50s");
  });
});

describe("createProgress without a terminal (log files, SLURM .out)", () => {
  it("writes one plain line per interval with what was done by then, and nothing after stop", () => {
    vi.useFakeTimers();
    let t = 0;
    const lines: string[] = [];
    const p = createProgress("rationalize", { total: 40, tty: false, intervalS: 10, now: () => t, write: (l) => lines.push(l) });
    p.skip(10);
    t = 10_000;
    vi.advanceTimersByTime(10_000);
    expect(lines).toEqual(["rationalize: 10/40 records (25%), 10 reused, 0.0 rec/s, ETA ?, 10s elapsed"]);
    p.tick(5);
    p.tick();
    p.setInfo("llm.requests=6");
    t = 20_000;
    vi.advanceTimersByTime(10_000);
    expect(lines[1]).toBe("rationalize: 16/40 records (40%), 10 reused, 0.3 rec/s, ETA 80s, 20s elapsed | llm.requests=6");
    p.stop();
    vi.advanceTimersByTime(60_000);
    expect(lines).toHaveLength(2);
    expect(lines.join("\n")).not.toMatch(/\x1b|\r/);
  });

  it("interval 0 writes nothing", () => {
    vi.useFakeTimers();
    const lines: string[] = [];
    const p = createProgress("attack", { total: 5, tty: false, intervalS: 0, write: (l) => lines.push(l) });
    p.tick(5);
    vi.advanceTimersByTime(600_000);
    p.stop();
    expect(lines).toEqual([]);
  });
});
