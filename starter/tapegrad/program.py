"""The compiler's intermediate form: a straight-line program of array operations.

:func:`tapegrad.compile` records one run of a function as a :class:`Program`: every array
operation the ops' ``forward`` and ``backward`` rules performed, in order, on named values.
A value is an input (an argument, a parameter, a module's buffer, the output's cotangent), a
constant, or the result of an :class:`Instr`. The passes (:mod:`tapegrad.passes`) rewrite
the list; :func:`emit` turns it into Python source over an array module ``xp`` (NumPy or
CuPy), which the compiler runs instead of the tape.

The recording is done by :class:`Tracer`, an array stand-in that computes each operation on
real NumPy values (so shapes, dtypes and the branch taken are those of a real run) and writes
down what it did. Reading a traced value as a Python number (``float(x)``, ``x.item()``)
cannot be recorded: it raises :class:`Untraceable`. A truth test (``if (x > 0).all():``) is
recorded as a *guard*: the compiled code checks that the test comes out the same, and runs
the function eagerly for the calls where it does not.
"""

from __future__ import annotations

import linecache
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

__all__ = ["Instr", "Program", "Tracer", "TracingNumPy", "Untraceable", "Value", "emit"]


class Untraceable(Exception):
    """The function did something a straight-line array program cannot express."""


@dataclass(eq=False)
class Value:
    """One array of the program."""

    name: str
    kind: str  # "input", "constant" or "op"
    shape: tuple[int, ...]
    dtype: np.dtype
    concrete: Any = None  # the value in the traced run (a constant's value)
    instr: Instr | None = None  # what computed it (kind "op")
    base: Value | None = None  # the value whose memory this one views (None: its own)

    @property
    def owner(self) -> Value:
        """The value that owns this one's memory (itself, unless it is a view)."""
        v = self
        while v.base is not None:
            v = v.base
        return v

    def __repr__(self) -> str:
        return f"<{self.name} {self.shape} {self.dtype}>"


@dataclass(eq=False)
class Instr:
    """One operation: ``out = call(args, kwargs)``.

    ``kind`` says how it is written: ``"xp"`` (``xp.<name>(...)``, a NumPy/CuPy function or
    ufunc), ``"ufunc"`` (a ufunc method, ``xp.add.at(...)``), ``"method"`` (``a.<name>(...)``),
    ``"attr"`` (``a.T``), ``"getitem"``, ``"setitem"`` (in place), ``"call"`` (a function of
    the namespace: ``scatter_add``, ``draw``) and ``"guard"`` (a truth test that must come
    out as ``expected``). ``mutates`` is the value written in place, if any.
    """

    kind: str
    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    out: Value | None = None
    mutates: Value | None = None
    expected: bool | None = None  # a guard's traced outcome
    where: str = ""  # the source line that made it (for guards and messages)
    fused: list[Instr] | None = None  # a fused chain: its instructions, in order

    def values(self) -> Iterator[Value]:
        """The values it reads."""
        yield from _values_in(self.args)
        yield from _values_in(tuple(self.kwargs.values()))

    @property
    def elementwise(self) -> bool:
        """A ufunc applied element by element (``xp.exp``, ``a * b``)."""
        return self.kind == "xp" and self.name in _UFUNCS and not self.kwargs

    def __repr__(self) -> str:
        out = self.out.name if self.out else "_"
        return f"{out} = {self.kind}:{self.name}{tuple(_show(a) for a in self.args)}"


def _values_in(obj: Any) -> Iterator[Value]:
    if isinstance(obj, Value):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _values_in(item)
    elif isinstance(obj, slice):
        yield from _values_in((obj.start, obj.stop, obj.step))
    elif isinstance(obj, dict):
        yield from _values_in(tuple(obj.values()))


def _show(obj: Any) -> str:
    return obj.name if isinstance(obj, Value) else repr(obj)


_UFUNCS = {name for name in dir(np) if isinstance(getattr(np, name), np.ufunc)}


@dataclass(eq=False)
class Program:
    """A straight-line program: its inputs, its instructions in order, and its outputs."""

    inputs: list[Value]
    instrs: list[Instr]
    outputs: list[Value]

    def op_count(self) -> int:
        """How many array operations run per call (a fused chain counts as one)."""
        return len(self.instrs)

    def uses(self) -> dict[int, int]:
        """For each value (by ``id``), the index of the last instruction that reads it; the
        program's outputs are read at the end (``len(instrs)``)."""
        last: dict[int, int] = {}
        for i, ins in enumerate(self.instrs):
            for v in ins.values():
                last[id(v)] = i
        for v in self.outputs:
            last[id(v)] = len(self.instrs)
        return last


