"""Tracing: one run of a function recorded as its graph, the Wengert list of the lectures.

    graph = tg.trace(lambda x1, x2: tg.log(x1) + x1 * x2 - tg.sin(x2), 2.0, 5.0)
    print(graph)            # v-1 = x1, v0 = x2, v1 = log(v-1), v2 = mul(v-1, v0), ...
    graph.to_dot()          # Graphviz source of the same graph

The trace is what the tape recorded: each op's :class:`~tapegrad.tensor.Function` with its
inputs, in an order where every value comes after the values it was computed from. Inputs are
numbered as in the lectures (``v-1``, ``v0`` for two inputs), intermediate values ``v1``,
``v2``, ..., constants (a Python number in ``x * 2.0``, a tensor that does not require grad)
``c0``, ``c1``, ... A trace records one run: Python control flow that depends on the values
(``if x.item() > 0``) is frozen at the branch this run took.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tensor import Tensor, enable_grad

__all__ = ["Graph", "Node", "trace"]


@dataclass(eq=False)
class Node:
    """One value of the trace: an input, a constant or the result of an op."""

    name: str
    kind: str  # "input", "constant" or "op"
    op: str = ""  # the op's name ("mul"), for kind "op"
    inputs: list[Node] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)  # the op's settings (axis=1, ...)
    label: str = ""  # an input's parameter name, a constant's value
    value: Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape if self.value is not None else ()

    @property
    def dtype(self) -> str:
        return str(self.value.dtype) if self.value is not None else ""

    def expression(self) -> str:
        """The right-hand side of this node's line: ``x1``, ``2.0``, ``mul(v-1, v0)``."""
        if self.kind != "op":
            return self.label
        args = [n.name for n in self.inputs]
        args += [f"{k}={_show(v)}" for k, v in self.attrs.items()]
        return f"{self.op}({', '.join(args)})"


@dataclass
class Graph:
    """A traced run: the nodes in topological order, its inputs and its output."""

    nodes: list[Node]
    inputs: list[Node]
    output: Node

    def table(self) -> str:
        """The Wengert list as a table: one line per value, with its shape and dtype."""
        lines = [(f"{n.name} = {n.expression()}", str(n.shape), n.dtype) for n in self.nodes]
        width = max(len(line) for line, _, _ in lines)
        shape_width = max(len(shape) for _, shape, _ in lines)
        rows = [
            f"{line:<{width}}   {shape:<{shape_width}}   {dtype}" for line, shape, dtype in lines
        ]
        return "\n".join(rows + [f"output: {self.output.name}"])

    __str__ = table

    def ops(self) -> list[Node]:
        """The nodes computed by ops (not inputs, not constants)."""
        return [n for n in self.nodes if n.kind == "op"]

    def to_dot(self) -> str:
        """Graphviz source: a box per value (its line, shape and dtype), an arrow per use."""
        lines = ["digraph trace {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
        for n in self.nodes:
            style = {"input": ", style=bold", "constant": ", style=dashed"}.get(n.kind, "")
            text = f"{n.name} = {n.expression()}\\n{n.shape} {n.dtype}".replace('"', '\\"')
            lines.append(f'  "{n.name}" [label="{text}"{style}];')
        for n in self.nodes:
            for i in n.inputs:
                lines.append(f'  "{i.name}" -> "{n.name}";')
        lines.append("}")
        return "\n".join(lines)


def trace(f: Callable[..., Tensor], *example_args: Any) -> Graph:
    """Run ``f`` once on ``example_args`` (arrays, numbers or Tensors) and return its graph.

    Every argument becomes an input node; ``f`` must return one Tensor computed from them.
    """
    names = _parameter_names(f, len(example_args))
    leaves = []
    for a in example_args:
        x = a.detach() if isinstance(a, Tensor) else Tensor(a)
        if x.dtype.kind != "f":
            raise TypeError(f"trace: inputs must be floating point, got {x.dtype}")
        x.requires_grad = True
        leaves.append(x)
    with enable_grad():
        out = f(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"trace: f must return a Tensor, got {type(out).__name__}")
    n = len(leaves)
    nodes: dict[int, Node] = {}
    for k, (x, name) in enumerate(zip(leaves, names)):
        nodes[id(x)] = Node(f"v{k - n + 1}", "input", label=name, value=x)
    order = _all_values(out)
    counters = {"op": 0, "constant": 0}
    for t in order:
        if id(t) in nodes:
            continue
        if t._ctx is None:
            label = _show(t.item()) if t.size == 1 else f"constant{t.shape}"
            nodes[id(t)] = Node(f"c{counters['constant']}", "constant", label=label, value=t)
            counters["constant"] += 1
            continue
        counters["op"] += 1
        ctx = t._ctx
        nodes[id(t)] = Node(
            f"v{counters['op']}",
            "op",
            op=type(ctx).__name__.lower(),
            inputs=[nodes[id(x)] for x in ctx.inputs],
            attrs=_attrs(ctx),
            value=t,
        )
    inputs = [nodes[id(x)] for x in leaves]
    ordered = inputs + [nodes[id(t)] for t in order if nodes[id(t)].kind != "input"]
    return Graph(ordered, inputs, nodes[id(out)])


def _all_values(root: Tensor) -> list[Tensor]:
    """Every tensor ``root`` was computed from, constants included, each after its inputs."""
    order: list[Tensor] = []
    seen: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._ctx is not None:
            for x in reversed(t._ctx.inputs):
                if id(x) not in seen:
                    stack.append((x, False))
    return order


def _attrs(ctx: Any) -> dict[str, Any]:
    """An op's settings (axis, keepdims, shape...): its attributes that are plain values."""
    out = {}
    for key, value in vars(ctx).items():
        if key.startswith("_") or key in ("inputs", "xp"):
            continue
        if isinstance(value, (bool, int, float, str, tuple, type(None))):
            out[key] = value
    return out


def _parameter_names(f: Callable[..., Any], count: int) -> list[str]:
    try:
        params = [
            p.name
            for p in inspect.signature(f).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return [params[i] if i < len(params) else f"x{i + 1}" for i in range(count)]


def _show(value: Any) -> str:
    if isinstance(value, float) or isinstance(value, np.floating):
        return f"{float(value):.6g}"
    return repr(value)
