# AST helpers for the generation stages, run inside the sandbox through `executor.runScript`.
# Reads the global INPUT (plain JSON) and assigns OUTPUT (plain JSON). Trusted code, but the programs it
# looks at are not: it only parses them (ast), never executes them.
#
# INPUT.op == "mutants":   {code, entry_point, operators?: [names], max_per_operator?: int}
#   → {ok: true, mutants: [{operator, line, function, description, code}]}, every mutant a minimal textual edit of
#     `code` (formatting and comments elsewhere kept), re-parsed and checked to be the intended tree.
# INPUT.op == "normalize": {codes: [str]} → {ok: true, results: [{ok, normalized?, error?}]}
# INPUT.op == "strip_comments": {gold, codes: [str]} → {ok: true, results: [{ok, code?, removed?, error?}]}
#   (each code without the comments gold does not have; comment-only lines are removed)
#   (ast.dump without docstrings: equal strings mean textually identical programs after normalisation)
# INPUT.op == "versions": {gold, codes?: [str], strip_comments?: bool, mutants?: {entry_point, operators?,
#   max_per_operator?}} → {ok: true, gold: {ok, normalized?, error?}, results?: [{code, removed, normalized?}],
#   mutants?: [...]}: perturb's work on one item in one sandbox call — gold normalised (nothing else when it
#   does not parse), each version with gold's-missing comments stripped (when asked and the result still
#   parses) and normalised, and gold's mutants.
import ast
import copy

CMP_SWAPS = {
    ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt],
    ast.GtE: [ast.Gt, ast.LtE], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq],
    ast.In: [ast.NotIn], ast.NotIn: [ast.In], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is],
}
ARITH_SWAPS = {
    ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Add, ast.FloorDiv], ast.Div: [ast.FloorDiv, ast.Mult],
    ast.FloorDiv: [ast.Div, ast.Mod], ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult],
}
OP_TEXT = {
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Add: "+", ast.Sub: "-", ast.Mult: "*",
    ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**", ast.And: "and", ast.Or: "or",
}
CALL_SWAPS = {"min": "max", "max": "min", "any": "all", "all": "any"}
METHOD_SWAPS = {"lower": "upper", "upper": "lower", "swapcase": "lower", "title": "capitalize", "capitalize": "title", "startswith": "endswith", "endswith": "startswith",
                "find": "rfind", "rfind": "find", "lstrip": "rstrip", "rstrip": "lstrip", "isupper": "islower",
                "islower": "isupper", "index": "rindex", "rindex": "index"}
DROPPABLE_CALLS = {"reversed", "sorted", "abs", "set", "round"}
ALL_OPERATORS = [
    "comparison_swap", "arithmetic_swap", "constant_off_by_one", "range_bounds", "slice_bounds",
    "boolean_swap", "negate_condition", "drop_statement", "drop_branch", "return_value", "call_swap",
    "argument_swap", "string_constant",
]
NO_ARG_SWAP = {"isinstance", "issubclass", "min", "max", "print", "range", "getattr", "setattr", "hasattr", "super",
               "map", "filter", "reduce", "sorted", "enumerate", "round", "pow", "divmod"}


def strip_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalized(code):
    return ast.dump(strip_docstrings(ast.parse(code)), annotate_fields=False, include_attributes=False)


class Source:
    """Maps ast (line, utf-8 byte column) positions to character offsets."""

    def __init__(self, code):
        self.code = code
        self.lines = code.splitlines(keepends=True)
        self.starts = []
        pos = 0
        for ln in self.lines:
            self.starts.append(pos)
            pos += len(ln)
        self.starts.append(pos)

    def offset(self, lineno, col):
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node):
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def line_span(self, first, last):
        """Whole lines first..last (1-based, inclusive)."""
        return self.starts[first - 1], self.starts[last]

    def indent_of(self, lineno):
        line = self.lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]


def is_docstring(stmt, body):
    return stmt is body[0] and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
        and isinstance(stmt.value.value, str)


