"""Static analysis of a cell: which names it may read or write, found before it runs."""

import doctest
import functools
import textwrap

import pytest
from IPython.core.inputtransformer2 import TransformerManager

import nbelastic.kernel.analysis
from nbelastic.kernel.analysis import CellNames, analyse_cell, code_globals, transitive_reads

_transformer = TransformerManager()


def analyse(source: str) -> CellNames:
    """Analyse a cell the way the monitor does: after IPython's transforms."""
    source = textwrap.dedent(source)
    transform = _transformer.transform_cell
    return analyse_cell(transform(source), transform)


def notebook(source: str) -> dict:
    """A namespace as if ``source`` had run in a notebook cell (module ``__main__``)."""
    namespace = {"__name__": "__main__"}
    exec(compile(textwrap.dedent(source), "<cell>", "exec"), namespace)
    del namespace["__builtins__"], namespace["__name__"]
    return namespace


def test_doctests_hold():
    assert doctest.testmod(nbelastic.kernel.analysis).failed == 0


# --- plain Python ----------------------------------------------------------------------------


def test_assignment_reads_the_right_side_and_writes_the_target():
    names = analyse("y = x + 1")

    assert names.loads == {"x"}
    assert names.stores == {"y"}
    assert not names.deletes
    assert not names.dynamic


def test_tuple_and_chained_assignment_write_every_target():
    names = analyse("a, (b, c) = d = pair")

    assert names.stores == {"a", "b", "c", "d"}
    assert names.loads == {"pair"}


def test_assignment_to_an_item_or_attribute_reads_the_container():
    names = analyse("lst[i] = 1\nobj.attr = v")

    assert names.loads == {"lst", "i", "obj", "v"}
    assert names.stores == set()


def test_augmented_assignment_reads_and_writes_its_target():
    names = analyse("x += 1")

    assert names.loads == {"x"}
    assert names.stores == {"x"}


def test_augmented_assignment_to_an_item_reads_the_container():
    names = analyse("counts[k] += step")

    assert names.loads == {"counts", "k", "step"}


def test_annotated_assignment_and_walrus_write_their_targets():
    names = analyse("x: int = 5\nif (y := g()):\n    pass")

    assert {"x", "y"} <= names.stores
    assert "g" in names.loads


def test_del_of_a_name_is_a_delete():
    names = analyse("del a, b")

    assert names.deletes == {"a", "b"}
    assert names.loads == set()


def test_del_of_an_item_reads_the_container():
    names = analyse("del d['k']")

    assert names.loads == {"d"}
    assert names.deletes == set()


def test_comprehension_reads_its_iterable():
    """Its loop variable is local, but counts too: the analysis over-approximates."""
    names = analyse("squares = [i * i for i in range(n)]")

    assert {"n", "range"} <= names.loads
    assert "squares" in names.stores


def test_function_definition_writes_its_name_and_reads_defaults_and_decorators():
    names = analyse(
        """
        @decorate
        def f(a, b=default):
            return a + x
        """
    )

    assert "f" in names.stores
    assert {"decorate", "default"} <= names.loads


def test_function_body_reads_count_as_reads_of_the_cell():
    """Not read when defined, only when called, but counted: over-approximation is safe."""
    assert "x" in analyse("def f():\n    return x").loads


def test_class_definition_writes_its_name_and_reads_its_bases():
    names = analyse("class Model(Base, metaclass=Meta):\n    scale = factor")

    assert "Model" in names.stores
    assert {"Base", "Meta", "factor"} <= names.loads


def test_async_function_definition_writes_its_name():
    assert "fetch" in analyse("async def fetch():\n    await thing()").stores


def test_imports_write_the_bound_names():
    names = analyse("import numpy as np\nimport os.path\nfrom math import pi, tau as t")

    assert names.stores == {"np", "os", "pi", "t"}


def test_global_statement_in_a_function_reads_and_writes_the_global():
    names = analyse("def bump():\n    global counter\n    counter += 1")

    assert "counter" in names.loads
    assert "counter" in names.stores


def test_loop_with_and_except_targets_are_writes():
    names = analyse("for k in keys:\n    pass\nwith open(p) as fh:\n    pass")

    assert {"k", "fh"} <= names.stores
    assert {"keys", "open", "p"} <= names.loads


@pytest.mark.parametrize(
    "source",
    ["eval('x')", "exec('y = 1')", "g = globals()", "print(locals())", "vars()['x']",
     "m = __import__('os')"],
)  # fmt: skip
def test_code_reaching_the_namespace_by_name_is_dynamic(source):
    assert analyse(source).dynamic


