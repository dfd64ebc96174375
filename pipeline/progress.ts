/**
 * Progress reporting: a live bar with rows/s and ETA on a TTY (cli-progress), otherwise one line every
 * ~30 s (UTGEN_PROGRESS_INTERVAL_S overrides) and a final line. Stage counters (requests, tokens,
 * failures) ride along in the payload.
 */
import cliProgress from "cli-progress";

export interface Progress {
  tick(n?: number): void;
  setTotal(total: number | undefined): void;
  setInfo(info: string): void;
  stop(): void;
}

export function createProgress(label: string, opts: { total?: number; write?: (line: string) => void; tty?: boolean } = {}): Progress {
  const write = opts.write ?? ((l: string) => process.stderr.write(l + "\n"));
  const tty = opts.tty ?? (process.stderr.isTTY === true && !process.env.CI);
  const started = Date.now();
  let done = 0;
  let total = opts.total;
  let info = "";
  const rate = () => done / Math.max(0.001, (Date.now() - started) / 1000);
  const eta = () => (total && done > 0 ? Math.max(0, (total - done) / rate()) : undefined);
  const fmtEta = (s: number | undefined) => (s === undefined ? "?" : s < 90 ? `${s.toFixed(0)}s` : `${(s / 60).toFixed(1)}m`);

  if (tty) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label.padEnd(12)} {bar} {value}/{total} | {rate} rec/s | ETA {eta_h} | {info}`,
        hideCursor: true,
        stream: process.stderr,
        etaBuffer: 200,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total ?? 0, 0, { rate: "0", eta_h: "?", info: "" });
    const payload = () => ({ rate: rate().toFixed(1), eta_h: fmtEta(eta()), info });
    return {
      tick(n = 1) {
        done += n;
        if (!total || done > total) bar.setTotal(Math.max(done, total ?? 0));
        bar.update(done, payload());
      },
      setTotal(t) {
        total = t;
        if (t !== undefined) bar.setTotal(t);
      },
      setInfo(i) {
        info = i;
        bar.update(done, payload());
      },
      stop() {
        bar.update(done, payload());
        bar.stop();
      },
    };
  }
  const intervalMs = Number(process.env.UTGEN_PROGRESS_INTERVAL_S ?? 30) * 1000;
  const line = () =>
    `${label}: ${done}${total !== undefined ? `/${total}` : ""} records, ${rate().toFixed(1)} rec/s, ETA ${fmtEta(eta())}${info ? ` | ${info}` : ""}`;
  const timer = setInterval(() => write(line()), intervalMs);
  timer.unref();
  return {
    tick(n = 1) {
      done += n;
    },
    setTotal(t) {
      total = t;
    },
    setInfo(i) {
      info = i;
    },
    stop() {
      clearInterval(timer);
    },
  };
}
