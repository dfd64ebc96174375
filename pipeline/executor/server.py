# utgen-pipeline executor: the sandboxed Python fork server.
#
# One instance runs per pool worker, started by pool.ts inside bubblewrap as an unprivileged uid with an
# empty environment (see sandbox.ts). It preloads the UTGen prelude once, then serves JSON-lines requests
# on stdin/stdout. Every request runs in a freshly forked child (own session, rlimits, private temp dir,
# stdio on /dev/null); the child streams one JSON line per step through a pipe and the server enforces
# the wall-clock deadlines: a child that does not answer in time is SIGKILLed with its process group and
# the remaining inputs of a batch continue in a fresh child. This file is trusted code: it never `eval`s
# the data it receives, only `exec`s the program text it was asked to run, inside the child.
import ast
import base64
import hashlib
import json
import math
import os
import resource
import select
import signal
import socket
import stat
import sys
import tempfile
import time

sys.set_int_max_str_digits(0)
sys.setrecursionlimit(3000)

CFG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
MEMORY_MB = int(CFG.get("memory_mb", 1024))
NOFILE = int(CFG.get("nofile", 64))
FSIZE = int(CFG.get("fsize", 1 << 20))
GRACE = float(CFG.get("grace_s", 0.25))
OUT_CAP = int(CFG.get("out_cap", 8 << 20))
MSG_CAP = 500
# Everything a child may write lives under TMP_ROOT, which the server empties after each child. In the
# sandbox it is the sandbox's only writable mount (`tmp_root`, see sandbox.ts: /tmp and /dev are read-only);
# with unsafe_no_sandbox it is a directory of this server's own under the host's /tmp (`tmp`), so the
# clean-up never touches anything else.
TMP_ROOT = CFG["tmp_root"] if CFG.get("tmp_root") else tempfile.mkdtemp(prefix="utgen-exec-", dir=CFG.get("tmp", "/tmp"))
# The one child alive at a time works in this directory (its cwd, $HOME and $TMPDIR); the server empties
# TMP_ROOT after each child, so no child ever sees what an earlier one left.
CHILD_DIR = os.path.join(TMP_ROOT, "w")

# ---- the UTGen prelude: exactly the reference's IMPORT_HELPER["python"] (archiki/UTGenDebug utils.py), in
# its order, imported once in the server and copied into every program's namespace. Nothing more: an extra
# module would let code that forgot an import run here but not in the reference, and an extra wildcard
# import rebinds builtins (after `from math import *`, `pow` is math.pow and `pow(b, e, m)` raises).
PRELUDE = """
import math
import re
import sys
import copy
import datetime
import itertools
import collections
import heapq
import functools
import hashlib
import numpy
import numpy as np
import string
from typing import *
from collections import *
from functools import *
"""
_prelude_ns = {"__name__": "__utgen__", "__builtins__": __builtins__}
exec(compile(PRELUDE, "<prelude>", "exec"), _prelude_ns)
import numpy as _np  # noqa: E402  (already imported by the prelude)

MAX_SAFE = 2**53 - 1

try:
    import ctypes as _ctypes

    _prctl = _ctypes.CDLL(None).prctl
except Exception:  # pragma: no cover - ctypes missing
    _prctl = None


def _baseline_vm_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 256 << 20


AS_LIMIT = _baseline_vm_bytes() + MEMORY_MB * (1 << 20)


# ------------------------------------------------------------------ value encoding (child side) ----
class _TooLarge(Exception):
    pass


class _Timeout(BaseException):
    """Raised by the per-call timer. A BaseException so that `except Exception` in user code misses it."""


def _on_alarm(signum, frame):
    raise _Timeout()


_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads
_type = type
_float_repr = float.__repr__
_int_repr = int.__repr__


