/** Tests that stop a child run at a point they control (the engine's UTGEN_TEST_HOLD hook). */
import type { ChildProcess } from "node:child_process";

/** Resolves once a child started with UTGEN_TEST_HOLD=<stage>:<k> prints `hold: <stage> <k>` (rejects if it ends first). */
export function untilHold(child: ChildProcess, what: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d) => {
      err += d;
      if (err.includes(`hold: ${what}\n`) || err.includes(`hold: ${what}\r\n`)) resolve(); // \r\n in a pty
    });
    child.once("exit", (code) => reject(new Error(`the run ended (${code}) before holding at ${what}: ${err.slice(-500)}`)));
  });
}

/** Resolves when the child has exited (at once if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", () => r())));
}
