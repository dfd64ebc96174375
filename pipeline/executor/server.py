# utgen-pipeline executor: the sandboxed Python fork server.
#
# One instance runs per pool worker, started by pool.ts inside bubblewrap as an unprivileged uid with an
# empty environment (see sandbox.ts and docs/executor.md, "Threat model"). It preloads the UTGen prelude
# once, then serves JSON-lines requests on stdin/stdout. Every program runs in a freshly forked child of a
# zygote; the child only ever reports raw results (values, exception types, stdout) — it never holds an
# expected value, and pass/fail is decided outside it (judge.ts). The conversation with a child is strict:
# one answer per input in order, then an end line with the fresh nonce its request carried; anything else on the
# channel (unsolicited, duplicated, out-of-order lines, bytes left after the child's final answer) marks the
# child as tampered and every result it gave is replaced by a crash (what that cannot rule out: "child
# bodies" below). This file is
# trusted code: it never `eval`s the data it receives, only `exec`s the program text it was asked to run,
# inside the child.
import ast
import base64
import re
import ctypes
import errno
import hashlib
import json
import keyword as _keyword  # _Inert (collections, in every prelude, imports it anyway)
import marshal
import math
import os
import resource
import select
import signal
import socket
import stat
import struct
import sys
import time
import warnings  # _precompile records the compiler's warnings (the prelude's modules import it anyway: no zygote gains a module)

sys.set_int_max_str_digits(0)
sys.setrecursionlimit(3000)

CFG = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
MEMORY_MB = int(CFG.get("memory_mb", 1024))
NOFILE = int(CFG.get("nofile", 64))
FSIZE = int(CFG.get("fsize", 1 << 20))
GRACE = float(CFG.get("grace_s", 0.25))
OUT_CAP = int(CFG.get("out_cap", 8 << 20))
# What one request may send back in total (results of all its programs); past it, values become errors.
REQ_OUT_CAP = int(CFG.get("request_out_cap", 64 << 20))
# Size and inode limits of the writable tmpfs each child gets (recreated when a child left anything).
TMPFS_BYTES = int(CFG.get("tmpfs_bytes", 64 << 20))
TMPFS_INODES = int(CFG.get("tmpfs_inodes", 4096))
# stdio programs: the most a run may write to stdout.
STDOUT_CAP = int(CFG.get("stdout_cap", 8 << 20))
MSG_CAP = 500
# Everything a child may write lives under TMP_ROOT. In the sandbox it is the sandbox's only writable mount
# (`tmp_root`, see sandbox.ts: /tmp and /dev are read-only), a tmpfs the server mounts itself with size and
# inode limits and replaces with a fresh one whenever a child left anything in it; with unsafe_no_sandbox
# it is a directory of this server's own under the host's temporary folder (`tmp`: Node's os.tmpdir()), emptied by
# a walk after each child and removed when the server ends or restarts.
def _own_tmp_dir(parent):
    """A new 0700 folder under `parent` (tempfile is not imported: it brings `random`, whose fork handler would
    cost every child a reseed; a program that imports either gets a fresh one)."""
    while True:
        p = os.path.join(parent, "utgen-exec-" + os.urandom(6).hex())
        try:
            os.mkdir(p, 0o700)
            return p
        except FileExistsError:
            continue


TMP_ROOT = CFG["tmp_root"] if CFG.get("tmp_root") else _own_tmp_dir(CFG.get("tmp", "/tmp"))
# The one child alive at a time works in TMP_ROOT itself (its cwd, $HOME and $TMPDIR); after it, the server
# puts TMP_ROOT back as it was — contents, mode, extended attributes and times (_clean_tmp_root).
ROOT_MODE, _UID = stat.S_IFDIR | 0o700, os.getuid()

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
# The same prelude without numpy, for the lean zygote (see "zygotes" below): a program that never names numpy,
# np, or anything that could reflect on its namespace, memory or loaded modules cannot tell the difference.
LEAN_PRELUDE = "\n".join(line for line in PRELUDE.splitlines() if "numpy" not in line) + "\n"
# A program is sent to the full zygote when its text has any of these words (conservative: in strings and
# comments too): numpy itself, libraries that import it, and every way to look at the namespace, the loaded
# modules, the object graph or the process's memory.
FULL_WORDS = re.compile(
    r"\b(?:np|numpy|pandas|scipy|sklearn|torch|tensorflow|jax|numba|matplotlib|cv2|PIL|sympy|networkx|"
    r"globals|locals|vars|dir|eval|exec|__import__|importlib|modules|builtins|__builtins__|"
    r"__dict__|__globals__|f_globals|f_locals|f_back|_getframe|inspect|gc|ctypes|__subclasses__|__class__|"
    r"__base__|__bases__|__mro__|help|pydoc|tracemalloc|getallocatedblocks|getrusage|resource|mmap|proc)\b")
# Set in each zygote when it loads its prelude (the server itself never loads one).
_prelude_ns = None
_np = None

MAX_SAFE = 2**53 - 1
_exit = os._exit  # the harness's own reference: a program may rebind os._exit

# ------------------------------------------------------------------------------ kernel helpers ----
_libc = ctypes.CDLL(None, use_errno=True)
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MNT_DETACH = 2


# Foreign functions with fixed argument types and every structure they take built here, once: a child only
# calls them (each ctypes object made in a child would cost it allocations and copy-on-write faults).
_prctl = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, use_errno=True)(
    ("prctl", _libc))
# capset and fork run in every child: without use_errno, whose swap of errno around each call touches objects of
# the thread state (3 copy-on-write faults per child for fork alone); errno is read only when they fail (_c_errno).
_capset = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(("capset", _libc))
# libc's fork() called with the GIL held (PyDLL): the zygote's fork of a child, without os.fork's Python-level
# before/after hooks (see _zygote_fork).
_libc_fork = ctypes.PyDLL(None).fork
_libc_fork.restype = ctypes.c_int
_libc_fork.argtypes = ()
_errno_location = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_int))(("__errno_location", _libc))


def _c_errno():
    """The calling thread's errno as libc left it (right after a call made without use_errno failed)."""
    return _errno_location()[0]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAP_HDR = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
_CAP_NONE = (_CapData * 2)()
_CAP_ARGS = (ctypes.addressof(_CAP_HDR), ctypes.addressof(_CAP_NONE))


def _drop_caps():
    """Clear every capability of this process (the sandbox's CAP_SYS_ADMIN, which only the server and zygote need):
    effective, permitted and inheritable, and with them the ambient set, which never holds a capability that is
    not both permitted and inheritable (the zygote cleared it at its start, too: it never executes a program)."""
    if _capset(*_CAP_ARGS) != 0:
        raise OSError(_c_errno(), "capset")


def _cap_eff():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


# CAP_SYS_ADMIN (bit 21) inside the sandbox's user namespace: what the per-request IPC namespace, the inner
# pid namespace and the server's own tmpfs need. Absent with unsafe_no_sandbox (those protections are then off).
# Only ever inside the sandbox (`sandboxed` is set by sandbox.ts): a server started without it (unsafe mode,
# perhaps as root on the host) must never unshare, mount or look for stray processes.
HAVE_ADMIN = bool(CFG.get("sandboxed")) and os.getuid() != 0 and bool(_cap_eff() & (1 << 21))


def _mount_tmpfs():
    """A fresh tmpfs on TMP_ROOT (size and inode limits); the old one, if any, is detached first."""
    _libc.umount2(TMP_ROOT.encode(), MNT_DETACH)
    opts = "size=%d,nr_inodes=%d,mode=0700" % (TMPFS_BYTES, TMPFS_INODES)
    if _libc.mount(b"tmpfs", TMP_ROOT.encode(), b"tmpfs", 0, opts.encode()) != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs on " + TMP_ROOT)
    _root_as_made()


# ---- seccomp: system calls no generated program needs, refused in every child (compiled once here with
# libseccomp's Python binding and loaded by each zygote once its prelude is in, so every child inherits it
# and none pays for compiling it into the kernel). EPERM, except clone3 → ENOSYS so that libc falls back to
# clone(2), whose flags can be checked. What the zygote itself needs stays open: fork, pidfd_open (harmless in
# a child: its namespace holds nothing else it could signal) and unshare(CLONE_NEWIPC) alone (a child, without
# capabilities, gets EPERM from the kernel).
DENIED_SYSCALLS = [
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "mount", "umount2", "pivot_root", "chroot", "setns", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "shmget", "shmat", "shmdt", "shmctl", "msgget", "msgsnd", "msgrcv", "msgctl",
    "semget", "semop", "semtimedop", "semctl",
    "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    "memfd_create", "memfd_secret",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "reboot", "swapon", "swapoff", "syslog", "acct", "quotactl", "quotactl_fd",
    "name_to_handle_at", "open_by_handle_at", "lookup_dcookie",
    "ioperm", "iopl", "sethostname", "setdomainname", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "personality", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "vmsplice",
]
CLONE_NS_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x00000080]


def _compile_seccomp():
    """BPF bytes of the children's filter, or None when libseccomp's binding is missing (checked by sandbox.ts)."""
    try:
        import seccomp
    except ImportError:
        return None
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    eperm = seccomp.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        try:
            f.add_rule(eperm, name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a syscall on this architecture
    f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    f.add_rule(eperm, "unshare", seccomp.Arg(0, seccomp.NE, CLONE_NEWIPC))
    for flag in CLONE_NS_FLAGS:  # new namespaces (and CLONE_NEWTIME/NEWCGROUP) are refused
        f.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # prlimit on another process (pid != 0): e.g. lowering the zygote's limits
    f.add_rule(eperm, "prlimit64", seccomp.Arg(0, seccomp.NE, 0))
    r, w = os.pipe()
    try:
        with os.fdopen(w, "wb", closefd=False) as fw:
            f.export_bpf(fw)
        os.close(w)
        w = -1
        chunks = []
        while True:
            b = os.read(r, 1 << 16)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return b"".join(chunks)


SECCOMP_BPF = _compile_seccomp() if CFG.get("seccomp", True) else None


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_SECCOMP_BUF = ctypes.create_string_buffer(SECCOMP_BPF, len(SECCOMP_BPF)) if SECCOMP_BPF else None
_SECCOMP_PROG = _SockFprog(len(SECCOMP_BPF) // 8, ctypes.addressof(_SECCOMP_BUF)) if SECCOMP_BPF else None
_SECCOMP_ADDR = ctypes.addressof(_SECCOMP_PROG) if SECCOMP_BPF else 0


def _load_seccomp():
    if not _SECCOMP_ADDR:
        return
    if _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")
    if _prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, _SECCOMP_ADDR, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "seccomp")


def _baseline_vm_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 256 << 20


AS_LIMIT = 0  # set with the prelude: what the zygote maps once loaded + MEMORY_MB


def _load_prelude(full):
    """Import the prelude in this zygote (full: the reference's list; lean: the same without numpy)."""
    global _prelude_ns, _np
    ns = {"__name__": "__utgen__", "__builtins__": __builtins__}
    exec(compile(PRELUDE if full else LEAN_PRELUDE, "<prelude>", "exec"), ns)
    _prelude_ns = ns
    _np = ns["numpy"] if full else None
    _set_as_limit()


def _set_as_limit():
    """A child's address-space limit: what its zygote maps (prelude loaded) plus memory_mb."""
    global AS_LIMIT
    AS_LIMIT = _baseline_vm_bytes() + MEMORY_MB * (1 << 20)


def _zygote_limits():
    """The limits every child has that the zygote itself can live with: its children inherit them."""
    for lim, val in (
        (resource.RLIMIT_AS, AS_LIMIT),
        (resource.RLIMIT_FSIZE, max(FSIZE, STDOUT_CAP)),
        (resource.RLIMIT_NOFILE, NOFILE),
        (resource.RLIMIT_CORE, 0),
    ):
        try:
            resource.setrlimit(lim, (val, val))
        except (ValueError, OSError):
            pass


def _numpy():
    """numpy if this process has it (the full zygote's children, or a lean child that imported it)."""
    return _np if _np is not None else sys.modules.get("numpy")


# ------------------------------------------------------------------ value encoding (child side) ----
class _TooLarge(Exception):
    pass


class _Timeout(BaseException):
    """Raised by the per-call timer. A BaseException so that `except Exception` in user code misses it."""


# The processes that are not children (the server, each zygote): the per-call timer's handler does nothing in
# them. Every child inherits that handler from its zygote, so the zygote has it too, and pid 1 of a namespace
# ignores, from inside it, only the signals it has no handler for: a program's kill(1, SIGALRM) reaches the
# zygote, whose handler returns (the call it interrupted is retried), instead of raising there and ending it
# (and its neighbours' results). Checked when a SIGALRM arrives, never on the children's path: a child runs
# no code for it (it used to unblock SIGALRM, which its zygote kept blocked: ~75 µs a child).
_NOT_CHILDREN = set()


def _on_alarm(signum, frame):
    if os.getpid() in _NOT_CHILDREN:
        return
    raise _Timeout()


_dumps = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads
_scan_once = json.JSONDecoder().scan_once  # the C scanner (json.loads's own, without its Python wrappers)


def _loads_line(b):
    """One line from a child: exactly one UTF-8 JSON value and nothing else (no BOM, no whitespace around it,
    which the harness never writes). ValueError otherwise (UnicodeDecodeError is one)."""
    s = b.decode("utf-8")
    try:
        obj, end = _scan_once(s, 0)
    except StopIteration:
        raise ValueError("not a JSON value") from None
    if end != len(s):
        raise ValueError("extra data after the JSON value")
    return obj
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
        npm = _numpy()
        if npm is not None and t is npm.ndarray:
            self.charge(v.size * 4)
            return {"$ndarray": self.enc(v.tolist(), depth + 1), "dtype": str(v.dtype)}
        if npm is not None and isinstance(v, npm.generic):
            # numpy scalars compare like their Python counterparts: encode them as such.
            if isinstance(v, npm.bool_):
                return bool(v)
            if isinstance(v, npm.integer):
                return self.enc(int(v), depth)
            if isinstance(v, npm.floating):
                return {"$float": _float_repr(float(v))}
        # Subclasses of the builtin values (Counter, defaultdict, OrderedDict, a namedtuple, an IntEnum member, a
        # user's list subclass…) are encoded by their base value, read through the base type's own accessors: in
        # the reference `Counter(...) == {...}` and a namedtuple == its tuple, and a subclass's own __eq__ (or an
        # overridden __iter__/items) never takes part in a verdict.
        if isinstance(v, int) and not isinstance(v, bool):
            return self.enc(int.__int__(v), depth)
        if isinstance(v, float):
            return {"$float": _float_repr(float.__float__(v))}
        if isinstance(v, str):
            return self.enc(str.__str__(v), depth)
        if isinstance(v, bytes):
            return self.enc(bytes(memoryview(v)), depth)
        if isinstance(v, tuple):
            return {"$tuple": [self.enc(x, depth + 1) for x in tuple.__iter__(v)]}
        if isinstance(v, list):
            return [self.enc(x, depth + 1) for x in list.__iter__(v)]
        if isinstance(v, dict):
            return {"$dict": [[self.enc(k, depth + 1), self.enc(x, depth + 1)] for k, x in dict.items(v)]}
        if isinstance(v, (set, frozenset)):
            items = [self.enc(x, depth + 1) for x in (set.__iter__(v) if isinstance(v, set) else frozenset.__iter__(v))]
            items.sort(key=_dumps)
            return {"$set" if isinstance(v, set) else "$frozenset": items}
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


def _valid_value(v):
    """Is v a value in the executor's typed encoding (types.ts)? The harness's encoder only writes these; the
    server checks every value a child reports (a program writing its own lines could write anything)."""
    stack = [(v, 0)]
    while stack:
        x, d = stack.pop()
        if d > 210:
            return False
        t = _type(x)
        if x is None or t is bool or t is str:
            continue
        if t is int:
            if not -MAX_SAFE <= x <= MAX_SAFE:
                return False
            continue
        if t is list:
            stack.extend((y, d + 1) for y in x)
            continue
        if t is not dict:
            return False
        keys = x.keys()
        if len(x) == 1:
            (k, y), = x.items()
            if k in ("$int", "$float", "$bytes"):
                if _type(y) is not str:
                    return False
            elif k in ("$tuple", "$set", "$frozenset"):
                if _type(y) is not list:
                    return False
                stack.extend((z, d + 1) for z in y)
            elif k == "$dict":
                if _type(y) is not list:
                    return False
                for pair in y:
                    if _type(pair) is not list or len(pair) != 2:
                        return False
                    stack.append((pair[0], d + 1))
                    stack.append((pair[1], d + 1))
            else:
                return False
        elif len(x) == 2 and "$ndarray" in keys and "dtype" in keys:
            if _type(x["dtype"]) is not str:
                return False
            stack.append((x["$ndarray"], d + 1))
        elif len(x) == 2 and "$repr" in keys and "type" in keys:
            if _type(x["$repr"]) is not str or _type(x["type"]) is not str:
                return False
        else:
            return False
    return True


def decode_value(x, depth=0):
    """Typed JSON → Python value (used for call arguments). Raises ValueError on a malformed encoding."""
    if depth > 200:
        raise ValueError("value nested deeper than 200")
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, list):
        return [decode_value(y, depth + 1) for y in x]
    if isinstance(x, dict):
        if "$int" in x:
            return int(x["$int"])
        if "$float" in x:
            return float(x["$float"])
        if "$tuple" in x:
            return tuple(decode_value(y, depth + 1) for y in x["$tuple"])
        if "$set" in x:
            return set(decode_value(y, depth + 1) for y in x["$set"])
        if "$frozenset" in x:
            return frozenset(decode_value(y, depth + 1) for y in x["$frozenset"])
        if "$dict" in x:
            return {decode_value(k, depth + 1): decode_value(v, depth + 1) for k, v in x["$dict"]}
        if "$bytes" in x:
            return base64.b64decode(x["$bytes"], validate=True)
        if "$ndarray" in x:
            npm = _numpy() or __import__("numpy")
            return npm.array(decode_value(x["$ndarray"], depth + 1), dtype=x.get("dtype"))
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


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd, n):
    """n bytes from fd, or fewer at EOF."""
    chunks = []
    left = n
    while left > 0:
        b = os.read(fd, min(left, 1 << 20))
        if not b:
            break
        chunks.append(b)
        left -= len(b)
    return b"".join(chunks)


