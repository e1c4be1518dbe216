"""A register-blocked small matrix product, for layers too small for BLAS to pay off.

On a batch of 32 and layers 64 or 128 wide, OpenBLAS spends more time packing its
operands and starting up than multiplying (about 35 GFLOP/s on one core here, float32).
``tile`` keeps an ``R x (C V)`` block of the product in ``R * C`` vector registers (``V``
lanes of one AVX2 or AVX-512 register, see ``VECTOR_BYTES``) through the whole sum over ``k``:
each step loads ``C`` vectors of ``Q`` and broadcasts ``R`` scalars of ``P``, with no
packing.  Numba cannot express vector registers, so ``tile`` is written in LLVM IR
(a Numba intrinsic); ``product`` covers a whole matrix with it, one vector wide tiles
(``narrow_tile``) and partial ones (``edge_tile``) on the edges, and ``product_epilogue``
adds the bias and the ReLU as the tiles store (``tile_bias``).  Measured in
``benchmarks/scripts/bench_gemm.py``.  The same registers transpose blocks (``transpose``,
``gather_block``), for the weight gradients' deltas and the gathered batch.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import WIDE_VECTORS, njit

#: Vector bytes (``V`` = lanes: 8 or 16 float32), rows of a tile (broadcast scalars) and
#: vectors per row.  AVX2: 4 x 2 vectors of 32 bytes, 8 of its 16 registers holding sums.
#: AVX-512: 8 x 2 vectors of 64 bytes, 16 of its 32 registers holding sums: each step
#: loads 2 vectors and broadcasts 8 scalars for 16 multiply-adds, where one vector a row
#: (8 x 1, the shape before) needed 9 loads for 8, and the loads, not the FMA units, set
#: the pace.  What is left of a row of tiles, one vector wide, goes to ``narrow_tile``
#: (8 x 1), and the edges to ``edge_tile`` (one vector wide too), so a batch slice of 16
#: rows runs as it did.  Measured on an Intel Xeon with AVX-512 (2.6 GHz, 2 cores,
#: float32, one thread): the ``small`` workload's products 17-21% faster (64 -> 128 on
#: 32 rows: 3.53 against 4.20 us), its epoch 12-18% (1.22-1.29 against 1.42-1.50 ms, fits
#: of 50 epochs, alternated processes).  8 x 1 on AMD Zen 5 had measured 0.99 ms a
#: ``small`` epoch on one thread against 1.35 with the AVX2 shape.
VECTOR_BYTES, R, C = (64, 8, 2) if WIDE_VECTORS else (32, 4, 2)

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


class _LoopID(ir.values.MDValue):
    """A loop's ``llvm.loop`` metadata: a distinct node whose first operand is itself (the
    form LLVM requires), then the loop's properties (llvmlite writes neither)."""

    def descr(self, buf):
        ops = ", ".join([self.get_reference()] + [op.get_reference() for op in self.operands])
        buf += ("distinct !{{ {0} }}".format(ops), "\n")


def _no_unroll(module):
    """Metadata that keeps LLVM from unrolling a loop.  Unrolled four times, ``tile``'s loop
    wanted eight vectors of ``Q`` live besides the ``R * C`` sums: more than the 16 AVX2
    registers, so LLVM spilled and reloaded them on every pass (perf on the ``small``
    workload)."""
    prop = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    return _LoopID(module, [prop], name=str(len(module.metadata)))


def _int64_values(context, builder, sig, args):
    """An intrinsic's arguments, its integers cast to int64."""
    return [context.cast(builder, v, t, types.int64) if isinstance(t, types.Integer) else v
            for v, t in zip(args, sig.args)]


def _splat(builder, scalar, vty):
    """A vector of type ``vty`` holding ``scalar`` in every lane."""
    undef = ir.Constant(vty, ir.Undefined)
    first = builder.insert_element(undef, scalar, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, undef,
                                  ir.Constant(ir.VectorType(_I32, vty.count), [0] * vty.count))