def function_nodes(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def reachable_functions(tree, entry_point):
    """Functions the entry point can reach by name (calls of `name(...)` or `x.name(...)`), itself included.
    Falls back to every function when the entry point is not a function of the module."""
    fns = function_nodes(tree)
    by_name = {}
    for fn in fns:
        by_name.setdefault(fn.name, []).append(fn)
    if entry_point not in by_name:
        return fns
    out, todo, done = [], [entry_point], set()
    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        for fn in by_name.get(name, []):
            out.append(fn)
            for n in ast.walk(fn):
                if isinstance(n, ast.Call):
                    f = n.func
                    callee = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                    if callee in by_name:
                        todo.append(callee)
                elif isinstance(n, ast.Name) and n.id in by_name:
                    todo.append(n.id)  # passed as a key= / callback
    return out


def inside_functions(fns):
    """Nodes inside the bodies of `fns` (not decorators, defaults or annotations), each once."""
    seen = set()
    out = []
    for fn in fns:
        for stmt in fn.body:
            for n in ast.walk(stmt):
                if id(n) not in seen:
                    seen.add(id(n))
                    out.append(n)
    return out


def annotation_ids(tree):
    ids = set()
    for n in ast.walk(tree):
        anns = []
        if isinstance(n, ast.arg) and n.annotation is not None:
            anns.append(n.annotation)
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns is not None:
            anns.append(n.returns)
        if isinstance(n, ast.AnnAssign):
            anns.append(n.annotation)
        for a in anns:
            for m in ast.walk(a):
                ids.add(id(m))
    return ids


def int_const(node):
    return isinstance(node, ast.Constant) and type(node.value) is int


def int_node(v):
    """An int literal as the parser builds it (negative numbers are USub applied to a constant)."""
    return ast.Constant(v) if v >= 0 else ast.UnaryOp(ast.USub(), ast.Constant(-v))


def plus(expr, k):
    """expr + k, folding integer constants (x+1-1 → x)."""
    if int_const(expr):
        return int_node(expr.value + k)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Sub)) and int_const(expr.right):
        v = expr.right.value if isinstance(expr.op, ast.Add) else -expr.right.value
        v += k
        if v == 0:
            return copy.deepcopy(expr.left)
        return ast.BinOp(copy.deepcopy(expr.left), ast.Add() if v > 0 else ast.Sub(), ast.Constant(abs(v)))
    if isinstance(expr, ast.UnaryOp) and isinstance(expr.op, ast.USub) and int_const(expr.operand):
        return int_node(-expr.operand.value + k)
    return ast.BinOp(copy.deepcopy(expr), ast.Add() if k > 0 else ast.Sub(), ast.Constant(abs(k)))


def text(node):
    try:
        return ast.unparse(node)
    except Exception:
        return "?"