def _set_timer(t):
    signal.setitimer(signal.ITIMER_REAL, t)


def _child_setup(fd_a, fd_b, cpu, cpu_hard):
    """Runs first in every forked child: capabilities, fds, cwd, rlimits (`cpu`, `cpu_hard`: whole seconds, the
    server's), RNG. The seccomp filter, fds 0-2 on /dev/null, the non-dumpable flag, the recursion limit
    (Python's default, 1000, as the reference runs programs; the server keeps 3000) and the session are the
    zygote's, inherited: the zygote is the leader of a session and process group of its own
    (_spawn_zygote), so a child's kill(0, …) reaches only its zygote, immune, and itself. (A session per child
    cost ~60 µs each: the kernel makes every new session a scheduler autogroup of its own.)"""
    if HAVE_ADMIN:
        _drop_caps()  # before anything else: no code of the child runs with the sandbox's CAP_SYS_ADMIN
    else:
        # No pid namespace (unsafe or diagnostic mode): the zygote is not pid 1 and not immune, so each child
        # keeps a session and process group of its own, as before 2026-12-04.
        os.setsid()
    # fds 0-2 are /dev/null already (the zygote's, inherited) and the process is not dumpable (the server's
    # PR_SET_DUMPABLE 0, inherited through the zygote, which checks it at start-up): neither is redone here,
    # each step a child skips is copy-on-write faults it does not take.
    lo, hi = (fd_a, fd_b) if fd_a < fd_b else (fd_b, fd_a)  # every descriptor from 3 up but these two
    if lo > 3:
        os.closerange(3, lo)
    os.closerange(lo + 1, hi)
    os.closerange(hi + 1, 65536)
    # Signal dispositions and the environment ({HOME, TMPDIR} = TMP_ROOT only: tempfile follows TMPDIR) are
    # inherited from the server (_server_signals, _server_env). TMP_ROOT is as fresh here as a new mount: the
    # server does not ask for a child until the previous one's traces are gone (_clean_tmp_root).
    os.chdir(TMP_ROOT)
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu_hard))
    except (ValueError, OSError):
        pass
    # AS, FSIZE, NOFILE and CORE were set (soft = hard) in the zygote, which they fit; NPROC 0 only fits a child
    # (the zygote must fork).
    try:
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    except (ValueError, OSError):
        pass
    # A fresh RNG state: every child is a copy of the zygote, so numpy's global generator would otherwise
    # start from the same state in every program (python's `random` is reseeded after the zygote's fork: _zygote_fork).
    if _np is not None:
        try:
            _np.random.seed(int.from_bytes(os.urandom(4), "little"))
        except Exception:
            pass


def _exec_module(src, ns, timeout, code=None, spent=0.0):
    """Execute module source (its text or its parsed AST; or its already compiled `code`) under the timer. None on
    success, else a status dict. `spent`: seconds of the limit already used (the server's compile of `code`)."""
    t0 = time.perf_counter() - spent
    try:
        try:
            _set_timer(max(timeout - spent, 1e-6))
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
    """One call: its result dict with `ms` (the call) and `e` (encoding the value), both milliseconds."""
    try:
        args = [decode_value(a) for a in arg.get("args", [])]
        kwargs = {str(k): decode_value(v) for k, v in (arg.get("kwargs") or {}).items()}
    except Exception as e:
        return {"status": "invalid_input", "message": _one_line("bad argument encoding: %s" % e), "ms": 0}
    res = None
    t0 = time.perf_counter()
    t1 = None
    try:
        try:
            _set_timer(timeout)
            v = fn(*args, **kwargs)
            t1 = time.perf_counter()
            res = {"status": "ok", "value": encode_value(v), "ms": (t1 - t0) * 1000}
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
    t2 = time.perf_counter()
    elapsed = ((t1 if t1 is not None else t2) - t0) * 1000
    if (t2 - t0) * 1000 > timeout * 1000 and res["status"] != "timeout":
        res = {"status": "timeout", "message": "call exceeded %gs" % timeout}
    if res["status"] != "ok" or "ms" not in res:
        res["ms"] = elapsed
    res["e"] = (t2 - (t1 if t1 is not None else t2)) * 1000
    return res


class _Exit(BaseException):
    """os._exit inside a stdio program: ends that run (its output so far counts), not the child."""

    def __init__(self, code):
        self.code = code


class _Stdio:
    """stdin and stdout of stdio runs: unnamed files (O_TMPFILE) in the child's own tmpfs — so what a run
    writes counts against that tmpfs's size, and nothing outlives the child — behind fds 0 and 1."""

    def __init__(self):
        self.inp = os.open(TMP_ROOT, os.O_TMPFILE | os.O_RDWR, 0o600)
        self.out = os.open(TMP_ROOT, os.O_TMPFILE | os.O_RDWR, 0o600)

    def run(self, code, text, timeout):
        import io

        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else b""
        os.ftruncate(self.inp, 0)
        os.pwrite(self.inp, data, 0)
        os.lseek(self.inp, 0, 0)
        os.dup2(self.inp, 0)
        os.ftruncate(self.out, 0)
        os.lseek(self.out, 0, 0)
        os.dup2(self.out, 1)
        sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8", errors="surrogateescape")
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8", errors="surrogateescape")
        ns = {"__name__": "__main__", "__builtins__": __builtins__}
        res = None
        t0 = time.perf_counter()
        t1 = None
        saved_exit = os._exit
        os._exit = _stdio_exit
        try:
            try:
                _set_timer(timeout)
                try:
                    exec(code, ns)
                except SystemExit as e:
                    if e.code not in (None, 0):
                        raise
                except _Exit as e:
                    if e.code not in (None, 0):
                        raise SystemExit(e.code)
                for stream in (sys.stdout, sys.__stdout__):  # print() and writes through the original sys.__stdout__
                    try:
                        stream.flush()
                    except BaseException:
                        pass
                t1 = time.perf_counter()
                _set_timer(0)
                res = {"status": "ok"}
            except _Timeout:
                _set_timer(0)
                res = {"status": "timeout", "message": "run exceeded %gs" % timeout}
            except BaseException as e:
                _set_timer(0)
                name, msg = _exc_info(e)
                if isinstance(e, OSError) and getattr(e, "errno", None) == errno.EFBIG:
                    name, msg = "OutputTooLarge", "stdout larger than %d bytes" % STDOUT_CAP
                res = {"status": "error", "errorType": name, "message": msg}
        except _Timeout:
            _set_timer(0)
            res = {"status": "timeout", "message": "run exceeded %gs" % timeout}
        finally:
            os._exit = saved_exit
        t2 = time.perf_counter()
        if (t2 - t0) > timeout and res["status"] != "timeout":
            res = {"status": "timeout", "message": "run exceeded %gs" % timeout}
        res["ms"] = ((t1 if t1 is not None else t2) - t0) * 1000
        if res["status"] == "ok":
            size = os.fstat(self.out).st_size
            raw = os.pread(self.out, min(size, STDOUT_CAP), 0)
            res["value"] = raw.decode("utf-8", "replace")
        res["e"] = (time.perf_counter() - t2) * 1000
        return res


def _stdio_exit(code=0):
    raise _Exit(code)


def _annotation(node):
    return ast.unparse(node) if node is not None else None


def _ast_summary(tree):
    """The check kind's summary of a parsed module: its top-level functions (function_info) and class names."""
    return {"functions": [function_info(n) for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))],
            "classes": [n.name for n in tree.body if isinstance(n, ast.ClassDef)]}


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




# ---- compiled once in the server ----------------------------------------------------------------------------
# A fresh child is dear where its first touch of each page is (a copy-on-write fault, and under some hypervisors a
# trap for every page it reads): parsing and compiling a program's text in the child allocated and touched ~150
# pages of the parser's, compiler's and AST's memory, ~40 % of a check child's CPU (docs/executor.md, "Sixth
# pass"). The server parses and compiles instead, warm, and sends the code object (marshal, the format of
# CPython's own .pyc files) down the child's request pipe; the child only loads and executes it. The server never
# runs a program: compiling text executes nothing of it. It is done only where the result is the child's own to
# the letter, else the child compiles the text as before: kinds "function" and "check" (stdio programs and
# scripts keep their own compile), text up to PRECOMPILE_MAX characters (the compiler's time and memory stay
# small beside any limit), no warning from the compiler (in a child its warning is printed, to /dev/null, which
# can import modules there), a recursion limit below the child's (a program nested so deep that the child's
# compile fails fails here first and goes to the child), and frozenset constants (`x in {1, 2}`) whose order
# survives marshal (a rebuilt set can iterate in another order than one built in source order). Any error here
# (a SyntaxError, a MemoryError) sends the text to the child, whose own message is the one reported.
PRECOMPILE = bool(CFG.get("precompile", True))
PRECOMPILE_MAX = 64 << 10
_CHILD_RECURSION = 1000  # the children's recursion limit (set in each zygote)
_CodeType = type(compile("", "<program>", "exec"))


def _set_orders(obj, out):
    """The iteration order of every frozenset among a code object's constants (nested ones included), in order."""
    if isinstance(obj, _CodeType):
        for c in obj.co_consts:
            _set_orders(c, out)
    elif isinstance(obj, tuple):
        for c in obj:
            _set_orders(c, out)
    elif isinstance(obj, frozenset):
        out.append(list(obj))
        for c in obj:
            _set_orders(c, out)
    return out


def _precompile(kind, text):
    """(code, the check kind's AST summary or None, seconds taken, the check kind's tree or None) for a program
    the child can run compiled, else None (the child compiles `text` itself)."""
    if not PRECOMPILE or kind not in ("function", "check") or not isinstance(text, str) or len(text) > PRECOMPILE_MAX:
        return None
    t0 = time.perf_counter()
    old = sys.getrecursionlimit()
    info = tree = None
    try:
        sys.setrecursionlimit(_CHILD_RECURSION - 50)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            if kind == "check":
                tree = ast.parse(text)
                info = _ast_summary(tree)
                code = compile(tree, "<program>", "exec")
            else:
                code = compile(text, "<program>", "exec")
        if said:
            return None
        sets = _set_orders(code, [])
        if sets and _set_orders(marshal.loads(marshal.dumps(code)), []) != sets:
            return None
    except Exception:
        return None
    finally:
        sys.setrecursionlimit(old)
    return code, info, time.perf_counter() - t0, tree


# ---- checks decided without a child ----------------------------------------------------------------------------
# The check kind asks one thing of a program's module level: does it run without an error (within its limit)? For
# a module that only binds names — functions without decorators (or with functools.cache / lru_cache), classes of
# plain methods, imports of modules its zygote has loaded, literal constants, annotations that only name classes
# and well-formed generics, an `if __name__ == "__main__":` block (never taken: a check runs the module as
# "solution") — the answer is yes before it runs: executing it creates function, class and alias objects and
# binds names, and nothing it runs can fail or take time. The server decides such a check from its own parse,
# without a child (`static_check`, on by default; fidelity row E13); anything this analysis does not know to be
# inert forks a child as before. It reads the program's tree only: no program code runs here. What a name is
# bound to in a child comes from the zygote itself (_static_env: its prelude's namespace, builtins, loaded
# modules and the attributes of common ones, each as a kind), so nothing is assumed about the prelude.
STATIC_CHECK = bool(CFG.get("static_check", True))
# Modules a program may import names from in a check decided here (those of them the zygote has loaded).
_STATIC_FROM = ("typing", "collections", "collections.abc", "functools", "itertools", "math", "cmath", "heapq", "bisect",
                "re", "string", "copy", "datetime", "sys", "os", "operator", "random", "time", "json", "enum", "abc",
                "fractions", "decimal", "statistics", "array", "struct", "textwrap", "types", "dataclasses")
# Special methods a class body may define in a check decided here: none of them takes part in creating the class.
_STATIC_DUNDERS = frozenset((
    "__init__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__",
    "__len__", "__iter__", "__next__", "__reversed__", "__getitem__", "__setitem__", "__delitem__", "__contains__",
    "__call__", "__bool__", "__enter__", "__exit__", "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__",
    "__mul__", "__rmul__", "__truediv__", "__floordiv__", "__mod__", "__pow__", "__neg__", "__pos__", "__abs__",
    "__and__", "__or__", "__xor__", "__invert__", "__lshift__", "__rshift__", "__format__", "__del__"))
# Kinds (_static_env) of what may stand as a typing generic's parameter, as an operand of `|` in an annotation,
# and as a class's single base.
_TYPEISH = frozenset(("c", "cb", "g", "ds", "dc", "dp", "cls", "alias", "none", "fwd", "tt", "any"))
_UNIONABLE = frozenset(("c", "cb", "g", "ds", "dc", "dp", "cls", "alias", "none"))
_BASES = frozenset(("cb", "g", "cls"))
_INT_BITS = 4096  # the largest integer a constant expression may reach here
_ARITH_OPS = 256  # the most arithmetic steps one program's constants may take here
_ANN_NODES, _ANN_UNION, _ANN_FWD = 4096, 256, 256  # bounds on one program's annotations (_Inert.ann)
# Kinds of value that may not hash: an object of the namespace's (sys.path is a list), a list / dict / set value
# or a tuple holding one, a generic alias of such.
_UNHASHABLE = frozenset(("o", "v", "ualias"))


