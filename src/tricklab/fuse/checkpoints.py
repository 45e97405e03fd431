"""A pack's checkpoint cut into its members' checkpoints, and members' checkpoints stacked back into a pack's.

A member's checkpoint is the one its job would write alone (Lightning's format): ``state_dict`` keyed
``model.<name>`` with the member's own (unstacked) tensors, the optimizer's state and the weight average (EMA,
SWA) sliced to the member, the pack's loop and schedule state (the same for every member: they step together),
and the callback states of an unfused run (``RunCheckpoints``: the member's best; ``DivergenceGuard``: its first
loss). So it can be read with ``torch.load(...)["state_dict"]``, and resumed alone or in a pack.
"""

from __future__ import annotations

from typing import Any

import torch

from tricklab.callbacks.averaging import AVERAGED_STATE
from tricklab.fuse.stack import Pack, slot_name

# Where an unfused run's callbacks keep their state in a checkpoint (Lightning's default state_key: the class name).
BEST_STATE, GUARD_STATE = "RunCheckpoints", "DivergenceGuard"
PACK_MEMBER = "PackMember"  # whether (and why, after how many steps) the member had stopped in its pack
# The datamodules' state (their batch orders' random streams) in a checkpoint: Lightning keys it by class name.
ALONE_DATA, PACK_DATA = "TensorDataModule", "PackDataModule"
STACKED = ("state_dict", "optimizer_states", "callbacks", AVERAGED_STATE, PACK_DATA)  # what is cut per member


def _names(pack: Pack) -> list[str]:
    return [*pack.param_names, *pack.buffer_names]


def _member_value(value: Any, k: int, members: int) -> Any:
    """Member k's part of a stacked tensor; a value the members share (Adam's step count) as it is."""
    if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == members:
        return value[k].detach().clone()
    return value


def _stacked_value(values: list[Any], shared_from: int) -> Any:
    """The members' values of one entry as the pack holds it: stacked, or the value of member ``shared_from`` for
    one the members share (Adam's step count: a member that stopped early saved a smaller one)."""
    if isinstance(values[0], torch.Tensor) and values[0].ndim > 0:
        return torch.stack(values)
    return values[shared_from]


def member_checkpoint(pack_checkpoint: dict[str, Any], pack: Pack, k: int,
                      callback_states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Member k's checkpoint from the pack's ``checkpoint_contents`` (left unchanged)."""
    members = pack.members
    checkpoint = {key: value for key, value in pack_checkpoint.items() if key not in STACKED}
    checkpoint["state_dict"] = {f"model.{name}": pack_checkpoint["state_dict"][f"model.{slot_name(name)}"][k]
                                for name in _names(pack)}
    checkpoint["optimizer_states"] = [
        {**state, "state": {index: {key: _member_value(v, k, members) for key, v in entry.items()}
                            for index, entry in state["state"].items()}}
        for state in pack_checkpoint["optimizer_states"]
    ]
    if AVERAGED_STATE in pack_checkpoint:
        average = pack_checkpoint[AVERAGED_STATE]
        checkpoint[AVERAGED_STATE] = {"n_averaged": average["n_averaged"],
                                      **{f"module.{name}": average[f"module.{slot_name(name)}"][k]
                                         for name in _names(pack)}}
    if PACK_DATA in pack_checkpoint:
        checkpoint[ALONE_DATA] = {"batch_order": [pack_checkpoint[PACK_DATA]["batch_order"][k]]}
    checkpoint["callbacks"] = callback_states
    return checkpoint


def pack_checkpoint(members: list[dict[str, Any]], names: list[str], loops_from: int = 0) -> dict[str, Any]:
    """The pack's checkpoint from its members', to resume the pack from: the loop, schedule and random state of
    member ``loops_from`` (the members still training were all saved at its step); ``names``: the member model's
    state names (``Pack.param_names`` + ``buffer_names``)."""
    first = members[loops_from]
    checkpoint = {key: value for key, value in first.items() if key not in (*STACKED, ALONE_DATA)}
    checkpoint["state_dict"] = {f"model.{slot_name(name)}": torch.stack([m["state_dict"][f"model.{name}"]
                                                                         for m in members]) for name in names}
    checkpoint["optimizer_states"] = [
        {**state, "state": {index: {key: _stacked_value([m["optimizer_states"][i]["state"][index][key]
                                                         for m in members], loops_from)
                                    for key in entry}
                            for index, entry in state["state"].items()}}
        for i, state in enumerate(first["optimizer_states"])
    ]
    if AVERAGED_STATE in first:
        checkpoint[AVERAGED_STATE] = {
            "n_averaged": first[AVERAGED_STATE]["n_averaged"],
            **{f"module.{slot_name(name)}": torch.stack([m[AVERAGED_STATE][f"module.{name}"] for m in members])
               for name in names}}
    if ALONE_DATA in first:
        checkpoint[PACK_DATA] = {"batch_order": [m[ALONE_DATA]["batch_order"][0] for m in members]}
    checkpoint["callbacks"] = {}
    return checkpoint
