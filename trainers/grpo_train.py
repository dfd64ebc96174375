#!/usr/bin/env python3
"""UTRL GRPO trainer: TRL GRPOTrainer (+ PEFT LoRA, vLLM generation), rewarded by the UTRL reward service.

Launched per schedule phase by the pipeline's `utrl` stage (stages/rl/utrl.ts) through `accelerate launch`,
with one JSON config rendered by trainers/utrl.ts:

    {"role": "tester"|"coder", "phase", "model": {"name_or_path", "init_adapter", "dtype", ...},
     "lora": {...}|null, "data": {"train_file"}, "reward": {"module", "function", "url_env"},
     "grpo": {GRPOConfig kwargs}}

The reward function (trainers/utrl_reward.py) posts each batch of completions to the reward service
($UTRL_REWARD_URL), which runs them in the pipeline's sandbox: generated code never runs in this process.

Modes:
    --config cfg.json                   train (imports torch/transformers/trl/peft lazily)
    --config cfg.json --check-config    validate the config with the stdlib only; print a JSON summary
    --config cfg.json --check-data      validate the phase's data file (prompt + reward columns); print a summary
    --config cfg.json --check-reward    call the phase's reward function on built-in samples through the service
                                        and check the numbers (the trainer ↔ service round trip, no GPU)
    --env-report                        print Python/package versions and CUDA devices as JSON

Progress: `[utgen] {json}` lines (begin, log, save, end) from the main process, as sft_train.py prints them.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import sft_train  # noqa: E402  (shared: env report, progress callback, dtype names, ConfigError)

ConfigError = sft_train.ConfigError
ROLES = ("tester", "coder")
REWARD_FUNCTIONS = {"tester": "utrl_tester_reward", "coder": "utrl_coder_reward"}
TESTER_COLUMNS = ("task_id", "kind", "gt_code", "codes")
CODER_COLUMNS = ("task_id", "kind", "gt_code")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="grpo_train.py", description="UTRL GRPO: TRL GRPOTrainer rewarded by the UTRL reward service.")
    p.add_argument("--config", help="JSON config rendered by the pipeline (utrl/<name>/p<k>-<role>/configs/grpo_config.json)")
    p.add_argument("--check-config", action="store_true", help="validate the config (stdlib only) and exit")
    p.add_argument("--check-data", action="store_true", help="validate the phase's data file (stdlib only) and exit")
    p.add_argument("--check-reward", action="store_true", help="call the reward function on built-in samples through the service and exit")
    p.add_argument("--env-report", action="store_true", help="print versions and CUDA devices as JSON and exit")
    p.add_argument("--resume-from-checkpoint", default=None, help="path of a checkpoint-N folder to resume from")
    args = p.parse_args(argv)
    if not args.env_report and not args.config:
        p.error("--config is required (or use --env-report)")
    return args


def load_config(path):
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config {path} does not exist; render it with the utrl stage (--dry-run)")
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {path} is not valid JSON ({e.msg} at line {e.lineno}); re-render it")
    if cfg.get("role") not in ROLES:
        raise ConfigError(f"config {path}: role must be tester or coder, not {cfg.get('role')!r}")
    for key in ("model", "data", "reward", "grpo"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"config {path} lacks the '{key}' section; re-render it with the utrl stage")
    if not cfg["model"].get("name_or_path"):
        raise ConfigError(f"config {path}: model.name_or_path is empty")
    if cfg["reward"].get("function") != REWARD_FUNCTIONS[cfg["role"]]:
        raise ConfigError(f"config {path}: a {cfg['role']} phase is rewarded by {REWARD_FUNCTIONS[cfg['role']]}, not {cfg['reward'].get('function')!r}")
    g = cfg["grpo"]
    for key in ("output_dir", "max_steps", "num_generations", "per_device_train_batch_size", "learning_rate"):
        if key not in g:
            raise ConfigError(f"config {path}: grpo.{key} is missing; re-render it")
    if g.get("remove_unused_columns") is not False:
        raise ConfigError(f"config {path}: grpo.remove_unused_columns must be false (the reward needs the task columns)")
    if cfg.get("lora") is None and cfg["model"].get("init_adapter"):
        raise ConfigError(f"config {path}: model.init_adapter needs a lora section (LoRA continuation)")
    return cfg


def check_config(cfg):
    g = cfg["grpo"]
    return {
        "role": cfg["role"],
        "phase": cfg.get("phase"),
        "model": cfg["model"]["name_or_path"],
        "init_adapter": cfg["model"].get("init_adapter"),
        "method": "lora" if cfg.get("lora") else "full",
        "reward": cfg["reward"]["function"],
        "max_steps": g["max_steps"],
        "num_generations": g["num_generations"],
        "per_device_train_batch_size": g["per_device_train_batch_size"],
        "gradient_accumulation_steps": g.get("gradient_accumulation_steps", 1),
        "learning_rate": g["learning_rate"],
        "beta": g.get("beta"),
        "vllm_mode": g.get("vllm_mode") if g.get("use_vllm") else None,
    }


def load_rows(path, role):
    """The phase's data (prompt-only rows + reward columns), validated with the stdlib."""
    if not os.path.isfile(path):
        raise ConfigError(f"data file {path} does not exist; run the phase's rollouts first (--stage rl-rollouts --phase k)")
    need = TESTER_COLUMNS if role == "tester" else CODER_COLUMNS
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not valid JSON ({e.msg}); re-run the rollouts")
            prompt = row.get("prompt")
            if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt):
                raise ConfigError(f"{where}: 'prompt' must be a non-empty list of {{role, content}} messages")
            for c in need:
                if c not in row:
                    raise ConfigError(f"{where}: a {role} row needs the column '{c}' (the reward function reads it)")
            if role == "coder" and row.get("ut_text") is None and row.get("cases") is None:
                raise ConfigError(f"{where}: a coder row needs 'ut_text' (the tester's unit test) or 'cases'")
            if role == "tester" and not isinstance(row.get("codes"), list):
                raise ConfigError(f"{where}: 'codes' must be a list of the code generator's samples")
            rows.append(row)
    if not rows:
        raise ConfigError(f"data file {path} has no rows; re-run the rollouts")
    return rows