def _static_env():
    """A zygote's: the kind of everything a child's module level finds by name — its prelude's namespace over
    builtins ("names"), the modules loaded ("modules"), and the attributes of those of _STATIC_FROM loaded
    ("attrs"). Kinds: "g" a class subscripted into a types.GenericAlias without checks (list, dict, deque, …),
    "t<n>" a typing generic of n parameters (List, Dict, …), "tt" / "to" / "tu" / "any" typing's Tuple,
    Optional, Union, Any, "ds" / "dc" / "dp" staticmethod, classmethod, property, "dk" / "dl" functools.cache and
    lru_cache, "cb" / "c" a class with the plain metaclass that can / cannot be subclassed, "m:<name>" a module,
    "o" anything else."""
    import abc
    import collections
    import functools
    import types
    import typing

    special = {id(typing.Tuple): "tt", id(typing.Optional): "to", id(typing.Union): "tu", id(typing.Any): "any",
               id(staticmethod): "ds", id(classmethod): "dc", id(property): "dp",
               id(functools.lru_cache): "dl", id(getattr(functools, "cache", functools.lru_cache)): "dk"}
    for c in (list, dict, set, frozenset, tuple, type, collections.deque, collections.defaultdict,
              collections.OrderedDict, collections.Counter, collections.ChainMap):
        special[id(c)] = "g"
    spec_alias = getattr(typing, "_SpecialGenericAlias", None)
    banned = (getattr(typing, "Generic", None), getattr(typing, "Protocol", None))

    def kind(v):
        k = special.get(id(v))
        if k is not None:
            return k
        if spec_alias is not None and type(v) is spec_alias and isinstance(getattr(v, "_nparams", None), int):
            return "t%d" % v._nparams
        if isinstance(v, types.ModuleType) and isinstance(getattr(v, "__name__", None), str):
            return "m:" + v.__name__
        if isinstance(v, type) and type(v) in (type, abc.ABCMeta) and not any(v is b for b in banned):
            # "cb": Py_TPFLAGS_BASETYPE, and no class of its own in the way a subclass is made (typing's special
            # classes refuse subclasses from __init_subclass__)
            plain = all("__init_subclass__" not in vars(c) for c in v.__mro__ if c is not object)
            return "cb" if v.__flags__ & (1 << 10) and plain else "c"
        return "o"

    b = _prelude_ns.get("__builtins__")
    names = {}
    for scope in ((b if isinstance(b, dict) else vars(b)), _prelude_ns):
        for name, v in list(scope.items()):
            if isinstance(name, str) and not (name.startswith("__") and name.endswith("__")):
                names[name] = kind(v)
    mods = sorted(m for m, v in list(sys.modules.items()) if isinstance(v, types.ModuleType))
    attrs = {}
    for m in _STATIC_FROM:
        mod = sys.modules.get(m)
        if isinstance(mod, types.ModuleType):
            attrs[m] = {a: kind(getattr(mod, a)) for a in list(vars(mod)) if isinstance(a, str) and not a.startswith("__")}
    return {"names": names, "modules": mods, "attrs": attrs}


_STATIC_ENV = {}  # zygote name → its _static_env (None where it could not be had)


def _static_env_of(zyg):
    if zyg not in _STATIC_ENV:
        env = None
        try:
            env, _ = _zcall({"op": "static_env"}, zyg=zyg, size=1 << 20)
            if not (isinstance(env, dict) and isinstance(env.get("names"), dict)):
                env = None
            else:
                env["modules"] = frozenset(env.get("modules") or ())
        except Exception:
            env = None
        _STATIC_ENV[zyg] = env
    return _STATIC_ENV[zyg]


def _typeish(kind):
    """Whether a value of this kind passes typing's check of a generic's parameter."""
    return kind in _TYPEISH or (kind[:1] == "t" and kind[1:].isdigit())


def _dunder(name):
    return name.startswith("__") and name.endswith("__")


class _NotInert(Exception):
    pass


class _Inert:
    """Whether executing a module's tree can only bind names (see above). `check(tree)` returns True or False."""

    def __init__(self, env):
        self.env = env
        self.mod = {}  # names the module has bound so far → kind
        self.cls = None  # the class body being read: its own bindings
        self.lazy_ann = False  # `from __future__ import annotations`: annotations are never evaluated
        self.ops = 0
        self.ann_nodes = self.fwd = self.unions = 0

    # -- names
    def lookup(self, name):
        if self.cls is not None:
            if name.startswith("__"):
                raise _NotInert()  # mangled in a class body, or the class's own __module__ / __qualname__
            if name in self.cls:
                return self.cls[name]
        if _dunder(name):
            raise _NotInert()
        k = self.mod.get(name)
        if k is None:
            k = self.env["names"].get(name)
        if k is None:
            raise _NotInert()  # a NameError, or something this analysis does not know
        return k

    def bind(self, name, kind):
        if not isinstance(name, str) or _dunder(name) or (self.cls is not None and name.startswith("__")):
            raise _NotInert()
        (self.cls if self.cls is not None else self.mod)[name] = kind

    def attr(self, kind, name):
        if not kind.startswith("m:"):
            raise _NotInert()
        k = (self.env.get("attrs") or {}).get(kind[2:], {}).get(name)
        if k is None:
            raise _NotInert()
        return k

    # -- expressions
    def num(self, n):
        """The value of a constant arithmetic expression, computed here in bounded steps; raises where the child's
        evaluation could raise (or take long)."""
        self.ops += 1
        if self.ops > _ARITH_OPS:
            raise _NotInert()
        if isinstance(n, ast.Constant) and type(n.value) in (int, float, complex, bool):
            return n.value
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd, ast.Invert)):
            v = self.num(n.operand)
            if isinstance(n.op, ast.Invert) and type(v) not in (int, bool):
                raise _NotInert()
            return -v if isinstance(n.op, ast.USub) else +v if isinstance(n.op, ast.UAdd) else ~v
        if isinstance(n, ast.BinOp):
            a, b = self.num(n.left), self.num(n.right)
            ints = type(a) in (int, bool) and type(b) in (int, bool)
            op = n.op
            if isinstance(op, ast.Mult) and ints and a.bit_length() + b.bit_length() > _INT_BITS:
                raise _NotInert()
            if isinstance(op, ast.Pow) and ints and b >= 0 and b * max(1, a.bit_length()) > _INT_BITS:
                raise _NotInert()
            if isinstance(op, (ast.LShift, ast.RShift)) and (not ints or b > _INT_BITS):  # a negative count raises below
                raise _NotInert()
            if isinstance(op, (ast.BitAnd, ast.BitOr, ast.BitXor)) and not ints:
                raise _NotInert()
            f = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b, ast.Div: lambda: a / b,
                 ast.FloorDiv: lambda: a // b, ast.Mod: lambda: a % b, ast.Pow: lambda: a ** b,
                 ast.LShift: lambda: a << b, ast.RShift: lambda: a >> b, ast.BitAnd: lambda: a & b,
                 ast.BitOr: lambda: a | b, ast.BitXor: lambda: a ^ b}.get(type(op))
            if f is None:
                raise _NotInert()
            try:
                v = f()
            except Exception:
                raise _NotInert()
            if type(v) is int and v.bit_length() > _INT_BITS:
                raise _NotInert()
            return v
        raise _NotInert()

    def hashable(self, n):
        if isinstance(n, ast.Constant):
            return
        if isinstance(n, ast.Tuple):
            for e in n.elts:
                self.hashable(e)
            return
        self.num(n)

    def value(self, n):
        """The kind of a value expression whose evaluation cannot fail (a default, an assigned value)."""
        if isinstance(n, ast.Constant):
            return "none" if n.value is None else "k"
        if isinstance(n, ast.Name):
            return self.lookup(n.id)
        if isinstance(n, ast.Attribute):
            return self.attr(self.value(n.value), n.attr)
        if isinstance(n, (ast.UnaryOp, ast.BinOp)):
            self.num(n)
            return "k"
        if isinstance(n, (ast.Tuple, ast.List)):
            kinds = []
            for e in n.elts:
                if isinstance(e, ast.Starred):
                    raise _NotInert()
                kinds.append(self.value(e))
            # "k": a hashable constant; "v": a value that may not hash (a list, a dict, a set, a tuple holding one)
            return "k" if isinstance(n, ast.Tuple) and all(k not in _UNHASHABLE for k in kinds) else "v"
        if isinstance(n, ast.Set):
            for e in n.elts:
                self.hashable(e)
            return "v"
        if isinstance(n, ast.Dict):
            for k, v in zip(n.keys, n.values):
                if k is None:
                    raise _NotInert()  # **mapping
                self.hashable(k)
                self.value(v)
            return "v"
        if isinstance(n, ast.Lambda):
            self.defaults(n.args)
            return "f"
        raise _NotInert()

    def ann(self, n):
        """The kind of an annotation's value, where evaluating it cannot fail (nor take long: a program's
        annotations may hold at most _ANN_NODES nodes, _ANN_UNION members of unions and _ANN_FWD strings, which
        typing compiles as forward references)."""
        self.ann_nodes += 1
        if self.ann_nodes > _ANN_NODES:
            raise _NotInert()
        if isinstance(n, ast.Constant):
            v = n.value
            if v is None:
                return "none"
            if isinstance(v, str):
                self.fwd += 1
                if self.fwd > _ANN_FWD:
                    raise _NotInert()
                # ASCII only: typing compiles a forward reference, and a non-ASCII name makes the compiler import
                # unicodedata (a module load, not just a binding)
                return "fwd" if v.isascii() and v.isidentifier() and not _keyword.iskeyword(v) else "str"
            return "ell" if v is Ellipsis else "k"
        if isinstance(n, ast.Name):
            return self.lookup(n.id)
        if isinstance(n, ast.Attribute):
            return self.attr(self.ann(n.value), n.attr)
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            self.union(2)
            a, b = self.ann(n.left), self.ann(n.right)
            if a in _UNIONABLE and b in _UNIONABLE and not (a == "none" and b == "none"):
                return "alias"
            raise _NotInert()
        if isinstance(n, ast.Subscript):
            base = self.ann(n.value)
            tup = isinstance(n.slice, ast.Tuple)
            elts = n.slice.elts if tup else [n.slice]
            kinds = []
            for e in elts:
                if isinstance(e, (ast.Starred, ast.Slice)):
                    raise _NotInert()
                kinds.append(self.ann(e))
            if base == "g":
                # list[...], dict[...]: a types.GenericAlias of whatever is inside; hashable (as Union and Optional
                # need their members) only where everything inside is
                return "alias" if all(k not in _UNHASHABLE for k in kinds) else "ualias"
            if base.startswith("t") and base[1:].isdigit():
                # (typing's generics of no parameters, Hashable or Sized, take no subscript at all)
                if len(kinds) == int(base[1:]) >= 1 and all(_typeish(k) for k in kinds):
                    return "alias"
            elif base == "tt":
                if not kinds or (len(kinds) >= 2 and kinds[-1] == "ell" and all(_typeish(k) for k in kinds[:-1])) or all(_typeish(k) for k in kinds):
                    return "alias"
            elif base == "to":
                self.union(2)
                if not tup and _typeish(kinds[0]):
                    return "alias"
            elif base == "tu":
                self.union(len(kinds))
                if kinds and all(_typeish(k) for k in kinds):
                    return "alias"
            raise _NotInert()
        raise _NotInert()

    def union(self, k):
        """Members of a union (which compares every pair to drop duplicates), counted against _ANN_UNION."""
        self.unions += k
        if self.unions > _ANN_UNION:
            raise _NotInert()

    def annotation(self, n):
        if n is not None and not self.lazy_ann:
            self.ann(n)

    def defaults(self, a):
        for d in list(a.defaults) + [d for d in a.kw_defaults if d is not None]:
            self.value(d)

    # -- statements
    def function(self, n, in_class):
        deco = n.decorator_list
        if deco:
            if len(deco) != 1:
                raise _NotInert()
            d = deco[0]
            if isinstance(d, ast.Call):
                # lru_cache(size), lru_cache(maxsize=size), each with typed=<constant>: the size None or an int that
                # fits an index (a larger one raises OverflowError), given once
                names = [k.arg for k in d.keywords]
                if (self.value(d.func) != "dl" or len(d.args) > 1 or len(set(names)) != len(names)
                        or any(k not in ("maxsize", "typed") for k in names) or (d.args and "maxsize" in names)):
                    raise _NotInert()
                for x in list(d.args) + [k.value for k in d.keywords if k.arg == "maxsize"]:
                    if not (isinstance(x, ast.Constant) and (x.value is None or (type(x.value) is int and abs(x.value) < 2**62))):
                        raise _NotInert()
                for k in d.keywords:
                    if k.arg == "typed" and not isinstance(k.value, ast.Constant):
                        raise _NotInert()
            elif self.value(d) not in (("ds", "dc", "dp") if in_class else ("dk", "dl")):
                raise _NotInert()
        if getattr(n, "type_params", None):
            raise _NotInert()
        a = n.args
        self.defaults(a)
        for p in list(a.posonlyargs) + list(a.args) + list(a.kwonlyargs) + [a.vararg, a.kwarg]:
            if p is not None:
                self.annotation(p.annotation)
        self.annotation(n.returns)
        if in_class and _dunder(n.name):
            if n.name not in _STATIC_DUNDERS:
                raise _NotInert()
            self.cls[n.name] = "f"
        else:
            self.bind(n.name, "f")

    def statement(self, n, in_class=False):
        if isinstance(n, ast.Pass) or (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)):
            return
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return self.function(n, in_class)
        if in_class and isinstance(n, (ast.Assign, ast.AnnAssign)) and isinstance(n.value, (ast.Name, ast.Attribute)):
            raise _NotInert()  # an object of the namespace's own in a class body: its __set_name__ would run
        if isinstance(n, ast.Assign):
            kind = self.value(n.value)
            for t in n.targets:
                if not isinstance(t, ast.Name):
                    raise _NotInert()
                self.bind(t.id, kind)
            return
        if isinstance(n, ast.AnnAssign):
            if not (isinstance(n.target, ast.Name) and n.simple):
                raise _NotInert()
            kind = self.value(n.value) if n.value is not None else None
            self.annotation(n.annotation)
            if kind is not None:
                self.bind(n.target.id, kind)
            elif _dunder(n.target.id) or (self.cls is not None and n.target.id.startswith("__")):
                raise _NotInert()
            return
        if in_class:
            raise _NotInert()
        if isinstance(n, ast.ClassDef):
            if n.decorator_list or n.keywords or len(n.bases) > 1 or getattr(n, "type_params", None):
                raise _NotInert()
            if n.bases and self.value(n.bases[0]) not in _BASES:
                raise _NotInert()
            if _dunder(n.name) or n.name.startswith("__"):
                raise _NotInert()
            self.cls = {}
            try:
                for s in n.body:
                    self.statement(s, True)
            finally:
                self.cls = None
            self.bind(n.name, "cls")
            return
        if isinstance(n, ast.Import):
            mods = self.env["modules"]
            for al in n.names:
                parts = al.name.split(".")
                if not all(".".join(parts[: i + 1]) in mods for i in range(len(parts))):
                    raise _NotInert()
                if al.asname:
                    self.bind(al.asname, "m:" + al.name)
                else:
                    self.bind(parts[0], "m:" + parts[0])
            return
        if isinstance(n, ast.ImportFrom):
            if n.module == "__future__" and not n.level:
                # The compiler has checked each feature (an unknown one does not compile); the statement still
                # imports the module __future__, which must be loaded already (else the child reads it from disk)
                if "__future__" not in self.env["modules"]:
                    raise _NotInert()
                for al in n.names:
                    if al.asname:
                        raise _NotInert()
                    self.lazy_ann = self.lazy_ann or al.name == "annotations"
                return
            if n.level or not n.module or n.module not in self.env["modules"]:
                raise _NotInert()
            for al in n.names:
                if al.name == "*":
                    raise _NotInert()
                self.bind(al.asname or al.name, self.attr("m:" + n.module, al.name))
            return
        if isinstance(n, ast.If):
            t = n.test
            if (isinstance(t, ast.Compare) and len(t.ops) == 1 and isinstance(t.ops[0], ast.Eq)
                    and {type(t.left), type(t.comparators[0])} == {ast.Name, ast.Constant}):
                name, const = (t.left, t.comparators[0]) if isinstance(t.left, ast.Name) else (t.comparators[0], t.left)
                if name.id == "__name__" and const.value == "__main__" and type(const.value) is str:
                    for s in n.orelse:  # the body is never taken: a check runs the module as "solution"
                        self.statement(s)
                    return
            raise _NotInert()
        raise _NotInert()

    def check(self, tree):
        try:
            for s in tree.body:
                self.statement(s)
            return True
        except _NotInert:
            return False
        except Exception:  # RecursionError on a deeply nested tree, say: the child decides
            return False


