"""gsa.dsl: the variable parts of GSA written as plain Python functions.

A gsa op calls four user regions per element (dialects/GSAOps.td):

    role        Python signature                   MLIR block arguments
    activation  fn(x[, head]) -> float             (%x: f32, %head: index)
    weighting   fn(x[, head]) -> float             (%x: f32, %head: index)
    policy_fn   fn(mean, var, v_bar, t) -> float   (%mean, %var, %v_bar: f32, %t: index)
                (the real budget k_base * r_t)
    score_mod   fn(score, b, h, q_idx, kv_idx)     (%score: f32, %b, %h, %q_idx, %kv_idx: index)
                -> float

`trace(fn, role)` calls `fn` once with tracer objects in place of the
arguments. Every operation on a tracer (+ - * / // % **, unary -, abs,
comparisons, & | ^ ~, and the functions of this module) appends one or more
arith/math/gsa ops to the region, so the function's straight-line code
becomes the region's body. Floats are f32; `head`, `b`, `h`, `t`, `q_idx`,
`kv_idx` are `index` values with integer arithmetic (Python semantics for
// and %) that turn into f32 when mixed with floats or divided with /.

Python control flow cannot be traced: `if`, `while`, `and`/`or`/`not`,
`min`/`max` and anything else that asks a tracer for its truth value raise a
DSLError naming the function, the operation and the source line; use
`where(cond, a, b)`, `maximum`, `minimum` and `clamp` instead. The same
holds for conversions to Python numbers (float(), int(), the `math` module),
indexing, iteration, and numpy functions without a DSL counterpart.

Every function of this module also works on numbers and numpy arrays (it
computes with numpy then), so one Python function serves both as the traced
region and as its own float64 reference:

    def soft_cap(score, b, h, q_idx, kv_idx):
        return 30.0 * tanh(score / 30.0)

    trace(soft_cap, "score_mod").text     # the MLIR region
    soft_cap(np.array([50.0]), 0, 0, 3, 1)  # numpy: array([27.93...])

(On Python bools `~` is bitwise, ~True == -2: a function meant to run on
numbers too negates conditions with logical_not.)
"""

import builtins
import inspect
import linecache
import math
import numbers
import os

import numpy as np

__all__ = [
    "DSLError", "Region", "Tracer", "ROLES", "trace",
    "sigmoid", "exp", "log", "log1p", "tanh", "sqrt", "rsqrt", "sin", "cos",
    "abs", "floor", "ceil", "relu", "softplus", "maximum", "minimum", "clamp",
    "where", "logical_and", "logical_or", "logical_not", "to_float", "pow", "inf", "pi", "e",
]

F32, INDEX, I1 = "f32", "index", "i1"

# The signature of each region: block-argument names and types, and how many
# leading arguments a Python function may take (activations may ignore the
# head index, so `relu` or `lambda x: ...` serve as they are).
ROLES = {
    "activation": ((("x", F32), ("head", INDEX)), (1, 2)),
    "weighting": ((("x", F32), ("head", INDEX)), (1, 2)),
    "policy_fn": ((("mean", F32), ("var", F32), ("v_bar", F32), ("t", INDEX)), (4,)),
    "score_mod": ((("score", F32), ("b", INDEX), ("h", INDEX), ("q_idx", INDEX),
                   ("kv_idx", INDEX)), (5,)),
}

inf = math.inf
pi = math.pi
e = math.e


class DSLError(ValueError):
    """A function cannot be traced into a gsa region; the message names the
    function, the operation and the source line (file:line)."""


# ---------------------------------------------------------------------------
# Locating the user's code for error messages
# ---------------------------------------------------------------------------

_THIS_FILE = os.path.abspath(__file__)
_NUMPY_DIR = os.path.dirname(os.path.abspath(np.__file__))


