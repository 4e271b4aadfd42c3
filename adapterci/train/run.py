"""`train(cfg)`: one LoRA adapter from the config's `train` section, written atomically with its provenance.

Order matters: the backend choice and the data are checked before any model is loaded (fail fast, exit 2 for
config errors); the adapter is built in a temp directory and moved into place only when everything succeeded;
checkpoints live beside it (`<adapter>.checkpoints/`) so `resume=True` continues a crashed run. A finished
adapter is also kept in this trust domain's adapter cache (`adapterci.stagecache`), where `adapterci run` on the
same inputs finds it instead of training again."""

from __future__ import annotations

import math
import os
import shutil
import time
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from adapterci.adapterdir import NOT_ADAPTER, TRAIN_JSON
from adapterci.console import is_terminal, log_line
from adapterci.cost.guard import cost_guard, estimate_line, last_throughput, record_throughput
from adapterci.data.dataset import load_preferences, load_training_data, method_problems
from adapterci.data.labels import label_variants
from adapterci.errors import StageFailed
from adapterci.fsio import read_json, staged_dir, write_json_atomic
from adapterci.modelio import check_chat_template, resolve_base, safetensors_problem
from adapterci.prompting import PromptFormat
from adapterci.runs import RunDir, run_dir_for
from adapterci.stagecache import store_adapter
from adapterci.train.backends import (ModelSpec, SettingError, choose_backend, get_backend, training_precision,
                                      unsloth_importable)
from adapterci.train.config import PREFERENCE_METHODS
from adapterci.train.data import preference_rows, tokenize_examples
from adapterci.train.loss import trainer_class
from adapterci.train.plot import plot_losses
from adapterci.train.progress import log_lines_callback
from adapterci.train.provenance import inputs_fingerprint, provenance

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    metrics: dict[str, Any]  # the content of adapterci-train.json


def checkpoints_dir(output: Path) -> Path:
    return output.parent / f"{output.name}.checkpoints"


CHECKPOINT_INPUTS = "adapterci-inputs.json"
"""In the checkpoints folder: the inputs fingerprint the checkpoints were trained from."""


def can_resume(output: Path, fingerprint: str) -> bool:
    """Whether `output` has a complete checkpoint of an interrupted training on the inputs `fingerprint`."""
    ckpt = checkpoints_dir(Path(output))
    found = [c for folder in (ckpt, *sorted(ckpt.glob("stage-*"))) for c in _checkpoints(folder)]
    return _recorded_inputs(ckpt) == fingerprint and (any(incomplete(c) is None for c in found)
                                                      or (ckpt / SFT_STAGE / "adapter_config.json").is_file())


def _checkpoints(ckpt: Path) -> list[Path]:
    """The `checkpoint-STEP` folders, newest (highest step) first."""
    found = [p for p in ckpt.glob("checkpoint-*") if p.is_dir() and p.name.split("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-", 1)[1]), reverse=True)


def incomplete(checkpoint: Path) -> str | None:
    """Why `checkpoint` cannot be resumed from (None: it is complete). The Trainer writes the weights, then the
    optimizer, scheduler and RNG states, and `trainer_state.json` last, straight into the folder: a full disk or
    a kill leaves it without the state, or with a truncated file. Checked: the state parses and names this step;
    every safetensors file holds all the bytes its header promises; every torch file is a whole zip archive."""
    try:
        state = read_json(checkpoint / "trainer_state.json")
        step = checkpoint.name.split("-", 1)[1]
        if not isinstance(state, dict) or str(state.get("global_step")) != step:
            return f"trainer_state.json does not record step {step}"
        sharded = [p.name for p in checkpoint.iterdir() if p.is_dir()]  # FSDP / DeepSpeed write folders
        weights = sorted(checkpoint.glob("*.safetensors"))
        if not weights and not any(n.startswith(("pytorch_model_fsdp", "global_step")) for n in sharded):
            return "the weights are missing"
        if not (checkpoint / "optimizer.pt").is_file() and not any(n.startswith(("optimizer", "global_step"))
                                                                    for n in sharded):
            return "optimizer.pt is missing"
        for path in weights:
            if why := safetensors_problem(path):
                return f"{path.name}: {why}"
        for path in sorted([*checkpoint.glob("*.pt"), *checkpoint.glob("*.pth"), *checkpoint.glob("*.bin")]):
            try:
                with zipfile.ZipFile(path) as archive:
                    archive.namelist()
            except (zipfile.BadZipFile, EOFError, ValueError):
                return f"{path.name} is truncated or damaged"
    except FileNotFoundError as exc:
        return f"{Path(exc.filename or '?').name} is missing"
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    return None


