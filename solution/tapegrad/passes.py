"""Optimisation passes over a :class:`~tapegrad.program.Program`, each a function that
rewrites it in place and keeps what it computes:

* :func:`fold_constants`: an operation on constants only (``ones_like`` of an input's shape,
  a number lifted to an array) is done once, at compile time;
* :func:`eliminate_dead_values`: an operation nothing uses is dropped;
* :func:`fuse_elementwise`: a chain of elementwise operations, each result used once by the
  next, becomes one operation (on CuPy one ``ElementwiseKernel``; on NumPy the chain runs in
  one buffer);
* :func:`reuse_buffers`: an elementwise operation writes into an operand that is never read
  again (``out=``) instead of allocating a new array.

:data:`PASSES` lists them in the order :func:`tapegrad.compile` runs them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .program import Instr, Program, Value

__all__ = ["PASSES", "eliminate_dead_values", "fold_constants", "fuse_elementwise", "reuse_buffers"]

# Functions whose result depends only on the shape and dtype of their array argument.
_SHAPE_ONLY = {"ones_like", "zeros_like", "full_like"}


def _has_effect(ins: Instr) -> bool:
    """An instruction that must run even if nothing reads its result: a guard, a random
    draw (it moves the generator on), or a write into an input's memory (a buffer)."""
    if ins.kind == "guard" or (ins.kind == "call" and ins.name == "draw"):
        return True
    return ins.mutates is not None and ins.mutates.owner.kind == "input"


def eliminate_dead_values(program: Program) -> None:
    """Drop every instruction whose result no output depends on.

    Walk the instructions backwards, keeping the set of values still needed (the outputs to
    start with): an instruction is kept when its result is needed or it has an effect
    (:func:`_has_effect`), and then everything it reads is needed too. A write into an array
    (``mutates``) is needed when anything sharing that array's memory is: keep a second set,
    of the memory owners (``value.owner``) of the needed values, beside the first.
    """
    ### BEGIN SOLUTION hw4
    needed = {id(v) for v in program.outputs}
    needed_memory = {id(v.owner) for v in program.outputs}
    kept: list[Instr] = []
    for ins in reversed(program.instrs):
        keep = _has_effect(ins) or (ins.out is not None and id(ins.out) in needed)
        if ins.mutates is not None and id(ins.mutates.owner) in needed_memory:
            keep = True
        if not keep:
            continue
        kept.append(ins)
        for v in ins.values():
            needed.add(id(v))
            needed_memory.add(id(v.owner))
    kept.reverse()
    program.instrs[:] = kept
    ### END SOLUTION


def fold_constants(program: Program) -> None:
    """Compute at compile time what depends on constants only.

    An instruction folds when it has no effect, reads no value other than constants (or only
    the shape of one, for ``ones_like``, ``zeros_like`` and ``full_like``), and nothing later
    writes into its result. Its result, already computed by the trace (``out.concrete``),
    becomes a constant.
    """
    written = {id(ins.mutates.owner) for ins in program.instrs if ins.mutates is not None}
    kept: list[Instr] = []
    for ins in program.instrs:
        out = ins.out
        reads = list(ins.values())
        if ins.kind == "xp" and ins.name in _SHAPE_ONLY:
            reads = reads[1:]
        foldable = (
            out is not None
            and ins.mutates is None
            and not _has_effect(ins)
            and ins.kind != "call"
            and all(v.kind == "constant" for v in reads)
            and id(out.owner) not in written
            and isinstance(out.concrete, (np.ndarray, np.generic))
        )
        if not foldable:
            kept.append(ins)
            continue
        assert out is not None
        out.kind, out.instr, out.base = "constant", None, None
        out.concrete = np.array(out.concrete)  # its own copy: never a view of another value
    program.instrs[:] = kept


# Elementwise ufuncs a fused chain may contain, with their C form (for CuPy's kernels).
C_FORMS = {
    "add": "({0} + {1})", "subtract": "({0} - {1})", "multiply": "({0} * {1})",
    "true_divide": "({0} / {1})", "divide": "({0} / {1})", "negative": "(-{0})",
    "exp": "exp({0})", "log": "log({0})", "sqrt": "sqrt({0})", "tanh": "tanh({0})",
    "sin": "sin({0})", "cos": "cos({0})", "absolute": "abs({0})", "square": "({0} * {0})",
    "maximum": "max({0}, {1})", "minimum": "min({0}, {1})", "power": "pow({0}, {1})",
}  # fmt: skip