def _user_site():
    """(file, line, source text) of the innermost frame outside this module
    and numpy: the line of the user's code that did the operation."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            path = os.path.abspath(frame.f_code.co_filename)
            if path != _THIS_FILE and not path.startswith(_NUMPY_DIR):
                line = frame.f_lineno
                return frame.f_code.co_filename, line, linecache.getline(
                    frame.f_code.co_filename, line).strip()
            frame = frame.f_back
        return "<unknown>", 0, ""
    finally:
        del frame


def _definition_site(fn):
    code = getattr(fn, "__code__", None)
    if code is None:
        return "<unknown>"
    return f"{code.co_filename}:{code.co_firstlineno}"


def _function_name(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# ---------------------------------------------------------------------------
# The trace: ops recorded while the user's function runs
# ---------------------------------------------------------------------------

class _Op:
    """One MLIR op with one result: `fmt` is its text after `%r = ` with
    {0}, {1}, ... standing for the operands' SSA names."""
    __slots__ = ("fmt", "operands")

    def __init__(self, fmt, operands):
        self.fmt, self.operands = fmt, operands


class _Trace:
    def __init__(self, role, fn):
        self.role, self.fn = role, fn
        self.ops = []
        self.constants = {}

    def describe(self):
        return f"{self.role} {_function_name(self.fn)!r} (defined at {_definition_site(self.fn)})"

    def error(self, what, hint=""):
        """A DSLError naming the function, the operation `what` and the
        user's source line."""
        file, line, source = _user_site()
        where_ = f"{file}:{line}" + (f": `{source}`" if source else "")
        return DSLError(f"gsa.dsl: {self.describe()}: {what} at {where_}"
                        + (f". {hint}" if hint else ""))

    def emit(self, type_, fmt, *operands):
        value = Tracer(self, type_, _Op(fmt, operands))
        self.ops.append(value)
        return value

    def constant(self, value, type_):
        if type_ == F32:
            key = (F32, np.float32(value).tobytes())
        else:
            key = (type_, int(value))
        if key not in self.constants:
            made = self.emit(type_, f"arith.constant {_literal(value, type_)}")
            made.constant = value
            self.constants[key] = made
        return self.constants[key]


def format_f32(value):
    """An f32 literal MLIR parses back to the same value: the shortest
    decimal that round-trips (always with a '.', which MLIR requires), or the
    bit pattern for infinities and NaN."""
    v = np.float32(value)
    if not np.isfinite(v):
        return "0x" + format(int(v.view(np.uint32)), "08X")
    return np.format_float_scientific(v, unique=True, trim="0")


def _literal(value, type_):
    if type_ == F32:
        return f"{format_f32(value)} : f32"
    if type_ == I1:
        return "true" if value else "false"
    return f"{int(value)} : index"


# ---------------------------------------------------------------------------
# Tracers
# ---------------------------------------------------------------------------

def _python_number(x):
    """x as a Python bool/int/float when it is a plain or numpy scalar, else None."""
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, numbers.Integral):
        return int(x)
    if isinstance(x, numbers.Real):
        return float(x)
    if isinstance(x, np.ndarray) and x.ndim == 0:
        return _python_number(x[()])
    return None


_CONTROL_FLOW_HINT = ("The function is traced once into MLIR, so Python cannot branch on "
                      "its values: use gsa.dsl.where(cond, a, b), maximum, minimum or clamp "
                      "(and & | ~ or logical_and, logical_or, logical_not instead of "
                      "and/or/not)")


