#!/usr/bin/env python3
"""UTGen SFT trainer: TRL SFTTrainer + PEFT LoRA, optionally QLoRA (bitsandbytes 4-bit NF4).

Launched by the pipeline's `train` stage (stages/train.ts) through `accelerate launch`, `torchrun` or
plain python, with one JSON config rendered by trainers/render.ts:

    {"model": {...}, "quantization": {...}|null, "lora": {...}, "data": {...}, "sft": {SFTConfig kwargs}}

Modes:
    --config cfg.json                  train (imports torch/transformers/trl/peft lazily)
    --config cfg.json --check-data     validate the data files with the stdlib only; print a JSON summary
    --env-report                       print Python/package versions and CUDA devices as JSON

Live progress: a TrainerCallback prints `[utgen] {json}` lines (log, save, begin, end) on the main
process, because transformers' own stdout lines are Python dict text and trainer_state.json appears
only at checkpoint saves.
"""
import argparse
import json
import math
import os
import platform
import sys
import time
from importlib import metadata

PROGRESS_PREFIX = "[utgen] "
PACKAGES = [
    "torch",
    "transformers",
    "trl",
    "peft",
    "bitsandbytes",
    "accelerate",
    "deepspeed",
    "datasets",
    "flash-attn",
]
ROLES = ("system", "user", "assistant")


class ConfigError(Exception):
    """A one-line problem with the config or the data; printed as `error: ...`, exit code 2."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="sft_train.py",
        description="UTGen SFT: TRL SFTTrainer with PEFT LoRA / QLoRA, completion-only loss.",
    )
    p.add_argument("--config", help="JSON config rendered by the pipeline (configs/sft_config.json)")
    p.add_argument("--check-data", action="store_true", help="validate the data files (stdlib only) and exit")
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
        raise ConfigError(f"config {path} does not exist; render it with the train stage (--dry-run)")
    except json.JSONDecodeError as e:
        raise ConfigError(f"config {path} is not valid JSON ({e.msg} at line {e.lineno}); re-render it")
    for key in ("model", "lora", "data", "sft"):
        if not isinstance(cfg.get(key), dict):
            raise ConfigError(f"config {path} lacks the '{key}' section; re-render it with the train stage")
    if not cfg["model"].get("name_or_path"):
        raise ConfigError(f"config {path}: model.name_or_path is empty")
    fmt = cfg["data"].get("format")
    if fmt not in ("prompt_completion", "messages"):
        raise ConfigError(f"config {path}: data.format must be prompt_completion or messages, not {fmt!r}")
    if not cfg["sft"].get("output_dir"):
        raise ConfigError(f"config {path}: sft.output_dir is empty")
    return cfg


def _check_turns(turns, where, field):
    if not isinstance(turns, list) or not turns:
        raise ConfigError(f"{where}: '{field}' must be a non-empty list of {{role, content}} messages")
    for i, m in enumerate(turns):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ConfigError(
                f"{where}: {field}[{i}] must be {{\"role\": system|user|assistant, \"content\": string}}"
            )


def validate_row(row, fmt, where):
    """Check one row's shape; return the columns TRL needs (metadata is dropped: its schema varies)."""
    if not isinstance(row, dict):
        raise ConfigError(f"{where}: a row must be a JSON object")
    if fmt == "messages":
        msgs = row.get("messages")
        _check_turns(msgs, where, "messages")
        if msgs[-1]["role"] != "assistant" or not msgs[-1]["content"].strip():
            raise ConfigError(f"{where}: the last message must be a non-empty assistant turn")
        return {"messages": msgs}
    prompt, completion = row.get("prompt"), row.get("completion")
    if prompt is None or completion is None:
        raise ConfigError(
            f"{where}: a prompt_completion row needs 'prompt' and 'completion' (found {sorted(row)[:5]})"
        )
    _check_turns(prompt, where, "prompt")
    _check_turns(completion, where, "completion")
    if any(m["role"] != "assistant" for m in completion) or not completion[-1]["content"].strip():
        raise ConfigError(f"{where}: 'completion' must hold non-empty assistant message(s) only")
    if prompt[-1]["role"] != "user":
        raise ConfigError(f"{where}: the prompt must end with a user message")
    return {"prompt": prompt, "completion": completion}


def load_rows(path, fmt):
    """Read a JSONL file with the stdlib json module; one error line names file:line and the fix."""
    if not os.path.isfile(path):
        raise ConfigError(f"data file {path} does not exist; run the emit-sft stage or set train.data_dir")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{where}: not valid JSON ({e.msg}); re-run the emit-sft stage")
            rows.append(validate_row(row, fmt, where))
    if not rows:
        raise ConfigError(f"data file {path} has no rows; check the emit-sft output")
    return rows


def row_chars(row):
    turns = row.get("messages") or (row["prompt"] + row["completion"])
    return sum(len(m["content"]) for m in turns)


def check_data(cfg):
    data = cfg["data"]
    out = {"format": data["format"]}
    for split, key in (("train", "train_file"), ("eval", "eval_file")):
        path = data.get(key)
        if not path:
            continue
        rows = load_rows(path, data["format"])
        chars = [row_chars(r) for r in rows]
        out[split] = {"file": path, "rows": len(rows), "max_chars": max(chars), "mean_chars": sum(chars) / len(chars)}
    return out