class Mutator:
    def __init__(self, code, entry_point, operators, max_per_operator):
        self.code = code
        self.entry_point = entry_point
        self.src = Source(code)
        self.tree = ast.parse(code)
        self.operators = set(operators)
        self.max_per_operator = max_per_operator
        self.ann = annotation_ids(self.tree)
        self.mutants = []
        self.count = {}
        self.seen_codes = {normalized(code)}

    # --- applying one edit ----------------------------------------------------------------------
    def expected_tree(self, node, replacement):
        """The whole tree with `node` replaced (None = statement removed), for verification."""
        tree = copy.deepcopy(self.tree)
        # locate the same node by position and type in the copy
        key = (type(node), node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)
        for parent in ast.walk(tree):
            for field, value in ast.iter_fields(parent):
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        if isinstance(item, ast.AST) and hasattr(item, "lineno") and \
                                (type(item), item.lineno, item.col_offset, item.end_lineno, item.end_col_offset) == key:
                            if replacement is None:
                                del value[i]
                                if not value and field in ("body", "orelse", "finalbody"):
                                    value.append(ast.Pass())
                            else:
                                value[i] = replacement
                            return tree
                elif isinstance(value, ast.AST) and hasattr(value, "lineno") and \
                        (type(value), value.lineno, value.col_offset, value.end_lineno, value.end_col_offset) == key:
                    setattr(parent, field, replacement)
                    return tree
        return None

    def add(self, operator, node, replacement, description, new_text=None, span=None):
        if operator not in self.operators:
            return
        if self.count.get(operator, 0) >= self.max_per_operator:
            return
        expected = self.expected_tree(node, replacement)
        if expected is None:
            return
        want = ast.dump(strip_docstrings(expected), annotate_fields=False, include_attributes=False)
        start, end = span if span is not None else self.src.span(node)
        candidates = [new_text] if new_text is not None else [text(replacement), "(" + text(replacement) + ")"]
        for cand in candidates:
            mutated = self.code[:start] + cand + self.code[end:]
            try:
                got = normalized(mutated)
            except SyntaxError:
                continue
            if got != want:
                continue
            if got in self.seen_codes:
                return
            self.seen_codes.add(got)
            self.count[operator] = self.count.get(operator, 0) + 1
            self.mutants.append({"operator": operator, "line": node.lineno, "description": description,
                                 "function": self.function_at(node.lineno), "code": mutated})
            return

    def function_at(self, line):
        """Name of the innermost function containing `line`."""
        best = None
        for fn in function_nodes(self.tree):
            if fn.lineno <= line <= fn.end_lineno and (best is None or fn.lineno >= best.lineno):
                best = fn
        return best.name if best else None

    # --- operators --------------------------------------------------------------------------------
    def run(self):
        nodes = inside_functions(reachable_functions(self.tree, self.entry_point))
        parents = {}
        for n in ast.walk(self.tree):
            for c in ast.iter_child_nodes(n):
                parents[id(c)] = n
        for node in nodes:
            if id(node) in self.ann:
                continue
            if isinstance(node, ast.Compare):
                for i, op in enumerate(node.ops):
                    for new in CMP_SWAPS.get(type(op), []):
                        rep = copy.deepcopy(node)
                        rep.ops[i] = new()
                        self.add("comparison_swap", node, rep,
                                 f"the comparison `{text(node)}` uses `{OP_TEXT[new]}` instead of `{OP_TEXT[type(op)]}`")
            if isinstance(node, ast.BinOp):
                for new in ARITH_SWAPS.get(type(node.op), []):
                    if isinstance(node.op, ast.Add) and (isinstance(node.left, (ast.Constant, ast.JoinedStr))
                                                         and isinstance(getattr(node.left, "value", 0), str)):
                        continue  # string concatenation: '-' would only raise TypeError
                    rep = copy.deepcopy(node)
                    rep.op = new()
                    self.add("arithmetic_swap", node, rep,
                             f"`{text(node)}` uses `{OP_TEXT[new]}` instead of `{OP_TEXT[type(node.op)]}`")
            if isinstance(node, ast.AugAssign) and type(node.op) in ARITH_SWAPS:
                for new in ARITH_SWAPS[type(node.op)][:1]:
                    rep = copy.deepcopy(node)
                    rep.op = new()
                    self.add("arithmetic_swap", node, rep,
                             f"the update `{text(node)}` uses `{OP_TEXT[new]}=` instead of `{OP_TEXT[type(node.op)]}=`")
            parent = parents.get(id(node))
            if int_const(node) and not isinstance(parent, (ast.Subscript, ast.Slice)) and \
                    not isinstance(parents.get(id(parent)), ast.Slice):
                for k in (1, -1):
                    if node.value + k < 0 and isinstance(parent, (ast.BinOp, ast.UnaryOp)):
                        continue  # would read `a--1`
                    self.add("constant_off_by_one", node, int_node(node.value + k),
                             f"the constant {node.value} is off by one ({node.value + k})", new_text=repr(node.value + k))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
                    and 1 <= len(node.args) <= 3 and not node.keywords:
                args = node.args
                if len(args) == 1:
                    variants = [([plus(args[0], -1)], f"stops one step early (`range({text(plus(args[0], -1))})`)"),
                                ([plus(args[0], 1)], f"runs one step too far (`range({text(plus(args[0], 1))})`)"),
                                ([ast.Constant(1), copy.deepcopy(args[0])], "skips the first index (starts at 1)")]
                else:
                    variants = [([copy.deepcopy(args[0]), plus(args[1], -1)] + [copy.deepcopy(a) for a in args[2:]],
                                 "stops one step early (upper bound minus one)"),
                                ([copy.deepcopy(args[0]), plus(args[1], 1)] + [copy.deepcopy(a) for a in args[2:]],
                                 "runs one step too far (upper bound plus one)"),
                                ([plus(args[0], 1), copy.deepcopy(args[1])] + [copy.deepcopy(a) for a in args[2:]],
                                 "skips the first element (lower bound plus one)")]
                for new_args, what in variants:
                    rep = ast.Call(ast.Name("range", ast.Load()), new_args, [])
                    self.add("range_bounds", node, rep, f"the loop `{text(node)}` {what}")
            if isinstance(node, ast.Slice) and node.step is None:
                for field in ("lower", "upper"):
                    bound = getattr(node, field)
                    for k in (1, -1):
                        rep = copy.deepcopy(node)
                        if bound is None:
                            if field == "lower" and k == 1:
                                setattr(rep, field, ast.Constant(1))
                            elif field == "upper" and k == -1:
                                setattr(rep, field, ast.UnaryOp(ast.USub(), ast.Constant(1)))
                            else:
                                continue
                        else:
                            setattr(rep, field, plus(bound, k))
                        self.add("slice_bounds", node, rep,
                                 f"the slice `[{text(node)}]` has its {field} bound off by one (`[{text(rep)}]`)")
            if isinstance(node, ast.Subscript) and not isinstance(node.slice, ast.Slice) \
                    and isinstance(node.ctx, ast.Load):
                idx = node.slice
                if isinstance(idx, (ast.Name, ast.BinOp)) or int_const(idx) or \
                        (isinstance(idx, ast.UnaryOp) and int_const(getattr(idx, "operand", None))):
                    for k in (1, -1):
                        rep = copy.deepcopy(node)
                        rep.slice = plus(idx, k)
                        self.add("slice_bounds", node, rep,
                                 f"the index in `{text(node)}` is off by one (`{text(rep)}`)")
            if isinstance(node, ast.BoolOp):
                rep = copy.deepcopy(node)
                rep.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
                self.add("boolean_swap", node, rep,
                         f"`{text(node)}` uses `{OP_TEXT[type(rep.op)]}` instead of `{OP_TEXT[type(node.op)]}`")
            if isinstance(node, ast.Constant) and type(node.value) is bool:
                self.add("boolean_swap", node, ast.Constant(not node.value),
                         f"the constant {node.value} should be {not node.value}", new_text=repr(not node.value))
            if isinstance(node, (ast.If, ast.While, ast.IfExp)):
                test = node.test
                if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                    new_test = copy.deepcopy(test.operand)
                else:
                    new_test = ast.UnaryOp(ast.Not(), copy.deepcopy(test))
                kind = "while" if isinstance(node, ast.While) else "if"
                self.add("negate_condition", test, new_test,
                         f"the `{kind}` condition `{text(test)}` is negated")
            if isinstance(node, ast.comprehension):
                for cond in node.ifs:
                    new_test = copy.deepcopy(cond.operand) if isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not) \
                        else ast.UnaryOp(ast.Not(), copy.deepcopy(cond))
                    self.add("negate_condition", cond, new_test, f"the filter condition `{text(cond)}` is negated")
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and not isinstance(parent, (ast.Expr, ast.JoinedStr, ast.FormattedValue)) and len(node.value) <= 40:
                v = node.value
                news = [""] if v == " " else [" "] if v == "" else []
                if len(v) > 1:
                    news.append(v[:-1])
                if v.upper() != v:
                    news.append(v.upper())
                elif v.lower() != v:
                    news.append(v.lower())
                for nv in news[:2]:
                    self.add("string_constant", node, ast.Constant(nv), f"uses the string {nv!r} instead of {v!r}",
                             new_text=repr(nv))
            if isinstance(node, ast.Call) and len(node.args) >= 2 and not any(isinstance(a, ast.Starred) for a in node.args[:2]):
                fname = node.func.id if isinstance(node.func, ast.Name) else node.func.attr if isinstance(node.func, ast.Attribute) else None
                if fname and fname not in NO_ARG_SWAP:
                    rep = copy.deepcopy(node)
                    rep.args[0], rep.args[1] = rep.args[1], rep.args[0]
                    self.add("argument_swap", node, rep,
                             f"passes `{text(node.args[0])}` and `{text(node.args[1])}` to `{fname}()` in the wrong order")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "sorted" and node.keywords \
                    and not any(k.arg == "reverse" for k in node.keywords):
                rep = copy.deepcopy(node)
                rep.keywords.append(ast.keyword("reverse", ast.Constant(True)))
                self.add("call_swap", node, rep, "sorts in the wrong (descending) order")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CALL_SWAPS:
                rep = copy.deepcopy(node)
                rep.func = ast.Name(CALL_SWAPS[node.func.id], ast.Load())
                self.add("call_swap", node.func, rep.func,
                         f"calls `{CALL_SWAPS[node.func.id]}` where `{node.func.id}` is needed",
                         new_text=CALL_SWAPS[node.func.id])
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in METHOD_SWAPS:
                new_attr = METHOD_SWAPS[node.func.attr]
                rep = copy.deepcopy(node)
                rep.func.attr = new_attr
                self.add("call_swap", node, rep, f"calls `.{new_attr}()` where `.{node.func.attr}()` is needed")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DROPPABLE_CALLS \
                    and len(node.args) == 1 and not node.keywords:
                self.add("call_swap", node, copy.deepcopy(node.args[0]),
                         f"forgets to apply `{node.func.id}()` to `{text(node.args[0])}`")
                if node.func.id == "sorted":
                    rep = copy.deepcopy(node)
                    rep.keywords = [ast.keyword("reverse", ast.Constant(True))]
                    self.add("call_swap", node, rep, f"sorts `{text(node.args[0])}` in the wrong (descending) order")
            if isinstance(node, ast.Return) and node.value is not None:
                v = node.value
                reps = []
                if isinstance(v, ast.Constant) and type(v.value) is bool:
                    reps.append((ast.Constant(not v.value), f"returns {not v.value} instead of {v.value}"))
                elif int_const(v):
                    reps.append((ast.Constant(v.value + 1), f"returns {v.value + 1} instead of {v.value}"))
                elif isinstance(v, ast.Constant) and v.value is None:
                    pass
                elif isinstance(v, ast.Constant) and isinstance(v.value, str):
                    reps.append((ast.Constant(v.value.upper() if v.value != v.value.upper() else v.value.lower()),
                                 f"returns a differently-cased string instead of {v.value!r}"))
                elif isinstance(v, (ast.Compare, ast.BoolOp)) or \
                        (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id in ("all", "any", "isinstance")):
                    reps.append((ast.UnaryOp(ast.Not(), copy.deepcopy(v)), f"returns the negation of `{text(v)}`"))
                elif (isinstance(v, ast.BinOp) and isinstance(v.op, (ast.Add, ast.Sub))) or \
                        (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "len"):
                    reps.append((plus(v, 1), f"returns `{text(plus(v, 1))}` instead of `{text(v)}`"))
                for new_v, what in reps:
                    self.add("return_value", v, new_v, f"the function {what}")
            # statements: drop one (body keeps at least a `pass`), drop an else/elif branch
            for field in ("body", "orelse", "finalbody"):
                body = getattr(node, field, None)
                if not isinstance(body, list) or not body or not isinstance(body[0], ast.stmt):
                    continue
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and field == "body":
                    real = [s for s in body if not is_docstring(s, body)]
                else:
                    real = list(body)
                if field == "orelse" and isinstance(node, (ast.If, ast.For, ast.While)) and body:
                    self.drop_else(node)
                for stmt in real:
                    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                         ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Pass)):
                        continue
                    if isinstance(stmt, ast.Return) and len(real) == 1:
                        continue
                    self.drop_stmt(stmt, body)
        return self.mutants

    def drop_stmt(self, stmt, body):
        # only statements that own whole lines can be removed textually
        first, last = stmt.lineno, stmt.end_lineno
        before = self.src.lines[first - 1].encode("utf-8")[: stmt.col_offset]
        after = self.src.lines[last - 1].encode("utf-8")[stmt.end_col_offset:].strip()
        if before.strip() or (after and not after.startswith(b"#")):
            return
        start, end = self.src.line_span(first, last)
        alone = len([s for s in body if not is_docstring(s, body)]) == 1
        new_text = (self.src.indent_of(first) + "pass\n") if alone else ""
        self.add("drop_statement", stmt, None, f"the statement `{text(stmt).splitlines()[0]}` (line {first}) is missing",
                 new_text=new_text, span=(start, end))

    def drop_else(self, node):
        """Remove the `else:`/`elif` branch of an if/for/while (text from the else keyword to its end)."""
        orelse = node.orelse
        last = orelse[-1].end_lineno
        first_body_line = orelse[0].lineno
        # find the `else:` / `elif` line: the last line before the orelse block that starts with else/elif
        k = first_body_line - 1
        while k >= 1:
            stripped = self.src.lines[k - 1].strip()
            if stripped.startswith("else") or stripped.startswith("elif"):
                break
            k -= 1
        if k < 1:
            return
        stripped = self.src.lines[k - 1].strip()
        if stripped.startswith("elif"):
            # `elif c:` is an If node inside orelse starting at line k: replace with nothing
            start, end = self.src.line_span(k, last)
        else:
            start, end = self.src.line_span(k, last)
        rep = copy.deepcopy(node)
        rep.orelse = []
        what = "elif" if stripped.startswith("elif") else "else"
        self.add("drop_branch", node, rep, f"the `{what}` branch at line {k} is missing", new_text="",
                 span=(start, end))


