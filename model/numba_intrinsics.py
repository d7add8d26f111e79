"""Machine operations the folded kernel needs and numba does not offer: a prefetch hint, bf16 -> fp32, int16 sums.

- :func:`prefetch` asks the CPU to start loading the cache line of
  ``array[index]`` (LLVM's ``llvm.prefetch``: read, keep in all cache
  levels). It changes no value; it lets the kernel ask for the table rows of
  words a few tokens ahead while it adds the current ones, so that cache misses
  overlap with arithmetic instead of stalling it.
- :func:`table_value` reads one table value as fp32: an fp32 table as it is,
  a bf16 table (stored as ``uint16`` bit patterns) widened exactly (bf16 is the
  top half of an fp32, so the widening is a shift and a bit cast, which LLVM
  vectorizes); an int8 table value sign-extended to int16.
- :func:`add_values` adds two table values in the kernel's accumulator type:
  fp32 as numba adds them, int16 as a plain 16-bit add. numba widens every
  integer sum to int64, which would leave four lanes per AVX2 instruction
  instead of sixteen; a window sum of int8 values never exceeds 4 * 127 in
  magnitude, so 16 bits hold it exactly.
- :func:`lowest_value` is the start of a running max: -inf in fp32, the
  smallest int16 in int16.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

#: bytes per cache line on x86-64 and the ARM server cores numba targets
CACHE_LINE_BYTES = 64


@intrinsic
def prefetch(typingctx, array, index):
    """Hint: bring the cache line of 1-D ``array[index]`` into cache. ``index`` must lie within the array."""
    if not isinstance(array, types.Array) or array.ndim != 1 or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        data = context.make_array(array_type)(context, builder, args[0])
        address = cgutils.get_item_pointer(context, builder, array_type, data, [args[1]], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        int32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, int32, int32, int32]), "llvm.prefetch.p0")
        # read (0), highest temporal locality (3), data cache (1)
        builder.call(hint, [builder.bitcast(address, byte_pointer), int32(0), int32(3), int32(1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@intrinsic
def bf16_bits_to_float32(typingctx, bits):
    """The fp32 whose top 16 bits are ``bits`` (a uint16 bf16 pattern) and whose low 16 bits are zero: exact."""
    if bits != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        int32 = ir.IntType(32)
        widened = builder.shl(builder.zext(args[0], int32), int32(16))
        return builder.bitcast(widened, ir.FloatType())

    return types.float32(bits), codegen


@intrinsic
def int8_to_int16(typingctx, value):
    """An int8 sign-extended to int16 (exact)."""
    if value != types.int8:
        return None

    def codegen(context, builder, signature, args):
        return builder.sext(args[0], ir.IntType(16))

    return types.int16(value), codegen


@intrinsic
def add_int16(typingctx, a, b):
    """``a + b`` in 16 bits (the caller keeps the sum within int16; numba would widen it to int64)."""
    if a != types.int16 or b != types.int16:
        return None

    def codegen(context, builder, signature, args):
        return builder.add(args[0], args[1])

    return types.int16(a, b), codegen


def table_value(table, index):
    """``table[index]`` in the kernel's accumulator type: fp32 for an fp32 table or a bf16 one stored as uint16,
    int16 for an int8 table (compiled code only)."""
    raise NotImplementedError("table_value is compiled by numba; call it from an njit function")


@overload(table_value, inline="always")
def _table_value(table, index):
    if table.dtype == types.float32:
        return lambda table, index: table[index]
    if table.dtype == types.uint16:
        return lambda table, index: bf16_bits_to_float32(table[index])
    if table.dtype == types.int8:
        return lambda table, index: int8_to_int16(table[index])
    return None


def add_values(a, b):
    """``a + b`` of two :func:`table_value` results, in their type: fp32 or int16 (compiled code only)."""
    raise NotImplementedError("add_values is compiled by numba; call it from an njit function")


@overload(add_values, inline="always")
def _add_values(a, b):
    if a == types.float32 and b == types.float32:
        return lambda a, b: a + b
    if a == types.int16 and b == types.int16:
        return lambda a, b: add_int16(a, b)
    return None


def lowest_value(array):
    """The start of a running max in ``array``'s type: -inf for fp32, -32768 for int16 (compiled code only)."""
    raise NotImplementedError("lowest_value is compiled by numba; call it from an njit function")


@overload(lowest_value, inline="always")
def _lowest_value(array):
    if array.dtype == types.float32:
        return lambda array: np.float32(-np.inf)
    if array.dtype == types.int16:
        return lambda array: np.int16(-32768)
    return None


def values_per_cache_line(table):
    """How many of ``table``'s values one cache line holds (compiled code only)."""
    raise NotImplementedError("values_per_cache_line is compiled by numba; call it from an njit function")


@overload(values_per_cache_line, inline="always")
def _values_per_cache_line(table):
    per_line = CACHE_LINE_BYTES * 8 // table.dtype.bitwidth
    return lambda table: per_line
