"""Tracing: one run of a function recorded as its graph, the Wengert list of the lectures.

    graph = tg.trace(lambda x1, x2: tg.log(x1) + x1 * x2 - tg.sin(x2), 2.0, 5.0)
    print(graph)            # v-1 = x1, v0 = x2, v1 = log(v-1), v2 = mul(v-1, v0), ...
    graph.to_dot()          # Graphviz source of the same graph
    print(graph.derivative_source())   # def f_and_grad(x1, x2): ... dx2 += dv2 * x1 ...
    value, grads = graph.derivative_function()(2.0, 5.0)

The trace is what the tape recorded: each op's :class:`~tapegrad.tensor.Function` with its
inputs, in an order where every value comes after the values it was computed from. Inputs are
numbered as in the lectures (``v-1``, ``v0`` for two inputs), intermediate values ``v1``,
``v2``, ..., constants (a Python number in ``x * 2.0``, a tensor that does not require grad)
``c0``, ``c1``, ... A trace records one run: Python control flow that depends on the values
(``if x.item() > 0``) is frozen at the branch this run took.

The derivative code is generated ahead of time, by running each op's backward rule once on
the traced values and recording the ops it performs (the rules are written with tapegrad's
own ops, so the record is code): one line per contribution to an adjoint, ``dx2 = dv4 *
cos(x2)`` then ``dx2 += dv2 * x1``: the first one ``=``, the next ones ``+=`` (a reused value
accumulates). Arrays a
rule takes from the values (relu's mask, max's arg-max) are constants of this trace. An op
without a backward rule is an error that names it, before any code runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tensor import Function, Tensor, enable_grad

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

    def derivative_source(self, name: str = "f_and_grad") -> str:
        """Python source of a function that recomputes the traced values and their
        gradients: ``def f_and_grad(x1, x2): ... return v5, (dx1, dx2)``."""
        return _DerivativeWriter(self).source(name)

    def derivative_function(self, name: str = "f_and_grad") -> Callable[..., Any]:
        """The generated source, compiled: called with arrays, numbers or Tensors shaped
        like the example's, it returns ``(output, (gradient of each input, ...))``."""
        writer = _DerivativeWriter(self)
        source = writer.source(name)
        namespace = writer.namespace()  # after source(): it names the constants
        exec(compile(source, f"<derivative of {name}>", "exec"), namespace)  # noqa: S102
        generated = namespace[name]

        def run(*args: Any) -> Any:
            return generated(*[a if isinstance(a, Tensor) else Tensor(a) for a in args])

        run.__name__ = name
        return run


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
    return _graph(leaves, names, out)