def _tile_codegen(dtype, partial, epilogue, vectors):
    """Codegen of ``tile`` (``partial`` False) or ``edge_tile`` (True), with the arguments of
    an epilogue or without (``epilogue``): an ``R x (vectors V)`` block of the product summed
    in ``R * vectors`` vector registers (see ``tile``; ``vectors``: ``C``, or 1 for the
    narrow and the edge tiles)."""
    def codegen(context, builder, sig, args):
        values = _int64_values(context, builder, sig, args)
        P_v, p0_v, sk_v, si_v, Q_v, q0_v, ldq_v, Z_v, z0_v, ldz_v, K_v = values[:11]
        rest = values[11:]
        if epilogue:
            B_v, b0_v, act_v = rest[:3]
            rest = rest[3:]
        fty = context.get_value_type(dtype)
        lanes = VECTOR_BYTES // (4 if dtype == types.float32 else 8)
        vty = ir.VectorType(fty, lanes)
        fma = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3),
            "llvm.fma.v%d%s" % (lanes, "f32" if dtype == types.float32 else "f64"))

        def base(ty, value, offset):
            return builder.gep(context.make_array(ty)(context, builder, value).data, [offset])

        def const(v):
            return ir.Constant(_I64, v)

        pp = base(sig.args[0], P_v, p0_v)
        qp = base(sig.args[4], Q_v, q0_v)
        zp = base(sig.args[7], Z_v, z0_v)
        if partial:
            # Row r of P, or past ``rows`` the last valid one (once, outside the loop).
            rows_v, cols_v = rest
            last = builder.sub(rows_v, const(1))
            row_index = [builder.select(builder.icmp_signed("<", const(r), rows_v), const(r),
                                        last) for r in range(R)]
            p_row = [builder.mul(v, si_v) for v in row_index]
        else:
            row_index = [const(r) for r in range(R)]
        zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * lanes)
        entry = builder.basic_block
        loop = builder.append_basic_block("tile.loop")
        done = builder.append_basic_block("tile.done")
        builder.branch(loop)

        builder.position_at_end(loop)
        k = builder.phi(_I64)
        k.add_incoming(const(0), entry)
        acc = [[builder.phi(vty) for c in range(vectors)] for r in range(R)]
        for row in acc:
            for a in row:
                a.add_incoming(zero, entry)
        qk = builder.gep(qp, [builder.mul(k, ldq_v)])
        q = [builder.load(builder.bitcast(builder.gep(qk, [const(c * lanes)]), vty.as_pointer()),
                          align=1) for c in range(vectors)]
        pk = builder.gep(pp, [builder.mul(k, sk_v)])
        nxt = []
        for r in range(R):
            offset = p_row[r] if partial else builder.mul(const(r), si_v)
            b = _splat(builder, builder.load(builder.gep(pk, [offset])), vty)
            nxt.append([builder.call(fma, [b, q[c], acc[r][c]]) for c in range(vectors)])
        k1 = builder.add(k, const(1))
        k.add_incoming(k1, loop)
        for r in range(R):
            for c in range(vectors):
                acc[r][c].add_incoming(nxt[r][c], loop)
        br = builder.cbranch(builder.icmp_signed("<", k1, K_v), loop, done)
        br.set_metadata("llvm.loop", _no_unroll(builder.module))

        builder.position_at_end(done)
        if epilogue:
            nxt = _bias_activation(context, builder, sig, nxt, B_v, b0_v, act_v, row_index,
                                   vty)
        for r in range(R):
            zr = builder.gep(zp, [builder.mul(const(r), ldz_v)])
            if not partial:
                for c in range(vectors):
                    builder.store(nxt[r][c], builder.bitcast(
                        builder.gep(zr, [const(c * lanes)]), vty.as_pointer()), align=1)
                continue
            # The valid rows and columns only, one value at a time.
            with builder.if_then(builder.icmp_signed("<", const(r), rows_v)):
                for c in range(vectors):
                    for l in range(lanes):
                        col = c * lanes + l
                        with builder.if_then(builder.icmp_signed("<", const(col), cols_v)):
                            builder.store(builder.extract_element(nxt[r][c], ir.Constant(_I32, l)),
                                          builder.gep(zr, [const(col)]))
        return context.get_dummy_value()

    return codegen


def _bias_activation(context, builder, sig, sums, B_v, b0_v, act_v, row, vty):
    """A tile's sums ``sums[r][c]`` after ``act`` (``BIAS`` or ``BIAS_RELU``):
    row ``r`` plus ``B[b0 + row[r]]``, then ``max(x, 0)`` as Numba's ``max`` takes it
    (``0 > x ? 0 : x``: NaN stays NaN).  The same arithmetic as ``dense.finish_rows`` after
    the product, without a second pass over the block."""
    bp = builder.gep(context.make_array(sig.args[11])(context, builder, B_v).data, [b0_v])
    zero = ir.Constant(vty, [ir.Constant(vty.element, 0.0)] * vty.count)
    relu = builder.icmp_signed("==", act_v, ir.Constant(_I64, BIAS_RELU))
    done = []
    for r, row_sums in enumerate(sums):
        bv = _splat(builder, builder.load(builder.gep(bp, [row[r]])), vty)
        out = []
        for v in row_sums:
            x = builder.fadd(v, bv)
            cut = builder.select(builder.fcmp_ordered(">", zero, x), zero, x)
            out.append(builder.select(relu, cut, x))
        done.append(out)
    return done