class Tracer:
    """A value of the region being traced: an f32, an index or an i1
    (a comparison's result)."""
    __slots__ = ("trace", "type", "op", "arg_name", "constant")
    __hash__ = None  # == builds a comparison, so tracers are not hashable

    def __init__(self, trace, type_, op=None, arg_name=None, constant=None):
        self.trace, self.type, self.op, self.arg_name = trace, type_, op, arg_name
        self.constant = constant  # the Python value of an arith.constant, else None

    def __repr__(self):
        return f"<gsa.dsl tracer {self.arg_name or 'value'}: {self.type} in {self.trace.role}>"

    # Arithmetic ------------------------------------------------------------
    def __add__(self, other): return _arith("add", self, other)
    def __radd__(self, other): return _arith("add", other, self)
    def __sub__(self, other): return _arith("sub", self, other)
    def __rsub__(self, other): return _arith("sub", other, self)
    def __mul__(self, other): return _arith("mul", self, other)
    def __rmul__(self, other): return _arith("mul", other, self)
    def __truediv__(self, other): return _truediv(self, other)
    def __rtruediv__(self, other): return _truediv(other, self)
    def __floordiv__(self, other): return _floordiv(self, other)
    def __rfloordiv__(self, other): return _floordiv(other, self)
    def __mod__(self, other): return _mod(self, other)
    def __rmod__(self, other): return _mod(other, self)
    def __pow__(self, other): return _power(self, other)
    def __rpow__(self, other): return _power(other, self)
    def __neg__(self): return _negate(self)
    def __pos__(self): return self
    def __abs__(self): return abs_(self)
    def __floor__(self): return floor(self)
    def __ceil__(self): return ceil(self)

    # Comparisons and logic -------------------------------------------------
    def __lt__(self, other): return _compare("lt", self, other)
    def __le__(self, other): return _compare("le", self, other)
    def __gt__(self, other): return _compare("gt", self, other)
    def __ge__(self, other): return _compare("ge", self, other)
    def __eq__(self, other): return _compare("eq", self, other)
    def __ne__(self, other): return _compare("ne", self, other)
    def __and__(self, other): return _logic("and", self, other)
    def __rand__(self, other): return _logic("and", other, self)
    def __or__(self, other): return _logic("or", self, other)
    def __ror__(self, other): return _logic("or", other, self)
    def __xor__(self, other): return _logic("xor", self, other)
    def __rxor__(self, other): return _logic("xor", other, self)

    def __invert__(self):
        if self.type != I1:
            raise self.trace.error(f"'~' on a {self.type} value",
                                   "~ negates a condition; for numbers use -x")
        return self.trace.emit(I1, "arith.xori {0}, {1} : i1", self,
                               self.trace.constant(True, I1))

    # What cannot be traced -------------------------------------------------
    def __bool__(self):
        raise self.trace.error(
            "Python control flow on a traced value (bool() of a tracer: if, while, "
            "and/or/not, a conditional expression, min/max)", _CONTROL_FLOW_HINT)

    def _to_python(self, what):
        raise self.trace.error(
            f"converting a traced value to a Python number ({what}, or a math-module "
            "function such as math.sin)",
            "Use the gsa.dsl functions (gsa.dsl.exp, tanh, ...) and gsa.dsl.to_float")

    def __float__(self): self._to_python("float()")
    def __int__(self): self._to_python("int()")
    def __index__(self): self._to_python("use as an integer index")
    def __complex__(self): self._to_python("complex()")

    def __round__(self, ndigits=None):
        raise self.trace.error("round() of a traced value", "Use gsa.dsl.floor(x + 0.5)")

    def __trunc__(self):
        raise self.trace.error("math.trunc() of a traced value",
                               "Use gsa.dsl.where(x < 0, ceil(x), floor(x))")

    def __getitem__(self, key):
        raise self.trace.error("indexing a traced value (x[...])",
                               "Region arguments are scalars")

    def __setitem__(self, key, value):
        raise self.trace.error("item assignment on a traced value", "Region arguments are scalars")

    def __iter__(self):
        raise self.trace.error("iterating over a traced value", "Region arguments are scalars")

    def __len__(self):
        raise self.trace.error("len() of a traced value", "Region arguments are scalars")

    # numpy interoperability: np.exp(tracer), np.where(c, a, b), 2.0 * tracer
    # with numpy scalars, ... map to the DSL; anything else names itself.
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        handler = _UFUNCS.get(ufunc.__name__)
        if method != "__call__" or kwargs or handler is None:
            raise self.trace.error(f"numpy.{ufunc.__name__}"
                                   + (f".{method}" if method != "__call__" else "")
                                   + " on a traced value, which gsa.dsl does not provide",
                                   "See the functions of gsa.dsl")
        return handler(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        handler = _ARRAY_FUNCTIONS.get(func.__name__)
        if handler is None or kwargs:
            raise self.trace.error(f"numpy.{func.__name__} on a traced value, which gsa.dsl "
                                   "does not provide", "See the functions of gsa.dsl")
        return handler(*args)


def _trace_of(*values):
    """The one trace the tracers among `values` belong to, or None."""
    found = None
    for v in values:
        if isinstance(v, Tracer):
            if found is None:
                found = v.trace
            elif v.trace is not found:
                raise found.error("mixing values of two different traced functions",
                                  "A tracer cannot outlive the call that created it")
    return found


def _operand(trace, x, want):
    """x (a tracer or a number) as a tracer of type `want` (F32 or INDEX)."""
    if isinstance(x, Tracer):
        if x.type == want:
            return x
        if x.type == INDEX and want == F32:
            as_i64 = trace.emit("i64", "arith.index_cast {0} : index to i64", x)
            return trace.emit(F32, "arith.sitofp {0} : i64 to f32", as_i64)
        if x.type == I1:
            raise trace.error("arithmetic on a condition (the result of a comparison)",
                              "Use gsa.dsl.where(cond, 1.0, 0.0) to turn it into a number")
        raise trace.error(f"a {x.type} value where {want} is needed")
    number = _python_number(x)
    if number is None:
        raise trace.error(f"an operand of type {type(x).__name__} ({x!r:.60})",
                          "Operands must be traced values or numbers")
    if want == INDEX and not isinstance(number, int):
        raise trace.error(f"the non-integer {number!r} in integer arithmetic")
    return trace.constant(number, want)


def _common_type(trace, *values):
    """The type arithmetic on `values` computes in: F32 if any of them is a
    float (traced or a Python float), else INDEX."""
    for v in values:
        if isinstance(v, Tracer):
            if v.type == F32:
                return F32
            if v.type == I1:
                raise trace.error("arithmetic on a condition (the result of a comparison)",
                                  "Use gsa.dsl.where(cond, 1.0, 0.0) to turn it into a number")
        elif isinstance(_python_number(v), float):
            return F32
    return INDEX


_ARITH = {"add": ("arith.addf", "arith.addi"), "sub": ("arith.subf", "arith.subi"),
          "mul": ("arith.mulf", "arith.muli")}


def _arith(kind, a, b):
    trace = _trace_of(a, b)
    type_ = _common_type(trace, a, b)
    x, y = _operand(trace, a, type_), _operand(trace, b, type_)
    op = _ARITH[kind][0 if type_ == F32 else 1]
    return trace.emit(type_, f"{op} {{0}}, {{1}} : {type_}", x, y)


def _truediv(a, b):
    # Python's / gives a float also for two integers.
    trace = _trace_of(a, b)
    return trace.emit(F32, "arith.divf {0}, {1} : f32",
                      _operand(trace, a, F32), _operand(trace, b, F32))


def _floordiv(a, b):
    trace = _trace_of(a, b)
    if _common_type(trace, a, b) == F32:
        return floor(_truediv(a, b))
    x, y = _operand(trace, a, INDEX), _operand(trace, b, INDEX)
    if y.constant == 0:
        raise trace.error("integer division by zero")
    # Python rounds towards -inf, arith.divsi towards 0: step down by one when
    # the remainder is nonzero and its sign differs from the divisor's.
    quotient = trace.emit(INDEX, "arith.divsi {0}, {1} : index", x, y)
    remainder = trace.emit(INDEX, "arith.remsi {0}, {1} : index", x, y)
    zero = trace.constant(0, INDEX)
    rem_negative = trace.emit(I1, "arith.cmpi slt, {0}, {1} : index", remainder, zero)
    if y.constant is not None and y.constant > 0:
        step_down = rem_negative  # the common case: a positive constant divisor
    else:
        inexact = trace.emit(I1, "arith.cmpi ne, {0}, {1} : index", remainder, zero)
        div_negative = trace.emit(I1, "arith.cmpi slt, {0}, {1} : index", y, zero)
        signs_differ = trace.emit(I1, "arith.xori {0}, {1} : i1", rem_negative, div_negative)
        step_down = trace.emit(I1, "arith.andi {0}, {1} : i1", inexact, signs_differ)
    lowered = trace.emit(INDEX, "arith.subi {0}, {1} : index", quotient,
                         trace.constant(1, INDEX))
    return trace.emit(INDEX, "arith.select {0}, {1}, {2} : index", step_down, lowered, quotient)


def _mod(a, b):
    # Python's a % b == a - (a // b) * b, with the sign of b.
    return _arith("sub", a, _arith("mul", _floordiv(a, b), b))


def _power(base, exponent):
    trace = _trace_of(base, exponent)
    n = None if isinstance(exponent, Tracer) else _python_number(exponent)
    if isinstance(n, float) and n.is_integer() and builtins.abs(n) <= 64:
        n = int(n)
        base = _operand(trace, base, F32)  # a float exponent gives a float
    if isinstance(n, int) and not isinstance(n, bool) and builtins.abs(n) <= 64:
        # An integer power is exact repeated multiplication (by squaring).
        # (base is a tracer here: with a number as exponent, Python only calls
        # __pow__ on a traced base.) A negative power is a float division.
        x = _operand(trace, base, F32 if n < 0 else _common_type(trace, base))
        result, square, k = None, x, builtins.abs(n)
        while k:
            if k & 1:
                result = square if result is None else _arith("mul", result, square)
            k >>= 1
            if k:
                square = _arith("mul", square, square)
        if result is None:
            return trace.constant(1.0 if x.type == F32 else 1, x.type)
        return _truediv(1.0, result) if n < 0 else result
    return pow(base, exponent)


def _negate(x):
    if x.type == F32:
        return x.trace.emit(F32, "arith.negf {0} : f32", x)
    if x.type == INDEX:
        return _arith("sub", 0, x)
    raise x.trace.error("unary '-' on a condition", "Use ~ to negate a condition")


_CMPF = {"lt": "olt", "le": "ole", "gt": "ogt", "ge": "oge", "eq": "oeq", "ne": "une"}
_CMPI = {"lt": "slt", "le": "sle", "gt": "sgt", "ge": "sge", "eq": "eq", "ne": "ne"}


def _compare(kind, a, b):
    trace = _trace_of(a, b)
    if any(isinstance(v, Tracer) and v.type == I1 for v in (a, b)):
        # Conditions compare only with conditions (or bools), for == and !=.
        both_conditions = all((isinstance(v, Tracer) and v.type == I1)
                              or isinstance(_python_number(v), bool) for v in (a, b))
        if kind not in ("eq", "ne") or not both_conditions:
            raise trace.error(f"comparison '{kind}' involving a condition",
                              "Conditions support ==, != (with conditions), &, |, ^ and ~")
        x, y = (v if isinstance(v, Tracer) else trace.constant(bool(v), I1) for v in (a, b))
        return trace.emit(I1, f"arith.cmpi {_CMPI[kind]}, {{0}}, {{1}} : i1", x, y)
    type_ = _common_type(trace, a, b)
    x, y = _operand(trace, a, type_), _operand(trace, b, type_)
    if type_ == F32:
        return trace.emit(I1, f"arith.cmpf {_CMPF[kind]}, {{0}}, {{1}} : f32", x, y)
    return trace.emit(I1, f"arith.cmpi {_CMPI[kind]}, {{0}}, {{1}} : index", x, y)


_LOGIC = {"and": "arith.andi", "or": "arith.ori", "xor": "arith.xori"}


def _logic(kind, a, b):
    trace = _trace_of(a, b)
    operands = []
    for v in (a, b):
        if isinstance(v, Tracer) and v.type == I1:
            operands.append(v)
        elif not isinstance(v, Tracer) and isinstance(_python_number(v), bool):
            operands.append(trace.constant(v, I1))
        else:
            symbol = {"and": "&", "or": "|", "xor": "^"}[kind]
            raise trace.error(f"'{symbol}' on an operand that is not a condition",
                              "& | ^ combine conditions (results of comparisons)")
    return trace.emit(I1, f"{_LOGIC[kind]} {{0}}, {{1}} : i1", *operands)


# ---------------------------------------------------------------------------
# The DSL's functions: traced when given tracers, numpy otherwise
# ---------------------------------------------------------------------------

def _unary_float(mlir_op, numpy_fn, name):
    def fn(x):
        if isinstance(x, Tracer):
            v = _operand(x.trace, x, F32)
            return x.trace.emit(F32, f"{mlir_op} {{0}} : f32", v)
        return numpy_fn(x)
    fn.__name__ = fn.__qualname__ = name
    return fn


def _numpy_sigmoid(x):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)  # integers and Python numbers: float64
    return 1.0 / (1.0 + np.exp(-x))


