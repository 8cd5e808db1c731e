"""Fixed-size scratch arrays on the stack of a compiled function.

Callbacks run once per patch, millions of times; allocating their scratch with
``np.empty`` would cost a heap allocation per patch, and a scratch array passed through
``args`` would be shared by all threads. :func:`stack_array` gives a compiled function a
private buffer of compile-time size in its own stack frame instead: free to create,
thread-private, and small enough for LLVM to keep in registers when it can.

The buffer lives as long as the function that creates it: never return it or store it.
"""

from __future__ import annotations

from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def stack_pointer(typingctx, size, dtype):
    """Pointer to ``size`` uninitialised elements on the caller's stack.

    ``size`` must be a compile-time constant; ``dtype`` is a numpy scalar type
    (``np.float32``) or an array, whose element type is then used.
    """
    if not isinstance(size, types.IntegerLiteral):
        return None  # numba retries with literal argument types, or reports the error
    if isinstance(dtype, types.NumberClass):
        elt = dtype.instance_type
    elif isinstance(dtype, types.Array):
        elt = dtype.dtype
    else:
        return None
    count = size.literal_value
    if count < 1:
        return None

    def codegen(context, builder, signature, args):
        n = context.get_constant(types.intp, count)
        # alloca_once puts the alloca in the entry block: one static slot per frame,
        # not one per loop iteration.
        return cgutils.alloca_once(builder, context.get_data_type(elt), size=n)

    return types.CPointer(elt)(size, dtype), codegen


def make_stack_array(shape: tuple[int, ...], dtype):
    """A jitted ``f() -> array`` that returns a C-contiguous stack buffer of ``shape``.

    The returned function is inlined at numba IR level, so that the buffer lives in
    the frame of the function that calls it. For a buffer whose element type follows
    an argument, call ``carray(stack_pointer(size, array), shape)`` directly.
    """
    shape = tuple(int(s) for s in shape)
    size = 1
    for s in shape:
        size *= s

    @njit(inline="always")
    def stack_array():
        return carray(stack_pointer(size, dtype), shape)

    return stack_array