class _Encoder:
    def __init__(self, cap):
        self.budget = cap

    def charge(self, n):
        self.budget -= n
        if self.budget < 0:
            raise _TooLarge()

    def enc(self, v, depth=0):
        if depth > 200:
            raise _TooLarge("nesting deeper than 200")
        t = _type(v)
        self.charge(4)
        if v is None or t is bool:
            return v
        if t is int:
            if -MAX_SAFE <= v <= MAX_SAFE:
                return v
            if v.bit_length() > self.budget * 3.3:
                raise _TooLarge()
            s = _int_repr(v)
            self.charge(len(s))
            return {"$int": s}
        if t is float:
            return {"$float": _float_repr(v)}
        if t is str:
            self.charge(len(v))
            return v
        if t is list:
            return [self.enc(x, depth + 1) for x in v]
        if t is tuple:
            return {"$tuple": [self.enc(x, depth + 1) for x in v]}
        if t is set or t is frozenset:
            items = [self.enc(x, depth + 1) for x in v]
            items.sort(key=_dumps)
            return {"$set" if t is set else "$frozenset": items}
        if t is dict:
            return {"$dict": [[self.enc(k, depth + 1), self.enc(x, depth + 1)] for k, x in dict.items(v)]}
        if t is bytes or t is bytearray:
            self.charge(len(v) * 2)
            if t is bytearray:
                return {"$repr": repr(v)[:OUT_CAP], "type": "bytearray"}
            return {"$bytes": base64.b64encode(v).decode("ascii")}
        if t is _np.ndarray:
            self.charge(v.size * 4)
            return {"$ndarray": self.enc(v.tolist(), depth + 1), "dtype": str(v.dtype)}
        if isinstance(v, _np.generic):
            # numpy scalars compare like their Python counterparts: encode them as such.
            if isinstance(v, _np.bool_):
                return bool(v)
            if isinstance(v, _np.integer):
                return self.enc(int(v), depth)
            if isinstance(v, _np.floating):
                return {"$float": _float_repr(float(v))}
        r = repr(v)
        if _type(r) is not str:
            r = "<unrepresentable>"
        self.charge(len(r))
        try:
            tn = t.__qualname__
            if _type(tn) is not str:
                tn = "object"
            mod = t.__module__
            if _type(mod) is str and mod not in ("builtins", "__utgen__", "solution"):
                tn = mod + "." + tn
        except BaseException:
            tn = "object"
        return {"$repr": r, "type": tn}


def encode_value(v):
    return _Encoder(OUT_CAP).enc(v)