def _recorded_inputs(ckpt: Path) -> str | None:
    try:
        return read_json(ckpt / CHECKPOINT_INPUTS)["inputs_fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def train(cfg, output: Path | None = None, resume: bool = False, run_dir: RunDir | None = None,
          log: Callable[[str], None] = log_line, callbacks: Sequence[Any] = ()) -> TrainResult:
    """Train the adapter described by `cfg` into `output` (default: the run directory's `adapter/`).

    `callbacks` are extra `transformers.TrainerCallback`s (e.g. to stop or observe a run). When it writes into
    the run directory, the main process holds the directory's lock throughout."""
    run = run_dir_for(cfg, run_dir)
    output = Path(output).resolve() if output else run.adapter
    main = int(os.environ.get("RANK", "0")) == 0
    with run.locked() if main and output == run.adapter else nullcontext():
        return _train(cfg, output, resume, run, main, log, callbacks)


def _train(cfg, output: Path, resume: bool, run: RunDir, main: bool, log: Callable[[str], None],
           callbacks: Sequence[Any]) -> TrainResult:
    import torch

    tc = cfg.train
    started = time.monotonic()

    # 1. what can run here (cheap, before any heavy work)
    cuda = torch.cuda.is_available()
    wants_unsloth = cuda and tc.backend in ("auto", "unsloth")
    backend_name = choose_backend(tc.backend, tc.quantization, cuda, wants_unsloth and unsloth_importable(),
                                  str(cfg.path))
    precision = training_precision(cfg)
    log(f"train: backend {backend_name} ({'requested' if tc.backend != 'auto' else 'auto'}), "
        f"device {'cuda' if cuda else 'cpu'}, precision {precision}")

    # 2. data (file:line of every problem)
    train_rows, valid_rows, pair_rows, valid_pairs = _load_data(cfg)

    # 3. model and tokenizer

    base = resolve_base(cfg, log)
    spec = ModelSpec(ref=base.ref, revision=base.revision, lora=tc.lora, quantization=tc.quantization,
                     max_length=tc.max_length, gradient_checkpointing=tc.gradient_checkpointing, seed=tc.seed,
                     device="cuda" if cuda else "cpu", precision=precision)
    _check_layers(cfg, spec)
    try:
        model, tokenizer = get_backend(backend_name).load(spec)
    except SettingError as exc:  # a `train` setting the model cannot take: pinned on its own key
        raise cfg.error(exc.key, str(exc)) from None
    except (OSError, ValueError) as exc:
        raise cfg.error("base_model", f"cannot load {spec.ref!r}: {exc}") from None
    check_chat_template(cfg, tokenizer)

    # 4. tokenized rows, with the one prompt format evaluation will use

    fmt = PromptFormat(cfg.prompt_template, tokenizer)
    tok_train = tokenize_examples(train_rows, fmt, tokenizer, tc.max_length, tc.overlength, tc.completion_only_loss)
    tok_valid = tokenize_examples(valid_rows, fmt, tokenizer, tc.max_length, tc.overlength, tc.completion_only_loss)
    pairs = preference_rows(pair_rows, fmt, tokenizer, tc.max_length, tc.overlength)
    pairs_valid = preference_rows(valid_pairs, fmt, tokenizer, tc.max_length, tc.overlength)
    for dropped in tok_train.dropped + tok_valid.dropped + pairs.dropped + pairs_valid.dropped:
        log(f"train: dropped overlong row {dropped}")
    if (train_rows and not tok_train.rows) or (pair_rows and not pairs.rows):
        raise StageFailed("train", "no training rows left after applying `train.max_length`")
    guard = _cost_guard(cfg, spec, backend_name, tok_train.tokens + pairs.tokens, started, log)

    # 5. trainer

    ckpt = checkpoints_dir(output)
    fingerprint = inputs_fingerprint(cfg)
    if resume and _recorded_inputs(ckpt) not in (None, fingerprint):
        raise StageFailed("train", f"the checkpoints in {ckpt} were trained from other inputs (data, config or base "
                                   "model changed since): run without --resume to start over", exit_code=2)
    staged = len(tc.stages) > 1  # sft+dpo: each stage checkpoints into its own folder
    resume_from = None if staged else _resume_point(ckpt, resume, log, main)
    if main and not resume and ckpt.exists():
        shutil.rmtree(ckpt)
    if main:
        write_json_atomic(ckpt / CHECKPOINT_INPUTS, {"inputs_fingerprint": fingerprint})
    extra = [*callbacks, *([guard] if guard else [])]
    stages = []  # (method, trainer, train output) of every stage run here
    finished: list[dict[str, Any]] = []  # the record of a first stage finished before a resume
    for method in tc.stages:
        stage_ckpt = ckpt / f"stage-{method}" if staged else ckpt
        if method == "sft" and staged and resume and (record := _finished_stage(ckpt, model, log)):
            finished.append(record)  # a resumed two-stage run whose first stage was complete
            continue
        trainer = (_build_trainer(cfg, spec, backend_name, model, tokenizer, tok_train.rows, tok_valid.rows,
                                  stage_ckpt, log, extra) if method == "sft" else
                   _build_preference_trainer(cfg, spec, method, model, tokenizer, pairs.rows, pairs_valid.rows,
                                             stage_ckpt, log, extra, fresh=not staged))
        out = _run_stage(trainer, _resume_point(stage_ckpt, resume, log, main) if staged else resume_from,
                         stage_ckpt)
        if guard is not None and guard.reason:
            raise StageFailed("train", f"{guard.reason}. No adapter was written: raise the cap, or train less "
                                       "(`train.epochs`, `train.max_steps`, fewer rows)")
        if not trainer.is_world_process_zero():
            return TrainResult(output, {})
        if "ref" in getattr(trainer.model, "peft_config", {}):  # DPO's frozen copy of the starting adapter
            trainer.model.delete_adapter("ref")
        _check_finite(trainer.model, out.training_loss, tc.preference.learning_rate or tc.learning_rate
                      if method != "sft" else tc.learning_rate)
        stages.append((method, trainer, out))
        if method == "sft" and staged:
            with staged_dir(ckpt / SFT_STAGE) as tmp:
                trainer.model.save_pretrained(tmp)
                write_json_atomic(tmp / STAGE_JSON, _stage_records(stages[-1:])[0])

    # 7. adapter + provenance, atomically

    history = _loss_history(trainer.state.log_history)
    metrics = provenance(cfg, tok_train, tok_valid, fmt, backend_name, spec.device, trainer, out, history,
                         time.monotonic() - started, resume_from, pairs, pairs_valid,
                         finished + _stage_records(stages))
    loss_png = run.loss_png if output == run.adapter else output.parent / f"{output.name}.loss.png"
    try:
        with staged_dir(output) as tmp:
            trainer.model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            for name in NOT_ADAPTER:
                (tmp / name).unlink(missing_ok=True)
            write_json_atomic(tmp / TRAIN_JSON, metrics)
        plot_losses(history, loss_png)
    except OSError as exc:
        raise StageFailed("train", f"cannot write the adapter to {output}: {exc}") from None
    shutil.rmtree(ckpt, ignore_errors=True)
    store_adapter(cfg, metrics["inputs_fingerprint"], output, loss_png)  # `run` on the same inputs reuses it
    record_throughput(cfg, spec.device, precision, backend_name, metrics["tokens_per_s"])
    log(f"train: wrote {output} ({metrics['steps']} steps, {metrics['wall_time_s']:.1f}s, "
        f"{metrics['tokens_per_s']:.0f} tokens/s)")
    return TrainResult(output, metrics)


