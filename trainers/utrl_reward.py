#!/usr/bin/env python3
"""UTRL reward functions for Python trainers, backed by the pipeline's sandboxed reward service.

Standard library only (urllib + json): importable in any trainer environment. Generated code never runs in
the trainer's process; every rollout batch is one POST to the service (`rl-serve`, stages/rl/service.ts),
which runs it in the sandbox and returns the rewards of seed 002 §3 (Eq. 1–4).

TRL (GRPOTrainer `reward_funcs`; dataset columns arrive as keyword arguments, one value per completion):
    from utrl_reward import utrl_tester_reward, utrl_coder_reward
    # tester phase: columns task_id, kind, gt_code, entry_point, codes (the current code generator's samples)
    # coder phase:  columns task_id, kind, gt_code, entry_point, ut_text (the current UT generator's test)
    trainer = GRPOTrainer(..., reward_funcs=[utrl_tester_reward])
    (CLI: --reward_funcs utrl_reward.utrl_tester_reward with trainers/ on PYTHONPATH)

verl (custom_reward_function.path = trainers/utrl_reward.py):
    name: compute_score          (naive reward manager: one rollout per call)
    name: compute_score_batch    (batch reward manager: a whole batch per call — prefer this one)
    extra_info of each row: {"role": "tester"|"coder", "task_id", "kind", "gt_code", "entry_point",
                             "codes" (tester) | "ut_text" or "cases" (coder)}

Environment: UTRL_REWARD_URL (default http://127.0.0.1:8787), UTRL_REWARD_TOKEN (bearer token, when the
service requires one), UTRL_REWARD_TIMEOUT (seconds per request, default 900), UTRL_REWARD_RETRIES (5).

Command line:
    python3 utrl_reward.py --wait [--url URL] [--timeout 300]   wait until the service answers /v1/health
    python3 utrl_reward.py --check [--url URL]                   print the service's settings
    python3 utrl_reward.py --score rows.jsonl [--url URL]        score a JSONL file of reward rows (one request)
"""
import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8787"


class RewardServiceError(RuntimeError):
    """The service refused the request (bad row, token) or stayed unreachable after the retries."""


def _url(url=None):
    return (url or os.environ.get("UTRL_REWARD_URL") or DEFAULT_URL).rstrip("/")


def _request(method, path, body=None, url=None, timeout=None, retries=None):
    base = _url(url)
    timeout = float(timeout if timeout is not None else os.environ.get("UTRL_REWARD_TIMEOUT", "900"))
    retries = int(retries if retries is not None else os.environ.get("UTRL_REWARD_RETRIES", "5"))
    data = None if body is None else json.dumps(body).encode("utf-8")
    headers = {"content-type": "application/json"}
    token = os.environ.get("UTRL_REWARD_TOKEN")
    if token:
        headers["authorization"] = "Bearer " + token
    last = None
    for attempt in range(retries + 1):
        req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            try:
                msg = json.loads(e.read().decode("utf-8")).get("error", "")
            except Exception:
                msg = ""
            if e.code < 500:
                raise RewardServiceError(f"reward service {base}{path}: HTTP {e.code}: {msg or e.reason}") from None
            last = f"HTTP {e.code}: {msg or e.reason}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if attempt < retries:
            time.sleep(min(30.0, 0.5 * 2 ** attempt))
    raise RewardServiceError(f"reward service {base}{path} unreachable after {retries + 1} attempt(s): {last}; start it with `--stage rl-serve`")


def score_rows(rows, url=None, details=False):
    """Rewards for reward rows (dicts, see docs/utrl.md), in order: one request for all of them."""
    clean = [{k: v for k, v in r.items() if v is not None} for r in rows]
    if not clean:
        return []
    out = _request("POST", "/v1/rewards", {"rows": clean, "details": bool(details)}, url=url)
    return out["results"]