def decode_value(x):
    """Typed JSON → Python value (used for call arguments). Raises ValueError on a malformed encoding."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [decode_value(y) for y in x]
    if isinstance(x, dict):
        if "$int" in x:
            return int(x["$int"])
        if "$float" in x:
            return float(x["$float"])
        if "$tuple" in x:
            return tuple(decode_value(y) for y in x["$tuple"])
        if "$set" in x:
            return set(decode_value(y) for y in x["$set"])
        if "$frozenset" in x:
            return frozenset(decode_value(y) for y in x["$frozenset"])
        if "$dict" in x:
            return {decode_value(k): decode_value(v) for k, v in x["$dict"]}
        if "$bytes" in x:
            return base64.b64decode(x["$bytes"], validate=True)
        if "$ndarray" in x:
            return _np.array(decode_value(x["$ndarray"]), dtype=x.get("dtype"))
        if "$repr" in x:
            raise ValueError("a $repr value (%s) cannot be passed as an argument" % x.get("type"))
    raise ValueError("malformed value encoding: %s" % str(x)[:80])


# ------------------------------------------------------------------------------- child helpers ----
def _one_line(s):
    s = s.replace("\n", " ").strip()
    return s[:MSG_CAP]


def _exc_info(e):
    try:
        name = _type(e).__name__
        if _type(name) is not str:
            name = "Exception"
    except BaseException:
        name = "Exception"
    try:
        msg = str(e)
        if _type(msg) is not str:
            msg = ""
    except BaseException:
        msg = "<unprintable message>"
    return name[:100], _one_line(msg)


def _child_setup(w, cpu_s, cpu_hard_s):
    """Runs first in every forked child: session, stdio, fds, rlimits, cwd, signals."""
    os.setsid()
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, w)
    os.closerange(w + 1, 65536)
    # Signal dispositions, the environment ({HOME, TMPDIR} = CHILD_DIR only) and tempfile.tempdir are
    # inherited from the server (set once in _server_signals and _server_env). TMP_ROOT is empty here: the
    # server does not ask for a child until its clean-up succeeded (Child), so the directory is new.
    os.mkdir(CHILD_DIR, 0o700)
    os.chdir(CHILD_DIR)
    cpu = int(math.ceil(cpu_s)) + 1
    cpu_hard = max(cpu, int(math.ceil(cpu_hard_s)) + 1)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu_hard))
    except (ValueError, OSError):
        pass
    for lim, val in (
        (resource.RLIMIT_AS, AS_LIMIT),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, FSIZE),
        (resource.RLIMIT_NOFILE, NOFILE),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(lim, (val, val))
        except (ValueError, OSError):
            pass
    if _prctl is not None:
        _prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no ptrace, no /proc/<pid>/mem of the child


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _emit(w, obj):
    _write_all(w, (_dumps(obj) + "\n").encode("ascii"))


def _set_timer(t):
    signal.setitimer(signal.ITIMER_REAL, t)


def _exec_module(src, ns, timeout, code=None):
    """Execute module source (or its already compiled `code`) under the timer. None on success, else a status dict."""
    t0 = time.perf_counter()
    try:
        try:
            _set_timer(timeout)
            exec(code if code is not None else compile(src, "<program>", "exec"), ns)
            _set_timer(0)
        except _Timeout:
            _set_timer(0)
            return {"status": "timeout", "message": "module level exceeded %gs" % timeout}
        except BaseException as e:
            _set_timer(0)
            name, msg = _exc_info(e)
            return {"status": "error", "errorType": name, "message": msg}
    except _Timeout:
        _set_timer(0)
        return {"status": "timeout", "message": "module level exceeded %gs" % timeout}
    if time.perf_counter() - t0 > timeout:
        return {"status": "timeout", "message": "module level exceeded %gs" % timeout}
    return None


def _call_one(fn, arg, timeout):
    try:
        args = [decode_value(a) for a in arg.get("args", [])]
        kwargs = {str(k): decode_value(v) for k, v in (arg.get("kwargs") or {}).items()}
    except Exception as e:
        return {"status": "invalid_input", "message": _one_line("bad argument encoding: %s" % e), "ms": 0}
    res = None
    t0 = time.perf_counter()
    try:
        try:
            _set_timer(timeout)
            v = fn(*args, **kwargs)
            ms = (time.perf_counter() - t0) * 1000
            res = {"status": "ok", "value": encode_value(v), "ms": ms}
            _set_timer(0)
        except _Timeout:
            _set_timer(0)
            res = {"status": "timeout", "message": "call exceeded %gs" % timeout}
        except _TooLarge:
            _set_timer(0)
            res = {"status": "error", "errorType": "OutputTooLarge",
                   "message": "return value larger than %d bytes or nested deeper than 200" % OUT_CAP}
        except BaseException as e:
            _set_timer(0)
            name, msg = _exc_info(e)
            res = {"status": "error", "errorType": name, "message": msg}
    except _Timeout:
        _set_timer(0)
        res = {"status": "timeout", "message": "call exceeded %gs" % timeout}
    elapsed = (time.perf_counter() - t0) * 1000
    if elapsed > timeout * 1000 and res["status"] != "timeout":
        res = {"status": "timeout", "message": "call exceeded %gs" % timeout}
    res.setdefault("ms", elapsed)
    if res["status"] != "ok":
        res["ms"] = elapsed
    return res


def _raise_cpu(timeout):
    try:
        used = resource.getrusage(resource.RUSAGE_SELF)
        cur = used.ru_utime + used.ru_stime
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        lim = int(math.ceil(cur + timeout)) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (min(lim, hard), hard))
    except (ValueError, OSError):
        pass


def child_calls(w, req, start):
    """Child body for a `calls` request: load the program, then run inputs[start:] one by one."""
    timeout = float(req["timeout"])
    load_timeout = float(req.get("load_timeout") or timeout)
    ns = dict(_prelude_ns)
    ns["__name__"] = "solution"
    fail = _exec_module(req["program"], ns, load_timeout)
    if fail is not None:
        _emit(w, {"load": fail})
        return
    _emit(w, {"loaded": True})
    inputs = req["inputs"]
    fn = ns.get(req["entry"])
    for k in range(start, len(inputs)):
        if fn is None or not callable(fn):
            r = {"status": "error", "errorType": "NameError",
                 "message": "name %r is not defined by the program" % req["entry"], "ms": 0}
        else:
            _raise_cpu(timeout)
            r = _call_one(fn, inputs[k], timeout)
        try:
            _emit(w, {"i": k, "r": r})
        except (TypeError, ValueError):
            _emit(w, {"i": k, "r": {"status": "error", "errorType": "OutputEncodingError",
                                    "message": "value could not be serialised", "ms": r.get("ms", 0)}})


def _annotation(node):
    return ast.unparse(node) if node is not None else None


def function_info(fn):
    a = fn.args
    params = []
    positional = list(a.posonlyargs) + list(a.args)
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    for p, d in zip(positional, defaults):
        params.append({"name": p.arg, "annotation": _annotation(p.annotation),
                       "default": _annotation(d), "kind": "positional"})
    if a.vararg:
        params.append({"name": a.vararg.arg, "annotation": _annotation(a.vararg.annotation), "kind": "vararg"})
    for p, d in zip(a.kwonlyargs, a.kw_defaults):
        params.append({"name": p.arg, "annotation": _annotation(p.annotation),
                       "default": _annotation(d), "kind": "keyword_only"})
    if a.kwarg:
        params.append({"name": a.kwarg.arg, "annotation": _annotation(a.kwarg.annotation), "kind": "varkw"})
    parts = []
    for p in params:
        prefix = "*" if p["kind"] == "vararg" else "**" if p["kind"] == "varkw" else ""
        if p["kind"] == "keyword_only" and not a.vararg and not any(x.startswith("*") for x in parts):
            parts.append("*")
        s = prefix + p["name"]
        if p.get("annotation"):
            s += ": " + p["annotation"]
        if p.get("default") is not None:
            s += (" = " if p.get("annotation") else "=") + p["default"]
        parts.append(s)
    returns = _annotation(fn.returns)
    sig = "%s(%s)" % (fn.name, ", ".join(parts)) + (" -> " + returns if returns else "")
    for p in params:
        for k in ("annotation", "default"):
            if p.get(k) is None:
                p.pop(k, None)
    out = {"name": fn.name, "params": params, "lineno": fn.lineno, "signature": sig}
    if returns:
        out["returns"] = returns
    return out


def child_check(w, req):
    try:
        tree = ast.parse(req["program"])
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        name, msg = _exc_info(e)
        _emit(w, {"ast": {"functions": [], "classes": []},
                  "load": {"status": "syntax_error", "errorType": name, "message": msg}})
        return
    funcs = [function_info(n) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
    _emit(w, {"ast": {"functions": funcs, "classes": classes}})
    ns = dict(_prelude_ns)
    ns["__name__"] = "solution"
    fail = _exec_module(req["program"], ns, float(req["timeout"]))
    _emit(w, {"load": fail or {"status": "ok"}})


# Project helper scripts (runScript with project_code: the project's own files, never dataset or model
# text) are compiled once, in the zygote, so that each child skips the compile. The server remembers which
# ones it has handed over; bounded (a handful of files).
_PROJECT_KEYS = set()


def project_key(req):
    """Key of the zygote's compiled copy of a project helper script, or None (the child compiles it)."""
    if not req.get("project_code"):
        return None
    src = req.get("script")
    if not isinstance(src, str):
        return None
    key = hashlib.sha256(src.encode("utf-8", "surrogatepass")).hexdigest()
    if key not in _PROJECT_KEYS:
        if len(_PROJECT_KEYS) >= 16:
            _PROJECT_KEYS.clear()
            _zcall({"op": "project_clear"})
        # The text travels in a memfd, so every other message to the zygote fits a small receive buffer.
        fd = os.memfd_create("project")
        try:
            _write_all(fd, src.encode("utf-8", "surrogatepass"))
            _zcall({"op": "project", "key": key}, (fd,))
        finally:
            os.close(fd)
        _PROJECT_KEYS.add(key)
    return key