def env_report():
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    report = {
        "python": platform.python_version(),
        "executable": sys.executable,
        "packages": versions,
        "cuda": None,
        "gpus": [],
        "torch_error": None,
    }
    if versions["torch"]:
        try:
            import torch  # noqa: PLC0415 (lazy: the report must work without it)

            report["cuda"] = {
                "available": bool(torch.cuda.is_available()),
                "version": torch.version.cuda,
                "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
                "bf16": bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported()),
            }
            for i in range(report["cuda"]["device_count"]):
                prop = torch.cuda.get_device_properties(i)
                report["gpus"].append(
                    {
                        "index": i,
                        "name": prop.name,
                        "total_bytes": int(prop.total_memory),
                        "capability": f"{prop.major}.{prop.minor}",
                    }
                )
        except Exception as e:  # a broken CUDA install is reported, not raised
            report["torch_error"] = f"{type(e).__name__}: {e}".splitlines()[0]
    return report


def _finite(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):  # 0-d tensors / numpy scalars
        try:
            return _finite(v.item())
        except Exception:
            return str(v)
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def progress_record(event, global_step, max_steps, epoch, logs=None, **extra):
    """One `[utgen]` progress line as a dict (JSON-safe: NaN/inf become null)."""
    rec = {"event": event, "step": int(global_step), "max_steps": int(max_steps or 0), "epoch": _finite(epoch)}
    for k, v in (logs or {}).items():
        rec[k] = _finite(v)
    rec.update({k: _finite(v) for k, v in extra.items()})
    rec["time"] = round(time.time(), 3)
    return rec


def emit(rec):
    sys.stdout.write(PROGRESS_PREFIX + json.dumps(rec, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def make_progress_callback(TrainerCallback):
    class UtgenProgress(TrainerCallback):
        """Prints `[utgen] {json}` lines from the main process: begin, log, save, end."""

        def on_train_begin(self, args, state, control, **kw):
            if state.is_world_process_zero:
                emit(progress_record("begin", state.global_step, state.max_steps, state.epoch,
                                     num_train_epochs=state.num_train_epochs))

        def on_log(self, args, state, control, logs=None, **kw):
            if state.is_world_process_zero:
                emit(progress_record("log", state.global_step, state.max_steps, state.epoch, logs))

        def on_save(self, args, state, control, **kw):
            if state.is_world_process_zero:
                ckpt = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
                emit(progress_record("save", state.global_step, state.max_steps, state.epoch, checkpoint=ckpt))

        def on_train_end(self, args, state, control, **kw):
            if state.is_world_process_zero:
                emit(progress_record("end", state.global_step, state.max_steps, state.epoch))

    return UtgenProgress


def compat_sft_kwargs(sft, transformers_major):
    """SFTConfig kwargs for the installed transformers: 5.x reads a float `warmup_steps` < 1 as a ratio
    (it removed `warmup_ratio`); 4.x wants `warmup_ratio` for that."""
    out = dict(sft)
    w = out.get("warmup_steps")
    if transformers_major < 5 and isinstance(w, float) and 0 < w < 1:
        out.pop("warmup_steps")
        out["warmup_ratio"] = w
    return out


def _dtype(torch, name):
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def train(cfg, resume_from_checkpoint=None):
    # Heavy imports only here: --help, --check-data and --env-report run without them.
    import torch
    import transformers
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    data = cfg["data"]
    train_ds = Dataset.from_list(load_rows(data["train_file"], data["format"]))
    eval_ds = Dataset.from_list(load_rows(data["eval_file"], data["format"])) if data.get("eval_file") else None

    # The training arguments come first: under DeepSpeed ZeRO-3 they switch on partitioned loading
    # (zero.Init) for the from_pretrained call below.
    args = SFTConfig(**compat_sft_kwargs(cfg["sft"], int(transformers.__version__.split(".")[0])))

    m = cfg["model"]
    dtype = _dtype(torch, m.get("dtype", "bfloat16"))
    # `dtype` (transformers >= 4.56, checked by preflight) is explicit: TRL's CLI default would be float32.
    load_kwargs = {"dtype": dtype, "attn_implementation": m.get("attn_implementation", "sdpa")}
    q = cfg.get("quantization")
    if q:
        qkw = dict(q)
        for key in ("bnb_4bit_compute_dtype", "bnb_4bit_quant_storage"):
            if key in qkw:
                qkw[key] = _dtype(torch, qkw[key])
        load_kwargs["quantization_config"] = BitsAndBytesConfig(**qkw)
        if not m.get("sharded"):
            # Each data-parallel rank holds a full 4-bit copy on its own GPU.
            from accelerate import PartialState

            load_kwargs["device_map"] = {"": PartialState().local_process_index}
    model = AutoModelForCausalLM.from_pretrained(m["name_or_path"], **load_kwargs)
    tokenizer = AutoTokenizer.from_pretrained(m["name_or_path"])
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    lora = LoraConfig(**cfg["lora"])
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[make_progress_callback(TrainerCallback)()],
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model(args.output_dir)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.env_report:
            print(json.dumps(env_report()))
            return 0
        cfg = load_config(args.config)
        if args.check_data:
            print(json.dumps(check_data(cfg)))
            return 0
        if args.resume_from_checkpoint and not os.path.isdir(args.resume_from_checkpoint):
            raise ConfigError(f"--resume-from-checkpoint {args.resume_from_checkpoint} is not a folder")
        train(cfg, args.resume_from_checkpoint)
        return 0
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C / the supervisor's SIGINT: no partial save; the last complete checkpoint is the resume point.
        print("interrupted: training stopped; continue from the last complete checkpoint with --resume", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