sigmoid = _unary_float("gsa.sigmoid", _numpy_sigmoid, "sigmoid")
sigmoid.__doc__ = "1 / (1 + exp(-x)) (the gsa.sigmoid op)."
exp = _unary_float("math.exp", np.exp, "exp")
exp.__doc__ = "e ** x."
log = _unary_float("math.log", np.log, "log")
log.__doc__ = "Natural logarithm."
log1p = _unary_float("math.log1p", np.log1p, "log1p")
log1p.__doc__ = "log(1 + x), accurate near 0."
tanh = _unary_float("math.tanh", np.tanh, "tanh")
tanh.__doc__ = "Hyperbolic tangent."
sqrt = _unary_float("math.sqrt", np.sqrt, "sqrt")
sqrt.__doc__ = "Square root."
rsqrt = _unary_float("math.rsqrt", lambda x: 1.0 / np.sqrt(x), "rsqrt")
rsqrt.__doc__ = "1 / sqrt(x)."
sin = _unary_float("math.sin", np.sin, "sin")
sin.__doc__ = "Sine."
cos = _unary_float("math.cos", np.cos, "cos")
cos.__doc__ = "Cosine."
floor = _unary_float("math.floor", np.floor, "floor")
floor.__doc__ = "Largest integer <= x, as a float."
ceil = _unary_float("math.ceil", np.ceil, "ceil")
ceil.__doc__ = "Smallest integer >= x, as a float."