def child_script(w, req, code=None):
    ns = dict(_prelude_ns)
    ns["__name__"] = "__script__"
    ns["INPUT"] = req.get("input")
    # Helper scripts may turn typed JSON (types.ts) into Python values and back with the executor's own codec.
    ns["decode_value"] = decode_value
    ns["encode_value"] = encode_value
    fail = _exec_module(req["script"], ns, float(req["timeout"]), code)
    if fail is not None:
        _emit(w, {"load": fail})
        return
    try:
        out = _dumps(ns.get("OUTPUT"))
    except (TypeError, ValueError) as e:
        _emit(w, {"load": {"status": "error", "errorType": "TypeError",
                           "message": _one_line("OUTPUT is not plain JSON: %s" % e)}})
        return
    if len(out) > OUT_CAP * 4:
        _emit(w, {"load": {"status": "error", "errorType": "OutputTooLarge", "message": "OUTPUT too large"}})
        return
    _write_all(w, b'{"load":{"status":"ok"},"output":' + (out + "}\n").encode("ascii"))


# ------------------------------------------------------------------------------ server side ----
def out(obj):
    sys.stdout.write(_dumps(obj) + "\n")
    sys.stdout.flush()


_moved = [0]
_dirty = [False]


def _empty_tmp_root():
    """Remove everything under TMP_ROOT (all of it is the dead child's). Flat and iterative: each folder is
    made writable again, its files unlinked and its subfolders moved up into TMP_ROOT, so neither depth,
    path length nor permissions the child set can keep anything for the next child. True when empty."""
    try:
        os.chmod(TMP_ROOT, 0o700)
    except OSError:
        pass
    while True:
        try:
            names = os.listdir(TMP_ROOT)
        except OSError:
            return False
        if not names:
            return True
        progress = False
        for name in names:
            p = os.path.join(TMP_ROOT, name)
            try:
                is_dir = stat.S_ISDIR(os.lstat(p).st_mode)
            except OSError:
                continue
            try:
                if not is_dir:
                    os.unlink(p)
                    progress = True
                    continue
                os.chmod(p, 0o700)
                os.rmdir(p)  # the usual case: the child's empty working directory
                progress = True
                continue
            except OSError:
                pass
            try:
                with os.scandir(p) as it:
                    entries = list(it)
            except OSError:
                continue
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        os.chmod(e.path, 0o700)  # moving a folder to a new parent needs write access to it
                        while True:
                            _moved[0] += 1
                            dst = os.path.join(TMP_ROOT, ".up%d" % _moved[0])
                            if not os.path.lexists(dst):
                                break
                        os.rename(e.path, dst)
                    else:
                        os.unlink(e.path)
                    progress = True
                except OSError:
                    pass
        if not progress:
            return False


