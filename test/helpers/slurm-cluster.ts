/**
 * A one-node SLURM cluster on this machine for test/slurm.test.ts: munged, slurmctld and slurmd (Debian
 * `munge` + `slurm-wlm`), configured in a temp folder — its own munge key and socket, a slurm.conf naming
 * this host (node line from `slurmd -C`), proctrack/linuxproc, task/none, no cgroups, no accounting, state,
 * spool and logs in the folder, ports picked free. One generic GPU resource (`Gres=gpu:1`, no device file)
 * lets scripts that ask for `--gres=gpu:1` (the training launcher's sbatch.sh) be scheduled. The daemons are
 * children of the test process; `stop()` cancels every job, waits for them to end, stops the daemons and
 * removes the folder.
 */
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import * as path from "node:path";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE"]);

export interface JobState {
  /** `12` or `12_3` (array task). */
  id: string;
  state: string;
  /** `exit:signal` */
  exitCode: string;
  reason: string;
}

export interface SlurmCluster {
  dir: string;
  /** Environment for the SLURM commands (SLURM_CONF). */
  env: Record<string, string>;
  /** Run a SLURM client command; stdout. */
  cmd(name: string, args: string[]): string;
  /** Every job and array task of a job id (also finished ones). */
  jobs(id: string): JobState[];
  /** Waits until `pred` holds for the job's tasks (polls; fails after `timeoutMs` with the daemons' log tails). */
  waitFor(id: string, pred: (tasks: JobState[]) => boolean, what: string, timeoutMs?: number): Promise<JobState[]>;
  /** Waits until every task of the job has ended. */
  waitEnded(id: string, timeoutMs?: number): Promise<JobState[]>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Which of the programs the test needs are missing (empty when it can run). */
export function missingSlurmPrograms(): string[] {
  const need = ["munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "scontrol", "srun"];
  return need.filter((p) => !["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"].some((d) => existsSync(path.join(d, p))));
}

export async function startSlurmCluster(): Promise<SlurmCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), "utgen-slurm-"));
  // slurmd runs job scripts as the submitting user: the folder must be reachable by it (mkdtemp gives 0700).
  chmodSync(dir, 0o755);
  const procs: ChildProcess[] = [];
  const at = (...p: string[]) => path.join(dir, ...p);
  for (const d of ["munge", "state", "spool", "log"]) mkdirSync(at(d));
  chmodSync(at("munge"), 0o700);
  writeFileSync(at("munge", "munge.key"), randomBytes(1024), { mode: 0o400 });
  const env = { SLURM_CONF: at("slurm.conf") };
  const logs = () =>
    ["munged.log", "slurmctld.log", "slurmd.log"]
      .map((f) => at("log", f))
      .filter((f) => existsSync(f))
      .map((f) => `--- ${path.basename(f)}\n${readFileSync(f, "utf8").split("\n").slice(-15).join("\n")}`)
      .join("\n");

  const daemon = (bin: string, args: string[], log: string) => {
    // detached: a session of its own — a SLURM daemon that signals its process group must not reach the test runner
    const p = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"], detached: true });
    let err = "";
    p.stderr!.on("data", (d) => (err = (err + d).slice(-4000)));
    p.on("error", (e) => (err += `\n${bin}: ${e.message}`));
    p.on("exit", () => writeFileSync(at("log", log), err, { flag: "a" }));
    procs.push(p);
    return p;
  };

  const cluster: SlurmCluster = {
    dir,
    env,
    cmd(name, args) {
      return execFileSync(name, args, { env: { ...process.env, ...env }, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    },
    jobs(id) {
      const out = cluster.cmd("squeue", ["-h", "-t", "all", "-r", "-j", id, "-o", "%i|%T|%r"]);
      return out
        .split("\n")
        .filter(Boolean)
        .map((l) => {
          const [jid, state, reason] = l.split("|");
          return { id: jid, state, reason, exitCode: "" };
        });
    },
    async waitFor(id, pred, what, timeoutMs = 600_000) {
      const t0 = Date.now();
      for (;;) {
        let tasks: JobState[] = [];
        try {
          tasks = cluster.jobs(id);
        } catch {
          // slurmctld busy: ask again
        }
        if (tasks.length && pred(tasks)) return tasks;
        if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id}: ${what} not reached (${JSON.stringify(tasks)})\n${logs()}`);
        await sleep(250);
      }
    },
    async waitEnded(id, timeoutMs) {
      const tasks = await cluster.waitFor(id, (ts) => ts.every((t) => TERMINAL.has(t.state)), "all tasks ended", timeoutMs);
      return tasks.map((t) => ({ ...t, exitCode: /ExitCode=(\S+)/.exec(cluster.cmd("scontrol", ["show", "job", t.id]))?.[1] ?? "" }));
    },
    async stop() {
      try {
        const ctld = procs.find((p) => p.spawnfile === "slurmctld");
        if (ctld && ctld.exitCode === null && ctld.signalCode === null) {
          cluster.cmd("scancel", ["--full", "--user", String(process.getuid?.() ?? 0)]);
          // wait for every job to end, so no job step outlives the daemons
          const t0 = Date.now();
          while (Date.now() - t0 < 60_000) {
            const active = cluster.cmd("squeue", ["-h", "-t", "PENDING,RUNNING,COMPLETING,CONFIGURING,SUSPENDED", "-o", "%i"]).trim();
            if (!active) break;
            await sleep(250);
          }
        }
      } catch {
        // the controller is already gone: nothing can be running under it
      } finally {
        for (const p of procs.slice().reverse()) {
          if (p.exitCode !== null || p.signalCode !== null) continue;
          const exited = new Promise((r) => p.once("exit", r));
          p.kill("SIGTERM");
          await Promise.race([exited, sleep(10_000)]);
          if (p.exitCode === null && p.signalCode === null) {
            p.kill("SIGKILL");
            await exited;
          }
        }
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };

  try {
    const host = execFileSync("hostname", ["-s"], { encoding: "utf8" }).trim();
    const node = execFileSync("slurmd", ["-C"], { encoding: "utf8" })
      .split("\n")
      .find((l) => l.startsWith("NodeName="))!
      .trim()
      .replace(/^NodeName=\S+/, `NodeName=${host}`);
    const [ctldPort, slurmdPort] = [await freePort(), await freePort()];
    writeFileSync(at("gres.conf"), `NodeName=${host} Name=gpu File=/dev/null\n`);
    writeFileSync(
      at("slurm.conf"),
      [
        "ClusterName=utgentest",
        `SlurmctldHost=${host}(127.0.0.1)`,
        `SlurmctldPort=${ctldPort}`,
        `SlurmdPort=${slurmdPort}`,
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        `AuthInfo=socket=${at("munge", "munge.sock")}`,
        `StateSaveLocation=${at("state")}`,
        `SlurmdSpoolDir=${at("spool")}`,
        `SlurmctldPidFile=${at("slurmctld.pid")}`,
        `SlurmdPidFile=${at("slurmd.pid")}`,
        `SlurmctldLogFile=${at("log", "slurmctld.log")}`,
        `SlurmdLogFile=${at("log", "slurmd.log")}`,
        "MailProg=/bin/true",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "SchedulerType=sched/builtin",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "MpiDefault=none",
        "GresTypes=gpu",
        "ReturnToService=2",
        // finished jobs stay visible to squeue for the whole test
        "MinJobAge=3600",
        "KillWait=5",
        `${node} NodeAddr=127.0.0.1 Gres=gpu:1 State=UNKNOWN`,
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        "",
      ].join("\n"),
    );
    daemon(
      "munged",
      ["-F", "-f", `--key-file=${at("munge", "munge.key")}`, `--socket=${at("munge", "munge.sock")}`, `--pid-file=${at("munge", "munged.pid")}`, `--log-file=${at("log", "munged.log")}`, `--seed-file=${at("munge", "seed")}`],
      "munged.stderr",
    );
    const t0 = Date.now();
    while (!existsSync(at("munge", "munge.sock"))) {
      if (Date.now() - t0 > 30_000) throw new Error(`munged did not start\n${logs()}`);
      await sleep(100);
    }
    daemon("slurmctld", ["-D", "-c", "-f", env.SLURM_CONF], "slurmctld.stderr");
    daemon("slurmd", ["-D", "-f", env.SLURM_CONF], "slurmd.stderr");
    const t1 = Date.now();
    for (;;) {
      let state = "";
      try {
        state = cluster.cmd("sinfo", ["-h", "-o", "%T"]).trim();
      } catch {
        // controller not listening yet
      }
      if (state === "idle") break;
      if (procs.some((p) => p.exitCode !== null)) throw new Error(`a SLURM daemon exited\n${logs()}`);
      if (Date.now() - t1 > 60_000) throw new Error(`the SLURM node is not idle (${state || "no answer"})\n${logs()}`);
      await sleep(250);
    }
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}