def test_a_method_named_like_a_dynamic_builtin_is_not_dynamic():
    assert not analyse("model.eval()\nparser.exec(q)").dynamic


@pytest.mark.parametrize("source", ["x = (", "def f(:\n    pass", "x = = 1", "\x00"])
def test_syntax_error_gives_no_names(source):
    assert analyse_cell(source) == CellNames()


def test_empty_cell_gives_no_names():
    assert analyse("") == CellNames()


# --- IPython syntax --------------------------------------------------------------------------


def test_time_magic_analyses_its_statement():
    names = analyse("%time x = f()")

    assert "f" in names.loads
    assert names.stores == {"x"}
    assert not names.dynamic


def test_time_magic_with_an_option_analyses_its_statement():
    names = analyse("%time --no-raise-error x = f()")

    assert "f" in names.loads
    assert names.stores == {"x"}


def test_timeit_magic_analyses_its_statement():
    names = analyse("%timeit lst.append(item)")

    assert {"lst", "item"} <= names.loads
    assert not names.dynamic


def test_timeit_magic_with_options_analyses_its_statement():
    names = analyse("%timeit -n 3 -r1 -q lst.append(item)")

    assert {"lst", "item"} <= names.loads


def test_prun_magic_with_options_analyses_its_statement():
    names = analyse("%prun -s cumulative -l 10 result = train(data)")

    assert {"train", "data"} <= names.loads
    assert "result" in names.stores


def test_time_cell_magic_analyses_its_body():
    names = analyse("%%time\nz = x * 2")

    assert "x" in names.loads
    assert "z" in names.stores


def test_timeit_cell_magic_analyses_its_setup_line_and_body():
    names = analyse("%%timeit -n1 buf = make(size)\nbuf.append(item)")

    assert {"make", "size", "buf", "item"} <= names.loads


def test_shell_command_reads_expanded_names_and_expressions():
    names = analyse("!echo $name {expr + offset} {len(items)}")

    assert {"name", "expr", "offset", "items"} <= names.loads
    assert not names.dynamic


def test_shell_output_assignment_writes_its_target():
    names = analyse("files = !ls $folder")

    assert "files" in names.stores
    assert "folder" in names.loads


def test_capture_cell_magic_analyses_its_body():
    names = analyse("%%capture out\ny = x")

    assert "x" in names.loads
    assert "y" in names.stores
    assert not names.dynamic


def test_nested_cell_magics_are_analysed_through_the_transform():
    names = analyse("%%capture out\n%time y = f(x)")

    assert {"f", "x"} <= names.loads
    assert "y" in names.stores


@pytest.mark.parametrize(
    "source",
    ["%matplotlib inline", "%load_ext autoreload", "%pip install numpy", "%%writefile f.py\nx = 1",
     "f?", "%env A=1"],
)  # fmt: skip
def test_magics_known_not_to_touch_the_namespace_are_not_dynamic(source):
    assert not analyse(source).dynamic


@pytest.mark.parametrize(
    "source", ["%run script.py", "%unknownmagic arg", "%%unknown\nx = 1", "%store x"]
)
def test_unknown_magic_is_dynamic(source):
    assert analyse(source).dynamic


def test_other_shell_api_use_is_dynamic():
    assert analyse("get_ipython().push({'x': 1})").dynamic


# --- code_globals ----------------------------------------------------------------------------


def code_of(source: str):
    return compile(textwrap.dedent(source), "<cell>", "exec").co_consts[0]


def test_code_globals_are_the_free_names_a_function_loads():
    code = code_of(
        """
        def f(a):
            b = a + offset
            return np.sum(b) + len(items)
        """
    )

    assert code_globals(code) == {"offset", "np", "len", "items"}


def test_code_globals_include_globals_stored_and_deleted():
    code = code_of(
        """
        def f():
            global made, gone
            made = 1
            del gone
        """
    )

    assert code_globals(code) == {"made", "gone"}


def test_code_globals_include_nested_functions_lambdas_and_comprehensions():
    code = code_of(
        """
        def f():
            def inner():
                return deep
            key = lambda v: weight * v
            return [scale * i for i in data], inner, key
        """
    )

    assert code_globals(code) == {"deep", "weight", "scale", "data"}


def test_code_globals_leave_out_closure_variables_and_locals():
    code = code_of(
        """
        def outer():
            captured = 1
            def inner():
                return captured
            return inner
        """
    )

    assert code_globals(code) == set()


def test_code_globals_include_names_a_class_body_loads():
    code = code_of("class A:\n    size = default_size\n    def m(self):\n        return glob")

    assert {"default_size", "glob"} <= code_globals(code)


