"""``tg.compile(f)``: run a function as generated straight-line array code instead of op by op.

    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    loss_fn = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    loss = loss_fn(x, y)       # first call: eager, then traced; next calls: compiled
    loss.backward()            # the generated backward, one step for the whole graph
    print(loss_fn.source())    # the forward and backward code it runs

How it works:

1. **Trace.** The function runs once on :class:`~tapegrad.program.Tracer` arrays: every array
   operation of every op's ``forward`` and, when gradients are needed, of every ``backward``
   rule is recorded, giving a :class:`~tapegrad.program.Program` per direction. Parameters
   and buffers of the modules it calls (and tensors that require grad found on the first
   call's tape) become inputs, read afresh at every call.
2. **Optimise.** The passes of :mod:`tapegrad.passes` fold constants, drop dead values, fuse
   elementwise chains and reuse buffers.
3. **Generate.** Each program becomes a Python function over ``xp`` (NumPy, or CuPy on
   ``"cuda"``); the whole graph becomes one node of the tape, whose backward is the generated
   backward.

A compiled version is kept per *signature*: the arguments' shapes, dtypes, devices and
``requires_grad``, numbers by value, whether gradients are recorded; parameters' shapes and
each called module's settings and parts are checked too (the guards). What cannot be traced
(reading a value as a number, a boolean mask, random numbers not from ``tapegrad.random``)
runs eagerly instead, with a message saying why, once. A Python ``if`` on a tensor's value is
traced as the branch taken plus a check: calls that take the other branch run eagerly.
Captured tensors that need no gradient, and captured arrays, are constants of the trace.

The generated backward is first-order: gradients of gradients (``create_graph=True``,
``tg.grad``) replay the function eagerly; ``tg.jvp`` runs it eagerly.
"""

from __future__ import annotations

import builtins
import contextlib
import re
import warnings
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import random as _random
from .backend import Backend, get_backend, install_cuda_backend, trace_array_type
from .passes import C_FORMS, PASSES
from .program import (
    Instr,
    Program,
    Recorder,
    Source,
    Tracer,
    TracingNumPy,
    Untraceable,
    Value,
    _concrete,
)
from .program import emit as _emit
from .tensor import Function, Tensor, _as_cotangent, _Mode, backprop, set_grad_enabled
from .trace import _parameter_names
from .transforms import tree_flatten, tree_unflatten

__all__ = ["Compiled", "compile"]

DEFAULT_PASSES = ("fold", "dce", "fuse", "reuse")


class Diverged(Exception):
    """A guard of the compiled code failed: this call takes another branch than the trace."""


def compile(  # noqa: A001  (tg.compile, as torch.compile)
    f: Callable[..., Any] | None = None,
    *,
    passes: tuple[str, ...] = DEFAULT_PASSES,
    verbose: bool = False,
) -> Any:
    """Compile ``f`` (a function of Tensors, arrays and numbers returning a Tensor, or a
    tuple, list or dict of them). Usable as ``@tg.compile`` or ``tg.compile(passes=())(f)``.

    ``passes`` names the optimisations to run, in order (``"fold"``, ``"dce"``, ``"fuse"``,
    ``"reuse"``); ``verbose`` prints each trace and each fallback.
    """
    unknown = [p for p in passes if p not in PASSES]
    if unknown:
        raise ValueError(f"tg.compile: unknown passes {unknown}; known: {sorted(PASSES)}")
    if f is None:
        return lambda g: Compiled(g, tuple(passes), verbose)
    return Compiled(f, tuple(passes), verbose)


@dataclass
class Stats:
    """What a compiled function has done: calls, traces, and calls that ran eagerly."""

    calls: int = 0
    compiled_calls: int = 0
    traces: int = 0
    eager_calls: int = 0
    fallbacks: list[str] = field(default_factory=list)  # why, one line per reason