def check_data(cfg):
    rows = load_rows(cfg["data"]["train_file"], cfg["role"])
    g = cfg["grpo"]
    prompts_needed = g["max_steps"] * g["per_device_train_batch_size"] * g.get("gradient_accumulation_steps", 1) // g["num_generations"]
    return {"role": cfg["role"], "file": cfg["data"]["train_file"], "rows": len(rows), "tasks": len({r["task_id"] for r in rows}), "prompts_per_process_needed": prompts_needed}


# Built-in samples for --check-reward: a stdio task (read n, print 2n), its ground truth, a correct and a
# wrong code, and a unit test with two valid cases (the second catches the wrong code) and one invalid case.
_GT = "n = int(input())\nprint(2 * n)\n"
_RIGHT = "import sys\nprint(int(sys.stdin.read()) * 2)\n"
_WRONG = "n = int(input())\nprint(2 * n if n < 100 else n)\n"
_UT = (
    "## Test Case 1\nReasoning: small.\n### Input\n```\n3\n```\n### Output\n```\n6\n```\n\n"
    "## Test Case 2\nReasoning: large values.\n### Input\n```\n500\n```\n### Output\n```\n1000\n```\n\n"
    "## Test Case 3\nReasoning: a wrong expectation.\n### Input\n```\n1\n```\n### Output\n```\n3\n```\n"
)