def abs_(x):
    """|x|: math.absf for floats; integers stay integers."""
    if isinstance(x, Tracer):
        if x.type == INDEX:
            return where(x < 0, -x, x)
        v = _operand(x.trace, x, F32)
        return x.trace.emit(F32, "math.absf {0} : f32", v)
    return np.abs(x)


abs = abs_  # noqa: A001 - gsa.dsl.abs, as the module's users expect; abs_ inside


def to_float(x):
    """An index (or any number) as a float (arith.index_cast + arith.sitofp)."""
    if isinstance(x, Tracer):
        return _operand(x.trace, x, F32)
    return np.asarray(x, dtype=np.float64)[()]


def _binary_minmax(kind, a, b):
    trace = _trace_of(a, b)
    if trace is None:
        return (np.maximum if kind == "max" else np.minimum)(a, b)
    type_ = _common_type(trace, a, b)
    x, y = _operand(trace, a, type_), _operand(trace, b, type_)
    if type_ == F32:
        # NaN-propagating, like numpy.maximum / numpy.minimum.
        op = "arith.maximumf" if kind == "max" else "arith.minimumf"
    else:
        op = "arith.maxsi" if kind == "max" else "arith.minsi"
    return trace.emit(type_, f"{op} {{0}}, {{1}} : {type_}", x, y)


