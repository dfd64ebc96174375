# Value trace of the gold function on one input, for the heuristic template rationale. Runs inside the
# sandbox through `executor.runScript` (the gold program is executed here, never in Node).
# INPUT: {code, entry_point, args: [typed JSON], kwargs: {name: typed JSON}, max_vars?, max_values?}
#   typed JSON = the executor's encoding ($int, $float, $tuple, $set, $frozenset, $dict, $bytes).
# OUTPUT: {ok: true, vars: [{name, values: [repr, ...], changes: int}], lines: int}
#   per local variable of the entry function (parameters only when reassigned), the successive distinct
#   values it took, in order of first assignment; or {ok: false, error}.
# The names the sandbox's UTGen prelude gives every program (math, re, collections …): this script starts
# with them as its globals, so take them before defining anything.
# decode_value (typed JSON → Python value) is the executor's own codec, given to helper scripts.
PRELUDE = {k: v for k, v in globals().items() if not k.startswith("__") and k not in ("INPUT", "OUTPUT", "decode_value", "encode_value")}

import sys  # noqa: E402


def short(x, n=60):
    try:
        r = repr(x)
    except Exception:
        r = "<" + type(x).__name__ + ">"
    return r if len(r) <= n else r[: n - 1] + "…"


def run(inp):
    # the gold program sees the same prelude names (math, re, collections …) as in runCalls
    ns = dict(PRELUDE)
    ns["__name__"] = "__traced__"
    exec(compile(inp["code"], "<gold>", "exec"), ns)
    fn = ns[inp["entry_point"]]
    code = fn.__code__
    params = set(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])
    max_values = int(inp.get("max_values") or 6)
    order, hist, last, seen_first = [], {}, {}, {}
    state = {"lines": 0}

    def snapshot(frame):
        for k, v in frame.f_locals.items():
            if k.startswith("__") or callable(v) and not isinstance(v, (list, dict, set, tuple)):
                continue
            r = short(v)
            if k not in seen_first:
                seen_first[k] = r
                last[k] = r
                if k in params:
                    continue
                order.append(k)
                hist[k] = [r]
                continue
            if last.get(k) != r:
                last[k] = r
                if k not in hist:
                    order.append(k)
                    hist[k] = [seen_first[k]]
                hist[k].append(r)

    def local_trace(frame, event, arg):
        if event in ("line", "return"):
            state["lines"] += 1
            if state["lines"] > 20000:
                sys.settrace(None)
                return None
            snapshot(frame)
        return local_trace

    def global_trace(frame, event, arg):
        if event == "call" and frame.f_code is code:
            return local_trace
        return None

    args = [decode_value(a) for a in inp.get("args", [])]
    kwargs = {k: decode_value(v) for k, v in (inp.get("kwargs") or {}).items()}
    sys.settrace(global_trace)
    try:
        fn(*args, **kwargs)
    finally:
        sys.settrace(None)
    out = []
    for k in order[: int(inp.get("max_vars") or 6)]:
        vals = hist[k]
        shown = vals if len(vals) <= max_values else vals[: max_values - 1] + ["…", vals[-1]]
        out.append({"name": k, "values": shown, "changes": len(vals) - 1})
    return {"ok": True, "vars": out, "lines": state["lines"]}


try:
    OUTPUT = run(INPUT)
except Exception as e:  # the caller falls back to the plain template
    OUTPUT = {"ok": False, "error": type(e).__name__ + ": " + str(e)[:200]}