def op_mutants(inp):
    try:
        ops = inp.get("operators") or ALL_OPERATORS
        m = Mutator(inp["code"], inp.get("entry_point") or "", ops, int(inp.get("max_per_operator") or 50))
        return {"ok": True, "mutants": m.run()}
    except SyntaxError as e:
        return {"ok": False, "error": f"SyntaxError: {e.msg} (line {e.lineno})"}


def strip_new_comments(gold, code):
    """`code` without the comments gold does not have (a corrupted version must not announce its bug)."""
    import io
    import tokenize

    def comments(src):
        return [t for t in tokenize.generate_tokens(io.StringIO(src).readline) if t.type == tokenize.COMMENT]

    keep = {t.string.strip() for t in comments(gold)}
    lines = code.splitlines(keepends=True)
    removed = 0
    for t in reversed(comments(code)):
        if t.string.strip() in keep:
            continue
        row, col = t.start
        line = lines[row - 1]
        end = col + len(t.string)
        rest = line[:col].rstrip()
        nl = line[len(line.rstrip("\r\n")):]
        lines[row - 1] = (rest + line[end:].rstrip("\r\n") + nl) if rest else ""
        removed += 1
    return "".join(lines), removed


def op_strip_comments(inp):
    results = []
    for code in inp["codes"]:
        try:
            out, n = strip_new_comments(inp["gold"], code)
            ast.parse(out)
            results.append({"ok": True, "code": out, "removed": n})
        except Exception as e:  # tokenize/parse errors: leave the code as it is
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    return {"ok": True, "results": results}


