/**
 * Node side of the executor: a pool of long-lived sandboxed fork servers (server.py), one request at a
 * time per worker, JSON lines over pipes. A Node watchdog kills a worker that stops answering; a worker
 * that dies (e.g. hostile code killed its parent) is restarted and the batch continues on a fresh one.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { launcherEnv } from "./sandbox.ts";

export class WorkerDied extends Error {
  constructor(
    message: string,
    readonly loaded: boolean,
  ) {
    super(message);
  }
}

type Handler = {
  onMessage(msg: any): boolean; // true when the request is complete
  resolve(): void;
  reject(e: Error): void;
  loaded: boolean;
  watchdogMs: number;
};

export class Worker {
  private proc!: ChildProcess;
  private handler?: Handler;
  private timer?: NodeJS.Timeout;
  private nextId = 1;
  private stderrTail = "";
  ready!: Promise<void>;
  closed = false;
  /** Consecutive starts that died before the server said it was ready. */
  private failedStarts = 0;
  /** Host pid of the launcher (setpriv → bwrap) of the current server. */
  pid = 0;
  /** The current server's ready message (pid, uid, address-space limit, isolation features). */
  info: Record<string, unknown> = {};

  constructor(private readonly argv: string[]) {
    this.start();
  }

  private start(): void {
    const proc = spawn(this.argv[0], this.argv.slice(1), {
      env: launcherEnv,
      stdio: ["pipe", "pipe", "pipe"],
      detached: false,
    });
    this.proc = proc;
    this.pid = proc.pid ?? 0;
    this.stderrTail = "";
    proc.stderr!.on("data", (d: Buffer) => {
      this.stderrTail = (this.stderrTail + d.toString("utf8")).slice(-2000);
    });
    proc.stdin!.on("error", () => {}); // EPIPE when the server died: reported through "exit"
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    this.ready.catch(() => {});
    let isReady = false;
    const rl = createInterface({ input: proc.stdout!, crlfDelay: Infinity });
    rl.on("line", (line) => {
      let msg: any;
      try {
        msg = JSON.parse(line);
      } catch {
        this.kill();
        return;
      }
      if (!isReady) {
        if (msg.ready) {
          isReady = true;
          this.info = msg;
          this.failedStarts = 0;
          readyResolve();
        }
        return;
      }
      const h = this.handler;
      if (!h) return;
      this.arm(h.watchdogMs);
      if (msg.loaded) h.loaded = true;
      let done = false;
      try {
        done = h.onMessage(msg);
      } catch (e) {
        this.finish();
        h.reject(e as Error);
        return;
      }
      if (done) {
        this.finish();
        h.resolve();
      }
    });
    proc.on("exit", (code, sig) => {
      const why = `sandbox worker exited (${sig ?? code})${this.stderrTail ? ": " + lastLine(this.stderrTail) : ""}`;
      if (!isReady) {
        this.failedStarts++;
        readyReject(new Error(why));
      }
      const h = this.handler;
      this.finish();
      if (h) h.reject(new WorkerDied(why, h.loaded));
      // Restart (a hostile program may have killed the server), unless starting itself keeps failing.
      if (!this.closed && this.failedStarts < 3) this.start();
    });
  }

  private arm(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kill(), ms);
  }

  private finish(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.handler = undefined;
  }

  /** Kill the whole sandbox of this worker (bwrap tears down its pid namespace). */
  kill(): void {
    try {
      this.proc.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }

  /**
   * Send one request; `onMessage` sees every reply line and returns true on the last one.
   * `watchdogMs` bounds the silence between two lines (the server answers per input).
   */
  async request(req: Record<string, unknown>, onMessage: (msg: any) => boolean, watchdogMs: number): Promise<void> {
    // Serialise before touching any state: a request that cannot be sent must fail alone, leaving the
    // worker as it was (callers validate their requests first; this is the last line of defence).
    const id = this.nextId++;
    const line = JSON.stringify({ ...req, id }) + "\n";
    await this.ready;
    if (this.handler) throw new Error("worker busy");
    return new Promise<void>((resolve, reject) => {
      this.handler = { onMessage, resolve, reject, loaded: false, watchdogMs };
      this.arm(watchdogMs);
      this.proc.stdin!.write(line);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    const proc = this.proc;
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => proc.kill("SIGKILL"), 1000);
      proc.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
      proc.stdin!.end();
    });
  }
}

function lastLine(s: string): string {
  const lines = s.trim().split("\n");
  return lines[lines.length - 1].slice(0, 300);
}

/** Fixed set of workers; `use` waits for an idle one (FIFO). */
export class Pool {
  private idle: Worker[];
  private waiting: ((w: Worker) => void)[] = [];
  private closed = false;

  constructor(readonly workers: Worker[]) {
    this.idle = [...workers];
  }

  async use<T>(fn: (w: Worker) => Promise<T>): Promise<T> {
    if (this.closed) throw new Error("executor is closed");
    const w = this.idle.pop() ?? (await new Promise<Worker>((res) => this.waiting.push(res)));
    try {
      return await fn(w);
    } finally {
      const next = this.waiting.shift();
      if (next) next(w);
      else this.idle.push(w);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.close()));
  }
}