def _text(completion):
    """A completion as text: TRL passes a str, or for conversational data a list of messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            return str(last.get("content", ""))
    if isinstance(completion, dict):
        return str(completion.get("content", ""))
    return str(completion)


def _col(kwargs, name, n, default=None):
    v = kwargs.get(name)
    if v is None:
        return [default] * n
    if len(v) != n:
        raise RewardServiceError(f"dataset column {name!r} has {len(v)} values for {n} completions")
    return list(v)


def _log(kwargs, results, keys):
    log_metric = kwargs.get("log_metric")
    if not callable(log_metric) or not results:
        return
    for k in keys:
        vals = [r[k] for r in results if isinstance(r.get(k), (int, float))]
        if vals:
            try:
                log_metric(f"utrl/{k}", sum(vals) / len(vals))
            except Exception:
                pass


def utrl_tester_reward(prompts=None, completions=None, **kwargs):
    """GRPO reward of the unit-test generator: λ·R_disc + (1−λ)·R_valid per completion (a generated unit test).

    Dataset columns used: task_id, kind, gt_code, entry_point, codes (the code generator's samples).
    """
    completions = list(completions or [])
    n = len(completions)
    ids = _col(kwargs, "task_id", n, "task")
    rows = [
        {
            "id": f"{ids[i]}#{i}",
            "kind": kind,
            "gt_code": gt,
            "entry_point": ep,
            "ut_text": _text(c),
            "codes": list(codes or []),
        }
        for i, (c, kind, gt, ep, codes) in enumerate(
            zip(completions, _col(kwargs, "kind", n, "stdio"), _col(kwargs, "gt_code", n, ""), _col(kwargs, "entry_point", n), _col(kwargs, "codes", n, []))
        )
    ]
    results = score_rows(rows)
    _log(kwargs, results, ("r_disc", "r_valid", "valid_cases", "cases"))
    return [float(r["reward"]) for r in results]


def utrl_coder_reward(prompts=None, completions=None, **kwargs):
    """GRPO reward of the code generator: the share of the unit test's valid cases a completion passes (Eq. 4).

    Dataset columns used: task_id, kind, gt_code, entry_point, ut_text (or cases). Completions of the same task
    are scored in one row, so the ground truth runs once per task.
    """
    completions = list(completions or [])
    n = len(completions)
    ids = _col(kwargs, "task_id", n, None)
    kinds, gts, eps = _col(kwargs, "kind", n, "stdio"), _col(kwargs, "gt_code", n, ""), _col(kwargs, "entry_point", n)
    uts, cases, fins = _col(kwargs, "ut_text", n), _col(kwargs, "cases", n), _col(kwargs, "finish_reason", n)
    groups = {}
    order = []
    for i in range(n):
        key = ids[i] if ids[i] is not None else f"row{i}"
        if key not in groups:
            groups[key] = {"row": {"id": str(key), "kind": kinds[i], "gt_code": gts[i], "entry_point": eps[i], "code_texts": []}, "idx": []}
            if uts[i] is not None:
                groups[key]["row"]["ut_text"] = uts[i]
                groups[key]["row"]["finish_reason"] = fins[i]
            else:
                groups[key]["row"]["cases"] = cases[i] or []
            order.append(key)
        groups[key]["row"]["code_texts"].append(_text(completions[i]))
        groups[key]["idx"].append(i)
    results = score_rows([groups[k]["row"] for k in order])
    out = [0.0] * n
    for k, r in zip(order, results):
        for j, i in enumerate(groups[k]["idx"]):
            out[i] = float(r["code_rewards"][j])
    _log(kwargs, results, ("valid_cases",))
    return out


def _verl_row(solution_str, ground_truth, extra_info, i):
    info = dict(extra_info or {})
    role = info.get("role", "tester")
    row = {
        "id": f"{info.get('task_id', 'task')}#{i}",
        "kind": info.get("kind", "stdio"),
        "gt_code": info.get("gt_code") or ground_truth or "",
        "entry_point": info.get("entry_point"),
    }
    if role == "coder":
        if info.get("ut_text") is not None:
            row["ut_text"] = info["ut_text"]
        else:
            row["cases"] = info.get("cases") or []
        row["code_texts"] = [solution_str]
    else:
        row["ut_text"] = solution_str
        row["codes"] = list(info.get("codes") or [])
    return role, row


def compute_score_batch(data_sources=None, solution_strs=None, ground_truths=None, extra_infos=None, **kwargs):
    """verl batch reward manager entry point: one reward per solution string, one service request."""
    sols = list(solution_strs or [])
    gts = list(ground_truths or [None] * len(sols))
    infos = list(extra_infos or [None] * len(sols))
    pairs = [_verl_row(s, g, e, i) for i, (s, g, e) in enumerate(zip(sols, gts, infos))]
    results = score_rows([row for _, row in pairs])
    return [float(r["code_rewards"][0]) if role == "coder" else float(r["reward"]) for (role, _), r in zip(pairs, results)]


def compute_score(data_source=None, solution_str="", ground_truth=None, extra_info=None, **kwargs):
    """verl naive reward manager entry point: the reward of one rollout."""
    return compute_score_batch([data_source], [solution_str], [ground_truth], [extra_info])[0]


def wait_ready(url=None, timeout=300.0):
    """Block until GET /v1/health answers (or raise after `timeout` seconds)."""
    deadline = time.time() + timeout
    while True:
        try:
            return _request("GET", "/v1/health", url=url, timeout=5, retries=0)
        except RewardServiceError as e:
            if "HTTP 401" in str(e) or time.time() > deadline:
                raise
            time.sleep(0.5)


def main(argv=None):
    p = argparse.ArgumentParser(prog="utrl_reward.py", description="Client of the UTRL reward service (rl-serve).")
    p.add_argument("--url", default=None, help=f"service URL (default $UTRL_REWARD_URL or {DEFAULT_URL})")
    p.add_argument("--wait", action="store_true", help="wait until the service answers /v1/health")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
    p.add_argument("--check", action="store_true", help="print the service's health and settings as JSON")
    p.add_argument("--score", metavar="ROWS_JSONL", help="score a JSONL file of reward rows; print one result per line")
    a = p.parse_args(argv)
    try:
        if a.wait:
            print(json.dumps(wait_ready(a.url, a.timeout)))
        if a.check:
            print(json.dumps(_request("GET", "/v1/health", url=a.url, retries=0)))
        if a.score:
            with open(a.score, encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            for r in score_rows(rows, url=a.url):
                print(json.dumps(r))
        if not (a.wait or a.check or a.score):
            p.error("nothing to do: use --wait, --check or --score")
    except RewardServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
