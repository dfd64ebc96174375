/**
 * Progress of a long stage: records done / total, rate and ETA.
 *  - On a terminal: one updating line (cli-progress) — `attack  ████░░░░ 1200/5000 24% | 40.0 rec/s | ETA 1.6m | 30s | info`.
 *  - Otherwise (a log file, a SLURM `.out`, CI): one plain line every 30 s (UTGEN_PROGRESS_INTERVAL_S
 *    overrides; 0 turns them off) — `attack: 1200/5000 records (24%), 40.0 rec/s, ETA 1.6m, 30s elapsed | info`.
 * Records taken from earlier work (`skip`: reused shards) count toward done but not toward the rate, so
 * the ETA of a resumed run is not flattered by the part it did not redo. With no known total (a source
 * read as a stream) the line shows the count and the rate only. Stage counters ride along in `info`.
 */
import cliProgress from "cli-progress";

export interface Progress {
  /** `n` records done by this run. */
  tick(n?: number): void;
  /** `n` records done without work (reused from an earlier run): they count toward done, not the rate. */
  skip(n: number): void;
  setTotal(total: number | undefined): void;
  setInfo(info: string): void;
  stop(): void;
}

export interface ProgressState {
  done: number;
  /** Of `done`, taken from earlier work. */
  skipped: number;
  total: number | undefined;
  elapsedS: number;
  info: string;
}

/** `42s`, `1.6m`, `2.3h`. */
export function fmtDuration(s: number): string {
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 90 * 60) return `${(s / 60).toFixed(1)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}

/** Records per second of this run's own work. */
export function rateOf(st: ProgressState): number {
  return (st.done - st.skipped) / Math.max(0.001, st.elapsedS);
}

/** Seconds left at the current rate; undefined without a total or before the first record. */
export function etaOf(st: ProgressState): number | undefined {
  if (st.total === undefined) return undefined;
  const left = Math.max(0, st.total - st.done);
  if (left === 0) return 0;
  const r = rateOf(st);
  return r > 0 ? left / r : undefined;
}

const pct = (st: ProgressState) => (st.total ? Math.min(100, Math.floor((100 * st.done) / st.total)) : 0);

/** The plain line (logs). */
export function progressLine(label: string, st: ProgressState): string {
  const count = st.total !== undefined ? `${st.done}/${st.total} records (${pct(st)}%)` : `${st.done} records`;
  const eta = st.total !== undefined ? `, ETA ${fmtOr(etaOf(st))}` : "";
  const reused = st.skipped ? `, ${st.skipped} reused` : "";
  return `${label}: ${count}${reused}, ${rateOf(st).toFixed(1)} rec/s${eta}, ${fmtDuration(st.elapsedS)} elapsed${st.info ? ` | ${st.info}` : ""}`;
}

/** The terminal line (without the bar when the total is unknown). */
export function terminalLine(label: string, st: ProgressState, barWidth = 24): string {
  const parts = [label.padEnd(12)];
  if (st.total !== undefined) {
    const filled = st.total ? Math.round((barWidth * Math.min(st.done, st.total)) / st.total) : 0;
    parts.push(`${"█".repeat(filled)}${"░".repeat(barWidth - filled)} ${st.done}/${st.total} ${pct(st)}%`);
  } else parts.push(`${st.done} records`);
  const tail = [`${rateOf(st).toFixed(1)} rec/s`, ...(st.total !== undefined ? [`ETA ${fmtOr(etaOf(st))}`] : []), fmtDuration(st.elapsedS), ...(st.info ? [st.info] : [])];
  return `${parts.join(" ")} | ${tail.join(" | ")}`;
}

const fmtOr = (s: number | undefined) => (s === undefined ? "?" : fmtDuration(s));

export function createProgress(
  label: string,
  opts: { total?: number; write?: (line: string) => void; tty?: boolean; intervalS?: number; now?: () => number } = {},
): Progress {
  const write = opts.write ?? ((l: string) => process.stderr.write(l + "\n"));
  const tty = opts.tty ?? (process.stderr.isTTY === true && !process.env.CI);
  const now = opts.now ?? Date.now;
  const started = now();
  const st: ProgressState = { done: 0, skipped: 0, total: opts.total, elapsedS: 0, info: "" };
  const snapshot = () => ((st.elapsedS = (now() - started) / 1000), st);

  if (tty) {
    const bar = new cliProgress.SingleBar({
      format: () => terminalLine(label, snapshot()),
      hideCursor: true,
      stream: process.stderr,
    });
    bar.start(st.total ?? 0, 0);
    const update = () => bar.update(st.done);
    return {
      tick(n = 1) {
        st.done += n;
        update();
      },
      skip(n) {
        st.done += n;
        st.skipped += n;
        update();
      },
      setTotal(t) {
        st.total = t;
        update();
      },
      setInfo(i) {
        st.info = i;
        update();
      },
      stop() {
        update();
        bar.stop();
      },
    };
  }
  const intervalS = opts.intervalS ?? Number(process.env.UTGEN_PROGRESS_INTERVAL_S ?? 30);
  const timer = intervalS > 0 ? setInterval(() => write(progressLine(label, snapshot())), intervalS * 1000) : undefined;
  timer?.unref();
  return {
    tick(n = 1) {
      st.done += n;
    },
    skip(n) {
      st.done += n;
      st.skipped += n;
    },
    setTotal(t) {
      st.total = t;
    },
    setInfo(i) {
      st.info = i;
    },
    stop() {
      if (timer) clearInterval(timer);
    },
  };
}