# ------------------------------------------------------------------------------------ zygote ----
# Children are not forked from the server but from a zygote: a process the server forks at start-up, before
# its first request, that never holds a request, a program, an input or a result. A child's memory is a copy
# of the zygote's (the prelude) plus its own request, which it reads from a pipe; so a program that scans its
# own memory finds nothing of the programs, inputs or results this worker ran before. The server talks to the
# zygote over a SEQPACKET socket: "fork" (with the child's request and result pipe ends), "wait" (reap a child,
# return its wait status), "ping", "project" (compile a trusted project helper once). A program that kills its
# parent kills the zygote. Before a request is done the server asks the zygote something (the reap of each
# child, or a ping for the last one); a SIGKILL sent before that question — so before the child wrote its
# last result — leaves no zygote to answer, and the server then re-reports that child's results as crashes
# and exits (the pool starts a fresh sandbox; the batch continues there).
_ZSOCK = None


class ZygoteGone(Exception):
    """The zygote did not answer: a program killed it."""


def _zygote_main(sock):
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)  # the server's request and reply pipes are not the zygote's
    os.close(devnull)
    compiled = {}
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 4096, 2)
        except OSError:
            os._exit(0)
        if not msg:
            os._exit(0)  # the server is gone
        h = _loads(msg)
        op = h.get("op")
        reply = {}
        if op == "fork":
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    sock.close()
                    _child_main(h, fds, compiled)
                except BaseException:
                    code = 3
                finally:
                    os._exit(code)
            reply = {"pid": pid}
        elif op == "wait":
            try:
                reply = {"status": os.waitpid(h["pid"], 0)[1]}
            except ChildProcessError:
                reply = {"status": None}
        elif op == "project":
            try:
                text = b""
                while True:
                    b = os.pread(fds[0], 1 << 20, len(text))
                    if not b:
                        break
                    text += b
                compiled[h["key"]] = compile(text.decode("utf-8", "surrogatepass"), "<script>", "exec")
            except Exception:  # reported by the child's own compile
                pass
        elif op == "project_clear":
            compiled.clear()
        # "ping": the empty reply says the zygote is alive
        for fd in fds:
            os.close(fd)
        sock.send(_dumps(reply).encode("ascii"))


