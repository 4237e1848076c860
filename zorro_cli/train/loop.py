"""The one training loop, shared by ``zorro pretrain`` (contrastive) and ``zorro finetune`` (supervised).

Accelerate runs it on one CPU, one GPU or many processes, as replicas (``train.strategy: ddp``) or
sharded per transformer block (``fsdp``: FSDP2, on GPUs and on CPUs over gloo; :mod:`.sharding`).
What makes a run reproducible and exactly resumable:
- the batch order is a pure function of (seed, epoch) and independent of the number of processes
  (:mod:`.sampler`); the per-clip augmentation is a pure function of (seed, epoch, clip) (the dataset);
- the learning rate is a pure function of the step (:func:`.optim.lr_at`);
- a checkpoint holds weights, optimiser state, every RNG of every process and the data position,
  and is only ever written at an optimiser-step boundary.
A non-finite loss on any process stops every process before the update, leaving the last good
checkpoint untouched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import (
    DistributedDataParallelKwargs,
    DistributedType,
    ProjectConfiguration,
    gather_object,
    set_seed,
)
from torch import Tensor

from ..data.augment import MIXUP_STREAM, item_generator, mixup_batch
from ..lockfile import hold_lock
from ..model.zorro import Zorro
from ..recipes import TrainSection
from .checkpoint import (
    Position,
    checkpoint_step,
    load_rng,
    nonfinite_tensors,
    resolve_resume,
    restore,
    restore_optimizer,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .objectives import ContrastiveObjective, IntraContrastiveObjective, SupervisedObjective
from .optim import build_optimizer, lr_at, parameter_groups, set_lr
from .reporting import RunLog
from .runfolder import check_reuse, clean_stale
from .sampler import ShardedBatchSampler
from .setup import RunSetup, build_setup
from .sharding import (
    average_unsharded_grads,
    enable_on_cpu,
    fsdp_plugin,
    full_model_state,
    full_optimizer_state,
    is_sharded,
    load_full_optimizer_state,
    local,
    plain,
    root_unsharded,
)
from .task import SetupError, TrainingFailed, TrainTask
from .trackers import available_trackers
from .validate import validation_metrics

__all__ = ["TrainTask", "TrainingFailed", "train"]

# Fewer contrastive negatives than this per clip get a warning at the start of ``zorro pretrain``.
MIN_NEGATIVES = 255


def make_accelerator(task: TrainTask, setup: RunSetup) -> Accelerator:
    """Accelerate state for this run. Without a GPU, ``cpu=True`` is what makes Accelerate join a
    multi-process (torchrun / accelerate launch) group over gloo instead of running each process alone.
    ``train.strategy: fsdp`` passes the FSDP2 plugin (Accelerate ignores it with one process)."""
    t = task.recipe.train
    plugin = fsdp_plugin(setup.model) if t.strategy == "fsdp" else None
    handlers = [DistributedDataParallelKwargs(find_unused_parameters=setup.find_unused)]
    cpu = t.cpu or not torch.cuda.is_available()
    writes = not task.dry_run and task.out_dir is not None
    log_with = available_trackers(task.recipe.log.trackers)[0] if writes else []
    project = ProjectConfiguration(project_dir=str(task.out_dir), logging_dir=str(task.out_dir)) if log_with else None
    acc = Accelerator(cpu=cpu, mixed_precision=t.precision, kwargs_handlers=handlers,
                      dynamo_backend="inductor" if t.compile else "no", log_with=log_with or None,
                      project_config=project, fsdp_plugin=plugin)
    if plugin is not None:
        enable_on_cpu(acc, plugin)
    elif acc.distributed_type == DistributedType.FSDP:  # (checkpoints would save one shard of the optimiser)
        raise SetupError("train.strategy: ddp, but Accelerate's own config asks for FSDP (ACCELERATE_USE_FSDP); "
                         "set train.strategy=fsdp instead, which configures FSDP itself")
    return acc


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if isinstance(v, Tensor) else v) for k, v in batch.items()}


def _micro_batches(setup: RunSetup, acc: Accelerator, pos: Position) -> Batches:
    """(epoch, batch) pairs from ``pos`` on, epoch after epoch, in the deterministic order."""
    t, d = setup.recipe.train, setup.recipe.data
    epoch, start = pos.epoch, pos.batch_in_epoch
    classes = setup.model.config.num_classes  # 0 when pre-training: no labels to mix
    while True:
        sampler = ShardedBatchSampler(len(setup.train_set), t.batch_size, acc.num_processes, acc.process_index,
                                      t.seed, epoch, start)
        usable = (sampler.batches_per_epoch() // t.accumulate) * t.accumulate
        setup.train_set.set_epoch(epoch)
        loader = torch.utils.data.DataLoader(setup.train_set, batch_sampler=sampler, num_workers=d.workers,
                                             collate_fn=setup.collate, pin_memory=acc.device.type == "cuda")
        for j, batch in enumerate(loader, start=start):
            if j >= usable:
                break
            if d.augment.mixup_alpha > 0 and classes:  # a pure function of (seed, epoch, first clip)
                g = item_generator(t.seed, epoch, int(batch["index"][0]), MIXUP_STREAM)
                batch = mixup_batch(batch, d.augment.mixup_alpha, g, classes)
            yield epoch, batch
        epoch, start = epoch + 1, 0


def _forward(objective: torch.nn.Module, batch: dict[str, Any]) -> dict[str, Tensor]:
    views = {k: batch[k] for k in ("audio2", "video2") if k in batch}  # intra-modal pre-training's second views
    return objective(batch.get("audio"), batch.get("video"), batch.get("label"), **views)


def train(task: TrainTask) -> dict[str, Any]:
    """Run (or resume) a training run; returns the summary printed for scripts.

    A run folder is checked before anything is built (fast refusal), then again under its lock, which
    the main process holds for the whole run (a second training there is refused in one line); under
    the lock it removes what a killed run left half-written (:mod:`.runfolder`)."""
    t = task.recipe.train
    writes = task.out_dir is not None and not task.dry_run
    if writes:
        _resume_point(task)
    set_seed(t.seed)  # the same initial weights on every process and in every run
    setup = build_setup(task)
    acc = make_accelerator(task, setup)
    set_seed(t.seed + acc.process_index)  # per-process streams (drop path) from here on
    with ExitStack() as stack:
        if writes and acc.is_main_process:
            assert task.out_dir is not None
            try:
                stack.enter_context(hold_lock(task.out_dir, what="run folder"))
                clean_stale(task.out_dir)
            except OSError as e:  # a read-only or unreachable --out
                raise SetupError(f"--out {task.out_dir}: cannot write there ({e.strerror or e})") from None
        return _train(task, setup, acc, _resume_point(task) if writes else None)


def _resume_point(task: TrainTask) -> Path | None:
    """The checkpoint to resume from (None: start at step 0), refusing to reuse a run folder wrongly."""
    assert task.out_dir is not None
    ckpt = resolve_resume(task.out_dir, task.resume)
    check_reuse(task.out_dir, ckpt, 0 if ckpt is None else checkpoint_step(ckpt))
    return ckpt


def _train(task: TrainTask, setup: RunSetup, acc: Accelerator, ckpt: Path | None) -> dict[str, Any]:
    """The run itself, from ``ckpt`` (or step 0): objective, optimiser, the loop, checkpoints, summary."""
    t = task.recipe.train
    model: Zorro = setup.model
    objective = _objective(task, setup)
    optimizer = build_optimizer(parameter_groups(objective, t.weight_decay), t.lr, t.betas,
                                fused=acc.device.type == "cuda")
    pos, opt_state = Position(), None
    sharded = t.strategy == "fsdp" and acc.num_processes > 1
    if ckpt is not None:  # full weights before sharding; a sharded optimiser's state once it is sharded
        pos, opt_state = restore(ckpt, model, None if sharded else optimizer)
    objective, optimizer = acc.prepare(objective, optimizer)
    if sharded and not is_sharded(objective):
        raise TrainingFailed(f"train.strategy: fsdp on {acc.num_processes} processes, but Accelerate "
                             f"({acc.distributed_type}) did not shard the model; use train.strategy=ddp")
    if ckpt is not None and opt_state is not None:  # (sharded)
        restore_optimizer(ckpt, opt_state, lambda state: load_full_optimizer_state(objective, optimizer, state))
        del opt_state  # (the full state: the optimiser keeps its shard)
    if ckpt is not None and (rng := load_rng(ckpt, acc.process_index)) is not None:
        set_rng_state(rng)
    global_batch = t.batch_size * acc.num_processes
    if global_batch > len(setup.train_set):
        raise SetupError(f"train.batch_size: {t.batch_size} x {acc.num_processes} process(es) is a global batch of "
                         f"{global_batch}, more than the {len(setup.train_set)} training clips in --data "
                         f"{task.data_dir}; lower train.batch_size")
    steps_per_epoch = ShardedBatchSampler(len(setup.train_set), t.batch_size, acc.num_processes, 0, 0)\
        .batches_per_epoch() // t.accumulate
    if steps_per_epoch < 1:
        raise SetupError(f"--data {task.data_dir}: {len(setup.train_set)} training clips give no full step of "
                         f"{t.batch_size} x {t.accumulate} x {acc.num_processes} processes")
    total = t.max_steps or t.epochs * steps_per_epoch
    if task.dry_run:
        return _dry_run(setup, acc, objective)
    log = RunLog(task, setup, acc, total, start_step=pos.step, resumed_from=ckpt)
    negatives = t.batch_size * acc.num_processes - 1  # InfoNCE gathers every process's micro-batch
    if task.mode == "pretrain" and negatives < MIN_NEGATIVES:
        log.info(f"warning: {negatives} contrastive negatives per clip (train.batch_size {t.batch_size} x "
                 f"{acc.num_processes} process(es) - 1); τ = {model.config.temperature:g} was tuned for far larger "
                 f"batches: raise train.batch_size or run on more processes (accumulation adds no negatives)")
    if ckpt is not None:
        log.info(f"resumed from {ckpt} at step {pos.step} (epoch {pos.epoch}, batch {pos.batch_in_epoch})")
    objective.train()
    batches = _micro_batches(setup, acc, pos)
    try:
        while pos.step < total:
            stats = _one_update(objective, optimizer, acc, batches, pos, t, total, log)
            pos.step += 1
            log.step(pos.step, stats)
            last = pos.step == total
            if (t.eval_every and pos.step % t.eval_every == 0) or (last and setup.val_set is not None):
                with root_unsharded(objective):
                    _validate(setup, acc, pos, log)
            if pos.step % t.checkpoint_every == 0 or last:
                _checkpoint(setup, acc, objective, optimizer, pos, log)
    except OSError as e:  # disk full writing the records, a cache file gone unreadable, ...
        where = f"{e.filename}: " if e.filename else ""
        raise TrainingFailed(f"step {pos.step}: {where}{' '.join(str(e.strerror or e).split())}; stopped. "
                             f"Last good checkpoint: {log.last_checkpoint or 'none'}") from None
    finally:
        log.close()
    return log.summary(pos)


def _objective(task: TrainTask, setup: RunSetup) -> torch.nn.Module:
    """The module whose ``forward`` maps a batch to the loss: supervised, audio-visual or intra-modal contrastive."""
    t = task.recipe.train
    if task.mode == "finetune":
        return SupervisedObjective(setup.model, setup.multilabel, t.head_weights)
    if t.contrastive == "intra":
        return IntraContrastiveObjective(setup.model)
    return ContrastiveObjective(setup.model, t.contrastive)


Batches = Iterator[tuple[int, dict[str, Any]]]


def _one_update(objective: torch.nn.Module, optimizer: torch.optim.Optimizer, acc: Accelerator, batches: Batches,
                pos: Position, t: TrainSection, total: int, log: RunLog) -> dict[str, float]:
    """``t.accumulate`` micro-batches, one optimiser step; raises on a non-finite loss anywhere.

    The host waits for the device once per update, not per micro-batch and metric: the losses and the
    non-finite count stay on the device until one all-reduce, read before ``optimizer.step()``, so a
    non-finite loss still stops the run before its update.
    """
    sums: dict[str, Tensor] = {}
    nonfinite = torch.zeros(1, device=acc.device)
    clips, data_time, t0 = 0, 0.0, time.perf_counter()
    for i in range(t.accumulate):
        td = time.perf_counter()
        epoch, batch = next(batches)
        batch = _to(batch, acc.device)
        data_time += time.perf_counter() - td
        sync = i == t.accumulate - 1
        with nullcontext() if sync else acc.no_sync(objective):
            out = _forward(objective, batch)
            nonfinite += (~torch.isfinite(out["loss"].detach())).float()
            acc.backward(out["loss"] / t.accumulate)
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + v.detach().float() / t.accumulate
        clips += len(batch["index"])
        pos.batch_in_epoch = pos.batch_in_epoch + 1 if epoch == pos.epoch else 1
        pos.epoch = epoch
    if is_sharded(objective):
        average_unsharded_grads(objective, acc.num_processes)
    if t.grad_clip > 0:
        sums["grad_norm"] = plain(acc.clip_grad_norm_(objective.parameters(), t.grad_clip))
    reduced = acc.reduce(torch.cat([nonfinite, torch.stack([v.reshape(()).to(acc.device) for v in sums.values()])]),
                         "sum").tolist()  # the one host synchronisation of the update
    means = {k: v / acc.num_processes for k, v in zip(sums, reduced[1:], strict=True)}
    if reduced[0] > 0:
        raise TrainingFailed(
            f"step {pos.step + 1}: non-finite loss ({means['loss']}) in {int(reduced[0])} micro-batch(es); "
            f"stopped before the update. Last good checkpoint: {log.last_checkpoint or 'none'}")
    lr = lr_at(pos.step, t.lr, t.warmup_steps, total, t.min_lr)
    set_lr(optimizer, lr)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    elapsed = time.perf_counter() - t0
    return {**means, "lr": lr, "clips_per_s": clips * acc.num_processes / elapsed, "data_time_s": data_time,
            "step_time_s": elapsed}


def _checkpoint(setup: RunSetup, acc: Accelerator, objective: torch.nn.Module, optimizer: torch.optim.Optimizer,
                pos: Position, log: RunLog) -> None:
    bad = nonfinite_tensors(local(acc.unwrap_model(objective).named_parameters()))  # (this process's shards)
    if acc.reduce(torch.tensor([float(len(bad))], device=acc.device), "sum").item() > 0:
        raise TrainingFailed(
            f"step {pos.step}: non-finite weights after the update ({', '.join(bad[:3]) or 'on another process'}"
            f"{', ...' if len(bad) > 3 else ''}); not saved. Last good checkpoint: {log.last_checkpoint or 'none'}")
    sharded = is_sharded(objective)  # gathered in full on rank 0 (every process takes part)
    state = full_model_state(objective) if sharded else acc.get_state_dict(objective)
    state = {k.removeprefix("_orig_mod.").removeprefix("model."): v for k, v in state.items()}  # (compiled)
    opt_state = full_optimizer_state(objective, optimizer) if sharded else optimizer.state_dict()
    rngs = gather_object([rng_state()]) if acc.num_processes > 1 else [rng_state()]
    if acc.is_main_process:
        assert setup.ckpt_root is not None
        path = save_checkpoint(setup.ckpt_root, setup.model, state, opt_state, pos, setup.export_extra, rngs,
                               setup.recipe.train.keep_last, is_best=log.is_best(pos))
        log.checkpoint_written(path, pos)
    acc.wait_for_everyone()


def _validate(setup: RunSetup, acc: Accelerator, pos: Position, log: RunLog) -> None:
    metrics = validation_metrics(setup, acc)
    if metrics:
        log.validation(pos, metrics)
    setup.model.train()


def _dry_run(setup: RunSetup, acc: Accelerator, objective: torch.nn.Module) -> dict[str, Any]:
    """Build everything and push one batch forward and backward; write nothing."""
    sampler = ShardedBatchSampler(len(setup.train_set), setup.recipe.train.batch_size, acc.num_processes,
                                  acc.process_index, setup.recipe.train.seed)
    setup.train_set.set_epoch(0)
    batch = setup.collate([setup.train_set[i] for i in next(iter(sampler))])
    out = _forward(objective, _to(batch, acc.device))
    acc.backward(out["loss"])
    shapes = {k: list(v.shape) for k, v in batch.items() if isinstance(v, Tensor)}
    result = {"dry_run": True, "loss": float(out["loss"].detach()), "batch": shapes,
              "params": sum(p.numel() for p in setup.model.parameters()),
              "train_clips": len(setup.train_set), "excluded": setup.excluded}
    return result  # printed once, by the caller (zorro_cli.output.emit_result)
