"""``train.strategy: fsdp``: FSDP2 (``fully_shard``) through Accelerate, on GPUs and on CPUs over gloo.

Each transformer block (:data:`BLOCKS`) is one FSDP unit: its weights, gradients and AdamW moments live
in ``1/world`` shards and are all-gathered for its forward and backward only; the rest of the model
(tokenizers, fusion tokens, decoder queries, heads) is the root unit, the training objective. With one
process there is nothing to shard and Accelerate runs the plain model, as for ``ddp``.

Checkpoints stay in the single-process format whatever the strategy (so ``evaluate``, ``export``,
``--init`` and ``--resume`` read them as they are, and a run may resume under the other strategy):
the weights and the optimiser state are gathered in full on rank 0 (torch.distributed.checkpoint's
``full_state_dict``), the optimiser state keyed by parameter position like ``optimizer.state_dict()``;
on resume every process reads the full state and keeps its own shard.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor

from ..model.hip import LatentBlock, LatentCrossBlock
from ..model.layers import Block, CrossAttentionBlock

# The FSDP units: every self- or cross-attention block of every backbone and of the output decoder.
BLOCKS: tuple[type[nn.Module], ...] = (Block, LatentBlock, LatentCrossBlock, CrossAttentionBlock)
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)  # gathered on rank 0, in CPU memory


def fsdp_plugin(model: nn.Module) -> FullyShardedDataParallelPlugin:
    """FSDP2 wrapping each of ``model``'s :data:`BLOCKS` (only the classes it has: Accelerate refuses a
    name it cannot find), resharding after forward (ZeRO-3-like). Scalar parameters (the contrastive
    ``log_temperature``) are left out of sharding, which refuses 0-d tensors: a replica on every process,
    their gradients averaged by :func:`average_unsharded_grads`."""
    names = sorted({type(m).__name__ for m in model.modules() if isinstance(m, BLOCKS)})
    scalars = nn.Module()  # Accelerate takes ignored *modules* and uses their parameters
    for i, p in enumerate(p for p in model.parameters() if p.ndim == 0):
        scalars.register_parameter(f"scalar{i}", p)
    return FullyShardedDataParallelPlugin(fsdp_version=2, auto_wrap_policy="transformer_based_wrap",
                                          transformer_cls_names_to_wrap=names, reshard_after_forward=True,
                                          ignored_modules=[scalars] if len(list(scalars.parameters())) else None)


def enable_on_cpu(acc: Accelerator, plugin: FullyShardedDataParallelPlugin) -> None:
    """Make a multi-process CPU run use ``plugin``. Accelerate 1.15 turns its FSDP plugin on only for
    accelerator devices (``MULTI_GPU`` and kin) and silently runs DDP for ``MULTI_CPU``, although FSDP2's
    ``fully_shard`` runs on CPU over gloo; so the distributed type is set to FSDP here, in both shared
    states (a later ``AcceleratorState()`` copies ``PartialState``'s)."""
    if acc.distributed_type != DistributedType.MULTI_CPU:
        return
    PartialState().distributed_type = DistributedType.FSDP
    acc.state.distributed_type = DistributedType.FSDP
    acc.state.fsdp_plugin = plugin
    if acc.mixed_precision != "no":  # what Accelerate does for its own FSDP types
        plugin.set_mixed_precision(acc.mixed_precision)


def _root(module: nn.Module) -> FSDPModule | None:
    """The FSDP2 root of the prepared objective: itself, or (compiled) the module ``torch.compile`` wraps
    or is wrapped by, depending on the order Accelerate applied them in; None when it is not sharded."""
    for m in (module, getattr(module, "_orig_mod", None)):
        if isinstance(m, FSDPModule):
            return m
    return None


def is_sharded(module: nn.Module) -> bool:
    """Whether ``module`` (the prepared objective, compiled or not) is sharded by FSDP2."""
    return _root(module) is not None


def average_unsharded_grads(objective: nn.Module, world: int) -> None:
    """Average over the processes the gradients of the parameters FSDP left whole (see :func:`fsdp_plugin`),
    as FSDP's reduce-scatter does for the sharded ones; call it before clipping and the optimiser step."""
    for p in objective.parameters():
        if p.grad is not None and not isinstance(p, DTensor):
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def full_model_state(objective: nn.Module) -> dict[str, Any]:
    """The objective's full state dict on rank 0 (``{}`` elsewhere); every process must call it."""
    return get_model_state_dict(objective, options=_FULL)


def _param_names(objective: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The optimiser's parameters by position (the order ``optimizer.state_dict()`` numbers them in),
    as fully qualified names in ``objective``."""
    names = {p: n.replace("_orig_mod.", "") for n, p in objective.named_parameters()}  # (compiled)
    return [names[p] for group in optimizer.param_groups for p in group["params"]]


def full_optimizer_state(objective: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser state gathered in full on rank 0 (``{}`` elsewhere), in ``optimizer.state_dict()``'s
    layout (parameters numbered by position); every process must call it."""
    full: dict[str, Any] = dict(get_optimizer_state_dict(objective, optimizer, options=_FULL))
    if not full:
        return {}
    index = {name: i for i, name in enumerate(_param_names(objective, optimizer))}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in full["param_groups"]]
    return {"state": {index[n]: s for n, s in full["state"].items()}, "param_groups": groups}


def load_full_optimizer_state(objective: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Inverse of :func:`full_optimizer_state`: every process passes the full state and keeps its shard.
    ``ValueError`` when the state numbers other parameters than this optimiser has."""
    names = _param_names(objective, optimizer)
    groups = state["param_groups"]
    if [len(g["params"]) for g in groups] != [len(g["params"]) for g in optimizer.param_groups]:
        raise ValueError(f"the optimiser state has {sum(len(g['params']) for g in groups)} parameters in "
                         f"{len(groups)} groups, this model {len(names)} in {len(optimizer.param_groups)}")
    full: dict[str, Any] = {"state": {names[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in groups]}
    set_optimizer_state_dict(objective, optimizer, full, options=StateDictOptions(full_state_dict=True))


def local(named: Iterable[tuple[str, Tensor]]) -> Iterator[tuple[str, Tensor]]:
    """``(name, tensor)`` pairs with each sharded tensor replaced by this process's shard."""
    for name, t in named:
        yield name, t.to_local() if isinstance(t, DTensor) else t


def plain(t: Tensor) -> Tensor:
    """A sharded or replicated ``DTensor`` (a gradient norm under FSDP) as an ordinary tensor."""
    return t.full_tensor() if isinstance(t, DTensor) else t


@contextmanager
def root_unsharded(objective: nn.Module) -> Iterator[None]:
    """Hold the root unit's weights gathered, so the model's own methods (``encode``, ``project``: no
    FSDP hooks of their own) can run outside the objective's forward, as validation does; the blocks
    still gather theirs in their forward."""
    root = _root(objective)
    if root is None:
        yield
        return
    root.unshard()
    try:
        yield
    finally:
        root.reshard()