# ------------------------------------------------------------------------------- child bodies ----
# The conversation of a program child, on two pipes (the request pipe, read once and closed; the result pipe
# `w`, written):
#   server → child   one frame (4-byte big-endian length + marshal header {kind, program, entry?, inputs,
#                    timeouts, load_timeout, start, end, timing?}), `end` a fresh 16-byte nonce (hex) of this
#                    child's; with `timing`, the load line also carries the child's clock readings.
#   child → server   JSON lines: {"ast": …} (check only, before the program runs), then {"loaded": …} or
#                    {"load": failure}, then {"i": index, "r": result} for each input in order, then
#                    {"end": nonce} (in the same write as the last line before it), and the child closes `w`
#                    and exits.
# The server accepts exactly these lines in exactly this order and nothing after the end: a program that
# writes to `w` beside the harness (and exits, or goes on) duplicates or reorders an answer, leaves out the end
# or leaves bytes after it, and every result of that child is void. The program shares this process, though: it
# can also write every answer itself (later calls included), take the nonce from the harness's frame, write the
# end and exit — nothing in the process can tell it from the harness (docs/executor.md, "The limit of an
# in-process harness"). All it chooses that way are values, as by returning them: the expected values never
# enter its process; verdicts are decided outside. (Until 2026-12-04 the nonce came down the request pipe as a finish
# command once every answer was in: a forger read it there just the same, and the round trip cost every child
# a wait for the server's turn.)


def _finish(w, hdr, last=b""):
    """Write `last` (the child's final line, if any) and the end line in one write, close the channel."""
    end = hdr.get("end")
    _write_all(w, last + b'{"end":"' + (end if isinstance(end, str) else "").encode("ascii", "replace") + b'"}\n')
    os.close(w)


def _line(obj):
    return (_dumps(obj) + "\n").encode("ascii")


def _minflt():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child_program(w, hdr, t_fork, t_start, stdio=None, flt=None):
    kind = hdr.get("kind", "function")
    start = int(hdr.get("start", 0))
    inputs = hdr.get("inputs") or []
    timeouts = hdr.get("timeouts") or []
    load_timeout = float(hdr.get("load_timeout") or 1)
    t_setup = time.monotonic()
    code = hdr.get("code")  # the server compiled the text already (_precompile): no parse, no compile here
    if kind == "check" and code is None:
        try:
            tree = ast.parse(hdr["program"])
            _write_all(w, _line({"ast": _ast_summary(tree)}))
        except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
            name, msg = _exc_info(e)
            return _finish(w, hdr, _line({"ast": {"functions": [], "classes": []}, "load": {"status": "syntax_error", "errorType": name, "message": msg}}))
    t0 = time.perf_counter()
    if kind == "stdio":
        try:
            code = compile(hdr["program"], "<program>", "exec")
            fail = None
        except BaseException as e:
            name, msg = _exc_info(e)
            fail = {"status": "error", "errorType": name, "message": msg}
    else:
        # The prelude's namespace itself, not a copy: this process is the child's own copy of the zygote, and
        # copying ~130 names would write to the page of every object they name (a copy-on-write fault each).
        ns = _prelude_ns
        ns["__name__"] = "solution"
        # The check kind compiles the tree it parsed for the signatures, not the text a second time (the same code
        # object and the same SyntaxError messages from the compiler's own checks).
        if code is not None:
            fail = _exec_module(None, ns, load_timeout, code, float(hdr.get("compile_s") or 0.0))
        else:
            fail = _exec_module(tree if kind == "check" else hdr["program"], ns, load_timeout)
    load_ms = (time.perf_counter() - t0) * 1000
    if fail is not None:
        return _finish(w, hdr, _line({"load": fail}))
    loaded = b'"loaded":true}\n' if kind != "check" else b'"load":{"status":"ok"}}\n'
    if hdr.get("timing"):
        # Four floats (finite: clock readings) and the page faults by phase, formatted here rather than through
        # the JSON encoder.
        times = '{"t0":%r,"t1":%r,"ts":%r,"lm":%r,' % (float(t_fork), float(t_start), float(t_setup), float(load_ms))
        if flt is not None and len(flt) == 2:
            times += '"f0":%d,"f1":%d,"f2":%d,' % (flt[0], flt[1], _minflt())
        _write_all(w, times.encode("ascii") + loaded)
    else:
        _write_all(w, b"{" + loaded)
    fn = None
    if kind == "function":
        fn = ns.get(hdr.get("entry"))
    last = len(inputs) - 1
    for j in range(len(inputs)):
        limit = float(timeouts[j])
        if kind == "stdio":
            res = stdio.run(code, inputs[j], limit)
        elif fn is None or not callable(fn):
            res = {"status": "error", "errorType": "NameError",
                   "message": "name %r is not defined by the program" % hdr.get("entry"), "ms": 0}
        else:
            res = _call_one(fn, inputs[j], limit)
        try:
            line = _line({"i": start + j, "r": res})
        except (TypeError, ValueError):
            line = _line({"i": start + j, "r": {"status": "error", "errorType": "OutputEncodingError",
                                                "message": "value could not be serialised", "ms": res.get("ms", 0)}})
        if j == last:
            return _finish(w, hdr, line)  # the last answer and the end: one write, one wake-up of the server
        _write_all(w, line)
    return _finish(w, hdr)


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
    """A trusted helper script over INPUT → OUTPUT (plain JSON), then the same end line as programs."""
    ns = _prelude_ns  # the child's own copy (see child_program)
    ns["__name__"] = "__script__"
    ns["INPUT"] = req.get("input")
    # Helper scripts may turn typed JSON (types.ts) into Python values and back with the executor's own codec.
    ns["decode_value"] = decode_value
    ns["encode_value"] = encode_value
    fail = _exec_module(req["script"], ns, float(req["timeout"]), code)
    if fail is not None:
        return _finish(w, req, _line({"load": fail}))
    try:
        out = _dumps(ns.get("OUTPUT"))
    except (TypeError, ValueError, RecursionError) as e:
        return _finish(w, req, _line({"load": {"status": "error", "errorType": "TypeError",
                                               "message": _one_line("OUTPUT is not plain JSON: %s" % e)}}))
    if len(out) > OUT_CAP * 4:
        return _finish(w, req, _line({"load": {"status": "error", "errorType": "OutputTooLarge", "message": "OUTPUT too large"}}))
    return _finish(w, req, b'{"load":{"status":"ok"},"output":' + (out + "}\n").encode("ascii"))


# ------------------------------------------------------------------------------ server side ----
def out(obj):
    _write_all(1, (_dumps(obj) + "\n").encode("ascii"))  # stdout unbuffered: the one writer is this function


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
                os.rmdir(p)  # an empty folder (else its contents are moved up below)
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


def _xattrs(path):
    """The extended attributes of `path`, names → values ({} where the filesystem has none)."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in names}


FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
_IFLAGS = ctypes.c_long(0)


def _inode_flags(path, set_to=None):
    """A folder's inode flags (chattr's: noatime, nodump, … — a program may set some on a folder it owns), or
    0 where the filesystem has none; with `set_to`, set them first."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if set_to is not None:
            _IFLAGS.value = set_to
            if _libc.ioctl(fd, ctypes.c_ulong(FS_IOC_SETFLAGS), ctypes.byref(_IFLAGS)) != 0:
                raise OSError(ctypes.get_errno(), "FS_IOC_SETFLAGS " + path)
        _IFLAGS.value = 0
        if _libc.ioctl(fd, ctypes.c_ulong(FS_IOC_GETFLAGS), ctypes.byref(_IFLAGS)) != 0:
            e = ctypes.get_errno()
            if e in (errno.ENOTTY, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EINVAL):
                return 0
            raise OSError(e, "FS_IOC_GETFLAGS " + path)
        return _IFLAGS.value & 0xFFFFFFFF
    finally:
        os.close(fd)


# TMP_ROOT's extended attributes and inode flags as made (a fresh mount, or this server's own folder): a host
# with a security module labels every file, and that label is not a program's doing.
_ROOT_AS_MADE = [{}, 0]


def _root_as_made():
    """Record TMP_ROOT's attributes and flags as made, and reset its times as after every child."""
    _ROOT_AS_MADE[:] = [_xattrs(TMP_ROOT), _inode_flags(TMP_ROOT)]
    os.utime(TMP_ROOT, ns=(0, 0))


def _clean_tmp_root():
    """After a child: TMP_ROOT back as it was. The folder outlives the child, so its own metadata is state as
    much as its contents: the common case — empty, mode 0700, ours, its extended attributes and inode flags as
    made — costs six calls; anything else, and the whole tmpfs is replaced by a fresh one (constant time,
    whatever it left: a million files cost the next request nothing); without CAP_SYS_ADMIN (unsafe mode) the
    walk above empties it and the rest is undone one by one. Either way its times are reset last, so they read
    the same after a fresh mount as after the check (atime and mtime 0, ctime the reset's)."""
    try:
        st = os.stat(TMP_ROOT)
        if (st.st_mode == ROOT_MODE and st.st_uid == _UID and not os.listdir(TMP_ROOT)
                and _xattrs(TMP_ROOT) == _ROOT_AS_MADE[0] and _inode_flags(TMP_ROOT) == _ROOT_AS_MADE[1]):
            os.utime(TMP_ROOT, ns=(0, 0))
            return True
    except OSError:
        pass
    if HAVE_ADMIN:
        try:
            _mount_tmpfs()  # its times reset too (_root_as_made)
            return True
        except OSError:
            return False
    if not _empty_tmp_root():
        return False
    try:
        made, flags = _ROOT_AS_MADE
        for name, value in _xattrs(TMP_ROOT).items():
            if made.get(name) != value:
                os.removexattr(TMP_ROOT, name, follow_symlinks=False)
        if _inode_flags(TMP_ROOT) != flags:
            _inode_flags(TMP_ROOT, flags)
        os.utime(TMP_ROOT, ns=(0, 0))
        st = os.stat(TMP_ROOT)
        return st.st_mode == ROOT_MODE and _xattrs(TMP_ROOT) == made and _inode_flags(TMP_ROOT) == flags
    except OSError:
        return False


# ------------------------------------------------------------------------------------ zygote ----
# Children are not forked from the server but from a zygote: a process the server forks at start-up, before
# its first request, that never holds a request, a program, an input or a result. A child's memory is a copy
# of the zygote's (the prelude) plus its own request, which it reads from a pipe; so a program that scans its
# own memory finds nothing of the programs, inputs or results this worker ran before. In the sandbox the
# zygote is pid 1 of a pid namespace of its own: the children live there and cannot see, signal, stop or
# ptrace the server (outside it) and, pid 1 being immune to the signals of its namespace that it has no handler
# for (its one handler, SIGALRM's, does nothing in a zygote: _on_alarm), cannot kill or stop the zygote either.
# The server talks to the zygote over a SEQPACKET socket: "fork" (binary, see _zfork_send: the child's request
# and result pipe ends in; its pid and a pidfd of it out, read later: _zfork_answer), "wait" (reap a child,
# return its wait status), "usage" (binary too, see _zusage: a request's children's CPU and memory; the next
# request's children get a fresh IPC namespace), "reap" (reap whatever is left), "ping" (alive; its huge pages), "bench" (the fork loops of bench/executor.ts),
# "project" / "project_clear" (compile a trusted project helper once).
# Two zygotes per server: "full" (the reference prelude, numpy included) and "lean" (the same without numpy,
# whose children fork about three times faster: numpy is most of a zygote's mapped memory). A program goes to
# the lean zygote only when nothing in its text or inputs could tell the difference (FULL_WORDS, ndarray
# arguments); with `lean_zygote: false` every program goes to the full one. Each zygote is pid 1 of a pid
# namespace of its own.
LEAN = bool(CFG.get("lean_zygote", True))
_ZYG = {}  # name → (socket, outer pid)


def _request_bytes(req):
    """A child's request as it travels down its pipe: marshal, which the child decodes with fewer steps (and
    fewer copy-on-write faults) than JSON. Only this direction: the server is the writer and the data are plain
    values it decoded from Node's JSON. What a child sends back is JSON, parsed as untrusted input."""
    return marshal.dumps(req)


class ZygoteGone(Exception):
    """The zygote did not answer."""


def _zygote_fork():
    """The zygote's fork of a child: a function like os.fork (the child's side done before it returns 0).

    os.fork runs CPython's fork protocol: the import lock taken around the fork, the interpreter's locks, GIL
    and thread states re-created in the child, then every at-fork hook a module registered. The numpy prelude
    brings `threading` and `random`, whose hooks run Python code in every child (threading._after_fork walks and
    rebuilds the thread registry; random reseeds): in a replica of the full zygote, a child that exits at once
    took 220 faults and 1.2 ms of CPU with os.fork, 42 and 0.7 ms without; a child of the harness ~85 faults
    fewer (docs/executor.md, "Third pass"; bench/executor.ts runs both loops). In a zygote with one
    thread none of that protocol has anything to repair — no other thread can hold a lock, an import or the
    GIL, which this call keeps throughout — so the zygote calls libc's fork() directly, and the child does what
    the hooks did that a program can observe: `random` reseeded (the exact hook random.py registers).
    threading's hook only renews the main thread's internal locks and forgets other threads (there are none);
    it leaves `native_id` at the forking thread's, as os.fork does (and the reference's fork-context workers).
    libc's own fork handlers (malloc's locks, OpenBLAS's pthread_atfork) run either way. A zygote with a second
    Python thread (never expected) keeps os.fork."""
    if len(sys._current_frames()) != 1:
        return os.fork
    rnd = sys.modules.get("random")
    reseed = getattr(getattr(rnd, "_inst", None), "seed", None)
    libc_fork, get_errno = _libc_fork, _c_errno

    def fork():
        pid = libc_fork()
        if pid < 0:
            e = get_errno()
            raise OSError(e, os.strerror(e))
        if pid == 0 and reseed is not None:
            reseed()
        return pid

    return fork


def _fresh_stdio():
    """fds 0-2 on a /dev/null of their own: at the zygote's start (the server's request and reply pipes are not
    the zygote's) and after each fork, for the next child (an open file description keeps the flags and owner a
    program sets on it, and the zygote's copy would hand them on; the running child keeps the one it has)."""
    nul = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(nul, fd)
    os.close(nul)


