"""Atomic int64 loads and stores, and integer-to-pointer casts, for Numba code.

The audio callback shares indices with Python threads without locks: a value is written,
then the index that publishes it is stored with release ordering; the other side loads
the index with acquire ordering before it reads the value. Numba has no such primitive,
so these intrinsics emit LLVM's atomic load/store directly.
"""

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def load_acquire(typingctx, arr, idx):
    """arr[idx] of an int64 array, loaded with acquire ordering."""
    sig = types.int64(arr, idx)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return sig, codegen


@intrinsic
def store_release(typingctx, arr, idx, value):
    """arr[idx] = value for an int64 array, stored with release ordering."""
    sig = types.void(arr, idx, value)

    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False)
        val = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(val, ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def as_pointer(typingctx, addr):
    """A void pointer from an integer address (for numba.carray in a cfunc)."""
    sig = types.voidptr(addr)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.voidptr))

    return sig, codegen


@intrinsic
def typed_pointer(typingctx, addr, dtype):
    """A pointer to dtype (a Numba type, e.g. a record) from an integer address, for
    numba.carray in a cfunc (carray takes no record dtype with a void pointer)."""
    ptr = types.CPointer(dtype.instance_type)
    sig = ptr(addr, dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr))

    return sig, codegen


@intrinsic
def fence_acquire(typingctx):
    """An acquire fence: loads before it complete before loads after it (seqlock readers)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("acquire")
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def fence_release(typingctx):
    """A release fence: stores before it are visible before stores after it (a writer that
    fills values, then publishes the counter that says they are ready)."""
    sig = types.void()

    def codegen(context, builder, signature, args):
        builder.fence("release")
        return context.get_dummy_value()

    return sig, codegen