SFT_STAGE = "sft-adapter"
"""In the checkpoints folder of a `sft+dpo` run: the finished first stage's adapter (what `--resume` starts DPO from)."""
STAGE_JSON = "adapterci-stage.json"
"""Beside that adapter: the first stage's record (`stages[0]` of the provenance)."""


def _run_stage(trainer, resume_from: str | None, ckpt: Path):
    import torch

    try:
        out = trainer.train(resume_from_checkpoint=resume_from)
    except torch.OutOfMemoryError as exc:
        raise StageFailed("train", f"out of memory: {exc}; lower `train.batch_size` or `train.max_length`") from None
    except OSError as exc:  # e.g. the disk filled up while writing a checkpoint
        raise StageFailed("train", f"{exc}; fix the cause and rerun with `--resume` to continue from {ckpt}") from None
    trainer.accelerator.wait_for_everyone()
    return out


def _finished_stage(ckpt: Path, model, log) -> dict[str, Any] | None:
    """Load the first stage's finished adapter (`SFT_STAGE`) into `model` when a resumed run has one; its stage
    record (None: there is none, or it is incomplete)."""
    weights = ckpt / SFT_STAGE / "adapter_model.safetensors"
    try:
        record = read_json(ckpt / SFT_STAGE / STAGE_JSON)
    except (OSError, ValueError):
        return None
    if not weights.is_file() or safetensors_problem(weights) or not isinstance(record, dict):
        return None
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(weights)))
    log(f"train: stage sft is complete in {ckpt / SFT_STAGE}; resuming with dpo")
    return record