def _zygote_main(sock):
    os.chdir("/")  # never inside TMP_ROOT, which the server replaces
    _fresh_stdio()
    compiled = {}
    books = _Books()
    # The fork request is this loop's hot path, so it is binary and handled with names bound here: every
    # page the zygote writes after a fork (objects it touches, buffers it allocates) is a copy-on-write fault,
    # taken again after every fork. Measured in the sandbox: ~150 faults per fork with JSON and
    # socket.recv_fds/send_fds, ~100 this way; the zygote's CPU per child down by about a quarter.
    # Every buffer and list of the fork path is made once and reused, and the fork request is parsed after the
    # fork, in the child, which alone needs it (the zygote keeps only the request generation).
    buf = bytearray(4096)
    into, reply_data, reply_fds = [buf], bytearray(_PID.size), bytearray(_PID.size)
    # The usage of a request's children, asked once per request (b"U", binary like the fork: with JSON, its
    # parse and reply cost a zygote ~60 copy-on-write faults per request, ~1.3 ms where requests are small).
    usage_data = bytearray(_USAGE.size)
    usage_msg, usage_gen, usage_pack = [usage_data], _USAGE_GEN.unpack_from, _USAGE.pack_into
    reply_msg, reply_anc = [reply_data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, reply_fds)]
    recvmsg_into, sendmsg, close, pidfd_open, monotonic = sock.recvmsg_into, sock.sendmsg, os.close, os.pidfd_open, time.monotonic
    fork_size, gen_at, pack_into, space = _FORK.size, _FORK_GEN.unpack_from, _PID.pack_into, socket.CMSG_SPACE(2 * 4)
    if CFG.get("prefault", True):
        # Last, from here: the image as it serves (its cwd, fds 0-2 and this loop's buffers included). The zygotes
        # start before the server's first request and are never started again while programs run (a zygote that
        # is gone ends the server), so no program exists while the learning children run.
        _learn_prefault()
        import gc

        gc.freeze()  # what learning made (the page list and its call) joins the frozen heap
    fork = _zygote_fork()  # after the learning: with the prefault
    while True:
        try:
            n, anc, _, _ = recvmsg_into(into, space)
        except OSError:
            _exit(0)
        if not n:
            _exit(0)  # the server is gone
        fds = _cmsg_fds(anc)
        if buf[0] == 70 and n >= 1 + fork_size:  # b"F": a fork
            # Every ended child is reaped before the next one exists: a zombie's /proc entry (its exit code, the
            # name a program gave it) would be readable by the next program. (Reaping 8 at a time saved the
            # zygote ~15 faults a fork, and left earlier programs' zombies beside later ones: reverted.)
            books.reap_some(owned=True)
            # The earlier children's exit statuses (one a program chooses) are not kept into the next child's
            # copy: the server has asked for any it wanted (died_status) before it asks for a new child.
            books.exited.clear()
            t_fork = monotonic()
            pid = fork()
            if pid == 0:
                code = 0
                try:
                    _child_main(buf, n, fds, compiled, t_fork)
                except BaseException:
                    code = 3
                finally:
                    _exit(code)
            # The reply first (the server is waiting for it), the bookkeeping after.
            try:
                pfd = pidfd_open(pid)
            except OSError:
                pfd = -1
            try:
                pack_into(reply_data, 0, pid)
                if pfd >= 0:
                    pack_into(reply_fds, 0, pfd)
                    sendmsg(reply_msg, reply_anc)
                else:
                    sendmsg(reply_msg)
            except OSError:
                pass
            if pfd >= 0:
                close(pfd)
            books.owner[pid] = gen_at(buf, 1)[0]
            for fd in fds:
                close(fd)
            _fresh_stdio()  # for the next child
            continue
        if buf[0] == 85 and n == 1 + _USAGE_GEN.size and not fds:  # b"U": a request's usage, then a fresh IPC namespace
            usage_pack(usage_data, 0, *books.take_usage(usage_gen(buf, 1)[0]))
            try:
                sendmsg(usage_msg)
            except OSError:
                pass
            if HAVE_ADMIN:
                # After the reply, while the server answers Node: the unshare costs the next request nothing.
                # Every later child of this zygote (the next request's) lives in the new IPC namespace.
                _libc.unshare(CLONE_NEWIPC)
            continue
        msg = bytes(buf[:n])
        try:
            h = _loads(msg)
        except ValueError:
            h = {}
        op = h.get("op")
        reply = {}
        give = []
        if op == "wait":
            reply = {"status": books.wait(h["pid"])}
        elif op == "reap":
            books.reap_some()
        elif op == "bench":
            n = int(h.get("n", 200))
            if h.get("loop") == "floor":
                reply = _bench_floor(n, fork)
            else:
                # "bare": the issue's ceiling, os.fork; "libc": the same loop with this zygote's own fork
                f = fork if h.get("loop") == "libc" else os.fork
                t0 = time.perf_counter()
                for _ in range(n):
                    pid = f()
                    if pid == 0:
                        _exit(0)
                    os.waitpid(pid, 0)
                reply = {"s": time.perf_counter() - t0, "n": n}
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
        elif op == "ping":  # the zygote is alive; and how much of its memory start-up put on huge pages
            reply = {"huge_bytes": _HUGE_BYTES[0], "huge_text_bytes": _HUGE_TEXT_BYTES[0], "prefault_pages": _PREFAULT_PAGES[0], "prefault_pages_check": _PREFAULT_PAGES[1]}
        elif op == "static_env":  # what a child's module level finds bound (_static_env), for _Inert
            reply = _static_env()
        for fd in fds:
            os.close(fd)
        try:
            if give:
                socket.send_fds(sock, [_dumps(reply).encode("ascii")], give)
            else:
                sock.send(_dumps(reply).encode("ascii"))
        finally:
            for fd in give:
                os.close(fd)


def _bench_floor(n, fork):
    """bench/executor.ts's floor: n programs the least a fork-per-program design must do for each — a child forked
    from this zygote's image (with `fork`, the zygote's own: _zygote_fork) reads its request (marshal), compiles
    and executes the program in the prelude's namespace, makes 3 calls and writes 3 JSON results; the parent
    reads them to the end and waits. No set-up, limits, handshake, server or Node. The loop runs in a process
    forked for it, so the zygote itself never holds a program, even this synthetic one. Returns {"s", "n"} (or
    {"error"})."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            t0 = time.perf_counter()
            for i in range(n):
                req = marshal.dumps({"program": "# program %d\ndef add(a, b):\n    return a + b + %d\n" % (i, i % 7),
                                     "entry": "add", "inputs": [[i, 1], [i, 2], [i, 3]]})
                rq, wq = os.pipe()
                rr, wr = os.pipe()
                os.write(wq, req)
                os.close(wq)
                c = fork()
                if c == 0:
                    h = marshal.loads(os.read(rq, 1 << 16))
                    ns = _prelude_ns
                    ns["__name__"] = "solution"
                    exec(compile(h["program"], "<program>", "exec"), ns)
                    fn = ns[h["entry"]]
                    out = "".join(_dumps({"i": k, "r": {"status": "ok", "value": encode_value(fn(*a))}}) + "\n"
                                  for k, a in enumerate(h["inputs"]))
                    os.write(wr, out.encode("ascii"))
                    _exit(0)
                os.close(rq)
                os.close(wr)
                got = b""
                while True:
                    b = os.read(rr, 1 << 16)
                    if not b:
                        break
                    got += b
                os.close(rr)
                os.waitpid(c, 0)
                if got.count(b"\n") != 3:
                    raise RuntimeError("floor child gave %r" % got[:200])
            os.write(w, struct.pack("=d", time.perf_counter() - t0))
        except BaseException:
            code = 1
        finally:
            _exit(code)
    os.close(w)
    got = _read_exact(r, 8)
    os.close(r)
    os.waitpid(pid, 0)
    if len(got) != 8:
        return {"error": "the floor loop failed"}
    return {"s": struct.unpack("=d", got)[0], "n": n}


class _Books:
    """The zygote's records of its children: exit statuses not yet asked for, and the CPU time and peak memory
    (wait4's rusage) of the children of each request generation, until the server asks for them."""

    def __init__(self):
        self.exited = {}  # pid → wait status
        self.owner = {}  # pid → request generation
        self.usage = {}  # generation → [user s, system s, peak RSS KiB, children, minor page faults]

    def record(self, pid, status, ru):
        self.exited[pid] = status
        if len(self.exited) > 256:
            for old in list(self.exited)[:128]:
                del self.exited[old]
        gen = self.owner.pop(pid, None)
        if gen is not None:
            u = self.usage.setdefault(gen, [0.0, 0.0, 0, 0, 0])
            u[0] += ru.ru_utime
            u[1] += ru.ru_stime
            u[2] = max(u[2], ru.ru_maxrss)
            u[3] += 1
            u[4] += ru.ru_minflt
            if len(self.usage) > 64:
                del self.usage[next(iter(self.usage))]

    def reap_some(self, owned=False):
        """Reap every child that has ended, without blocking. owned: stop once no child forked for a request is
        left unreaped (the fork path: usually the one before, already dead — one wait4 instead of two)."""
        while not owned or self.owner:
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.record(pid, status, ru)

    def wait(self, pid):
        if pid not in self.exited:
            try:
                _, status, ru = os.wait4(pid, 0)
                self.record(pid, status, ru)
            except ChildProcessError:
                return None
        return self.exited.pop(pid, None)

    def take_usage(self, gen):
        """Everything the children of request `gen` used (each already killed: waiting for them is brief):
        [user s, system s, peak RSS KiB, children, minor page faults]."""
        if gen in self.owner.values():
            for pid in [p for p, g in self.owner.items() if g == gen]:
                self.wait(pid)
        return self.usage.pop(gen, None) or [0.0, 0.0, 0, 0, 0]


def _child_main(buf, fork_len, fds, compiled, t_fork):
    """Body of a child: set up (capabilities dropped first), read its own request from the pipe, seccomp, run.
    buf[:fork_len]: the zygote's fork request (b"F", _FORK, the key of a project script). The zygote's socket is still
    open here: _child_setup closes it with every other descriptor but the two pipe ends, before anything else."""
    cpu, cpu_hard, _, script, timing, check = _FORK.unpack_from(buf, 1)
    pre = _PREFAULT[check]
    if pre is not None:
        _syscall_pm(*pre[1])  # the pages every child of this kind writes, copied in one call (_learn_prefault)
    t_start = time.monotonic()
    # timing: the child's page faults so far (fork → here), after its set-up and request, after the load
    flt = [_minflt()] if timing else None
    req_r, w = fds
    _child_setup(req_r, w, cpu, cpu_hard)
    # Usually the whole frame is in the pipe before the fork (Child): one read.
    data = os.read(req_r, select.PIPE_BUF)
    if len(data) < 4:
        data += _read_exact(req_r, 4 - len(data))
    n = _FRAME.unpack_from(data)[0]
    if len(data) < 4 + n:
        data += _read_exact(req_r, 4 + n - len(data))
    req = marshal.loads(memoryview(data)[4:4 + n])
    os.close(req_r)  # the request is all this pipe carries
    if flt is not None:
        flt.append(_minflt())
    stdio = None
    if not script and req.get("kind") == "stdio":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized stdout fails the write (EFBIG), not the child
        stdio = _Stdio()
    if not script:
        child_program(w, req, t_fork, t_start, stdio, flt)
    else:
        key = bytes(buf[1 + _FORK.size:fork_len]).decode("ascii") if fork_len > 1 + _FORK.size else None
        child_script(w, req, compiled.get(key))


# A synthetic function of the harness's own, run through the harness in the zygote before it serves (see
# _warm_harness). Never a program: it is this file's text, and its namespace is thrown away.
_WARM_SOURCE = "def _utgen_warm(a, b):\n    return [a, b, {'k': (a, b)}, a * 0.5, str(b)]\n"
# The same for the check kind (the filter's: the AST's functions and signatures, then the load), with the
# annotations, defaults and argument kinds whose printing (ast.unparse) a signature takes.
_WARM_CHECK_SOURCE = ("def _utgen_warm(a: int, b: list[int] = [1, 2], *rest: str, key: 'str' = 'k', **kw) -> dict[str, int]:\n"
                      "    return {key: a}\n\n\nclass _UtgenWarm:\n    pass\n")


def _synthetic_header(program, entry=None, args=()):
    """A child's request for one of this file's synthetic programs (the warm-up's, the prefault learning's): the
    check kind when there is no entry point, else `entry` called on each of `args`."""
    if entry is None:
        hdr = {"kind": "check", "program": program, "start": 0, "inputs": [], "timeouts": [], "load_timeout": 1.0,
               "end": "0" * 32}
    else:
        hdr = {"kind": "function", "program": program, "entry": entry, "start": 0, "inputs": [{"args": a} for a in args],
               "timeouts": [1.0] * len(args), "load_timeout": 1.0, "end": "0" * 32}
    return _with_code(hdr, _precompile(hdr["kind"], program))


def _with_code(hdr, pre):
    """A child's request carrying the server's compiled code instead of the text (pre: _precompile's answer)."""
    if pre is None:
        return hdr
    hdr = dict(hdr, code=pre[0], compile_s=pre[2])
    del hdr["program"]
    return hdr


def _warm_harness():
    """Run the child's harness (load, calls, value encoding, result lines, end line) in the zygote a few dozen
    times on a synthetic function of our own, so that every child inherits that code already warmed up.
    CPython 3.11 writes to a code object on its first calls (the warm-up counter, then the quickening of its
    bytecode and the adaptive counters of its instructions): done in each child, every page those code objects
    span is a copy-on-write fault, in every child. Nothing else stays: each round's namespace is a throw-away
    dict (emptied after it, and a collection frees what is left before the zygote freezes its heap), the timer
    is disarmed, the CPU limit restored, the pipes closed. Best effort: a failure here only costs speed."""
    global _prelude_ns
    import gc

    saved, cpu = _prelude_ns, resource.getrlimit(resource.RLIMIT_CPU)
    try:
        for i in range(40):
            ns = _prelude_ns = dict(saved)
            r2 = w2 = -1
            try:
                r2, w2 = os.pipe()
                if i % 2:  # every other round the check kind (no calls)
                    hdr = _synthetic_header(_WARM_CHECK_SOURCE)
                else:
                    hdr = _synthetic_header(_WARM_SOURCE, "_utgen_warm", [[i, k] for k in range(3)])
                child_program(w2, hdr, time.monotonic(), time.monotonic())  # closes w2 as its last step
                w2 = -1
                while os.read(r2, 1 << 16):
                    pass
            finally:
                ns.clear()  # the function and its namespace refer to each other: break the cycle
                for fd in (r2, w2):
                    if fd >= 0:
                        os.close(fd)
    except BaseException:  # _Timeout included: a timer that fired late must not end the zygote
        pass
    finally:
        _set_timer(0)
        _prelude_ns = saved
        try:
            resource.setrlimit(resource.RLIMIT_CPU, cpu)
        except (ValueError, OSError):
            pass
        gc.collect()


_FILLER = []  # the zygote's: see _fill_free_blocks


def _malloc_stats():
    """sys._debugmallocstats's text (it writes to fd 2), read back through a non-blocking pipe; b"" on failure."""
    r = w = saved = -1
    text = b""
    try:
        r, w = os.pipe()
        os.set_blocking(w, False)  # output past the pipe's 64 KB (never seen: ~5 KB) is dropped, never waited on
        saved = os.dup(2)
        os.dup2(w, 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
        os.close(w)
        w = -1
        while select.select([r], [], [], 0)[0]:
            b = os.read(r, 1 << 16)
            if not b:
                break
            text += b
    except Exception:
        return b""
    finally:
        for fd in (r, w, saved):
            if fd >= 0:
                os.close(fd)
    return text


def _fill_free_blocks():
    """Fill the free blocks pymalloc has scattered over the zygote's heap (a few hundred per size class, left
    by the imports), with objects that stay alive: a child's allocations then go to fresh pools, a few pages,
    instead of into the holes of dozens of pools shared with the zygote, each a copy-on-write fault. About 300 KB
    in the zygote; measured in a replica of the child: ~10 % fewer faults. Best effort: the counts come from
    sys._debugmallocstats; nothing is filled if they cannot be read."""
    for line in _malloc_stats().decode("ascii", "replace").splitlines():
        f = line.split()
        if len(f) != 5 or not all(x.isdigit() for x in f):
            continue
        size, avail = int(f[1]), min(int(f[4]), 4096)  # class, block size, pools, in use, available
        if size == 16:
            _FILLER.extend(object() for _ in range(avail))
        elif size == 32:
            _FILLER.extend(float(i) + 0.5 for i in range(avail))
        elif size >= 48:
            n = size - sys.getsizeof(b"")  # a bytes object of n bytes takes exactly one block of this class
            _FILLER.extend(bytes(n) for _ in range(avail))


MADV_COLLAPSE = 25  # Linux 6.1+
_HUGE = 2 << 20  # the size of a PMD-mapped transparent huge page on x86-64 and arm64 (4 KiB pages)
_madvise = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, use_errno=True)(("madvise", _libc))


_HUGE_BYTES = [0]  # a zygote's: what _collapse_huge put on huge pages at its start

# Prefaulting (_learn_prefault): the pages of the zygote's image that every child writes, made private in each
# child by one system call instead of one page fault each.
MADV_POPULATE_WRITE = 23  # Linux 5.14+
PIDFD_SELF = -10000  # "the calling thread" where a pidfd is expected (Linux 6.15+)
_NR_PROCESS_MADVISE = 440  # the same number on every architecture (added after the tables were unified)


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


# syscall(2) called with a fixed prototype: glibc's syscall() is assembly that only moves registers, so the
# variadic convention makes no difference. Without use_errno (see _capset): it runs first in every child.
_syscall_pm = ctypes.CFUNCTYPE(ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                               ctypes.c_uint)(("syscall", _libc))
# A shared anonymous mapping for the learning children's page lists (mmap(2) through ctypes: the mmap module is
# not loaded in a zygote, and a program must find the same modules there as before).
_mmap = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                         ctypes.c_long)(("mmap", _libc))
_munmap = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t)(("munmap", _libc))
_MAP_FAILED = (None, ctypes.c_void_p(-1).value)  # mmap failed: MAP_FAILED, (void *) -1 (and NULL, as ctypes gives it: None)
# A zygote's, once learned, per kind of child ([0]: programs run on inputs, [1]: the check kind, whose AST
# walk writes pages of its own): (iovec array, the arguments of the call each such child makes).
_PREFAULT = [None, None]
_PREFAULT_PAGES = [0, 0]
# The learning children's programs: three shapes (arithmetic; a loop over a list with a dict; strings), so that
# only what every program's child writes is kept (the intersection), not one program's own pages.
_LEARN_SOURCES = (
    "def _utgen_learn(a, b):\n    return a + b + %d\n",
    "def _utgen_learn(a, b):\n    seen = {}\n    for x in [a, b, a * b]:\n        seen[x] = seen.get(x, 0) + %d\n    return sorted(seen.items())\n",
    "def _utgen_learn(a, b):\n    s = str(a) + ':' + str(b)\n    return s.upper().split(':') + [len(s) * %d]\n",
)
# For the check kind: functions with annotations, defaults and argument kinds of different shapes (and a class).
_LEARN_CHECK_SOURCES = (
    "def _utgen_learn(n: int) -> int:\n    total = 0\n    for i in range(n):\n        total += i * %d\n    return total\n",
    "def _utgen_learn(xs: list[int], k=%d, *rest, **kw):\n    return [x + k for x in xs]\n\n\ndef _utgen_helper(s):\n    return s\n",
    "class _UtgenLearn:\n    pass\n\n\ndef _utgen_learn(s: str, sep: 'str' = ':', *, n: int = %d) -> list[str]:\n    return s.split(sep)[:n]\n",
)