# ------------------------------------------------------------------------------ recording


class Recorder:
    """Collects the values and instructions of one traced run."""

    def __init__(self) -> None:
        self.instrs: list[Instr] = []
        self.counter = 0
        self.host_target = False  # the code will run on NumPy (host-side checks stay)
        self.consts: dict[int, Value] = {}  # id(array) -> its constant value
        self.keep: list[Any] = []  # arrays behind constants: keep them alive (ids are keys)

    def value(self, concrete: Any, kind: str, name: str | None = None) -> Value:
        self.counter += 1
        array = np.asarray(concrete)
        return Value(name or f"v{self.counter}", kind, array.shape, array.dtype, concrete)

    def tracer(self, concrete: Any, name: str) -> Tracer:
        """An input of the program, with ``concrete`` as its traced value."""
        return Tracer(self, self.value(concrete, "input", name))

    def constant(self, array: Any) -> Value:
        held = self.consts.get(id(array))
        if held is None:
            held = self.consts[id(array)] = self.value(array, "constant", f"k{len(self.consts)}")
            self.keep.append(array)
        return held

    def symbolic(self, obj: Any) -> Any:
        """``obj`` with tracers replaced by their values and arrays by constants."""
        if isinstance(obj, Tracer):
            return obj.ref
        if isinstance(obj, (np.ndarray, np.generic)) and not isinstance(obj, np.dtype):
            return self.constant(obj)
        if isinstance(obj, tuple):
            return tuple(self.symbolic(o) for o in obj)
        if isinstance(obj, list):
            return [self.symbolic(o) for o in obj]
        if isinstance(obj, slice):
            return slice(*(self.symbolic(o) for o in (obj.start, obj.stop, obj.step)))
        if isinstance(obj, dict):
            return {k: self.symbolic(o) for k, o in obj.items()}
        return obj

    def record(
        self,
        kind: str,
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        result: Any,
        mutates: Tracer | None = None,
    ) -> Any:
        """Write down one operation whose traced result is ``result``; returns the tracer
        that stands for it (or the tracer written in place)."""
        ins = Instr(kind, name, self.symbolic(args), self.symbolic(kwargs), where=_caller())
        self.instrs.append(ins)
        if mutates is not None:  # in place: the tracer now stands for a new version
            ins.mutates = mutates.ref
            new = self.value(mutates.ref.concrete, "op")
            new.instr, new.base = ins, mutates.ref
            ins.out = new
            mutates.ref = new
            return mutates
        if not isinstance(result, (np.ndarray, np.generic)):
            raise Untraceable(f"{name} returned a {type(result).__name__}, not an array")
        out = self.value(result, "op")
        out.instr = ins
        out.base = _viewed(result, ins)
        ins.out = out
        return Tracer(self, out)


def _viewed(result: Any, ins: Instr) -> Value | None:
    """The input whose memory ``result`` shares (a view: reshape, transpose, a slice, or the
    input itself, as ``a.astype(a.dtype, copy=False)`` returns)."""
    for v in ins.values():
        if result is v.concrete:
            return v
    if not isinstance(result, np.ndarray) or result.base is None:
        return None
    for v in ins.values():
        if isinstance(v.concrete, np.ndarray) and np.may_share_memory(result, v.concrete):
            return v
    return None


def _caller() -> str:
    """The first source line outside this module and NumPy: where the operation came from."""
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path != __file__ and "numpy" not in path:
            line = linecache.getline(path, frame.f_lineno).strip()
            return f"{path}:{frame.f_lineno}: {line}"
        frame = frame.f_back  # type: ignore[assignment]
    return "?"


def _concrete(obj: Any) -> Any:
    if isinstance(obj, Tracer):
        return obj.ref.concrete
    if isinstance(obj, tuple):
        return tuple(_concrete(o) for o in obj)
    if isinstance(obj, list):
        return [_concrete(o) for o in obj]
    if isinstance(obj, slice):
        return slice(*(_concrete(o) for o in (obj.start, obj.stop, obj.step)))
    if isinstance(obj, dict):
        return {k: _concrete(o) for k, o in obj.items()}
    return obj