def _fusable(ins: Instr) -> bool:
    """An elementwise ufunc with a C form, producing an array (a 0-d result is a NumPy
    scalar at run time, which nothing can be written into)."""
    return ins.elementwise and ins.name in C_FORMS and ins.out is not None and bool(ins.out.shape)


def fuse_elementwise(program: Program) -> None:
    """Merge elementwise operations into fused instructions, each computing a small tree of
    them in one go (``exp(tanh(x) * 2 + 1)``, ``sqrt(x * x + 1) - sin(y) * cos(x)``).

    A fusable instruction joins the groups that produced its operands when each such operand
    is read by it alone, has its shape and dtype, is not an output, and no write into memory
    happened since the group began. The fused instruction takes the place of its last member
    (the root of the tree), reads the group's outside operands and produces the root's result.
    """
    last = program.uses()
    reads: dict[int, int] = {}
    for ins in program.instrs:
        for v in ins.values():
            reads[id(v)] = reads.get(id(v), 0) + 1
    outputs = {id(v) for v in program.outputs}
    groups: dict[int, list[Instr]] = {}  # id(a group's root result) -> the group, in order
    member_of: dict[int, list[Instr]] = {}  # id(instruction) -> its group
    position = {id(ins): i for i, ins in enumerate(program.instrs)}
    for ins in program.instrs:
        if ins.mutates is not None:
            groups.clear()  # no group reaches across a write
        if not _fusable(ins):
            continue
        assert ins.out is not None
        joined: list[Instr] = []
        for v in ins.values():
            held = groups.get(id(v))
            if (
                held is not None
                and reads.get(id(v)) == 1
                and last.get(id(v)) != len(program.instrs)
                and id(v) not in outputs
                and v.shape == ins.out.shape
                and v.dtype == ins.out.dtype
            ):
                del groups[id(v)]
                joined += held
        group = sorted(joined, key=lambda m: position[id(m)]) + [ins]
        for member in group:
            member_of[id(member)] = group
        groups[id(ins.out)] = group
    rewritten: list[Instr] = []
    for ins in program.instrs:
        found = member_of.get(id(ins))
        if found is None:
            rewritten.append(ins)
        elif found[-1] is ins:  # a group runs where its root ran
            rewritten.append(_fused(found))
    program.instrs[:] = rewritten


def _fused(chain: list[Instr]) -> Instr:
    if len(chain) == 1:
        return chain[0]
    inside = {id(ins.out) for ins in chain}
    operands: list[Value] = []
    for ins in chain:
        for v in ins.values():
            scalar = v.kind == "constant" and v.shape == ()  # written into the kernel's code
            if id(v) not in inside and not scalar and all(v is not o for o in operands):
                operands.append(v)
    return Instr("fused", "+".join(i.name for i in chain), tuple(operands), out=chain[-1].out,
                 fused=chain)  # fmt: skip


def reuse_buffers(program: Program) -> None:
    """Let an elementwise operation write its result into an operand's array when that
    array (and every view of it) is never read again: ``xp.exp(v3, out=v3)``.

    Only arrays the program allocated itself qualify: not inputs, constants or views, not
    outputs (they outlive the call), of the result's shape and dtype.
    """
    last = program.uses()
    owner_last: dict[int, int] = {}  # id(owning value) -> last read of its memory
    for ins in program.instrs:
        for v in ins.values():
            key = id(v.owner)
            owner_last[key] = max(owner_last.get(key, -1), last[id(v)])
    returned = {id(v.owner) for v in program.outputs}
    given = {id(v.owner) for v in program.inputs}  # a saved value is the backward's input
    whole: set[int] = set()  # values that are a whole reused array (not a view of part of it)
    for i, ins in enumerate(program.instrs):
        target = ins.out
        if not (ins.elementwise or ins.fused is not None) or target is None:
            continue
        for v in ins.values():  # a fused group writes only its root's result into it
            o = v.owner
            if (
                (v is o or id(v) in whole)
                and id(o) not in given
                and o.kind == "op"
                and isinstance(o.concrete, np.ndarray)
                and target.shape
                and o.shape == v.shape == target.shape
                and o.dtype == target.dtype
                and id(o) not in returned
                and owner_last.get(id(o)) == i
            ):
                ins.kwargs["out"] = v
                after = max(owner_last.get(id(target), -1), last.get(id(target), -1))
                target.base = v
                whole.add(id(target))
                owner_last[id(o)] = max(i, after)
                break


PASSES: dict[str, Callable[[Program], None]] = {
    "fold": fold_constants,
    "dce": eliminate_dead_values,
    "fuse": fuse_elementwise,
    "reuse": reuse_buffers,
}
