"""The worker half of the probes of Module: parameters(), train()/eval() and state_dict().

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.structure`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from ..tensors import Arrays, Outputs, Params, seed, to_array

PARAMETERS, MODES, STATE = 0, 1, 2  # the variants


def _build_net(tg: ModuleType) -> tuple[Any, list[Any], list[Any]]:
    """The probe model, its parameters in registration order and its modules (NET_*)."""
    nn = tg.nn

    class Block(nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, n: int) -> None:
            super().__init__()
            self.lin = nn.Linear(n, n)
            self.gain = nn.Parameter(np.ones(n, dtype=np.float32))

        def forward(self, x: Any) -> Any:
            return tg.relu(self.lin(x)) * self.gain

    class Net(nn.Module):  # type: ignore[name-defined,misc]
        def __init__(self, first: Any, blocks: list[Any], act: Any, bn: Any, head: Any) -> None:
            super().__init__()
            self.first, self.blocks, self.act, self.bn, self.head = first, blocks, act, bn, head
            self.tied = blocks[0].lin.weight  # the same parameter again: listed once

        def forward(self, x: Any) -> Any:
            h = self.act(self.first(x))
            for block in self.blocks:
                h = block(h)
            return self.head(self.bn(h))

    first, blocks, act, bn = nn.Linear(5, 4), [Block(4), Block(4)], nn.ReLU(), nn.BatchNorm1d(4)
    h0, h1, h2 = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)
    head = nn.Sequential(h0, h1, h2)
    net = Net(first, blocks, act, bn, head)
    params = [first.weight, first.bias]
    for block in blocks:
        params += [block.lin.weight, block.lin.bias, block.gain]
    params += [bn.weight, bn.bias, h0.weight, h0.bias, h2.weight, h2.bias]
    modules = [
        net,
        first,
        blocks[0],
        blocks[0].lin,
        blocks[1],
        blocks[1].lin,
        act,
        bn,
        head,
        h0,
        h1,
        h2,
    ]
    return net, params, modules


def _state_array(tg: ModuleType, value: Any, what: str) -> np.ndarray:
    array = to_array(tg, value, what) if isinstance(value, tg.Tensor) else np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{what} is {type(value).__name__}, expected an array or a Tensor")
    return array.astype(np.float64).ravel()


def run_module(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    seed(tg, p["seed"])
    net, params, modules = _build_net(tg)
    if p["variant"] == PARAMETERS:
        for k, q in enumerate(params):
            q.data = np.full(q.shape, k + 1.0, dtype=np.float32)  # a marker per parameter
        found = [to_array(tg, q, "an item of parameters()") for q in net.parameters()]
        return [np.array([float(a.reshape(-1)[0]) if a.size else 0.0 for a in found])]
    if p["variant"] == MODES:
        net.eval()
        after_eval = np.array([bool(m.training) for m in modules], dtype=np.int8)
        net.train()
        return [after_eval, np.array([bool(m.training) for m in modules], dtype=np.int8)]
    net.train()
    for xb in arrays[:2]:  # moves the BatchNorm running statistics away from their defaults
        net(tg.Tensor(xb))
    state = net.state_dict()
    keys = [str(k) for k in state.keys()]
    copy, _, _ = _build_net(tg)
    copy.load_state_dict(state)
    loaded = copy.state_dict()
    common = [k for k in keys if k in loaded]
    flat = [
        np.concatenate(
            [np.zeros(0)] + [_state_array(tg, s[k], f"state_dict()[{k!r}]") for k in common]
        )
        for s in (state, loaded)
    ]
    net.eval()
    copy.eval()
    outs = [to_array(tg, m(tg.Tensor(arrays[2])), "the model") for m in (net, copy)]
    names = np.frombuffer("\n".join(keys).encode("utf-8", "replace"), dtype=np.uint8).copy()
    return [names, *outs, *flat]