def _private_writable_mappings():
    """(start, end) of this process's private writable mappings: the memory fork shares copy-on-write."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()
            if p[1].startswith("rw") and p[1].endswith("p") and not (len(p) > 5 and p[5].startswith("[v")):
                lo, hi = (int(x, 16) for x in p[0].split("-"))
                out.append((lo, hi))
    return out


def _learn_prefault():
    """Learn which pages of this zygote's image every child writes, and set up the one call that makes each new
    child write them at once (MADV_POPULATE_WRITE through process_madvise, one iovec per run of pages).

    On a hypervisor where a page fault is dear (a trap, then a TLB-flush hypercall for a copy-on-write fault:
    ~10 µs each where this was measured), ~100+ separate faults per child become one system call that copies
    the same pages inside the kernel. For each kind of child (programs run on inputs; the check kind, whose AST
    walk and signature printing write pages of their own), three learning children, forked as every child is,
    run a synthetic program each through the whole child path (_child_main: set-up, request, load, calls,
    results, end line), then read their own /proc/self/pagemap into a shared mapping: a page that is present
    and no longer shared (exclusive) was written. What all three wrote is kept (_PREFAULT, per kind). Nothing of
    theirs stays in the zygote but the page lists (and their counts, _PREFAULT_PAGES). Best effort: where the
    kernel lacks process_madvise on itself (Linux < 6.15) or /proc, or a learning child fails, that kind's
    children fault as before."""
    try:
        maps = _private_writable_mappings()
    except (OSError, ValueError):
        return
    size = sum((hi - lo) >> 12 for lo, hi in maps) * 8
    # MAP_SHARED | MAP_ANONYMOUS: what a learning child writes here, the zygote reads (and it is no private
    # mapping, so none of its pages is learned)
    base = _mmap(None, size, 3, 0x01 | 0x20, -1, 0)
    if base in _MAP_FAILED:
        return
    pages = None
    try:
        pages = memoryview((ctypes.c_uint64 * (size // 8)).from_address(base)).cast("B").cast("Q")
        _learn_into(maps, pages, False)
        _learn_into(maps, pages, True)
    finally:
        if pages is not None:
            pages.release()
        _munmap(base, size)


def _learn_into(maps, pages, check):
    """_learn_prefault's work for one kind of child (check: the check kind), the learning children's pagemap
    entries going to `pages` (the shared mapping, one 64-bit entry per page of `maps`, in order). Sets
    _PREFAULT[check] and _PREFAULT_PAGES[check] when it learned a list the kernel takes."""
    views, off = [], 0
    for lo, hi in maps:
        n = (hi - lo) >> 12
        views.append((pages[off:off + n], (lo >> 12) * 8))
        off += n
    fork = _zygote_fork()
    common = None
    for k, src in enumerate(_LEARN_CHECK_SOURCES if check else _LEARN_SOURCES):
        req_r = req_w = res_r = res_w = -1
        try:
            req_r, req_w = os.pipe()
            res_r, res_w = os.pipe()
            if check:
                hdr = _synthetic_header(src % (k + 2))
            else:
                hdr = _synthetic_header(src % (k + 2), "_utgen_learn", [[k + 3, i] for i in range(3)])
            payload = _request_bytes(hdr)
            _write_all(req_w, _FRAME.pack(len(payload)) + payload)
            os.close(req_w)
            req_w = -1
            buf = bytearray(b"F" + _FORK.pack(30, 35, 0, False, False, check))
            pid = fork()
            if pid == 0:
                code = 0
                try:
                    _child_main(buf, len(buf), (req_r, res_w), {}, time.monotonic())
                    # A process that is not dumpable finds its /proc files owned by root: this one, which has
                    # run its synthetic program and only reads its own page map before it exits, turns
                    # dumpable for that (no program runs while the zygote learns).
                    _prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
                    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
                    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # the open file stays readable
                    for view, at in views:
                        os.preadv(fd, [view], at)
                except BaseException:
                    code = 3
                finally:
                    _exit(code)
            os.close(req_r)
            os.close(res_w)
            req_r = res_w = -1
            while os.read(res_r, 1 << 16):
                pass
            _, status = os.waitpid(pid, 0)
            if status != 0:
                return
        except OSError:
            return
        finally:
            for fd in (req_r, req_w, res_r, res_w):
                if fd >= 0:
                    os.close(fd)
        written = set()
        for (lo, hi), (view, _) in zip(maps, views):
            for i, v in enumerate(view):
                if v >> 63 and (v >> 56) & 1:  # present, mapped by this process alone
                    written.add(lo + (i << 12))
        common = written if common is None else common & written
    for view, _ in views:
        view.release()
    if not common:
        return
    runs = []
    for a in sorted(common):
        if runs and runs[-1][1] == a:
            runs[-1][1] = a + 4096
        else:
            runs.append([a, a + 4096])
    if len(runs) > 1024:  # IOV_MAX: the longest runs
        runs = sorted(sorted(runs, key=lambda r: r[0] - r[1])[:1024])
    iov = (_Iovec * len(runs))(*[_Iovec(a, b - a) for a, b in runs])
    args = (_NR_PROCESS_MADVISE, PIDFD_SELF, ctypes.addressof(iov), len(runs), MADV_POPULATE_WRITE, 0)
    # Probe here: no child shares these pages now, so it only makes present any learned page the zygote had not
    # touched itself. The whole list, or nothing.
    total = sum(b - a for a, b in runs)
    if _syscall_pm(*args) != total:
        return
    _PREFAULT[check] = (iov, args)
    _PREFAULT_PAGES[check] = total // 4096


def _collapse_huge():
    """Back the zygote's anonymous memory (pymalloc's arenas, malloc's heap) with 2 MiB pages where a whole
    aligned 2 MiB lies inside one mapping (MADV_COLLAPSE, synchronous, whatever the system's THP setting short
    of "never"). A fork copies one page-table entry for such a page instead of 512, and a child's exit drops one
    instead of 512; a child that writes into one gets the 4 KiB copy it would have got anyway (the kernel splits
    its own mapping of that page first). The mappings are not marked MADV_HUGEPAGE, so memory a child allocates
    later is faulted in 4 KiB pages, as before. Returns the bytes collapsed; best effort (an older kernel, THP
    off or no memory for a huge page: nothing changes)."""
    done = 0
    try:
        with open("/proc/self/maps") as f:
            maps = f.read().splitlines()
    except OSError:
        return 0
    for line in maps:
        f = line.split()
        if f[1] != "rw-p" or (len(f) > 5 and f[5] != "[heap]"):
            continue  # anonymous, private, read-write mappings only (and the brk heap)
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        a = (lo + _HUGE - 1) & ~(_HUGE - 1)
        while a + _HUGE <= hi:
            if _madvise(a, _HUGE, MADV_COLLAPSE) == 0:
                done += _HUGE
            a += _HUGE
    return done


_HUGE_TEXT_BYTES = [0]  # a zygote's: what _huge_text put on huge pages at its start
_mprotect = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)(("mprotect", _libc))
_mremap = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                           ctypes.c_void_p)(("mremap", _libc))
MADV_HUGEPAGE = 14
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2


def _anon_huge_at(addr):
    """Whether the mapping that starts at `addr` is one 2 MiB page (its AnonHugePages in /proc/self/smaps)."""
    head = "%x-" % addr
    try:
        with open("/proc/self/smaps") as f:
            found = False
            for line in f:
                if line.startswith(head):
                    found = True
                elif found and line.startswith("AnonHugePages:"):
                    return int(line.split()[1]) * 1024 >= _HUGE
                elif found and line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
                    return False  # the next mapping's header
    except (OSError, ValueError):
        pass
    return False


def _huge_text():
    """Put the interpreter's own code and read-only data on 2 MiB pages (huge_text; at a zygote's start).

    A fresh child reads hundreds of pages of the interpreter's code and constants. They are the executable file's,
    mapped 4 KiB at a time, and in a new process each first touch of such a page costs, where the kernel runs under
    a hypervisor with shadow page tables, a trap to the hypervisor (~3 µs measured, counted as the child's own
    time). Each whole aligned 2 MiB of the file's non-writable mappings is copied into an anonymous 2 MiB page
    of the same protection (read and execute) which then replaces it at the same address (mremap): the same
    bytes at the same addresses, read through one page-table entry (a fork copies it as one entry too). Only
    a block that really got a 2 MiB page replaces the file's; nothing changes on a kernel without transparent
    huge pages or where the binary has no such block (a position-independent build can have none). The
    interpreter is single-threaded here and executes in libc during the replacement, and the returning code
    finds identical bytes. What it costs: 2 MiB of memory per block per zygote instead of shared page cache, and
    tools that name functions by the mapped file (perf) see anonymous memory there. Returns the bytes moved."""
    try:
        exe = os.path.realpath(sys.executable)
        spans = []
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and "w" not in parts[1] and parts[5].startswith("/") and os.path.realpath(parts[5]) == exe:
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    if spans and spans[-1][1] == lo:
                        spans[-1][1] = hi
                    else:
                        spans.append([lo, hi])
    except (OSError, ValueError):
        return 0
    done = 0
    for lo, hi in spans:
        block = (lo + _HUGE - 1) & ~(_HUGE - 1)
        while block + _HUGE <= hi:
            raw = _mmap(None, 2 * _HUGE, 3, 0x02 | 0x20, -1, 0)  # PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS
            if raw in _MAP_FAILED:
                break
            tmp = (raw + _HUGE - 1) & ~(_HUGE - 1)
            moved = False
            try:
                _madvise(tmp, _HUGE, MADV_HUGEPAGE)
                ctypes.memmove(tmp, block, _HUGE)
                _madvise(tmp, _HUGE, MADV_COLLAPSE)  # where the write faults did not get a 2 MiB page already
                if _mprotect(tmp, _HUGE, 5) == 0 and _anon_huge_at(tmp):  # PROT_READ|PROT_EXEC
                    moved = _mremap(tmp, _HUGE, _HUGE, MREMAP_MAYMOVE | MREMAP_FIXED, block) == block
            finally:
                # the rest of the 4 MiB reservation (and the copy itself when it did not move)
                if tmp > raw:
                    _munmap(raw, tmp - raw)
                if not moved:
                    _munmap(tmp, _HUGE)
                if raw + 2 * _HUGE > tmp + _HUGE:
                    _munmap(tmp + _HUGE, raw + 2 * _HUGE - tmp - _HUGE)
            done += _HUGE if moved else 0
            block += _HUGE
    return done


def _spawn_zygote(full, parked=False):
    """Start one zygote: a helper process moves its future children into a new pid namespace and forks the
    zygote (pid 1 there), reports its pid and exits; the zygote loads its prelude and serves its socket.
    parked: the zygote waits for the server's b"G" before it loads anything (see _wake)."""
    mine, its = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    helper = os.fork()
    if helper == 0:
        code = 0
        try:
            mine.close()
            os.close(r)
            if HAVE_ADMIN and _libc.unshare(CLONE_NEWPID) != 0:
                code = 9
            else:
                z = os.fork()
                if z == 0:
                    os.close(w)
                    try:
                        # Parked: a copy of the server from before its first request, like every zygote, that
                        # loads nothing until the server first needs it (or ends with the server).
                        if parked and its.recv(1) != b"G":
                            _exit(0)
                        _load_prelude(full)
                        if _prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0:
                            raise OSError("the zygote is dumpable: its children would be")  # main() cleared it
                        _warm_harness()
                        _fill_free_blocks()
                        # Free pages of the C heap back to the kernel (the start-up's transient allocations, e.g.
                        # compile()'s tree of this file): each resident page is a PTE copied at every fork.
                        _libc.malloc_trim(0)
                        if CFG.get("huge_pages", True):
                            _HUGE_BYTES[0] = _collapse_huge()
                        if CFG.get("huge_text", True):
                            _HUGE_TEXT_BYTES[0] = _huge_text()
                        _set_as_limit()  # the zygote as it serves, warm-up and filler included, + memory_mb
                        _zygote_limits()
                        _load_seccomp()  # inherited by every child
                        if HAVE_ADMIN:
                            # No ambient capabilities (bwrap's --cap-add sets them), which only matter across an
                            # execve; each child's capset (_drop_caps) clears the rest.
                            _prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
                        # SIGALRM does nothing here (_on_alarm). Only this pid: in the sandbox the children's pids
                        # are in this zygote's namespace, where the server's pid number can be a child's.
                        _NOT_CHILDREN.clear()
                        _NOT_CHILDREN.add(os.getpid())
                        # A session and process group of its own, which every child shares, and the recursion
                        # limit the children run with (_child_setup).
                        os.setsid()
                        sys.setrecursionlimit(_CHILD_RECURSION)
                        import gc

                        gc.freeze()  # keep the preloaded objects out of the children's collections: fewer COW faults
                        _zygote_main(its)
                    finally:
                        _exit(0)
                os.write(w, struct.pack(">i", z))
        except BaseException:
            code = 8
        finally:
            _exit(code)
    its.close()
    os.close(w)
    _, status = os.waitpid(helper, 0)
    got = _read_exact(r, 4)
    os.close(r)
    if len(got) != 4:
        raise OSError("the %s zygote did not start (helper status %d)" % ("full" if full else "lean", status))
    return mine, struct.unpack(">i", got)[0]