def maximum(a, b):
    """The larger of a and b (NaN if either is NaN)."""
    return _binary_minmax("max", a, b)


def minimum(a, b):
    """The smaller of a and b (NaN if either is NaN)."""
    return _binary_minmax("min", a, b)


def clamp(x, lo, hi):
    """min(max(x, lo), hi)."""
    return minimum(maximum(x, lo), hi)


def relu(x):
    """max(x, 0): DSA's indexer activation."""
    return maximum(x, 0.0)


def softplus(x):
    """log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)) so that it
    neither overflows nor loses precision."""
    return maximum(x, 0.0) + log1p(exp(-abs_(x)))


def where(cond, a, b):
    """a where cond holds, else b (arith.select); cond is a comparison's
    result (or a Python bool)."""
    trace = _trace_of(cond, a, b)
    if trace is None:
        return np.where(cond, a, b)
    if not isinstance(cond, Tracer):
        flag = _python_number(cond)
        if not isinstance(flag, bool):
            raise trace.error(f"where() with a condition of type {type(cond).__name__}",
                              "The condition must be a comparison or a bool")
        chosen = a if flag else b
        return chosen if isinstance(chosen, Tracer) else _operand(
            trace, chosen, _common_type(trace, a, b))
    if cond.type != I1:
        raise trace.error(f"where() with a {cond.type} condition",
                          "The condition must be a comparison, e.g. where(x > 0, x, 0.0)")
    branch_types = {v.type for v in (a, b) if isinstance(v, Tracer)}
    if branch_types == {I1}:
        x, y = (v if isinstance(v, Tracer) else trace.constant(bool(v), I1) for v in (a, b))
        type_ = I1
    else:
        type_ = _common_type(trace, a, b)
        x, y = _operand(trace, a, type_), _operand(trace, b, type_)
    return trace.emit(type_, f"arith.select {{0}}, {{1}}, {{2}} : {type_}", cond, x, y)