def op_normalize(inp):
    return {"ok": True, "results": [_normalize_one(code) for code in inp["codes"]]}


def _normalize_one(code):
    try:
        return {"ok": True, "normalized": normalized(code)}
    except SyntaxError as e:
        return {"ok": False, "error": f"SyntaxError: {e.msg} (line {e.lineno})"}
    except Exception as e:  # e.g. ValueError on null bytes
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def op_versions(inp):
    gold = inp["gold"]
    g = _normalize_one(gold)
    out = {"ok": True, "gold": g}
    if not g["ok"]:
        return out
    if inp.get("codes") is not None:
        results = []
        for code in inp["codes"]:
            r = {"code": code, "removed": 0}
            if inp.get("strip_comments"):
                s = op_strip_comments({"gold": gold, "codes": [code]})["results"][0]
                if s["ok"] and s["removed"]:
                    r["code"], r["removed"] = s["code"], s["removed"]
            n = _normalize_one(r["code"])
            if n["ok"]:
                r["normalized"] = n["normalized"]
            results.append(r)
        out["results"] = results
    m = inp.get("mutants")
    if m:
        ops = m.get("operators") or ALL_OPERATORS
        out["mutants"] = Mutator(gold, m.get("entry_point") or "", ops, int(m.get("max_per_operator") or 50)).run()
    return out


OUTPUT = {"mutants": op_mutants, "normalize": op_normalize, "strip_comments": op_strip_comments,
          "versions": op_versions}[INPUT["op"]](INPUT)