def _float_arrays(*arrays):
    """The dtype shared by these 1-D float32 or float64 arrays, or None."""
    if not all(isinstance(x, types.Array) and x.ndim == 1 for x in arrays):
        return None
    dtype = arrays[0].dtype
    if dtype not in (types.float32, types.float64) or any(x.dtype != dtype for x in arrays):
        return None
    return dtype


def _tile_types(P, Q, Z, integers, B):
    """The float dtype of a tile's arrays, or None when the arguments do not fit."""
    dtype = _float_arrays(Z, P, Q, B)
    if dtype is None or not all(isinstance(x, types.Integer) for x in integers):
        return None
    return dtype


#: What ``tile_bias`` does to its sums before it stores them (``act``): add the bias
#: ``B[b0 + r]`` to row ``r``; add it and apply the ReLU.
BIAS, BIAS_RELU = 1, 2


@intrinsic
def tile(typingctx, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K):
    """``Z[z0 + r ldz + c] = sum_k P[p0 + k sk + r si] * Q[q0 + k ldq + c]`` for ``r < R``,
    ``c < C V``, ``k < K`` (``K`` >= 1; 1-D arrays of one float dtype, int64 offsets)."""
    dtype = _tile_types(P, Q, Z, (p0, sk, si, q0, ldq, z0, ldz, K), P)
    if dtype is None:
        return None
    return (types.void(P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K),
            _tile_codegen(dtype, False, False, C))


@intrinsic
def narrow_tile(typingctx, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K):
    """``tile`` one vector wide (``c < V``), for what is left of a row of tiles."""
    dtype = _tile_types(P, Q, Z, (p0, sk, si, q0, ldq, z0, ldz, K), P)
    if dtype is None:
        return None
    return (types.void(P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K),
            _tile_codegen(dtype, False, False, 1))


@intrinsic
def tile_bias(typingctx, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, B, b0, act):
    """``tile``, then the epilogue ``act`` (``BIAS`` or ``BIAS_RELU``) with the biases
    ``B[b0:]``.  (Separate intrinsics: a tile with the epilogue's arguments but none to
    apply ran 10-30% slower, its loop short of registers for its row addresses.)"""
    dtype = _tile_types(P, Q, Z, (p0, sk, si, q0, ldq, z0, ldz, K, b0, act), B)
    if dtype is None:
        return None
    return (types.void(P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, B, b0, act),
            _tile_codegen(dtype, False, True, C))


@intrinsic
def narrow_tile_bias(typingctx, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, B, b0, act):
    """``narrow_tile`` with ``tile_bias``'s epilogue."""
    dtype = _tile_types(P, Q, Z, (p0, sk, si, q0, ldq, z0, ldz, K, b0, act), B)
    if dtype is None:
        return None
    return (types.void(P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, B, b0, act),
            _tile_codegen(dtype, False, True, 1))


@intrinsic
def edge_tile(typingctx, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, rows, cols):
    """``narrow_tile`` for ``r < rows`` and ``c < cols`` only (``1 <= rows <= R``,
    ``1 <= cols <= V``): the sums run over a whole tile, rows past ``rows`` repeating the
    last one (``P`` is read only where it is valid) and not stored; ``Q`` is read in whole
    vectors, up to ``V - 1`` values past column ``cols`` (the caller keeps that much
    readable: see ``product``), and only the first ``cols`` columns are stored, one value at
    a time.  (A separate intrinsic: the row clamps and the checks cost a whole tile about
    20% at ``K`` = 16.)"""
    dtype = _tile_types(P, Q, Z, (p0, sk, si, q0, ldq, z0, ldz, K, rows, cols), P)
    if dtype is None:
        return None
    return (types.void(P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, rows, cols),
            _tile_codegen(dtype, True, False, 1))


@intrinsic
def edge_tile_bias(typingctx, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, B, b0, act, rows,
                   cols):
    """``edge_tile`` with ``tile_bias``'s epilogue."""
    dtype = _tile_types(P, Q, Z, (p0, sk, si, q0, ldq, z0, ldz, K, b0, act, rows, cols), B)
    if dtype is None:
        return None
    return (types.void(P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, K, B, b0, act, rows, cols),
            _tile_codegen(dtype, True, True, 1))