def _find_recorder(objs: Any) -> Recorder | None:
    for o in objs:
        if isinstance(o, Tracer):
            return o.rec
        if isinstance(o, (tuple, list)):
            found = _find_recorder(o)
            if found is not None:
                return found
    return None


class Tracer(NDArrayOperatorsMixin):
    """Stands for an array while a function is traced: behaves like its NumPy value (shape,
    dtype, operators, methods, NumPy functions) and records every operation on it."""

    __slots__ = ("rec", "ref")

    def __init__(self, rec: Recorder, ref: Value) -> None:
        self.rec = rec
        self.ref = ref

    # -- what is known without running anything
    @property
    def shape(self) -> tuple[int, ...]:
        return self.ref.shape

    @property
    def dtype(self) -> np.dtype:
        return self.ref.dtype

    @property
    def ndim(self) -> int:
        return len(self.ref.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.ref.shape, dtype=np.int64))

    @property
    def host_target(self) -> bool:
        """True when the traced code will run on the host (NumPy): checks that eager tapegrad
        does only for host arrays are kept, as guards."""
        return self.rec.host_target

    @property
    def itemsize(self) -> int:
        return self.ref.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.itemsize

    @property
    def flags(self) -> Any:
        return np.asarray(self.ref.concrete).flags

    def __len__(self) -> int:
        if not self.ref.shape:
            raise TypeError("len() of unsized object")
        return self.ref.shape[0]

    def __repr__(self) -> str:
        return f"Tracer({self.ref.name}, shape={self.shape}, dtype={self.dtype})"

    # -- NumPy's protocols: ufuncs (and so every operator) and array functions
    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        result = getattr(ufunc, method)(*_concrete(inputs), **_concrete(kwargs))
        target = None
        out = kwargs.get("out")
        if out is not None:
            out = out[0] if isinstance(out, tuple) else out
            if not isinstance(out, Tracer):
                raise Untraceable(f"{ufunc.__name__} writes into an array that is not traced")
            target = out
        if method == "at":
            if not isinstance(inputs[0], Tracer):
                raise Untraceable(f"{ufunc.__name__}.at into an array that is not traced")
            target = inputs[0]
        if method == "__call__":
            return self.rec.record("xp", ufunc.__name__, inputs, kwargs, result, target)
        return self.rec.record(
            "ufunc", f"{ufunc.__name__}.{method}", inputs, kwargs, result, target
        )

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        name = func.__name__
        _refuse_shape_from_values(name, args, kwargs)
        if getattr(np, name, None) is not func:
            raise Untraceable(f"numpy function {func.__module__}.{name} is not supported")
        result = getattr(np, name)(*_concrete(args), **_concrete(kwargs))
        return self.rec.record("xp", name, args, kwargs, result)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise Untraceable(
            "a traced array was converted to a concrete NumPy array (np.asarray, np.array or "
            "an operation with a plain array that NumPy could not hand back)"
        )

    # -- indexing and methods
    def __getitem__(self, index: Any) -> Any:
        _refuse_value_shaped("indexing with a boolean mask", (index,))
        result = self.ref.concrete[_concrete(index)]
        return self.rec.record("getitem", "", (self, index), {}, result)

    def __setitem__(self, index: Any, value: Any) -> None:
        self.ref.concrete[_concrete(index)] = _concrete(value)
        self.rec.record("setitem", "", (self, index, value), {}, None, mutates=self)

    @property
    def T(self) -> Any:
        return self.rec.record("attr", "T", (self,), {}, self.ref.concrete.T)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(np.asarray(self.ref.concrete), name)
        if not callable(attr):
            raise Untraceable(f"attribute .{name} of a traced array")

        if name in _IN_PLACE_METHODS:
            raise Untraceable(f".{name}() changes a traced array in place")

        def method(*args: Any, **kwargs: Any) -> Any:
            result = getattr(self.ref.concrete, name)(*_concrete(args), **_concrete(kwargs))
            return self.rec.record("method", name, (self, *args), kwargs, result)

        return method

    # -- reading values: a truth test becomes a guard; anything else cannot be traced
    def __bool__(self) -> bool:
        outcome = bool(self.ref.concrete)
        ins = Instr("guard", "", (self.ref,), expected=outcome, where=_caller())
        self.rec.instrs.append(ins)
        return outcome

    def _read(self, what: str) -> Any:
        raise Untraceable(
            f"{what} reads the value of a traced array as a Python number: the compiled code "
            "cannot depend on it"
        )

    def __float__(self) -> float:
        return self._read("float()")  # type: ignore[no-any-return]

    def __int__(self) -> int:
        return self._read("int()")  # type: ignore[no-any-return]

    def __index__(self) -> int:
        return self._read("using it as an index")  # type: ignore[no-any-return]

    def item(self, *args: Any) -> Any:
        return self._read(".item()")

    def tolist(self) -> Any:
        return self._read(".tolist()")

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))