_ZYG_HUGE_MB = {}  # zygote name → MiB of its memory on huge pages (the ready message says it)
_ZYG_HUGE_TEXT_MB = {}  # the same for the interpreter's code and constants (_huge_text)
_ZYG_PREFAULT = {}  # zygote name → pages each of its children prefaults (the ready message says it)
_ZYG_PREFAULT_CHECK = {}  # the same for its children of the check kind


# With a lean zygote, the full one is forked at start-up like it (a copy of the server from before its first
# request) but parked: it imports numpy, warms up and learns its prefault lists only when the server first
# needs it (a program that names numpy, a script, a project helper, the bench's loops). A run whose programs
# never need it — the filter's, mostly — never pays its start-up (~0.35 s of CPU per worker, measured). It is
# woken only when no program of this worker is alive (every child reaped first), as at start-up.
_PARKED = set()


def _zygote_start():
    """Start the zygotes (before the first request is read: they never see one) and wait until they answer."""
    for name in (("lean", "full") if LEAN else ("full",)):
        parked = LEAN and name == "full" and bool(CFG.get("lazy_full_zygote", True))
        _ZYG[name] = _spawn_zygote(name == "full", parked)
        if parked:
            _PARKED.add(name)
    for name in _ZYG:
        if name not in _PARKED:
            _zygote_info(name)
    # The server writes each request into its child's pipe; a child that died early must not kill the server
    # with SIGPIPE (the zygotes and the children keep the default, inherited from before this point).
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def _zygote_info(name):
    """Ask a zygote that has started what its start-up did (huge pages, prefault lists), for the ready message."""
    pong = _zcall({"op": "ping"}, zyg=name)[0]
    _ZYG_HUGE_MB[name] = round(pong.get("huge_bytes", 0) / (1 << 20), 1)
    _ZYG_HUGE_TEXT_MB[name] = round(pong.get("huge_text_bytes", 0) / (1 << 20), 1)
    _ZYG_PREFAULT[name] = pong.get("prefault_pages", 0)
    _ZYG_PREFAULT_CHECK[name] = pong.get("prefault_pages_check", 0)


def _zygote_report():
    """What every started zygote's start-up did (the ready message's and the "info" answer's)."""
    return {"huge_pages_mb": _ZYG_HUGE_MB, "huge_text_mb": _ZYG_HUGE_TEXT_MB, "prefault_pages": _ZYG_PREFAULT,
            "prefault_pages_check": _ZYG_PREFAULT_CHECK}


def _wake(zyg):
    """Let a parked zygote start (load its prelude, warm up, learn) and wait until it answers. Every child of this
    worker is reaped first: its learning children run while no program is alive, as at start-up."""
    _PARKED.discard(zyg)
    _reap_pending()
    try:
        _ZYG[zyg][0].send(b"G")
    except OSError:
        raise ZygoteGone()
    _zygote_info(zyg)


def _zygote_for(program, header_bytes):
    """Which zygote runs a program: lean when nothing in it or its inputs could notice numpy's absence."""
    if "lean" not in _ZYG:
        return "full"
    if FULL_WORDS.search(program) or b"$ndarray" in header_bytes:  # conservative: any string containing it
        return "full"
    return "lean"


_FORK = struct.Struct("=qqQ???")  # a fork request after b"F": RLIMIT_CPU soft, hard (s), request generation, script?, timing?, check?; then the key
_FORK_GEN = struct.Struct("=%dxQ" % struct.calcsize("=qq"))  # the generation alone (after the two limits)
_PID = struct.Struct("=i")
_USAGE_GEN = struct.Struct("=Q")  # a usage request after b"U": the request generation
_USAGE = struct.Struct("=ddqqq")  # its answer: user s, system s, peak RSS KiB, children, minor page faults
_FRAME = struct.Struct(">I")  # the length before a child's request
_TWO_FDS = struct.Struct("=2i")


def _cmsg_fds(anc):
    """The descriptors of an SCM_RIGHTS message's ancillary data (a fork request's two without building a format)."""
    if len(anc) == 1 and anc[0][0] == socket.SOL_SOCKET and anc[0][1] == socket.SCM_RIGHTS and len(anc[0][2]) == _TWO_FDS.size:
        return _TWO_FDS.unpack(anc[0][2])
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(data) // 4
            fds.extend(struct.unpack("=%di" % n, data[: 4 * n]))
    return fds


# A zygote's answer to a fork (the child's pid and pidfd) is read when first needed (Child.forked), not while the
# child starts: the server goes straight to the child's result pipe. At most one answer per zygote is unread;
# any other exchange with that zygote reads it first.
_AWAITING = {}  # zygote name → the Child whose fork answer is unread


def _settle(zyg):
    """Before anything goes to a zygote: wake it if it is parked (_wake), and read its unread fork answer, if any."""
    if zyg in _PARKED:
        _wake(zyg)
    waiting = _AWAITING.get(zyg)
    if waiting is not None:
        waiting.forked()


def _zexchange(zyg, data, fds=(), size=4096):
    """Send one message (with `fds`) to a zygote and return its reply (at most `size` bytes): (bytes, fds it
    sent); ZygoteGone when it does not answer."""
    _settle(zyg)
    msg = b""
    got = []
    sock = _ZYG[zyg][0]
    try:
        if fds:
            socket.send_fds(sock, [data], list(fds))
        else:
            sock.send(data)
        msg, got, _, _ = socket.recv_fds(sock, size, 1)
    except OSError:
        pass
    if not msg:
        raise ZygoteGone()
    return msg, got


def _zfork_send(zyg, body, cpu_s, cpu_hard_s, key, fds, timing=False, check=False):
    """Ask a zygote for a child (its pipe ends in `fds`); the answer is read by _zfork_answer. ZygoteGone when
    the zygote is gone. timing: the child counts its page faults by phase (a system call each)."""
    _settle(zyg)
    cpu = int(math.ceil(cpu_s)) + 1  # the child's RLIMIT_CPU, whole seconds, computed here: one step less in each child
    cpu_hard = max(cpu, int(math.ceil(cpu_hard_s)) + 1)
    data = b"F" + _FORK.pack(cpu, cpu_hard, _IPC_GEN[0], body == "script", timing, check) + (key or "").encode("ascii")
    try:
        socket.send_fds(_ZYG[zyg][0], [data], list(fds))
    except OSError:
        raise ZygoteGone()


def _zfork_answer(zyg):
    """A zygote's answer to the fork request sent last: (pid, [pidfd]); ZygoteGone when it does not answer."""
    try:
        msg, got, _, _ = socket.recv_fds(_ZYG[zyg][0], 4096, 1)
    except OSError:
        msg, got = b"", []
    if len(msg) != _PID.size:
        for fd in got:
            os.close(fd)
        raise ZygoteGone()
    return _PID.unpack(msg)[0], got


def _zusage(zyg, gen):
    """What the children of request `gen` used, from a zygote's books (b"U"); the zygote then gives its later
    children a fresh IPC namespace. ZygoteGone when it does not answer."""
    msg, got = _zexchange(zyg, b"U" + _USAGE_GEN.pack(gen))
    for fd in got:
        os.close(fd)
    if len(msg) != _USAGE.size:
        raise ZygoteGone()
    user, system, rss, children, minflt = _USAGE.unpack(msg)
    return {"cpu_s": user + system, "user_s": user, "max_rss_mb": rss / 1024, "children": children, "minflt": minflt}


def _zcall(h, fds=(), zyg="full", size=4096):
    """One JSON request to a zygote: (reply, fds it sent); ZygoteGone when it does not answer."""
    msg, got = _zexchange(zyg, _dumps(h).encode("ascii"), fds, size)
    return _loads(msg), got


GARBAGE = "garbage"


class Child:
    """A child forked by the zygote: its request pipe (ours to write, once), its result pipe (ours to read), a pidfd."""

    def __init__(self, body, payload, cpu_s, cpu_hard_s=0, key=None, zyg="full", timing=False, check=False):
        """`payload`: the child's request as _request_bytes made it."""
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        self.zyg = zyg
        self.t_req = time.monotonic()
        request = _FRAME.pack(len(payload)) + payload
        # A request that fits in PIPE_BUF goes into the pipe before the fork: such a write to an empty pipe is
        # whole and never blocks, and the child then reads it without waiting for this process's turn.
        early = len(request) <= select.PIPE_BUF
        self.pid = None  # and the pidfd: the zygote's answer, read when first needed (forked)
        self.pidfd = -1
        try:
            if early:
                _write_all(req_w, request)
            _zfork_send(zyg, body, cpu_s, cpu_hard_s, key, (req_r, res_w), timing, check)
        except BaseException:
            os.close(req_w)
            os.close(res_r)
            raise
        finally:
            os.close(req_r)
            os.close(res_w)
        _AWAITING[zyg] = self
        self.t_forked = time.monotonic()
        self.fd = res_r
        self.buf = b""
        self.last_len = 0
        self.exit_desc = None
        self.exit_sig = 0
        self.dead = self.killed = False
        try:
            if not early:
                _write_all(req_w, request)
        except OSError:
            pass  # the child is gone: its (missing) answers say so
        finally:
            os.close(req_w)  # the request is all this pipe carries

    def read_msg(self, deadline):
        """Next line from the child as a dict, None at EOF, "timeout" when the deadline passes, GARBAGE when
        the line is not a JSON object (or is absurdly long, or nested past what the decoder allows)."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                self.last_len = len(line)
                try:
                    msg = _loads_line(line)
                except (ValueError, RecursionError):
                    return GARBAGE
                return msg if isinstance(msg, dict) else GARBAGE
            if len(self.buf) > OUT_CAP * 4 + 4096:
                return GARBAGE
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

    def drain(self, deadline):
        """Read the channel to its end. True when anything was left in it (an unsolicited write)."""
        extra = bool(self.buf) and self.buf.endswith(b"\n")  # a cut-off last line is a death, not a write
        self.buf = b""
        if self.fd < 0:
            return extra  # reaped already: the channel was read to its end
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                left = 5.0  # killed: the end of the channel is at most a teardown away
                deadline = time.monotonic() + left
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                return extra
            extra = True

    def forked(self):
        """Read the zygote's answer to this child's fork (its pid and a pidfd), once."""
        if self.pid is not None:
            return
        if _AWAITING.get(self.zyg) is self:
            del _AWAITING[self.zyg]
        self.pid, got = _zfork_answer(self.zyg)
        self.pidfd = got[0] if got else -1
        for extra in got[1:]:
            os.close(extra)

    def kill(self):
        """SIGKILL the child (through its pidfd: never another process, even once its pid is reused), once."""
        if self.dead or self.killed:
            return
        self.killed = True
        self.forked()
        try:
            if self.pidfd >= 0:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def close_pipes(self):
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = -1

    def reap(self, status_wanted=False):
        """Kill the child, wait until it is gone (its pidfd turns readable), close its descriptors, empty
        TMP_ROOT. The zygote reaps the zombie on its own; its exit status is fetched only when wanted."""
        if self.dead:
            return
        self.kill()
        if self.pidfd >= 0 and not status_wanted:
            select.select([self.pidfd], [], [], 10.0)
        else:
            status = _zcall({"op": "wait", "pid": self.pid}, zyg=self.zyg)[0]["status"]
            if status is None:
                self.exit_desc = "was not reaped"
            elif os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                self.exit_desc = "killed by %s" % signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else "signal %d" % sig
                self.exit_sig = sig
            else:
                self.exit_desc = "exited with code %d" % os.WEXITSTATUS(status)
        self.dead = True
        if self.fd >= 0:
            self.close_pipes()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        if not _clean_tmp_root():
            _dirty[0] = True

    def died_status(self, what):
        """Status for a child that stopped answering (EOF): crash, or timeout when the CPU limit killed it."""
        self.reap(status_wanted=True)
        if self.exit_sig == signal.SIGXCPU:
            return {"status": "timeout", "message": "%s: CPU limit reached" % what}
        return {"status": "crash", "message": "%s: child %s" % (what, self.exit_desc)}


_pending_reap = []
_IPC_GEN = [0]
_USED = set()  # zygotes the current request has forked from


def _reap_pending():
    while _pending_reap:
        _pending_reap.pop().reap()
    if _dirty[0]:
        # Something an earlier child left could not be removed: end this server (fail closed; the pool starts a
        # fresh sandbox) rather than let the next child see it. Not expected (a fresh tmpfs always works).
        _exit(70)


TAMPERED = {"status": "crash", "message": "the program wrote to the result channel itself (tampered): every result of this run is void", "ms": 0}
STATUSES = ("ok", "error", "timeout", "crash", "invalid_input")


def _clean_result(r, limit_ms):
    """A child's result as the server passes it on: known status and fields only, time within the limit."""
    if not isinstance(r, dict) or r.get("status") not in STATUSES:
        return None
    outr = {"status": r["status"]}
    ms = r.get("ms")
    outr["ms"] = float(ms) if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0 else 0.0
    if outr["ms"] > limit_ms and outr["status"] == "ok":
        return {"status": "timeout", "message": "call exceeded %gs" % (limit_ms / 1000), "ms": outr["ms"]}
    if outr["status"] == "ok":
        if "value" not in r:
            return None
        outr["value"] = r["value"]
    for k in ("errorType", "message"):
        if isinstance(r.get(k), str):
            outr[k] = r[k][:MSG_CAP]
    return outr


class Budget:
    """What one caller's request may still send back (REQ_OUT_CAP bytes of values in all, across every request
    Node sends for it: Node passes what the caller has left, `budgets`, one per group `g` of programs)."""

    def __init__(self, left=REQ_OUT_CAP):
        self.left = left

    def take(self, r, size):
        if r.get("status") != "ok":
            return r
        if size > self.left:
            return {"status": "error", "errorType": "OutputTooLarge",
                    "message": "the request's results passed %d bytes" % REQ_OUT_CAP, "ms": r.get("ms", 0)}
        self.left -= size
        return r


_last_line = [0.0]


def _beat(rid):
    """Keep the Node watchdog informed during a long program (at most two lines a second)."""
    now = time.monotonic()
    if now - _last_line[0] >= 0.5:
        _last_line[0] = now
        out({"id": rid, "beat": 1})