def test_code_globals_are_cached():
    code = code_of("def f():\n    return x")

    assert code_globals(code) is code_globals(code)


# --- transitive_reads ------------------------------------------------------------------------


def test_reads_are_followed_through_a_notebook_function():
    ns = notebook("x = 1\ndef f():\n    return x * 10")

    assert transitive_reads({"f"}, ns) == {"f", "x"}


def test_reads_are_followed_through_functions_calling_functions():
    ns = notebook(
        """
        base = 2
        def helper():
            return base
        def f():
            return helper() + 1
        """
    )

    assert transitive_reads({"f"}, ns) == {"f", "helper", "base"}


def test_names_that_are_not_variables_are_dropped():
    ns = notebook("def f():\n    return len(undefined_yet)")

    assert transitive_reads({"f", "print"}, ns) == {"f"}


def test_reads_are_followed_into_closures():
    ns = notebook(
        """
        rate = 0.5
        def scaler():
            return rate
        def make():
            inner = scaler
            def run():
                return inner()
            return run
        job = make()
        """
    )

    assert transitive_reads({"job"}, ns) == {"job", "rate"}


def test_reads_are_followed_into_methods_of_a_notebook_class():
    ns = notebook(
        """
        factor = 3
        limit = 9
        class Model:
            def predict(self):
                return factor
            @property
            def cap(self):
                return limit
            @staticmethod
            def make():
                return Model()
        """
    )

    assert transitive_reads({"Model"}, ns) == {"Model", "factor", "limit"}


def test_reads_are_followed_through_an_instance_to_the_methods_of_its_class_and_bases():
    """The class is reached through the instance, not looked up by name: it is no read."""
    ns = notebook(
        """
        offset = 1
        class Base:
            def shift(self):
                return offset
        class Model(Base):
            pass
        model = Model()
        """
    )

    assert transitive_reads({"model"}, ns) == {"model", "offset"}


def test_reads_are_followed_through_a_bound_method():
    ns = notebook(
        """
        factor = 3
        class Model:
            def predict(self):
                return factor
        predict = Model().predict
        """
    )

    assert transitive_reads({"predict"}, ns) == {"predict", "factor"}


def test_reads_are_followed_through_instances_held_in_a_container():
    ns = notebook(
        """
        factor = 3
        class Model:
            def predict(self):
                return factor
        models = {"a": Model()}
        """
    )

    assert "factor" in transitive_reads({"models"}, ns)


def test_reads_are_followed_through_a_partial():
    ns = notebook("import functools\npower = 2\ndef f(v):\n    return v ** power")
    ns["g"] = functools.partial(ns["f"], 3)

    assert transitive_reads({"g"}, ns) == {"g", "power"}


def test_reads_are_followed_through_lambdas_in_a_dict():
    ns = notebook("k = 2\nops = {'double': lambda v: v * k, 'same': lambda v: v}")

    assert transitive_reads({"ops"}, ns) == {"ops", "k"}


def test_reads_are_not_followed_into_library_functions():
    ns = notebook("import json\nindent = 4\ndumps = json.dumps\nencoder = json.JSONEncoder()")

    assert transitive_reads({"dumps", "encoder", "json"}, ns) == {"dumps", "encoder", "json"}


def test_a_function_calling_eval_may_read_any_variable():
    ns = notebook("x = 1\ny = 2\ndef get(name):\n    return eval(name)")

    assert transitive_reads({"get"}, ns) == {"get", "x", "y"}


def test_a_function_using_globals_may_read_any_variable():
    ns = notebook("x = 1\ndef get(name):\n    return globals()[name]")

    assert transitive_reads({"get"}, ns) == {"get", "x"}


def test_a_function_calling_locals_reads_only_its_globals():
    ns = notebook("x = 1\ny = 2\ndef f():\n    return locals(), x")

    assert transitive_reads({"f"}, ns) == {"f", "x"}


def test_recursive_functions_terminate():
    ns = notebook(
        """
        def even(n):
            return n == 0 or odd(n - 1)
        def odd(n):
            return n != 0 and even(n - 1)
        """
    )

    assert transitive_reads({"even"}, ns) == {"even", "odd"}


class KeyErrorAttributes:
    """A dict-backed attribute object whose ``__getattr__`` raises KeyError, a common slip."""

    def __getattr__(self, name):
        return {}[name]


def test_objects_with_a_raising_getattr_do_not_break_the_analysis():
    ns = {"cfg": KeyErrorAttributes(), "items": [KeyErrorAttributes()]}

    assert transitive_reads({"cfg", "items"}, ns) == {"cfg", "items"}