# Functions whose result's shape depends on the values, not only the shapes, of their input.
_VALUE_SHAPED = {"nonzero", "flatnonzero", "argwhere", "unique", "compress", "extract"}


def _refuse_shape_from_values(name: str, args: Any, kwargs: Any) -> None:
    single_where = name == "where" and len(args) == 1 and not kwargs
    if (name in _VALUE_SHAPED or single_where) and _find_recorder(args) is not None:
        raise Untraceable(f"{name} of a traced array: the result's shape depends on the values")


def _refuse_value_shaped(what: str, items: Any) -> None:
    """Refuse a boolean mask computed from traced values (its count of True is data)."""
    for item in items:
        if isinstance(item, tuple):
            _refuse_value_shaped(what, item)
        elif isinstance(item, Tracer) and item.dtype == np.bool_:
            raise Untraceable(f"{what} computed from traced values: the result's shape "
                              "depends on how many entries are True")  # fmt: skip


_IN_PLACE_METHODS = {"fill", "sort", "put", "resize", "partition", "itemset", "setfield"}


class _TracedFunction:
    """``xp.<name>`` while tracing: calls NumPy's function and records it."""

    __slots__ = ("name", "func", "rec")

    def __init__(self, name: str, func: Any, rec: Recorder) -> None:
        self.name, self.func, self.rec = name, func, rec

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _refuse_shape_from_values(self.name, args, kwargs)
        if self.name == "asarray" and args and isinstance(args[0], Tracer):
            dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
            if dtype is None or np.dtype(dtype) == args[0].dtype:
                return args[0]  # already an array of this module
        out = kwargs.get("out")
        if out is not None:  # a ufunc writing in place
            out = out[0] if isinstance(out, tuple) else out
            if isinstance(out, Tracer):
                return out.__array_ufunc__(self.func, "__call__", *args, **kwargs)
            if _find_recorder(args) is not None:  # would freeze a traced value into it
                raise Untraceable(f"{self.name} writes into an array that is not traced")
        result = self.func(*_concrete(args), **_concrete(kwargs))
        if isinstance(result, (tuple, list)) and any(isinstance(r, np.ndarray) for r in result):
            raise Untraceable(f"{self.name} returns several arrays")
        if not isinstance(result, (np.ndarray, np.generic)) or isinstance(result, np.dtype):
            return result  # np.result_type, np.ndim...: not an array
        return self.rec.record("xp", self.name, args, kwargs, result)

    def __getattr__(self, method: str) -> Any:  # xp.add.at, xp.maximum.reduce
        if not isinstance(self.func, np.ufunc):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            tracer = next((a for a in args if isinstance(a, Tracer)), None)
            if tracer is None:
                return getattr(self.func, method)(*args, **kwargs)
            return tracer.__array_ufunc__(self.func, method, *args, **kwargs)

        return call


class TracingNumPy:
    """An array module for :class:`~tapegrad.backend.Backend` that records what it does:
    ``xp.zeros(...)``, ``xp.exp(a)`` and the rest return tracers. Types, constants and
    helpers (``xp.float32``, ``xp.newaxis``, ``xp.result_type``) are NumPy's own."""

    def __init__(self, rec: Recorder, module: Any = np, prefix: str = "") -> None:
        self._rec, self._module, self._prefix = rec, module, prefix
        self.__name__ = "numpy"

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._module, name)
        if isinstance(attr, type(np)):
            if name == "random":
                raise Untraceable("draw random numbers with tapegrad.random, not xp.random")
            return TracingNumPy(self._rec, attr, f"{self._prefix}{name}.")
        if isinstance(attr, type) or not callable(attr):
            return attr
        return _TracedFunction(self._prefix + name, attr, self._rec)


# ------------------------------------------------------------------------------- emitting