@njit
def product(m, n, K, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz):
    """``Z[z0 + i ldz + b] = sum_k P[p0 + k sk + i si] * Q[q0 + k ldq + b]`` for ``i < m``,
    ``b < n``, ``k < K``: a row-major ``m x n`` product whose right operand ``Q`` (``K x n``)
    has unit stride along ``b`` and whose left one is ``P`` (``m x K``, ``sk`` = 1) or its
    transpose (``K x m``, ``si`` = 1), all in tiles, the edges in partial ones.

    ``Q`` must stay readable for ``TILE_READ_PAST`` values past
    ``Q[q0 + (K - 1) ldq + n - 1]`` (a tile loads whole vectors; what it reads past ``n`` is
    not used).  Partial tiles (``edge_tile``) replaced BLAS calls on the edges: the ``small``
    workload's 10-wide output layer made two of them a batch, 0.27 and 0.38 us against
    0.17 and 0.23 with partial tiles."""
    lanes = VECTOR_BYTES // Z.itemsize
    wide = n - n % (C * lanes)
    n_full = n - n % lanes
    m_full = m - m % R
    for i in range(0, m_full, R):
        for b in range(0, wide, C * lanes):
            tile(P, p0 + i * si, sk, si, Q, q0 + b, ldq, Z, z0 + i * ldz + b, ldz, K)
        for b in range(wide, n_full, lanes):
            narrow_tile(P, p0 + i * si, sk, si, Q, q0 + b, ldq, Z, z0 + i * ldz + b, ldz, K)
        if n_full < n:
            edge_tile(P, p0 + i * si, sk, si, Q, q0 + n_full, ldq, Z, z0 + i * ldz + n_full,
                      ldz, K, R, n - n_full)
    if m_full < m:
        for b in range(0, n, lanes):
            edge_tile(P, p0 + m_full * si, sk, si, Q, q0 + b, ldq, Z, z0 + m_full * ldz + b,
                      ldz, K, m - m_full, min(lanes, n - b))


@njit
def product_epilogue(m, n, K, P, p0, sk, si, Q, q0, ldq, Z, z0, ldz, B, b0, act):
    """``product``, then row ``i`` of ``Z`` plus ``B[b0 + i]``, and the ReLU when ``act`` is
    ``BIAS_RELU``, in the tiles' stores (``tile_bias``)."""
    lanes = VECTOR_BYTES // Z.itemsize
    wide = n - n % (C * lanes)
    n_full = n - n % lanes
    m_full = m - m % R
    for i in range(0, m_full, R):
        for b in range(0, wide, C * lanes):
            tile_bias(P, p0 + i * si, sk, si, Q, q0 + b, ldq, Z, z0 + i * ldz + b, ldz, K, B,
                      b0 + i, act)
        for b in range(wide, n_full, lanes):
            narrow_tile_bias(P, p0 + i * si, sk, si, Q, q0 + b, ldq, Z, z0 + i * ldz + b, ldz,
                             K, B, b0 + i, act)
        if n_full < n:
            edge_tile_bias(P, p0 + i * si, sk, si, Q, q0 + n_full, ldq, Z,
                           z0 + i * ldz + n_full, ldz, K, B, b0 + i, act, R, n - n_full)
    if m_full < m:
        for b in range(0, n, lanes):
            edge_tile_bias(P, p0 + m_full * si, sk, si, Q, q0 + b, ldq, Z,
                           z0 + m_full * ldz + b, ldz, K, B, b0 + m_full, act, m - m_full,
                           min(lanes, n - b))


def _transpose_rows(builder, rows, lanes):
    """The ``lanes`` vectors ``rows`` (a ``lanes x lanes`` block, one row each) transposed:
    each of the ``log2 lanes`` rounds exchanges one bit of the row index with the same bit
    of the lane index, pairing rows ``i`` and ``i + s`` (``s`` that bit) with two
    two-source shuffles; after every bit, ``(r, c)`` sits at ``(c, r)``."""
    rows = list(rows)
    s = lanes // 2
    while s >= 1:
        low = ir.Constant(ir.VectorType(_I32, lanes),
                          [l if l & s == 0 else lanes + l - s for l in range(lanes)])
        high = ir.Constant(ir.VectorType(_I32, lanes),
                           [l + s if l & s == 0 else lanes + l for l in range(lanes)])
        for i in range(lanes):
            if i & s == 0:
                a, b = rows[i], rows[i + s]
                rows[i] = builder.shuffle_vector(a, b, low)
                rows[i + s] = builder.shuffle_vector(a, b, high)
        s //= 2
    return rows