def _stage_records(stages) -> list[dict[str, Any]]:
    return [{"method": method, "steps": int(trainer.state.global_step), "epochs": float(trainer.state.epoch or 0),
             "train_loss": round(float(out.training_loss), 6),
             "reward_accuracy": _last(trainer.state.log_history, "rewards/accuracies")}
            for method, trainer, out in stages]


def _last(log_history: list[dict], key: str) -> float | None:
    values = [e[key] for e in log_history if key in e]
    return round(float(values[-1]), 6) if values else None


def _cost_guard(cfg, spec: ModelSpec, backend: str, tokens: int, started: float, log) -> Any:
    """With `cost.hourly_rate`, log what this training should cost; with `cost.max_per_run`, the callback that
    stops it at the cap (None without one)."""
    if cfg.cost.hourly_rate is None:
        return None
    log(estimate_line(cfg, tokens, last_throughput(cfg, spec.device, spec.precision, backend)))
    return cost_guard(cfg, started) if cfg.cost.max_per_run else None


def _check_finite(model, loss: float, learning_rate: float) -> None:
    """A diverged training fails: TRL/transformers skip NaN losses in the average they report
    (`logging_nan_inf_filter`), so the trained weights themselves are checked."""
    import torch

    bad = [name for name, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p).all()]
    if bad or not math.isfinite(loss):
        what = f"{len(bad)} trained tensors are not finite (first: {bad[0]})" if bad else f"the loss is {loss}"
        raise StageFailed("train", f"training diverged: {what}; lower `train.learning_rate` ({learning_rate}). "
                                   "No adapter was written")