_INFIX = {
    "add": "+", "subtract": "-", "multiply": "*", "true_divide": "/", "divide": "/",
    "matmul": "@", "power": "**", "greater": ">", "less": "<", "greater_equal": ">=",
    "less_equal": "<=", "equal": "==", "not_equal": "!=",
}  # fmt: skip


class Source:
    """Renders arguments as Python source, naming the constants the code needs."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self._names: dict[int, str] = {}

    def constant(self, obj: Any) -> str:
        name = self._names.get(id(obj))
        if name is None:
            name = self._names[id(obj)] = f"c{len(self.constants)}"
            self.constants[name] = obj
        return name

    def arg(self, obj: Any) -> str:
        if isinstance(obj, Value):
            return self.constant(obj.concrete) if obj.kind == "constant" else obj.name
        if obj is None or obj is Ellipsis or isinstance(obj, (bool, str)):
            return repr(obj)
        if isinstance(obj, (int, np.integer)):
            return repr(int(obj))
        if isinstance(obj, (float, np.floating)) and np.isfinite(obj):
            return repr(float(obj))
        if isinstance(obj, tuple):
            inner = ", ".join(self.arg(o) for o in obj)
            return f"({inner},)" if len(obj) == 1 else f"({inner})"
        if isinstance(obj, list):
            return "[" + ", ".join(self.arg(o) for o in obj) + "]"
        if isinstance(obj, slice):
            return f"slice({self.arg(obj.start)}, {self.arg(obj.stop)}, {self.arg(obj.step)})"
        return self.constant(obj)  # dtypes, non-finite floats, anything else

    def call(self, ins: Instr) -> str:
        """The right-hand side of ``ins``."""
        args = [self.arg(a) for a in ins.args]
        kwargs = [f"{k}={self.arg(v)}" for k, v in ins.kwargs.items()]
        if ins.kind == "xp":
            if ins.name in _INFIX and len(args) == 2 and not kwargs:
                return f"{args[0]} {_INFIX[ins.name]} {args[1]}"
            if ins.name == "negative" and len(args) == 1 and not kwargs:
                return f"-{args[0]}"
            return f"xp.{ins.name}({', '.join(args + kwargs)})"
        if ins.kind == "ufunc":
            return f"xp.{ins.name}({', '.join(args + kwargs)})"
        if ins.kind == "method":
            return f"{args[0]}.{ins.name}({', '.join(args[1:] + kwargs)})"
        if ins.kind == "attr":
            return f"{args[0]}.{ins.name}"
        if ins.kind == "getitem":
            return f"{args[0]}[{args[1]}]"
        if ins.kind == "call":
            return f"{ins.name}({', '.join(args + kwargs)})"
        raise ValueError(f"cannot write an instruction of kind {ins.kind!r}")


def emit(
    program: Program,
    name: str,
    src: Source,
    guard_failure: str = "Diverged",
    fused: Callable[[Instr, Source], list[str]] | None = None,
) -> str:
    """Python source of ``def name(<inputs>): ...; return (<outputs>,)``."""
    lines = [f"def {name}({', '.join(v.name for v in program.inputs)}):"]
    for i, ins in enumerate(program.instrs):
        if ins.kind == "guard":
            test = "not " if ins.expected else ""
            lines.append(f"    if {test}{src.arg(ins.args[0])}:")
            lines.append(f"        raise {guard_failure}({i})")
            continue
        if ins.fused is not None:
            assert fused is not None
            lines += ["    " + line for line in fused(ins, src)]
            continue
        if ins.kind == "setitem":
            target, index, value = (src.arg(a) for a in ins.args)
            lines.append(f"    {target}[{index}] = {value}")
            if ins.out is not None:
                lines.append(f"    {ins.out.name} = {target}")
            continue
        rhs = src.call(ins)
        if ins.mutates is not None and not ins.kwargs.get("out"):  # xp.add.at, scatter_add
            lines.append(f"    {rhs}")
            if ins.out is not None:
                lines.append(f"    {ins.out.name} = {src.arg(ins.mutates)}")
            continue
        lines.append(f"    {ins.out.name if ins.out else '_'} = {rhs}")
    outs = ", ".join(src.arg(v) for v in program.outputs)
    lines.append(f"    return ({outs}{',' if len(program.outputs) == 1 else ''})")
    return "\n".join(lines) + "\n"