def _child_main(h, fds, compiled):
    """Body of a child: read its own request from the pipe, then set up and run the requested body."""
    req_r, w = fds
    chunks = []
    while True:
        b = os.read(req_r, 1 << 20)
        if not b:
            break
        chunks.append(b)
    os.close(req_r)
    req = _loads(b"".join(chunks))
    del chunks
    _child_setup(w, h["cpu"], h["cpu_hard"])
    kind = h["body"]
    if kind == "calls":
        child_calls(w, req, h["start"])
    elif kind == "check":
        child_check(w, req)
    elif kind == "script":
        child_script(w, req, compiled.get(h.get("key")))


def _zygote_start():
    """Fork the zygote (before the first request is read) and keep the server's end of its socket."""
    global _ZSOCK
    mine, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            mine.close()
            _zygote_main(its)
        finally:
            os._exit(0)
    its.close()
    _ZSOCK = mine
    # The server writes each request into its child's pipe; a child that died early must not kill the server
    # with SIGPIPE (the zygote and the children keep the default, inherited from before this point).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def _zcall(h, fds=()):
    """One request to the zygote and its reply; ZygoteGone when it does not answer (a program killed it)."""
    msg = b""
    try:
        data = _dumps(h).encode("ascii")
        if fds:
            socket.send_fds(_ZSOCK, [data], list(fds))
        else:
            _ZSOCK.send(data)
        msg = _ZSOCK.recv(4096)
    except OSError:
        pass
    if not msg:
        raise ZygoteGone()
    return _loads(msg)