def _load_data(cfg):
    """(SFT rows, their validation rows, preference pairs, their validation pairs) for `train.method`."""
    try:
        train, valid = load_training_data(cfg)
        prefs = load_preferences(cfg)
    except OSError as exc:
        raise StageFailed("train", f"cannot read the training data: {exc}") from None

    problems = train.problems + valid.problems + prefs.problems + \
        label_variants(train.examples + valid.examples, cfg.checks.labels)
    if wrong := method_problems(cfg, train, valid, prefs):  # a config error: the data is for another method
        shown = "".join(f"\n  {p.source.file}:{p.source.line}: {p.message}" for p in wrong[:10])
        more = f"\n  ... and {len(wrong) - 10} more" if len(wrong) > 10 else ""
        raise StageFailed("train", f"{len(wrong)} row(s) do not fit `train.method: {cfg.train.method}`:{shown}{more}",
                          exit_code=2)
    if problems:
        shown = "".join(f"\n  {p.source.file}:{p.source.line}: {p.message}" for p in problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise StageFailed("train", f"the training data has {len(problems)} problem(s) "
                                   f"(run `adapterci check`):{shown}{more}")
    if not train.examples:
        raise StageFailed("train", "no training rows")
    if cfg.train.method in PREFERENCE_METHODS:
        return [], [], train.examples, valid.examples
    if cfg.data.preferences is not None and not prefs.examples:
        raise StageFailed("train", "no preference pairs in `data.preferences`")
    return train.examples, valid.examples, prefs.examples, []


def _check_layers(cfg, spec: ModelSpec) -> None:
    """`train.lora.layers_to_transform` must name layers the base model has (read from its config, cheap)."""
    layers = spec.lora.layers_to_transform
    if not layers:
        return
    from transformers import AutoConfig

    try:
        count = AutoConfig.from_pretrained(spec.ref, revision=spec.revision).num_hidden_layers
    except (OSError, ValueError, AttributeError) as exc:
        raise cfg.error("base_model", f"cannot read the model config of {spec.ref!r}: {exc}") from None
    if layers[-1] >= count:
        raise cfg.error("train.lora.layers_to_transform",
                        f"layer {layers[-1]} does not exist; the base model has {count} layers (0-{count - 1})")


def _resume_point(ckpt: Path, resume: bool, log, main: bool = True) -> str | None:
    """The newest complete checkpoint. An incomplete one (cut short by a full disk or a kill) is skipped with a
    log line saying why and removed (by the main process), so it can neither block this resume nor the next."""
    if not resume:
        return None
    found = _checkpoints(ckpt) if ckpt.is_dir() else []
    complete = None
    for checkpoint in found:
        why = incomplete(checkpoint)
        if why is None:
            complete = checkpoint
            break
        log(f"train: {checkpoint.name} is incomplete ({why}): skipped" + (" and removed" if main else ""))
        if main:
            shutil.rmtree(checkpoint, ignore_errors=True)
    if complete is not None:
        log(f"train: resuming from {complete}")
        return str(complete)
    log(f"train: no complete checkpoint in {ckpt}; starting from scratch")
    return None


def _training_args(cfg, spec: ModelSpec, ckpt: Path, has_valid: bool, stage: str) -> dict[str, Any]:
    """The TrainingArguments every trainer shares (`stage`: `sft`, or a preference method taking the epochs,
    steps and learning rate of `train.preference` where set)."""
    tc, pref = cfg.train, cfg.train.preference
    if stage != "sft":
        epochs, max_steps, lr = pref.epochs or tc.epochs, pref.max_steps or tc.max_steps, \
            pref.learning_rate or tc.learning_rate
    else:
        epochs, max_steps, lr = tc.epochs, tc.max_steps, tc.learning_rate
    eval_strategy = ("steps" if tc.eval_steps else "epoch") if has_valid else "no"
    save_strategy, save_steps = ("steps" if tc.save_steps else "epoch"), tc.save_steps
    if tc.early_stopping and has_valid:  # the best checkpoint must be one that was evaluated
        save_strategy, save_steps = eval_strategy, tc.eval_steps
    cuda = spec.device == "cuda"
    return dict(
        output_dir=str(ckpt), use_cpu=not cuda, bf16=spec.precision == "bf16", fp16=spec.precision == "fp16",
        seed=tc.seed, data_seed=tc.seed,
        per_device_train_batch_size=tc.batch_size, per_device_eval_batch_size=tc.batch_size,
        gradient_accumulation_steps=tc.gradient_accumulation, num_train_epochs=epochs,
        max_steps=max_steps or -1, learning_rate=lr, lr_scheduler_type=tc.lr_scheduler,
        warmup_steps=tc.warmup, weight_decay=tc.weight_decay, logging_steps=tc.logging_steps,
        eval_strategy=eval_strategy, eval_steps=tc.eval_steps, save_strategy=save_strategy, save_steps=save_steps,
        save_total_limit=2, load_best_model_at_end=bool(tc.early_stopping and has_valid),
        metric_for_best_model="eval_loss", greater_is_better=False, max_length=tc.max_length,
        **{_checkpointing_arg(): tc.gradient_checkpointing},
        report_to="none", disable_tqdm=not is_terminal(), dataloader_pin_memory=cuda,
        ddp_find_unused_parameters=False)


def _callbacks(cfg, has_valid: bool, callbacks, log) -> list[Any]:
    from transformers import EarlyStoppingCallback

    tc = cfg.train
    extra = list(callbacks)
    if tc.early_stopping and has_valid:
        extra.append(EarlyStoppingCallback(tc.early_stopping.patience, tc.early_stopping.min_delta))
    elif tc.early_stopping:
        log("train: `train.early_stopping` needs validation data; training without it")
    return extra


def _quiet(trainer, log):
    """Log lines instead of progress bars off a terminal."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    if not is_terminal():
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(log_lines_callback(log))
    return trainer


def _build_trainer(cfg, spec: ModelSpec, backend: str, model, tokenizer, train_rows, valid_rows, ckpt: Path, log,
                   callbacks):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not is_terminal():
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    has_valid = bool(valid_rows)
    args = SFTConfig(**_training_args(cfg, spec, ckpt, has_valid, "sft"), packing=cfg.train.packing)
    # unsloth brings its own fused loss; the portable backend builds logits only where a token is scored
    trainer_type = trainer_class() if backend == "trl" else SFTTrainer
    trainer = trainer_type(model=model, args=args, processing_class=tokenizer,
                           callbacks=_callbacks(cfg, has_valid, callbacks, log),
                           train_dataset=Dataset.from_list(train_rows),
                           eval_dataset=Dataset.from_list(valid_rows) if has_valid else None)
    return _quiet(trainer, log)


def _build_preference_trainer(cfg, spec: ModelSpec, method: str, model, tokenizer, rows, valid_rows, ckpt: Path,
                              log, callbacks, fresh: bool):
    """TRL's DPOTrainer (or ORPOTrainer) on the PEFT `model`. DPO's reference is the adapter `model` starts from:
    for a fresh adapter the base model (the adapter disabled, as TRL does with a `peft_config`), for the second
    stage of `sft+dpo` the SFT adapter, kept as a frozen copy of the adapter (TRL's `ref` adapter, removed after
    training). Never a second copy of the base model."""
    from datasets import Dataset

    if not is_terminal():
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    pref, has_valid = cfg.train.preference, bool(valid_rows)
    common = _training_args(cfg, spec, ckpt, has_valid, method)
    if method == "orpo":
        import warnings

        with warnings.catch_warnings():  # TRL announces that ORPO lives in `experimental`
            warnings.simplefilter("ignore")
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        args, trainer_type = ORPOConfig(**common, beta=pref.beta), ORPOTrainer
    else:
        from trl import DPOConfig, DPOTrainer

        args, trainer_type = DPOConfig(**common, beta=pref.beta, loss_type=[pref.loss_type]), DPOTrainer
    trainer = trainer_type(model=model, args=args, processing_class=tokenizer,
                           callbacks=_callbacks(cfg, has_valid, callbacks, log),
                           train_dataset=Dataset.from_list(rows),
                           eval_dataset=Dataset.from_list(valid_rows) if has_valid else None)
    if fresh and "ref" in getattr(trainer.model, "peft_config", {}):  # an untrained adapter is the base model:
        trainer.model.delete_adapter("ref")  # TRL then scores the reference with the adapter disabled (faster)
    return _quiet(trainer, log)


def _checkpointing_arg() -> str:
    """`activation_checkpointing` in transformers >= 5.2x, `gradient_checkpointing` before (unsloth's cap)."""
    from transformers import TrainingArguments

    fields = TrainingArguments.__dataclass_fields__
    return "activation_checkpointing" if "activation_checkpointing" in fields else "gradient_checkpointing"


def _loss_history(log_history: list[dict]) -> dict[str, list[list[float]]]:
    return {"train": [[e["step"], e["loss"]] for e in log_history if "loss" in e],
            "valid": [[e["step"], e["eval_loss"]] for e in log_history if "eval_loss" in e]}

