# A deliberately straightforward gold-test harness, the baseline the executor's gold-check is measured
# against: Python multiprocessing, one process per (problem, program), the program and the test header
# exec'd together, each gold test under a fixed SIGALRM limit; a test that ignores the alarm (C-level
# loop) is killed by the parent after limit + 1 s and the process restarts at the next test.
# It is started inside the same bubblewrap sandbox as the fork servers (sandbox.ts: sandboxedPython).
# Input on stdin: {"tasks": [{"key", "program", "header", "fn", "atol", "timeout"?}], "timeout", "processes",
# "prelude", "memory_mb", "load_timeout"? (module level; default: the per-test limit, as the UTGen reference)}; output on stdout: {"results": {key: {"tests", "passed", "verdicts"}}} where
# verdicts has one character per test: p(ass), f(ail), t(imeout).
import json
import multiprocessing as mp
import resource
import signal
import sys
import time


class Timeout(BaseException):
    pass


def on_alarm(signum, frame):
    raise Timeout()


def worker(task, start, conn, timeout, prelude, memory_mb, load_timeout=None):
    import os

    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.dup2(devnull, 0)
    try:
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
    except (ValueError, OSError):
        pass
    signal.signal(signal.SIGALRM, on_alarm)
    hdr = {}
    exec(prelude + "\n" + task["header"], hdr)
    n = len(hdr["inputs"])
    conn.send(("n", n))
    ns = {}
    try:
        signal.setitimer(signal.ITIMER_REAL, load_timeout or timeout)
        exec(prelude + "\n" + task["program"] + "\n" + task["header"], ns)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except BaseException:
        signal.setitimer(signal.ITIMER_REAL, 0)
        conn.send(("end", 0))
        return
    atol = eval(task["atol"], ns)
    fn = ns[task["fn"]]
    for i in range(start, n):
        conn.send(("start", i))
        verdict = "f"
        try:
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout)
                ns["assertion"](fn(*ns["inputs"][i]), ns["results"][i], atol)
                verdict = "p"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except Timeout:
            verdict = "t"
        except BaseException:
            verdict = "f"
        conn.send(("done", i, verdict))
    conn.send(("end", 0))


def run_task(task, timeout, prelude, memory_mb, load_timeout=None):
    """Runs one (problem, program) to completion, restarting after hard kills. Returns (tests, passed, verdicts)."""
    ctx = mp.get_context("fork")
    passed = 0
    verdicts = {}
    n = None
    start = 0
    while True:
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=worker, args=(task, start, child, timeout, prelude, memory_mb, load_timeout))
        p.start()
        child.close()
        current = None
        deadline = time.monotonic() + 30 + timeout
        finished = False
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not parent.poll(left):
                break
            try:
                msg = parent.recv()
            except EOFError:
                break
            if msg[0] == "n":
                n = msg[1]
                deadline = time.monotonic() + timeout + 30
            elif msg[0] == "start":
                current = msg[1]
                deadline = time.monotonic() + timeout + 1
            elif msg[0] == "done":
                passed += 1 if msg[2] == "p" else 0
                verdicts[msg[1]] = msg[2]
                current = None
            elif msg[0] == "end":
                finished = True
                break
        p.kill()
        p.join()
        parent.close()
        if current is not None:
            verdicts[current] = "t"
        if finished or n is None or current is None:
            break
        start = current + 1
        if start >= n:
            break
    n = n or 0
    return (n, passed, "".join(verdicts.get(i, "f") for i in range(n)))


def main():
    req = json.load(sys.stdin)
    timeout = float(req["timeout"])
    tasks = req["tasks"]
    results = {}
    from multiprocessing.pool import ThreadPool

    # Threads only supervise: each runs its task's forked processes.
    with ThreadPool(int(req.get("processes", 2))) as pool:
        futures = [
            (t["key"], pool.apply_async(run_task, (t, float(t.get("timeout") or timeout), req.get("prelude", ""), int(req.get("memory_mb", 1024)),
                                                 req.get("load_timeout"))))
            for t in tasks
        ]
        for key, f in futures:
            n, passed, verdicts = f.get()
            results[key] = {"tests": n, "passed": passed, "verdicts": verdicts}
    sys.stdout.write(json.dumps({"results": results}) + "\n")


if __name__ == "__main__":
    main()