def run_program(rid, j, prog, budget, timing):
    """All inputs of one program: a child runs them in order, one answer each; after a hard kill (timeout, crash)
    the rest continue in a fresh child. Returns (results, ast, timing)."""
    kind = prog.get("kind", "function")
    inputs = prog.get("inputs") or []
    n = len(inputs)
    timeouts = [float(t) for t in prog.get("timeouts") or []]
    load_timeout = float(prog.get("load_timeout") or (max(timeouts) if timeouts else 1.0))
    results = [None] * n
    tm = {"spawn": 0.0, "fork": 0.0, "setup": 0.0, "load": 0.0, "run": 0.0, "encode": 0.0, "transport": 0.0, "exit": 0.0, "children": 0,
          "flt_fork": 0, "flt_setup": 0, "flt_load": 0, "precompiled": 0, "static": 0}
    ast_info = None
    program = prog.get("program", "")
    pre = _precompile(kind, program)
    if pre is not None and pre[2] >= load_timeout:
        pre = None  # the compile alone used the load's limit: the child's own compile decides
    if pre is not None and kind == "check":
        ast_info = pre[1]
        # A module level that can only bind names runs without an error: decided here, without a child (see
        # _Inert). Only where the compile left most of the limit (a child's load is timed from before it), and
        # for programs the zygote that would run them has described (not a parked one).
        zyg = _zygote_for(program, b"")
        if STATIC_CHECK and pre[2] < load_timeout / 2 and zyg not in _PARKED:
            env = _static_env_of(zyg)
            if env is not None and _Inert(env).check(pre[3]):
                tm["static"] = 1
                return results, ast_info, {"status": "ok", "static": True}, tm
    k = 0
    first = True
    tampered = False
    fill = None
    while first or k < n:
        first = False
        rest = timeouts[k:]
        nonce = os.urandom(16).hex()
        header = _with_code({"kind": kind, "program": program, "entry": prog.get("entry"), "start": k,
                             "inputs": inputs[k:], "timeouts": rest, "load_timeout": load_timeout, "end": nonce}, pre)
        if timing:
            header["timing"] = True  # the load line carries the child's clock readings (the per-phase breakdown)
        # RLIMIT_CPU for the whole child, a backstop: a child cannot start a thread, so its CPU time never passes
        # its wall time, and this server kills it at each limit + GRACE (the load's, then each call's) first. The
        # soft limit (SIGXCPU: "timeout: CPU limit reached") leaves each call its grace; the hard one 5 s more.
        cpu = load_timeout + sum(t + max(1.0, GRACE) for t in rest) + 5
        cpu_hard = cpu + 5
        _reap_pending()
        try:
            payload = _request_bytes(header)
        except ValueError as e:  # nested past marshal's depth (Node refuses values past 200 before this)
            fill = {"status": "invalid_input", "message": _one_line("request: %s" % e), "ms": 0}
            for i in range(k, n):
                results[i] = dict(fill)
            break
        zyg = _zygote_for(program, payload)
        child = Child("program", payload, cpu, cpu_hard, zyg=zyg, timing=timing, check=kind == "check")
        _USED.add(zyg)
        tm["lean"] = tm.get("lean", 0) + (zyg == "lean")
        tm["precompiled"] += pre is not None
        tm["children"] += 1
        tm["spawn"] += child.t_forked - child.t_req
        own_from = k  # results this child gave start here (void them all if it tampers)
        tampered = False
        fill = None
        t_load = time.monotonic()
        msg = child.read_msg(t_load + load_timeout + GRACE)
        # The AST's summary comes from the child only when it parsed the text itself (not precompiled): else a line
        # of it is out of turn, and breaks the conversation like any other.
        if kind == "check" and pre is None and isinstance(msg, dict) and "ast" in msg:
            ast_info = msg["ast"] if isinstance(msg["ast"], dict) else None
            if "load" not in msg:
                msg = child.read_msg(t_load + load_timeout + GRACE)
        loaded = False
        said = False  # the child's harness answered the load (then it ends the conversation with its nonce)
        if isinstance(msg, dict) and (msg.get("loaded") is True or (kind == "check" and msg.get("load") == {"status": "ok"})) and len(msg) <= 9:
            loaded = said = True
            t = [msg.get(x) for x in ("t0", "t1", "ts", "lm")]
            if timing and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in t):
                tm["fork"] += max(0.0, t[1] - t[0])
                tm["setup"] += max(0.0, t[2] - t[1])
                tm["load"] += t[3] / 1000
            f = [msg.get(x) for x in ("f0", "f1", "f2")]
            if timing and all(isinstance(x, int) and not isinstance(x, bool) for x in f):
                tm["flt_fork"] += max(0, f[0])
                tm["flt_setup"] += max(0, f[1] - f[0])
                tm["flt_load"] += max(0, f[2] - f[1])
        elif isinstance(msg, dict) and isinstance(msg.get("load"), dict):
            st = msg["load"].get("status")
            if st == "syntax_error" or (st in STATUSES and st != "ok"):
                said = True
                fill = {"status": st, "ms": (time.monotonic() - t_load) * 1000}
                for x in ("errorType", "message"):
                    if isinstance(msg["load"].get(x), str):
                        fill[x] = msg["load"][x][:MSG_CAP]
            else:
                tampered = True
        elif msg == "timeout":
            fill = {"status": "timeout", "message": "exceeded %gs (hard kill)" % load_timeout, "ms": load_timeout * 1000}
        elif msg is None:
            fill = child.died_status("module level")
            fill["ms"] = (time.monotonic() - t_load) * 1000
        else:
            tampered = True
        if fill is not None and kind != "check":
            if fill["status"] == "syntax_error":
                fill["status"] = "error"
            fill["message"] = _one_line("module level: " + str(fill.get("message", "")))
        # the answers, in input order, each within its call's limit from the previous one
        stop = None
        t_prev = time.monotonic()
        while loaded and not tampered and k < n:
            limit = timeouts[k] if k < len(timeouts) else 1.0
            msg = child.read_msg(t_prev + limit + GRACE)
            t_got = time.monotonic()
            if isinstance(msg, dict) and msg.get("i") == k and len(msg) == 2:
                raw = msg.get("r")
                r = _clean_result(raw, limit * 1000)
                if r is None or (r["status"] == "ok" and not _valid_value(r["value"])):
                    tampered = True
                    break
                if timing and isinstance(raw, dict):
                    run_s = r["ms"] / 1000
                    enc_s = raw.get("e", 0) / 1000 if isinstance(raw.get("e"), (int, float)) else 0
                    tm["run"] += run_s
                    tm["encode"] += enc_s
                    tm["transport"] += max(0.0, (t_got - t_prev) - run_s - enc_s)
                results[k] = budget.take(r, child.last_len)
                k += 1
                t_prev = t_got
                _beat(rid)
                continue
            if msg == "timeout":
                stop = {"status": "timeout", "message": "exceeded %gs (hard kill)" % limit, "ms": (t_got - t_prev) * 1000}
            elif msg is None:
                stop = child.died_status("call")
                stop["ms"] = (t_got - t_prev) * 1000
            else:
                tampered = True
            break
        t_end = time.monotonic()
        # Only a child whose harness answered the load still owes the end line: one the server gave up on (no
        # answer within the limit) or that died has none to give — it is killed and its results filled.
        if not tampered and stop is None and said:
            # The harness ends the conversation with this child's nonce, then closes the channel.
            msg = child.read_msg(t_end + GRACE + 1.0)
            if msg != {"end": nonce}:
                tampered = True
        else:
            child.kill()  # a hard kill (or a broken conversation): nothing more from this child is wanted
        if child.drain(time.monotonic() + GRACE):
            tampered = True  # bytes after the final answer: written by the program, not the harness
        child.kill()
        if timing:
            tm["exit"] += time.monotonic() - t_end
        _pending_reap.append(child)
        if tampered:
            # A program that writes to the result channel itself voids every result it reported, and the rest.
            for i in range(own_from, n):
                results[i] = dict(TAMPERED)
            k = n
            break
        if fill is not None:
            for i in range(k, n):
                results[i] = dict(fill)
            k = n
            break
        if stop is not None:
            results[k] = stop
            k += 1
        if kind == "check":
            break
    check = None
    if kind == "check":
        if tampered:
            check = {"status": "crash", "message": TAMPERED["message"]}
        elif fill is not None:
            check = fill
        else:
            check = {"status": "ok"}
    return results, ast_info, check, tm


def serve_programs(req):
    rid = req["id"]
    progs = req.get("programs") or []
    timing = bool(req.get("timing"))
    # One budget per caller whose programs travel in this request (same-tick calls share a request): what one
    # caller's programs send back never counts against another's.
    given = req.get("budgets")
    budgets = {}

    def budget_of(prog):
        g = prog.get("g", 0)
        if not isinstance(g, int) or isinstance(g, bool):
            g = 0
        if g not in budgets:
            left = REQ_OUT_CAP
            if isinstance(given, list) and 0 <= g < len(given) and isinstance(given[g], int) and not isinstance(given[g], bool):
                left = max(0, min(REQ_OUT_CAP, given[g]))
            budgets[g] = Budget(left)
        return budgets[g]
    # This request's number: the zygotes account its children under it; asking them for the request's usage
    # at the end also tells them to give the next request's children a fresh IPC namespace.
    _IPC_GEN[0] += 1
    _USED.clear()
    for j, prog in enumerate(progs):
        budget = budget_of(prog)
        before = budget.left
        results, ast_info, check, tm = run_program(rid, j, prog, budget, timing)
        msg = {"id": rid, "p": j, "r": results, "b": before - budget.left}
        if check is not None:
            msg["check"] = check
            msg["ast"] = ast_info or {"functions": [], "classes": []}
        if timing:
            msg["t"] = tm
        out(msg)
        _last_line[0] = time.monotonic()
    _reap_pending()
    stray = _stray_processes()
    usage = {"cpu_s": 0.0, "user_s": 0.0, "max_rss_mb": 0.0, "children": 0, "minflt": 0}
    for name in sorted(_USED):  # CPU time and peak memory of this request's children (wait4, in the zygotes)
        u = _zusage(name, _IPC_GEN[0])
        for k in ("cpu_s", "user_s", "children", "minflt"):
            usage[k] += u.get(k, 0)
        usage["max_rss_mb"] = max(usage["max_rss_mb"], u.get("max_rss_mb", 0))
    out({"id": rid, "done": True, "stray": stray, "usage": usage})


def _stray_processes():
    """Kill and count processes left in the children's pid namespaces after a request: any live process whose
    parent is a zygote (children cannot fork, so an orphan or a leftover can only be a zygote's) once every
    child of the request has been reaped. None may be left; this is the check that it held."""
    zpids = {z[1] for z in _ZYG.values()}
    if not HAVE_ADMIN or not zpids:
        return 0
    n = 0
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == 1 or pid == os.getpid() or pid in zpids:
            continue
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) not in zpids or fields[0] in (b"Z", b"X"):
                continue  # not a zygote's, or already dead (the zygote reaps it before its next fork)
            os.kill(pid, signal.SIGKILL)
            n += 1
        except (OSError, ValueError, IndexError):
            pass
    if n:
        for name in _ZYG:
            if name not in _PARKED:  # a parked zygote has no child
                _zcall({"op": "reap"}, zyg=name)
    return n


def serve_script(req):
    rid = req["id"]
    _IPC_GEN[0] += 1  # its child accounted apart from any program request
    timeout = float(req["timeout"])
    key = project_key(req)
    t0 = time.perf_counter()
    _reap_pending()
    nonce = os.urandom(16).hex()
    try:
        payload = _request_bytes(dict(req, end=nonce))
    except ValueError as e:  # nested past marshal's depth (2000): no child is started for it
        out({"id": rid, "done": True, "ms": 0, "script": {"load": {"status": "error", "errorType": "ValueError",
                                                                    "message": _one_line("script input: %s" % e)}}})
        return
    child = Child("script", payload, timeout, key=key)
    deadline = time.monotonic() + timeout + GRACE
    res = None
    tampered = False
    msg = child.read_msg(deadline)
    if msg == "timeout":
        res = {"load": {"status": "timeout", "message": "exceeded %gs (hard kill)" % timeout}}
    elif msg is None:
        res = {"load": child.died_status("program")}
    elif msg == GARBAGE or not isinstance(msg.get("load"), dict):
        res = {"load": {"status": "crash", "message": "malformed result"}}
    else:
        res = msg
        end = child.read_msg(time.monotonic() + GRACE + 1.0)
        if end != {"end": nonce}:
            tampered = True
    if child.drain(time.monotonic() + GRACE):
        tampered = True
    child.kill()
    _pending_reap.append(child)
    if tampered and res.get("load", {}).get("status") == "ok":
        res = {"load": {"status": "crash", "message": "the script's result channel was written to out of turn (tampered)"}}
    out({"id": rid, "done": True, "script": res, "ms": (time.perf_counter() - t0) * 1000})
    _reap_pending()
    _zusage("full", _IPC_GEN[0])  # closes the script's books; a fresh IPC namespace follows


def _leave_tmp_root():
    """On the way out: remove this server's own folder (unsafe mode; a sandbox's tmpfs goes with the sandbox)."""
    if not CFG.get("tmp_root"):
        _empty_tmp_root()
        try:
            os.rmdir(TMP_ROOT)
        except OSError:
            pass


def _server_signals():
    """Dispositions every child needs, set once here so the fork inherits them: default actions (die) for
    SIGINT, SIGTERM, SIGPIPE, SIGXCPU and SIGXFSZ, and the per-call timer's handler for SIGALRM. The
    server wants the same defaults (it dies with its pipe or on SIGTERM) and never arms a timer itself."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXCPU, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGALRM, _on_alarm)
    _NOT_CHILDREN.add(os.getpid())  # the handler does nothing here (each zygote puts its own pid instead)


def _server_env():
    """The environment every child inherits: nothing but HOME and TMPDIR, both its working folder, TMP_ROOT. (The
    server's own environment, already minimal, mattered only while the prelude imported numpy.)"""
    os.environ.clear()
    os.environ.update({"TMPDIR": TMP_ROOT, "HOME": TMP_ROOT})


def main():
    _server_signals()
    _server_env()
    _prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)  # children (same uid) cannot ptrace or read our memory
    if HAVE_ADMIN:
        # bwrap's mounts belong to a namespace we cannot change: take a mount namespace of our own (the zygote
        # and every child share it) and put our own size- and inode-limited tmpfs on TMP_ROOT.
        if _libc.unshare(CLONE_NEWNS) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        _mount_tmpfs()
    else:
        _root_as_made()
    _zygote_start()  # before the first request: the zygotes never see one
    out({"ready": True, "pid": os.getpid(), "uid": os.getuid(), "zygotes": sorted(_ZYG),
         "isolation": {"pid_namespace": HAVE_ADMIN, "ipc_namespace_per_request": HAVE_ADMIN,
                       "tmpfs_per_child": HAVE_ADMIN, "seccomp": bool(SECCOMP_BPF)},
         **_zygote_report(), "parked": sorted(_PARKED)})
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            _reap_pending()
            _leave_tmp_root()
            return
        try:
            req = _loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except (ValueError, RecursionError):
            out({"fatal": "bad request line"})
            continue
        op = req.get("op")
        rid = req.get("id")
        _last_line[0] = time.monotonic()
        try:
            if op == "programs":
                serve_programs(req)
            elif op == "script":
                serve_script(req)
            elif op == "ping":
                out({"id": rid, "done": True})
            elif op == "info":  # what every zygote's start-up did, parked ones woken first (tests, benches)
                for name in sorted(_PARKED):
                    _wake(name)
                out({"id": rid, "done": True, "info": _zygote_report()})
            elif op == "bench_fork":
                zyg = req.get("zygote") if req.get("zygote") in _ZYG else "full"
                res = _zcall({"op": "bench", "n": int(req.get("n", 200)), "loop": req.get("loop")}, zyg=zyg)[0]
                out({"id": rid, "done": True, "bench": res})
            else:
                out({"id": rid, "done": True, "fatal": "unknown op %r" % op})
        except ZygoteGone:
            _leave_tmp_root()
            _exit(71)  # the zygote is gone: the pool starts a fresh sandbox
        except (KeyError, TypeError, ValueError) as e:
            out({"id": rid, "done": True, "fatal": _one_line("malformed request: %s" % e)})


if __name__ == "__main__":
    main()