def logical_and(a, b):
    """a and b for conditions; unlike `&`, also right on Python bools."""
    if _trace_of(a, b) is None:
        return np.logical_and(a, b)
    return _logic("and", a, b)


def logical_or(a, b):
    """a or b for conditions; unlike `|`, also right on Python bools."""
    if _trace_of(a, b) is None:
        return np.logical_or(a, b)
    return _logic("or", a, b)


def logical_not(cond):
    """not cond; unlike `~` (which gives -2 for the Python bool True), also
    right on Python bools and numpy arrays."""
    if isinstance(cond, Tracer):
        return ~cond
    return np.logical_not(cond)


def pow(x, y):  # noqa: A001 - gsa.dsl.pow mirrors math.pow
    """x ** y for floats (math.powf; NaN for a negative x and a non-integer y,
    like numpy). Integer exponents given as numbers multiply exactly."""
    trace = _trace_of(x, y)
    if trace is None:
        return np.power(np.asarray(x, dtype=np.float64), y)
    if not isinstance(y, Tracer):
        n = _python_number(y)
        if (isinstance(n, (int, float)) and not isinstance(n, bool) and float(n).is_integer()
                and builtins.abs(n) <= 64):
            return _power(x, n)
    return trace.emit(F32, "math.powf {0}, {1} : f32",
                      _operand(trace, x, F32), _operand(trace, y, F32))


def _numpy_compare(kind):
    return lambda a, b: _compare(kind, a, b)


_UFUNCS = {
    "add": lambda a, b: _arith("add", a, b),
    "subtract": lambda a, b: _arith("sub", a, b),
    "multiply": lambda a, b: _arith("mul", a, b),
    "true_divide": _truediv, "divide": _truediv,
    "floor_divide": _floordiv, "remainder": _mod,
    "power": lambda a, b: _power(a, b) if not isinstance(b, Tracer) else pow(a, b),
    "negative": lambda x: _negate(x), "positive": lambda x: x,
    "absolute": abs_, "fabs": abs_,
    "exp": exp, "log": log, "log1p": log1p, "tanh": tanh, "sqrt": sqrt,
    "sin": sin, "cos": cos, "floor": floor, "ceil": ceil,
    "maximum": maximum, "minimum": minimum,
    "greater": _numpy_compare("gt"), "greater_equal": _numpy_compare("ge"),
    "less": _numpy_compare("lt"), "less_equal": _numpy_compare("le"),
    "equal": _numpy_compare("eq"), "not_equal": _numpy_compare("ne"),
    "logical_and": lambda a, b: _logic("and", a, b),
    "logical_or": lambda a, b: _logic("or", a, b),
    "logical_xor": lambda a, b: _logic("xor", a, b),
    "bitwise_and": lambda a, b: _logic("and", a, b),
    "bitwise_or": lambda a, b: _logic("or", a, b),
    "bitwise_xor": lambda a, b: _logic("xor", a, b),
    "logical_not": lambda x: ~x, "invert": lambda x: ~x,
}
_ARRAY_FUNCTIONS = {"where": where, "clip": clamp, "abs": abs_}