class Compiled:
    """A compiled function: call it as the original."""

    def __init__(self, f: Callable[..., Any], passes: tuple[str, ...], verbose: bool) -> None:
        self.f = f
        self.passes = passes
        self.verbose = verbose
        self.cache: dict[Any, _Entry | str] = {}  # signature -> entry, or why it runs eagerly
        self.stats = Stats()
        self.last: _Entry | None = None
        self.__name__ = getattr(f, "__name__", "compiled")
        self.__doc__ = getattr(f, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.stats.calls += 1
        if _Mode.forward_mode:
            return self._eager(args, kwargs, "forward mode (tg.jvp) runs the function eagerly")
        last = self.last
        if last is not None and not kwargs and last.accepts(args) and last.holds():
            return self._run(last, args)  # the common case: the signature of the last call
        if kwargs:
            return self._eager(args, kwargs, "keyword arguments are not compiled")
        try:
            key = _signature(args)
        except Untraceable as exc:
            return self._eager(args, kwargs, str(exc))
        entry = self.cache.get(key)
        if isinstance(entry, _Entry) and not entry.holds():
            entry = None  # a parameter changed shape, a module its mode, attributes or parts
        if entry is None:
            return self._first_call(key, args)
        if isinstance(entry, str):
            return self._eager(args, kwargs, entry)
        self.last = entry
        return self._run(entry, args)

    def _run(self, entry: _Entry, args: tuple[Any, ...]) -> Any:
        try:
            result = entry.run(args)
        except Diverged as exc:  # the state the forward changed is back as it was
            ins = entry.forward.instrs_by_index[int(str(exc))]
            why = f"a value-dependent branch went the other way ({ins.where})"
            return self._eager(args, {}, why)
        self.stats.compiled_calls += 1
        return result

    # -- the slow paths

    def _eager(self, args: Any, kwargs: Any, why: str) -> Any:
        self.stats.eager_calls += 1
        if why not in self.stats.fallbacks:
            self.stats.fallbacks.append(why)
            warnings.warn(f"tg.compile({self.__name__}): running eagerly: {why}", stacklevel=3)
        return self.f(*args, **kwargs)

    def _first_call(self, key: Any, args: tuple[Any, ...]) -> Any:
        result = self.f(*args)  # eager: this call's answer, and its tape names loose tensors
        try:
            entry = _trace(self.f, args, result, self.passes)
        except _PassFailed as failed:  # not the function's fault: say so, do not hide it
            raise failed.error from None
        except Exception as exc:  # the eager call worked: whatever failed is the trace's
            why = str(exc) if isinstance(exc, Untraceable) else _trace_failure(exc)
            self.cache[key] = why
            self.stats.eager_calls += 1
            if why not in self.stats.fallbacks:
                self.stats.fallbacks.append(why)
                warnings.warn(
                    f"tg.compile({self.__name__}): cannot compile, running eagerly: {why}",
                    stacklevel=3,
                )
            return result
        self.stats.traces += 1
        entry.key, entry.f = key, self.f
        self.cache[key] = self.last = entry
        if self.verbose:
            print(f"tg.compile({self.__name__}): traced {entry.summary()}")
        return result

    # -- looking inside

    def _entry(self) -> _Entry:
        if self.last is None:
            raise RuntimeError(f"{self.__name__} has not been compiled yet: call it first")
        return self.last

    def source(self) -> str:
        """The generated code of the last signature called: forward, then backward."""
        return self._entry().source

    def op_counts(self) -> dict[str, int]:
        """Array operations per call of the last signature, before and after the passes."""
        return dict(self._entry().counts)


def _trace_failure(exc: Exception) -> str:
    """Why tracing failed, in words. Traced tensors say device "cuda" while tracing, so a
    tensor the trace cannot follow shows up as a mix of devices (tensor.py's message)."""
    text = f"{type(exc).__name__}: {exc}"
    if "a tensor on cpu and a tensor on cuda" in text:
        return (
            "the function combines traced tensors with one the trace cannot follow: one it "
            "creates without device=x.device, or one it captures that is not on the first "
            "call's tape (create it with device=x.device, or pass it as an argument)"
        )
    return f"tracing failed ({text})"


# ----------------------------------------------------------------------------- signatures


def _signature(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What a trace is valid for: per argument, its kind, shape, dtype, device and
    requires_grad (numbers by value); and whether gradients are being recorded."""
    key: list[Any] = [_Mode.grad_enabled]
    for a in args:
        if isinstance(a, Tensor):
            key.append(("T", a.data.shape, a.data.dtype, a.device, a.requires_grad_))
        elif isinstance(a, np.ndarray) or type(a).__module__.startswith("cupy"):
            key.append(("A", a.shape, a.dtype, type(a).__module__))
        elif isinstance(a, float):  # by bits: -0.0 is not 0.0, and NaN equals NaN
            key.append(("N", float, a.hex()))
        elif isinstance(a, (bool, int, str, type(None))):
            key.append(("N", type(a), a))
        else:
            raise Untraceable(f"an argument of type {type(a).__name__} is not compiled")
    return tuple(key)


# ------------------------------------------------------------------------------ the trace


@dataclass
class _Swap:
    """A tensor the trace reads: a parameter or buffer, made an input of the program."""

    tensor: Tensor
    data: Any
    device: str
    grad: Any
    tracer: Tracer
    input: Value  # the program's input (the tracer moves on to new versions if written)


_TRACED = object()  # in an entry's output structure: a leaf the program computes


class _Session:
    """Everything one trace changes, and puts back."""

    def __init__(self, rec: Recorder) -> None:
        self.rec = rec
        self.swaps: dict[int, _Swap] = {}
        self.modules: dict[int, tuple[Any, ModuleState]] = {}
        self.device: str | None = None
        self.real_cuda: Backend | None = None  # the "cuda" backend the trace stands in for
        self.names: set[str] = set()
        self.frozen: list[tuple[Tensor, Any, str]] = []  # captured constants: (t, data, device)

    def host(self, data: Any, device: str) -> np.ndarray:
        """A NumPy copy of an array on ``device``: what the trace computes with. All the
        arrays of one trace must be on one device."""
        self._device(device)
        if device == "cpu":
            return np.array(data, copy=True)
        backend = self.real_cuda or get_backend(device)
        return np.array(backend.to_host(data), copy=True)

    def _unique(self, name: str) -> str:
        base, k = name, 2
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def swap(self, t: Tensor, name: str) -> None:
        held = self.swaps.get(id(t))
        if held is not None:  # found on the tape first: name it after its module now
            if not name.startswith("w"):
                held.input.name = self._unique(name)
            return
        if isinstance(t.data, Tracer):
            return
        tracer = self.rec.tracer(self.host(t.data, t.device), self._unique(name))
        self.swaps[id(t)] = _Swap(t, t.data, t.device, t.grad, tracer, tracer.ref)
        t.data, t.device, t.grad = tracer, "cuda", None

    def _device(self, device: str) -> None:
        if self.device is None:
            self.device = device
        elif device != self.device:
            raise Untraceable(f"tensors on {self.device} and on {device}")

    def freeze(self, t: Tensor) -> None:
        """A captured tensor that needs no gradient: a constant of the trace (as a NumPy
        array the function captures), whatever it holds at later calls."""
        if id(t) in self.swaps or isinstance(t.data, Tracer):
            return
        constant = self.rec.constant(self.host(t.data, t.device))
        self.frozen.append((t, t.data, t.device))
        t.data, t.device = Tracer(self.rec, constant), "cuda"

    def restore(self) -> None:
        for s in self.swaps.values():
            s.tensor.data, s.tensor.device, s.tensor.grad = s.data, s.device, s.grad
        for t, data, device in self.frozen:
            t.data, t.device = data, device

    def visit(self, module: Any) -> None:
        """A module called while tracing: its parameters and buffers become inputs; its
        mode, settings and parts (as ``vars(m)`` holds them) are guarded."""
        if id(module) in self.modules:
            return
        for m in module.modules():
            self.modules.setdefault(id(m), (m, _module_state(m)))
        for name, t in module._named_tensors():
            self.swap(t, _identifier(f"{type(module).__name__}_{name}"))


ModuleState = tuple[tuple[str, ...], tuple[Any, ...], tuple[str, ...], tuple[int, ...]]


def _module_state(m: Any) -> ModuleState:
    """What a trace assumed of a module: its plain settings by value (``training``, ``p``,
    ``eps``) and its parts by identity (sub-modules, parameters, buffers), so replacing a layer
    or changing a setting is seen: ``(names, values, part names, part ids)``."""
    from .nn.module import Module, Parameter

    buffers = vars(m).get("_buffer_names", ())
    plain, values, parts, ids = [], [], [], []
    for name, value in vars(m).items():
        if isinstance(value, (bool, int, float, str, type(None))) or (
            isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value)
        ):
            plain.append(name)
            values.append(value)
        elif isinstance(value, (Module, Parameter)) or name in buffers:
            parts.append(name)
            ids.append(id(value))
    return tuple(plain), tuple(values), tuple(parts), tuple(ids)


_MISSING = object()


def _identifier(text: str) -> str:
    """``Sequential`` and ``0.weight`` give ``sequential_0_weight``."""
    return "".join(c if c.isalnum() else "_" for c in text).lower()


@contextlib.contextmanager
def _tracing(session: _Session) -> Iterator[None]:
    """Tensors of device ``"cuda"`` compute with the recording array module while inside."""
    from .nn.module import Module

    rec = session.rec

    def scatter_add(target: Any, index: Any, values: Any) -> None:
        if not isinstance(target, Tracer):
            raise Untraceable("scatter_add into an array that is not traced")
        concrete = (target.ref.concrete, _concrete(index), _concrete(values))
        np.add.at(*concrete)
        rec.record("call", "scatter_add", (target, index, values), {}, None, mutates=target)

    def refuse_host(array: Any) -> Any:
        raise Untraceable(
            "a traced tensor was read on the host (.numpy(), .item(), float(), print)"
        )

    draws = np.random.default_rng(0)

    def draw(method: str, shape: tuple[int, ...], dtype: Any, device: str) -> Any:
        dtype = np.dtype(dtype)
        native = dtype if dtype in _random._NATIVE_FLOATS else np.dtype(np.float64)
        values = getattr(draws, method)(tuple(shape), dtype=native).astype(dtype, copy=False)
        return rec.record("call", "draw", (method, tuple(shape), dtype), {}, values)

    original_call = Module.__call__

    def traced_call(module: Any, *args: Any, **kwargs: Any) -> Any:
        session.visit(module)
        return original_call(module, *args, **kwargs)

    backend = Backend("cuda", TracingNumPy(rec), refuse_host, scatter_add)  # type: ignore[arg-type]
    previous = session.real_cuda = install_cuda_backend(backend)
    original_draw = _random._draw
    trace_array_type(Tracer, "cuda")
    _random._draw = draw  # type: ignore[assignment]
    Module.__call__ = traced_call  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Module.__call__ = original_call  # type: ignore[method-assign]
        _random._draw = original_draw  # type: ignore[assignment]
        trace_array_type(Tracer, None)
        install_cuda_backend(previous)
        session.restore()


def _loose_tensors(result: Any) -> list[Tensor]:
    """The tensors the eager result was computed from (its tape's leaves): with the module
    parameters, those captured by the function (``w`` in ``lambda x: x @ w``). Python numbers
    lifted to tensors (``x ** 2.0``) are not among them: the trace lifts its own."""
    from .ops import _CONSTANTS

    lifted = {id(t) for t in _CONSTANTS.values()}
    found: list[Tensor] = []
    seen: set[int] = set()
    leaves, _ = tree_flatten(result)
    stack = [
        x for t in leaves if isinstance(t, Tensor) and t._ctx is not None for x in t._ctx.inputs
    ]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        if t._ctx is None:
            if id(t) not in lifted:
                found.append(t)
            continue
        stack.extend(t._ctx.inputs)
    return found


def _trace(
    f: Callable[..., Any], args: tuple[Any, ...], result: Any, passes: tuple[str, ...]
) -> _Entry:
    rec = Recorder()
    session = _Session(rec)
    grad_mode = _Mode.grad_enabled
    arg_inputs: list[tuple[int, Value, bool]] = []  # (argument index, input, is a Tensor)
    traced_args: list[Any] = []
    arg_tensors: dict[int, Tensor] = {}
    names = _argument_names(f, len(args))
    for i, a in enumerate(args):
        if isinstance(a, Tensor):
            tracer = rec.tracer(session.host(a.data, a.device), names[i])
            t = Tensor._make(tracer, "cuda")
            t.requires_grad_ = a.requires_grad_
            arg_tensors[i] = t
            traced_args.append(t)
            arg_inputs.append((i, tracer.ref, True))
        elif isinstance(a, (bool, int, float, str, type(None))):
            traced_args.append(a)
        else:  # an array
            device = "cpu" if isinstance(a, np.ndarray) else "cuda"
            tracer = rec.tracer(session.host(a, device), names[i])
            traced_args.append(tracer)
            arg_inputs.append((i, tracer.ref, False))
    rec.host_target = (session.device or "cpu") == "cpu"
    loose = _loose_tensors(result)  # before tracing: installing its backend clears caches
    with _tracing(session):
        for t in loose:
            if any(t is a for a in args):
                continue
            if t.requires_grad_:
                session.swap(t, f"w{len(session.swaps)}")
            else:
                session.freeze(t)
        with set_grad_enabled(grad_mode):
            out = f(*traced_args)
        leaves, treedef = tree_flatten(out)
        outputs: list[Value] = []
        static: list[Any] = []  # per leaf: _TRACED for a traced tensor, else the leaf itself
        for leaf in leaves:
            if isinstance(leaf, Tensor) and isinstance(leaf.data, Tracer):
                outputs.append(leaf.data.ref)
                static.append(_TRACED)
            elif isinstance(leaf, (Tensor, Tracer, np.ndarray)):
                raise Untraceable("the function returns an array that is not computed by it")
            else:
                static.append(leaf)
        differentiable = [
            k for k, leaf in enumerate(leaves) if isinstance(leaf, Tensor) and leaf.requires_grad_
        ]
        if len(differentiable) > 1:
            raise Untraceable("several of the outputs need gradients; return one tensor")
        n_forward = len(rec.instrs)
        wanted: list[tuple[bool, int, Tensor]] = []  # (an argument?, its index, the tensor)
        grads: list[Value | None] = []
        dy = None
        if differentiable:
            y = leaves[differentiable[0]]
            dy = rec.tracer(np.ones(y.shape, y.dtype), "dy")
            for i, t in arg_tensors.items():
                if t.requires_grad_:
                    wanted.append((True, i, t))
            for k, s in enumerate(session.swaps.values()):
                if s.tensor.requires_grad_:
                    wanted.append((False, k, s.tensor))
            got = backprop(y, Tensor._make(dy, "cuda"), inputs=[w[2] for w in wanted])
            by_id = {id(t): g for t, g in got.items()}
            for _, _, t in wanted:
                g = by_id.get(id(t))
                grads.append(g.data.ref if g is not None else None)
        for s in session.swaps.values():
            if s.tensor.data is not s.tracer:
                raise Untraceable(
                    f"the function replaces the data of {s.tracer.ref.name} (assign in place, "
                    "or call .backward() and optimizer steps outside the compiled function)"
                )
            if s.tensor.grad is not None:
                raise Untraceable(
                    "the function calls .backward(): compile the loss, and call backward on "
                    "what the compiled function returns"
                )
    device = session.device or "cpu"
    swaps = list(session.swaps.values())
    fwd_inputs = [v for _, v, _ in arg_inputs] + [s.input for s in swaps]
    forward = Program(fwd_inputs, rec.instrs[:n_forward], list(outputs))
    backward = None
    if dy is not None:
        backward = Program([dy.ref], rec.instrs[n_forward:], [g for g in grads if g is not None])
    if backward is not None and any(ins.kind == "guard" for ins in backward.instrs):
        raise Untraceable("a backward rule branches on a value")
    raw = forward.op_count() + (backward.op_count() if backward else 0)
    early = [name for name in passes if name in ("fold", "dce")]
    late = [name for name in passes if name not in ("fold", "dce")]
    if "fold" in early:
        _run_pass("fold", forward)
    if backward is not None:
        for name in early:
            _run_pass(name, backward)
        # what the backward reads of the forward's values is saved for it by the forward
        produced = {id(ins.out) for ins in backward.instrs if ins.out is not None}
        saved: list[Value] = []
        for v in _reads(backward):
            if id(v) not in produced and v.kind != "constant" and v is not backward.inputs[0]:
                if all(v is not s for s in saved):
                    saved.append(v)
        backward.inputs = [backward.inputs[0]] + saved
        forward.outputs = outputs + saved
    if "dce" in early:
        _run_pass("dce", forward)
    for name in late:
        _run_pass(name, forward)
        if backward is not None:
            _run_pass(name, backward)
    entry = _Entry(
        forward=_Generated(forward, "forward", device),
        backward=_Generated(backward, "backward", device) if backward else None,
        n_outputs=len(outputs),
        treedef=treedef,
        static=static,
        differentiable=differentiable[0] if differentiable else None,
        arg_reads=[(i, is_tensor) for i, _, is_tensor in arg_inputs],
        swaps=[s.tensor for s in swaps],
        swap_keys=[(s.data.shape, s.data.dtype, s.device, s.tensor.requires_grad_) for s in swaps],
        modules=list(session.modules.values()),
        wanted=[(kind, key) for kind, key, _ in wanted],
        grad_kept=[g is not None for g in grads],
        grad_copied=_copied(backward),
        device=device,
        counts={
            "traced": raw,
            "compiled": forward.op_count() + (backward.op_count() if backward else 0),
        },
    )
    return entry


class _PassFailed(Exception):
    """A pass raised: the compiler's own error (or an unfinished one), not the function's."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _run_pass(name: str, program: Program) -> None:
    try:
        PASSES[name](program)
    except Exception as exc:
        raise _PassFailed(exc) from exc


def _copied(backward: Program | None) -> list[bool]:
    """Per gradient the backward returns: must it be copied before it is handed out? Yes
    when its memory is the cotangent's, a saved array's, or an earlier gradient's."""
    if backward is None:
        return []
    owned = {id(v.owner) for v in backward.inputs}
    flags = []
    for g in backward.outputs:
        flags.append(id(g.owner) in owned or g.kind == "constant")
        owned.add(id(g.owner))
    return flags


def _reads(program: Program) -> Iterator[Value]:
    for ins in program.instrs:
        yield from ins.values()
    yield from program.outputs


def _argument_names(f: Callable[..., Any], count: int) -> list[str]:
    """The function's parameter names for its arguments (``x1, x2, ...`` where it has none),
    renamed where they would clash with the generated code's own names."""
    names = _parameter_names(f, count)
    taken = {"xp", "dy", "draw", "scatter_add", "Diverged"}
    return [
        f"arg{i + 1}" if n in taken or re.fullmatch(r"[vcx]\d+", n) else n
        for i, n in enumerate(names)
    ]


# -------------------------------------------------------------------------- generated code


class _Generated:
    """One program as a Python function over the device's array module."""

    def __init__(self, program: Program, name: str, device: str) -> None:
        backend = get_backend(device)
        xp = backend.xp
        src = Source()
        on_gpu = getattr(xp, "__name__", "") == "cupy"
        kernels: dict[str, Any] = {}

        def fused(ins: Instr, source: Source) -> list[str]:
            if on_gpu:
                return _kernel_call(ins, source, kernels)
            return _numpy_chain(ins, source)

        self.program = program
        self.instrs_by_index = list(program.instrs)
        self.source = _emit(program, name, src, "Diverged", fused)
        namespace: dict[str, Any] = {
            "xp": xp,
            "Diverged": Diverged,
            "scatter_add": backend.scatter_add,
            "draw": lambda method, shape, dtype: _random._draw(method, shape, dtype, device),
        }
        for key, value in src.constants.items():
            namespace[key] = backend.asarray(value) if isinstance(value, np.ndarray) else value
        namespace.update(kernels)
        code = builtins.compile(self.source, f"<tg.compile {name}>", "exec")
        exec(code, namespace)  # noqa: S102
        self.run: Callable[..., tuple[Any, ...]] = namespace[name]


def _numpy_chain(ins: Instr, src: Source) -> list[str]:
    """A fused group on NumPy: its members in order, each writing into the array of an
    intermediate result it reads for the last time (``out=``), the root into the group's
    buffer when the buffer pass gave it one; so the group allocates as little as it can."""
    assert ins.fused is not None and ins.out is not None
    members = ins.fused
    last_read: dict[int, int] = {}
    for k, member in enumerate(members):
        for v in member.values():
            last_read[id(v)] = k
    inside = {id(m.out) for m in members}
    taken: set[int] = set()  # intermediates whose array a later member already writes into
    lines = []
    for k, member in enumerate(members):
        assert member.out is not None
        args = [src.arg(a) for a in member.args]
        target = ins.kwargs.get("out") if k == len(members) - 1 else None
        if target is None:
            for v in member.values():
                if (
                    id(v) in inside
                    and id(v) not in taken
                    and last_read[id(v)] == k
                    and v.shape == member.out.shape
                    and v.dtype == member.out.dtype
                ):
                    target = v
                    taken.add(id(v))
                    break
        out = f", out={src.arg(target)}" if target is not None else ""
        lines.append(f"{member.out.name} = xp.{member.name}({', '.join(args)}{out})")
    return lines


_C_TYPES = {"float32": "float32", "float64": "float64", "bool": "bool", "int64": "int64",
            "int32": "int32", "uint8": "uint8", "float16": "float16"}  # fmt: skip


def kernel_source(ins: Instr) -> tuple[str, str, str]:
    """CuPy ``ElementwiseKernel`` parameters for a fused chain: ``(in_params, out_params,
    operation)``, its members as C expressions over the chain's array operands."""
    assert ins.fused is not None and ins.out is not None
    names: dict[int, str] = {}
    params = []
    for k, v in enumerate(ins.args):
        names[id(v)] = f"x{k}"
        params.append(f"{_C_TYPES[str(v.dtype)]} x{k}")
    body = []
    ctype = {"float32": "float", "float64": "double"}.get(str(ins.out.dtype), "double")
    for k, member in enumerate(ins.fused):
        assert member.out is not None
        operands = []
        for a in member.args:
            if isinstance(a, Value) and id(a) in names:
                operands.append(names[id(a)])
            elif isinstance(a, Value):  # a one-element constant folded into the chain
                operands.append(f"(({ctype}){float(np.asarray(a.concrete).reshape(-1)[0])!r})")
            else:
                operands.append(f"(({ctype}){float(a)!r})")
        body.append(f"{ctype} t{k} = {C_FORMS[member.name].format(*operands)};")
        names[id(member.out)] = f"t{k}"
    body.append(f"y = t{len(ins.fused) - 1};")
    out_params = f"{_C_TYPES[str(ins.out.dtype)]} y"
    return ", ".join(params), out_params, " ".join(body)


def _kernel_call(ins: Instr, src: Source, kernels: dict[str, Any]) -> list[str]:
    import cupy  # type: ignore[import-not-found]

    assert ins.out is not None
    in_params, out_params, operation = kernel_source(ins)
    name = f"fused{len(kernels)}"
    kernels[name] = cupy.ElementwiseKernel(in_params, out_params, operation, name)
    args = [src.arg(a) for a in ins.args]
    buffer = ins.kwargs.get("out")
    if buffer is not None:
        args.append(src.arg(buffer))
    return [f"{ins.out.name} = {name}({', '.join(args)})"]


# ---------------------------------------------------------------------------- running it


@dataclass
class _Entry:
    forward: _Generated
    backward: _Generated | None
    n_outputs: int
    treedef: Any
    static: list[Any]
    differentiable: int | None
    arg_reads: list[tuple[int, bool]]  # the arguments the program reads: (index, a Tensor?)
    swaps: list[Tensor]
    swap_keys: list[tuple[Any, ...]]
    modules: list[tuple[Any, ModuleState]]
    wanted: list[tuple[bool, int]]  # the inputs that get gradients: (is an argument, index)
    grad_kept: list[bool]
    grad_copied: list[bool]  # gradients that are the cotangent, a saved array or a repeat
    device: str
    counts: dict[str, int]
    key: tuple[Any, ...] = ()  # the signature it was traced for (see _signature)
    f: Callable[..., Any] | None = None  # the function (replayed for gradients of gradients)

    def __post_init__(self) -> None:
        self.single = self.treedef.kind == "leaf" and self.n_outputs == 1
        # (the module's attribute dict, a name, its value or id, compared by id?)
        self.module_checks: list[tuple[dict[str, Any], str, Any, bool]] = []
        for module, (plain, values, parts, ids) in self.modules:
            attrs = module.__dict__
            self.module_checks += [(attrs, k, v, False) for k, v in zip(plain, values)]
            self.module_checks += [(attrs, k, v, True) for k, v in zip(parts, ids)]
        program = self.forward.program
        position = {id(v): k for k, v in enumerate(program.inputs)}
        written = sorted(
            {
                position[id(i.mutates.owner)]
                for i in program.instrs
                if i.mutates is not None and id(i.mutates.owner) in position
            }
        )
        draws = any(i.kind == "call" and i.name == "draw" for i in program.instrs)
        self.pure = not written and not draws
        guarded = any(i.kind == "guard" for i in program.instrs)
        # a guard that fails after the program wrote into a buffer or drew random numbers:
        # those are undone before the call runs eagerly (snapshots taken only then)
        self.undo_inputs = written if guarded else []
        self.undo_draws = draws and guarded

    @property
    def source(self) -> str:
        text = self.forward.source
        if self.backward is not None:
            text += "\n\n" + self.backward.source
        return text

    def summary(self) -> str:
        n = len(self.forward.program.instrs)
        m = len(self.backward.program.instrs) if self.backward else 0
        return (
            f"{n} forward and {m} backward operations (traced {self.counts['traced']}), "
            f"{len(self.swaps)} parameters and buffers"
        )

    def _undoable(self, arrays: list[Any]) -> tuple[Any, ...]:
        saved = [(arrays[k], arrays[k].copy()) for k in self.undo_inputs]
        generator = _random.generator(self.device) if self.undo_draws else None
        state = getattr(getattr(generator, "bit_generator", None), "state", None)
        try:
            return self.forward.run(*arrays)
        except Diverged:
            for target, copy in saved:
                target[...] = copy
            if state is not None:
                generator.bit_generator.state = state  # type: ignore[union-attr]
            raise

    def accepts(self, args: tuple[Any, ...]) -> bool:
        """Is ``args`` of this entry's signature? (:func:`_signature`, without building it.)"""
        if len(args) != len(self.key) - 1 or _Mode.grad_enabled is not self.key[0]:
            return False
        for a, k in zip(args, self.key[1:]):
            if type(a) is Tensor:
                data = a.data
                if (
                    k[0] != "T"
                    or data.shape != k[1]
                    or data.dtype != k[2]
                    or a.device != k[3]
                    or a.requires_grad_ is not k[4]
                ):
                    return False
            else:
                try:
                    if _signature((a,))[1:] != (k,):
                        return False
                except Untraceable:
                    return False
        return True

    def holds(self) -> bool:
        """The guards beyond the arguments: parameters and buffers keep their shape, dtype,
        device and requires_grad; every module its train/eval mode."""
        for t, (shape, dtype, device, grad) in zip(self.swaps, self.swap_keys):
            data = t.data
            if (
                data.shape != shape
                or data.dtype != dtype
                or t.device != device
                or t.requires_grad_ != grad
            ):
                return False
        for attrs, name, expected, by_id in self.module_checks:
            now = attrs.get(name, _MISSING)
            if (id(now) != expected) if by_id else (now is _MISSING or now != expected):
                return False
        return True

    def run(self, args: tuple[Any, ...]) -> Any:
        """One call: the generated forward on the arguments' and parameters' arrays; the
        differentiable output gets one tape node whose backward is the generated one."""
        arrays = [args[i].data if tensor else args[i] for i, tensor in self.arg_reads]
        arrays += [t.data for t in self.swaps]
        for a in arrays:  # the trace saw C-ordered arrays: so must the code
            if not a.flags.c_contiguous:
                xp = get_backend(self.device).xp
                arrays = [x if x.flags.c_contiguous else xp.ascontiguousarray(x) for x in arrays]
                break
        if self.undo_inputs or self.undo_draws:
            results = self._undoable(arrays)
        else:
            results = self.forward.run(*arrays)
        n = self.n_outputs
        y: Tensor | None
        if self.single:  # the common case: one tensor out
            y = _Output._make(_as_array(results[0]), self.device)
            out: Any = y
        else:
            made = [_Output._make(_as_array(r), self.device) for r in results[:n]]
            it = iter(made)
            leaves = [next(it) if s is _TRACED else s for s in self.static]
            out = tree_unflatten(self.treedef, leaves)
            y = leaves[self.differentiable] if self.differentiable is not None else None
        if y is not None and self.backward is not None and _Mode.grad_enabled:
            node = _CompiledGraph()
            node.inputs = tuple([args[key] if arg else self.swaps[key] for arg, key in self.wanted])
            node.entry = self
            node.saved = results[n:]
            node.args = args
            node._out = weakref.ref(y)  # the output owns its node, not the other way round
            y._ctx = node
            y.requires_grad_ = True
        return out


def _as_array(value: Any) -> Any:
    return np.asarray(value) if isinstance(value, np.generic) else value


class _Output(Tensor):
    """What a compiled function returns: a Tensor whose ``backward()`` goes straight to the
    generated backward when the graph's inputs are all leaves (the usual case: a loss of
    parameters and data), skipping the tape's walk over a graph of one node."""

    __slots__ = ()

    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        node = self._ctx
        if (
            create_graph
            or type(node) is not _CompiledGraph
            or (grad is None and self.size != 1)
            or any(x._ctx is not None for x in node.inputs)
        ):
            return Tensor.backward(self, grad, create_graph)  # the general path, its errors
        if grad is None:
            cotangent = Tensor._make(get_backend(self.device).xp.ones((), self.dtype), self.device)
            if self.shape:
                cotangent = Tensor._make(cotangent.data.reshape(self.shape), self.device)
        else:
            cotangent = _as_cotangent(grad, self)
        with set_grad_enabled(False):
            grads = node.backward(cotangent)
        for x, g in zip(node.inputs, grads):
            if g is None or not x.requires_grad_:
                continue
            if not getattr(g.data.flags, "writeable", True):  # a broadcast view: own copy
                g = Tensor._make(g.data.copy(), g.device)
            x.grad = g if x.grad is None else x.grad + g


class _CompiledGraph(Function):
    """The whole compiled graph as one node of the tape: its backward is the generated one."""

    __slots__ = ("entry", "saved", "args")
    entry: _Entry
    saved: tuple[Any, ...]
    args: tuple[Any, ...]

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        if _Mode.grad_enabled:
            return self._replayed(gy)
        backward = self.entry.backward
        assert backward is not None
        grads = iter(zip(backward.run(gy.data, *self.saved), self.entry.grad_copied))
        out: list[Tensor | None] = []
        for kept, x in zip(self.entry.grad_kept, self.inputs):
            if not kept:
                out.append(None)
                continue
            g, copy = next(grads)
            g = _as_array(g)
            out.append(Tensor._make(g.copy() if copy else g, x.device))
        return tuple(out)

    def _replayed(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """Gradients that can be differentiated again (``create_graph=True``, ``tg.grad``):
        the generated backward is first-order, so the function runs again eagerly, on the
        tape, and its backward is recorded. Only for functions without random draws or
        in-place updates, which a second run would repeat."""
        entry = self.entry
        if not entry.pure:
            raise RuntimeError(
                "tg.compile: gradients of gradients (create_graph=True, tg.grad) replay the "
                "function eagerly, and this one draws random numbers or updates buffers: "
                "call the uncompiled function instead"
            )
        assert entry.f is not None
        leaves, _ = tree_flatten(entry.f(*self.args))
        assert entry.differentiable is not None
        y = leaves[entry.differentiable]
        got = backprop(y, gy, create_graph=True, inputs=list(self.inputs))
        by_id = {id(t): g for t, g in got.items()}
        return tuple(by_id.get(id(x)) for x in self.inputs)