def check_reward(cfg, tau=12, lam=0.85):
    """Call the phase's reward function as TRL would; compare with the numbers Eq. 1–4 give by hand."""
    import importlib

    mod = importlib.import_module(cfg["reward"].get("module", "utrl_reward"))
    fn = getattr(mod, cfg["reward"]["function"])
    health = mod.wait_ready(timeout=float(os.environ.get("UTRL_CHECK_TIMEOUT", "120")))
    settings = health.get("settings", {})
    tau, lam = settings.get("tau", tau), settings.get("lambda", lam)
    if cfg["role"] == "tester":
        got = fn(prompts=["p", "p"], completions=[[{"role": "assistant", "content": _UT}], "no test cases here"],
                 task_id=["check", "check"], kind=["stdio", "stdio"], gt_code=[_GT, _GT], entry_point=[None, None], codes=[[_RIGHT, _WRONG]] * 2)
        # 2 valid of 3 cases; 1 of 2 codes caught; the second completion has no cases.
        want = [lam * 0.5 + (1 - lam) * 2 / max(3, tau), 0.0]
    else:
        got = fn(prompts=["p"] * 3, completions=["```python\n" + _RIGHT + "```", "```python\n" + _WRONG + "```", "no code"],
                 task_id=["check"] * 3, kind=["stdio"] * 3, gt_code=[_GT] * 3, entry_point=[None] * 3, ut_text=[_UT] * 3)
        want = [1.0, 0.5, 0.0]
    ok = len(got) == len(want) and all(abs(a - b) < 1e-9 for a, b in zip(got, want))
    return {"role": cfg["role"], "function": cfg["reward"]["function"], "url": os.environ.get("UTRL_REWARD_URL"), "rewards": got, "expected": want, "ok": ok}


def compat_grpo_kwargs(g, transformers_major):
    """GRPOConfig kwargs for the installed transformers (see sft_train.compat_sft_kwargs)."""
    return sft_train.compat_sft_kwargs(g, transformers_major)


def train(cfg, resume_from_checkpoint=None):
    # Heavy imports only here: the checks and --env-report run without them.
    import importlib

    import torch
    import transformers
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = load_rows(cfg["data"]["train_file"], cfg["role"])
    train_ds = Dataset.from_list(rows)
    args = GRPOConfig(**compat_grpo_kwargs(cfg["grpo"], int(transformers.__version__.split(".")[0])))
    m = cfg["model"]
    model = AutoModelForCausalLM.from_pretrained(
        m["name_or_path"], dtype=sft_train._dtype(torch, m.get("dtype", "bfloat16")), attn_implementation=m.get("attn_implementation", "sdpa")
    )
    tokenizer = AutoTokenizer.from_pretrained(m["name_or_path"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    peft_config = None
    if cfg.get("lora"):
        from peft import LoraConfig, PeftModel

        if m.get("init_adapter"):
            # Continue the adapter a previous phase selected (the tester's second iteration).
            model = PeftModel.from_pretrained(model, m["init_adapter"], is_trainable=True)
        else:
            peft_config = LoraConfig(**cfg["lora"])
    reward = getattr(importlib.import_module(cfg["reward"].get("module", "utrl_reward")), cfg["reward"]["function"])
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward],
        args=args,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[sft_train.make_progress_callback(TrainerCallback)()],
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model(args.output_dir)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.env_report:
            report = sft_train.env_report()
            try:
                from importlib import metadata

                report["packages"]["vllm"] = metadata.version("vllm")
            except Exception:
                report["packages"]["vllm"] = None
            print(json.dumps(report))
            return 0
        cfg = load_config(args.config)
        if args.check_config:
            print(json.dumps(check_config(cfg)))
            return 0
        if args.check_data:
            print(json.dumps(check_data(cfg)))
            return 0
        if args.check_reward:
            out = check_reward(cfg)
            print(json.dumps(out))
            return 0 if out["ok"] else 1
        if args.resume_from_checkpoint and not os.path.isdir(args.resume_from_checkpoint):
            raise ConfigError(f"--resume-from-checkpoint {args.resume_from_checkpoint} is not a folder")
        if not os.environ.get(cfg["reward"].get("url_env", "UTRL_REWARD_URL")):
            raise ConfigError("UTRL_REWARD_URL is not set: start the reward service (--stage rl-serve) and point the trainer at it")
        train(cfg, args.resume_from_checkpoint)
        return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: training stopped; continue from the last complete checkpoint with --resume", file=sys.stderr, flush=True)
        return 130
    except Exception as e:  # the reward service refused or vanished: one line, not a traceback
        if type(e).__name__ == "RewardServiceError":
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