# ---------------------------------------------------------------------------
# Tracing a function into a region
# ---------------------------------------------------------------------------

class Region:
    """A traced region: `text` is the MLIR region `{ ^bb0(...): ... }`."""

    def __init__(self, role, function, arguments, body, result):
        self.role, self.function = role, function
        self.arguments = arguments   # [(name, type)]
        self.body = body             # op lines, without the terminator
        self.result = result         # SSA name of the yielded f32

    @property
    def text(self):
        args = ", ".join(f"%{n}: {t}" for n, t in self.arguments)
        lines = [f"  ^bb0({args}):"] + [f"    {line}" for line in self.body]
        lines.append(f"    gsa.yield {self.result} : f32")
        return "{\n" + "".join(f"  {line}\n" for line in lines) + "  }"

    def __repr__(self):
        return f"<gsa.dsl.Region {self.role} of {self.function}>\n{self.text}"


def _arity(fn, role):
    """How many of the role's arguments to pass to fn."""
    allowed = ROLES[role][1]
    if isinstance(fn, np.ufunc):
        n = fn.nin
    else:
        try:
            params = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):
            return max(allowed)  # a builtin without a signature: pass everything
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            return max(allowed)
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is p.empty]
        fitting = [n for n in allowed if len(required) <= n <= len(positional)]
        if not fitting:
            n = len(required)
        else:
            return max(fitting)
    if n not in allowed:
        names = ", ".join(name for name, _ in ROLES[role][0])
        counts = " or ".join(str(a) for a in allowed)
        raise DSLError(f"gsa.dsl: {role} {_function_name(fn)!r} (defined at "
                       f"{_definition_site(fn)}) must take {counts} argument(s) "
                       f"({names}), but takes {n}")
    return n


def trace(fn, role):
    """Traces fn into the region `role` (activation, weighting, policy_fn or
    score_mod) and returns a Region. Raises DSLError for what cannot be
    traced."""
    if role not in ROLES:
        raise ValueError(f"unknown region role {role!r} (expected one of {tuple(ROLES)})")
    if not callable(fn):
        raise DSLError(f"gsa.dsl: {role} must be a Python function, got {type(fn).__name__}")
    signature = ROLES[role][0]
    n = _arity(fn, role)
    t = _Trace(role, fn)
    arguments = [Tracer(t, type_, None, name) for name, type_ in signature]
    result = fn(*arguments[:n])

    if isinstance(result, Tracer):
        _trace_of(result, arguments[0])  # a tracer of another trace raises here
        if result.type == I1:
            raise DSLError(f"gsa.dsl: {t.describe()} returned a condition (a comparison's "
                           "result); return a number, e.g. where(cond, 1.0, 0.0)")
        result = _operand(t, result, F32)
    else:
        number = _python_number(result)
        if number is None or isinstance(number, bool):
            raise DSLError(f"gsa.dsl: {t.describe()} returned {type(result).__name__} "
                           f"({result!r:.60}); it must return a number (an f32 expression "
                           "of its arguments)")
        result = t.constant(float(number), F32)

    # Only the ops the result depends on, numbered in the order they were made.
    live, stack = set(), [result]
    while stack:
        v = stack.pop()
        if v.op is not None and id(v) not in live:
            live.add(id(v))
            stack.extend(v.op.operands)
    names = {id(a): f"%{a.arg_name}" for a in arguments}
    body = []
    for v in t.ops:
        if id(v) not in live:
            continue
        names[id(v)] = f"%v{len(body)}"
        text = v.op.fmt.format(*(names[id(o)] for o in v.op.operands))
        body.append(f"{names[id(v)]} = {text}")
    return Region(role, _function_name(fn), list(signature), body, names[id(result)])