class Child:
    """A child forked by the zygote, plus the server's reader for its result pipe."""

    def __init__(self, kind, payload, cpu_s, cpu_hard_s=0, start=0, key=None):
        if _dirty[0] and not _empty_tmp_root():
            # Something an earlier child left could not be removed: end this server (fail closed; the pool
            # starts a fresh sandbox and this request reports a crash) rather than let the next child see it.
            # Not expected: the server can chmod, move and unlink all that a dead child of its uid created.
            os._exit(70)
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        self.pid = _zcall({"op": "fork", "body": kind, "start": start, "cpu": cpu_s, "cpu_hard": cpu_hard_s, "key": key},
                          (req_r, res_w))["pid"]
        os.close(req_r)
        os.close(res_w)
        self.fd = res_r
        self.buf = b""
        self.exit_desc = None
        try:
            _write_all(req_w, payload)
        except OSError:
            pass  # the child is already gone: its (missing) results say so
        os.close(req_w)

    def read_line(self, deadline):
        """Next line from the child, or None on EOF, or "timeout" when the deadline passes."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                try:
                    return _loads(line)
                except ValueError:
                    return {"garbage": True}
            if len(self.buf) > OUT_CAP * 4 + 4096:
                return {"garbage": True}
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk

    def finish(self):
        self.kill()
        self.reap()

    def kill(self):
        """SIGKILL the child's process group: from here on it runs no more code (its results may go out)."""
        if self.exit_desc is not None:
            return  # reaped already: its pid may belong to another process by now
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def reap(self):
        """Wait for the killed child, record how it ended, and empty TMP_ROOT (everything there is its)."""
        if self.exit_desc is not None:
            return
        status = _zcall({"op": "wait", "pid": self.pid})["status"]
        os.close(self.fd)
        if status is None:
            self.exit_desc = "was not reaped"
            self.exit_sig = 0
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            self.exit_desc = "killed by %s" % signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else "signal %d" % sig
            self.exit_sig = sig
        else:
            self.exit_desc = "exited with code %d" % os.WEXITSTATUS(status)
            self.exit_sig = 0
        if not _empty_tmp_root():
            _dirty[0] = True

    def died_status(self, what):
        """Status for a child that stopped answering (EOF): crash, or timeout when the CPU limit killed it."""
        if getattr(self, "exit_sig", 0) in (signal.SIGXCPU,):
            return {"status": "timeout", "message": "%s: CPU limit reached" % what}
        return {"status": "crash", "message": "%s: child %s" % (what, self.exit_desc)}


def serve_calls(req, line):
    rid = req["id"]
    inputs = req["inputs"]
    n = len(inputs)
    timeout = float(req["timeout"])
    load_timeout = float(req.get("load_timeout") or timeout)
    start = 0
    last = None
    while start < n:
        child = Child("calls", line, load_timeout, load_timeout + (n - start) * (timeout + 1) + 5, start=start)
        deadline = time.monotonic() + load_timeout + GRACE
        loaded = False
        k = start
        fill = None
        while k < n:
            msg = child.read_line(deadline)
            if msg == "timeout" or msg is None or not isinstance(msg, dict) or msg.get("garbage"):
                break
            if not loaded:
                if "load" in msg:
                    fill = dict(msg["load"])
                    fill["message"] = _one_line("module level: " + str(fill.get("message", "")))
                    break
                if msg.get("loaded"):
                    loaded = True
                    out({"id": rid, "loaded": True})
                    deadline = time.monotonic() + timeout + GRACE
                    continue
                break
            if msg.get("i") != k or not isinstance(msg.get("r"), dict):
                msg = {"garbage": True}
                break
            out({"id": rid, "i": k, "r": msg["r"]})
            k += 1
            deadline = time.monotonic() + timeout + GRACE
        try:
            if k >= n:
                # Every result is in: kill the child, make sure the zygote is alive (see the zygote section),
                # and reap the child after the reply, so its exit overlaps the client's turn-around.
                child.kill()
                _zcall({"op": "ping"})
                last = child
                break
            child.finish()
        except ZygoteGone:
            _retract(rid, start, k)
            raise
        if fill is None:
            if msg == "timeout":
                fill = {"status": "timeout", "message": "exceeded %gs (hard kill)" % (timeout if loaded else load_timeout)}
            elif isinstance(msg, dict) and msg.get("garbage"):
                fill = {"status": "crash", "message": "child wrote a malformed result"}
            else:
                fill = child.died_status("call" if loaded else "module level")
            if not loaded:
                fill["message"] = _one_line("module level: " + fill["message"])
        fill["ms"] = round((time.monotonic() - (deadline - (timeout if loaded else load_timeout) - GRACE)) * 1000, 3)
        if not loaded:
            for j in range(k, n):
                out({"id": rid, "i": j, "r": fill})
            break
        out({"id": rid, "i": k, "r": fill})
        start = k + 1
    out({"id": rid, "done": True})
    if last is not None:
        last.reap()