def _graph(leaves: list[Tensor], names: list[str], out: Tensor) -> Graph:
    """The Wengert list of ``out``, computed from the input tensors ``leaves``.

    Name the ``n`` inputs as the lectures do, ``v{k - n + 1}`` for the k-th, k = 0, 1, ...
    (``v-1``, ``v0`` for two), each labelled with its parameter name. Then visit
    :func:`_all_values` in order (each tensor after those it was computed from) and make a
    :class:`Node` for each tensor not named yet: a tensor with no recorded op
    (``t._ctx is None``) is a constant, ``c0``, ``c1``, ..., labelled ``_show(t.item())``
    (``2.0``) when it has one element, else ``f"constant{t.shape}"`` (``constant(2, 3)``); any
    other is an op, ``v1``, ``v2``, ..., with ``op`` the lowercase name of its Function's
    class, its ``inputs`` the nodes of ``ctx.inputs`` and its ``attrs`` from :func:`_attrs`.
    Return ``Graph(nodes, inputs, output)``: the input nodes first, then the other nodes in that
    order; ``output`` is the node of ``out`` (an input node when ``f`` returns an input).
    """
    ### BEGIN SOLUTION hw4
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
    ### END SOLUTION


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
    """A number as Python source that reads back exactly (2.0, 0.1, -1e-05)."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return repr(value)


# ------------------------------------------------------------------------ derivative code

_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "**"}


def _function_classes() -> Iterator[type[Function]]:
    stack = list(Function.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        yield cls


def _constructor_params(cls: type) -> list[str]:
    params = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
    return [p.name for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


class _DerivativeWriter:
    """Turns a :class:`Graph` into source: the forward lines, then the adjoint lines recorded
    from the backward rules, in reverse topological order."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.names: dict[int, str] = {}  # id(tensor) -> its name in the source
        self.constants: dict[str, Any] = {}  # names of arrays the code reads, and their values
        for n in graph.nodes:
            assert n.value is not None
            self.names[id(n.value)] = n.label if n.kind == "input" else n.name
        self.lines: list[str] = []
        self.alive: list[Tensor] = []  # names are keyed by id(): keep every named tensor alive

    # -- naming and rendering

    def _name_constant(self, t: Tensor) -> str:
        if t.size == 1 and t.ndim == 0:
            return _show(t.item())
        name = f"k{len(self.constants)}"
        self.constants[name] = t.data
        self.names[id(t)] = name
        self.alive.append(t)
        return name

    def _call(self, ctx: Function, args: list[str]) -> str:
        op = type(ctx).__name__.lower()
        if op in _INFIX and len(args) == 2:
            return f"{self._wrap(args[0])} {_INFIX[op]} {self._wrap(args[1])}"
        if op == "neg":
            return f"-{self._wrap(args[0])}"
        settings = []
        for key in _constructor_params(type(ctx)):
            value = getattr(ctx, key)
            if isinstance(value, np.ndarray) or (
                isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value)
            ):
                name = f"k{len(self.constants)}"
                self.constants[name] = value
                value_text = name
            else:
                value_text = repr(value)
            settings.append(f"{key}={value_text}")
        return f"{op}({', '.join(args + settings)})"

    @staticmethod
    def _wrap(text: str) -> str:
        """``text`` as an operand: names, numbers and single calls as they are."""
        if " " not in text:
            return text
        head = text.split("(", 1)[0]
        if head.isidentifier() and text.endswith(")"):
            depth = 0
            for i, ch in enumerate(text):
                depth += (ch == "(") - (ch == ")")
                if depth == 0 and i > len(head):
                    return text if i == len(text) - 1 else f"({text})"
        return f"({text})"

    def _expression(self, t: Tensor, uses: dict[int, int], temps: list[str]) -> str:
        """Source for ``t``, a tensor a backward rule produced: known tensors by name, new
        ones as an expression, a value used twice as a temporary."""
        if id(t) in self.names:
            return self.names[id(t)]
        if t._ctx is None:
            return self._name_constant(t)
        args = [self._expression(x, uses, temps) for x in t._ctx.inputs]
        text = self._call(t._ctx, args)
        self.alive.append(t)
        if uses.get(id(t), 0) > 1:
            name = f"t{len(temps)}"
            temps.append(name)
            self.lines.append(f"    {name} = {text}")
            self.names[id(t)] = name
            return name
        return text

    def _count_uses(self, root: Tensor) -> dict[int, int]:
        """How often each new tensor under ``root`` is used (named tensors end the walk)."""
        uses: dict[int, int] = {}
        stack = [root]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if id(t) in self.names or id(t) in seen or t._ctx is None:
                continue
            seen.add(id(t))
            for x in t._ctx.inputs:
                uses[id(x)] = uses.get(id(x), 0) + 1
                stack.append(x)
        return uses

    # -- the function

    def source(self, name: str) -> str:
        graph = self.graph
        params = [n.label for n in graph.inputs]
        self.lines = [f"def {name}({', '.join(params)}):"]
        for n in graph.nodes:
            if n.kind == "constant":
                assert n.value is not None
                self.lines.append(f"    {n.name} = {self._name_constant_value(n)}")
            elif n.kind == "op":
                assert n.value is not None and n.value._ctx is not None
                args = [self.names[id(x)] for x in n.value._ctx.inputs]
                self.lines.append(f"    {n.name} = {self._call(n.value._ctx, args)}")
        adjoint = self._adjoints(graph)
        grads = []
        for i in graph.inputs:
            assert i.value is not None
            grads.append(adjoint.get(id(i.value), f"zeros_like({i.label})"))
        result = self.names[id(graph.output.value)]
        self.lines.append(
            f"    return {result}, ({', '.join(grads)}{',' if len(grads) == 1 else ''})"
        )
        return "\n".join(self.lines) + "\n"

    def _adjoints(self, graph: Graph) -> dict[int, str]:
        """Append the adjoint lines, starting with the output's: returns ``{id(tensor): its
        adjoint's name}`` for every value a gradient reached.

        The adjoint of a value is named ``"d" + self.names[id(tensor)]``: ``dx2`` for the input
        ``x2``, ``dv4`` for ``v4``. Start with ``d<out> = ones_like(<out>)``. Visit the op
        nodes from last to first, skipping those no gradient reached. For each, stand a fresh
        Tensor (``seed``, made with ``Tensor._make`` from the node's data) for the node's
        adjoint. It must require grad, or the rule's ops on it would not be recorded and it
        would be written as a constant. Name it (``self.names[id(seed)] = adjoint name``) and
        keep it in ``self.alive``. Run the op's rule, ``ctx.backward(seed)``, with the tape on
        (``enable_grad()``), so the rule's tapegrad ops are recorded; a rule that raises
        NotImplementedError is a TypeError that names the node and the op. Then append the
        comment line ``f"    # {name} = {self._call(ctx, args)}"`` (``args``: the names of
        ``ctx.inputs``), and per input that requires grad and has a name (constants that are
        not inputs get none: nobody asks their gradient), one line
        ``f"    d<input> = <expression>"`` the first time and ``+=`` after, the expression from
        :meth:`_expression` (with :meth:`_count_uses`; ``temps`` shared: it may append lines
        for temporaries before yours).
        """
        ### BEGIN SOLUTION hw4
        out = graph.output
        assert out.value is not None
        adjoint = {id(out.value): f"d{self.names[id(out.value)]}"}
        self.lines.append(f"    {adjoint[id(out.value)]} = ones_like({self.names[id(out.value)]})")
        assigned = {id(out.value)}
        temps: list[str] = []
        input_ids = {id(i.value) for i in graph.inputs}
        for n in reversed(graph.ops()):
            assert n.value is not None and n.value._ctx is not None
            if id(n.value) not in adjoint:
                continue  # no gradient reaches this value
            ctx = n.value._ctx
            seed = Tensor._make(n.value.data, n.value.device)  # stands for the adjoint
            seed.requires_grad = True
            self.names[id(seed)] = adjoint[id(n.value)]
            self.alive.append(seed)
            try:
                with enable_grad():
                    contributions = ctx.backward(seed)
            except NotImplementedError as exc:
                raise TypeError(
                    f"derivative_source: {n.name} = {n.expression()}: the op "
                    f"{type(ctx).__name__} has no derivative rule ({exc})"
                ) from None
            args = [self.names[id(x)] for x in ctx.inputs]
            self.lines.append(f"    # {self.names[id(n.value)]} = {self._call(ctx, args)}")
            for x, g in zip(ctx.inputs, contributions):
                if g is None or not x.requires_grad or id(x) not in self.names:
                    continue
                self.alive.append(g)
                if x._ctx is None and id(x) not in input_ids:
                    continue  # a constant (a captured parameter): nobody asks its gradient
                text = self._expression(g, self._count_uses(g), temps)
                target = f"d{self.names[id(x)]}"
                adjoint[id(x)] = target
                operator = "+=" if id(x) in assigned else "="
                assigned.add(id(x))
                self.lines.append(f"    {target} {operator} {text}")
        return adjoint
        ### END SOLUTION

    def _name_constant_value(self, n: Node) -> str:
        assert n.value is not None
        if n.value.size == 1 and n.value.ndim == 0:
            return _show(n.value.item())
        self.constants[f"{n.name}_value"] = n.value.data
        return f"constant({n.name}_value)"

    def namespace(self) -> dict[str, Any]:
        """What the generated source calls: every op by its lowercase name (keyword
        arguments are the op's settings), the constants, ones_like and zeros_like."""
        space: dict[str, Any] = {}
        for cls in _function_classes():
            space.setdefault(cls.__name__.lower(), _op_caller(cls))
        space.update(self.constants)
        space["constant"] = lambda array: Tensor._make(array, "cpu")
        space["ones_like"] = lambda t: Tensor._make(np.ones_like(t.data), t.device)
        space["zeros_like"] = lambda t: Tensor._make(np.zeros_like(t.data), t.device)
        return space


def _op_caller(cls: type[Function]) -> Callable[..., Tensor]:
    params = set(_constructor_params(cls))

    def call(*inputs: Any, **settings: Any) -> Tensor:
        ctor = {k: v for k, v in settings.items() if k in params}
        tensors = [
            x if isinstance(x, Tensor) else Tensor._make(np.asarray(x), "cpu") for x in inputs
        ]
        return cls(**ctor)(*tensors)

    return call