def _block_codegen(dtype, row_offset):
    """Codegen of a ``V x V`` register transpose whose source row ``r`` starts at
    ``row_offset(builder, context, sig, values, r)`` in ``S`` (the first argument; ``values``:
    the arguments, integers as int64); ``D``, ``d0``, ``ldd`` are the last three."""
    def codegen(context, builder, sig, args):
        values = _int64_values(context, builder, sig, args)
        lanes = VECTOR_BYTES // (4 if dtype == types.float32 else 8)
        vty = ir.VectorType(context.get_value_type(dtype), lanes)

        def data(i):
            return context.make_array(sig.args[i])(context, builder, values[i]).data

        src, dst = data(0), builder.gep(data(len(args) - 3), [values[-2]])
        rows = [builder.load(builder.bitcast(
            builder.gep(src, [row_offset(builder, context, sig, values, r)]),
            vty.as_pointer()), align=1) for r in range(lanes)]
        for c, row in enumerate(_transpose_rows(builder, rows, lanes)):
            builder.store(row, builder.bitcast(
                builder.gep(dst, [builder.mul(ir.Constant(_I64, c), values[-1])]),
                vty.as_pointer()), align=1)
        return context.get_dummy_value()

    return codegen


@intrinsic
def transpose_block(typingctx, S, s0, lds, D, d0, ldd):
    """``D[d0 + c ldd + r] = S[s0 + r lds + c]`` for ``r, c < V``, the lanes of one vector
    (1-D arrays of one float dtype, int64 offsets): a ``V x V`` block transposed in
    registers, its ``V`` rows loaded and stored whole (``_transpose_rows``)."""
    dtype = _float_arrays(S, D)
    if dtype is None or not all(isinstance(x, types.Integer) for x in (s0, lds, d0, ldd)):
        return None

    def row_offset(builder, context, sig, values, r):
        return builder.add(values[1], builder.mul(ir.Constant(_I64, r), values[2]))

    return types.void(S, s0, lds, D, d0, ldd), _block_codegen(dtype, row_offset)


@intrinsic
def gather_block(typingctx, S, rows, r0, width, c0, D, d0, ldd):
    """``D[d0 + c ldd + b] = S[rows[r0 + b] width + c0 + c]`` for ``b, c < V``: columns
    ``c0:c0+V`` of ``V`` rows of a row-major matrix (``S`` flat, ``width`` values a row;
    ``rows`` int64) gathered and transposed in registers (``_transpose_rows``)."""
    dtype = _float_arrays(S, D)
    if dtype is None or not (isinstance(rows, types.Array) and rows.ndim == 1
                             and rows.dtype == types.int64):
        return None
    if not all(isinstance(x, types.Integer) for x in (r0, width, c0, d0, ldd)):
        return None

    def row_offset(builder, context, sig, values, r):
        index = context.make_array(sig.args[1])(context, builder, values[1]).data
        row = builder.load(builder.gep(index, [builder.add(values[2], ir.Constant(_I64, r))]))
        return builder.add(builder.mul(row, values[3]), values[4])

    return (types.void(S, rows, r0, width, c0, D, d0, ldd),
            _block_codegen(dtype, row_offset))


@njit
def transpose(m, n, S, s0, lds, D, d0, ldd):
    """``D[d0 + c ldd + r] = S[s0 + r lds + c]`` for ``r < m``, ``c < n``: an ``m x n``
    row-major block transposed, whole ``V x V`` blocks in registers (``transpose_block``),
    the edges element by element.  The element loop (a store every ``ldd`` values) took 2.6%
    of the ``small`` workload's time, transposing its deltas for the weight gradients."""
    v = VECTOR_BYTES // D.itemsize
    m_full = m - m % v
    n_full = n - n % v
    for r in range(0, m_full, v):
        for c in range(0, n_full, v):
            transpose_block(S, s0 + r * lds + c, lds, D, d0 + c * ldd + r, ldd)
    if n_full < n:  # the last columns of the whole row blocks
        for r in range(m_full):
            for c in range(n_full, n):
                D[d0 + c * ldd + r] = S[s0 + r * lds + c]
    for r in range(m_full, m):  # the last rows, whole
        src = S[s0 + r * lds:s0 + r * lds + n]
        for c in range(n):
            D[d0 + c * ldd + r] = src[c]