def _retract(rid, start, end):
    """Results [start, end) came from a child that killed the zygote: report them again, as crashes."""
    for j in range(start, end):
        out({"id": rid, "i": j, "r": {"status": "crash", "message": "the program killed its parent (the sandbox's zygote)", "ms": 0}})


def serve_single(kind, line, timeout, key=None):
    """check / script: one child, a deadline for the whole request. Returns the merged result and the child,
    killed (the zygote checked alive) but not yet reaped: the caller reaps it after replying."""
    child = Child(kind, line, timeout, key=key)
    deadline = time.monotonic() + timeout + GRACE
    msgs = []
    end = None
    while True:
        msg = child.read_line(deadline)
        if msg == "timeout":
            end = {"status": "timeout", "message": "exceeded %gs (hard kill)" % timeout}
            break
        if msg is None or not isinstance(msg, dict) or msg.get("garbage"):
            child.finish()
            end = child.died_status("program") if msg is None else {"status": "crash", "message": "malformed result"}
            break
        msgs.append(msg)
        if "load" in msg:
            break
    child.kill()
    _zcall({"op": "ping"})
    merged = {}
    for m in msgs:
        merged.update(m)
    if end is not None:
        merged["load"] = end
    return merged, child


def _server_signals():
    """Dispositions every child needs, set once here so the fork inherits them: default actions (die) for
    SIGINT, SIGTERM, SIGPIPE, SIGXCPU and SIGXFSZ, and the per-call timer's handler for SIGALRM. The
    server wants the same defaults (it dies with its pipe or on SIGTERM) and never arms a timer itself."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXCPU, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, _on_alarm)


def _server_env():
    """The environment every child inherits: nothing but HOME and TMPDIR, both its working directory. (The
    server's own environment, already minimal, mattered only while the prelude imported numpy.)"""
    os.environ.clear()
    os.environ.update({"TMPDIR": CHILD_DIR, "HOME": CHILD_DIR})
    tempfile.tempdir = CHILD_DIR


def main():
    _server_signals()
    _server_env()
    if _prctl is not None:
        _prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: children (same uid) cannot ptrace or read our memory
    import gc

    gc.freeze()  # keep the preloaded objects out of the children's collections: fewer copy-on-write faults
    _zygote_start()  # before the first request: the zygote never sees one
    out({"ready": True, "pid": os.getpid(), "uid": os.getuid(), "as_limit": AS_LIMIT})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            _empty_tmp_root()
            if not CFG.get("tmp_root"):
                try:
                    os.rmdir(TMP_ROOT)
                except OSError:
                    pass
            return
        try:
            req = _loads(line)
        except ValueError:
            out({"fatal": "bad request line"})
            continue
        op = req.get("op")
        rid = req.get("id")
        t0 = time.perf_counter()
        try:
            if op == "calls":
                serve_calls(req, line)
            elif op == "check":
                res, child = serve_single("check", line, float(req["timeout"]))
                out({"id": rid, "done": True, "check": res, "ms": (time.perf_counter() - t0) * 1000})
                child.reap()
            elif op == "script":
                key = project_key(req)
                res, child = serve_single("script", line, float(req["timeout"]), key)
                out({"id": rid, "done": True, "script": res, "ms": (time.perf_counter() - t0) * 1000})
                child.reap()
            elif op == "ping":
                out({"id": rid, "done": True})
            else:
                out({"id": rid, "done": True, "fatal": "unknown op %r" % op})
        except ZygoteGone:
            os._exit(71)  # a program killed the zygote: the pool starts a fresh sandbox


if __name__ == "__main__":
    main()
