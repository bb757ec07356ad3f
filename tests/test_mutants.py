"""The mutants of tests/mutants.py stay aimed at real code: each wrong line replaces a line that exists
once in the package, and the test meant to kill it exists. (Running the mutants is `python -m tests.mutants`.)"""

import ast

import pytest

from tests.mutants import MUTANTS, SRC


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_each_mutant_replaces_one_existing_line_and_names_an_existing_test(mutant):
    name, path, old, new, test = mutant
    source = (SRC / path).read_text()
    assert source.count(old) == 1, f"{name}: {old!r} occurs {source.count(old)} times in {path}"
    assert old != new
    test_file, test_name = test.split("::")
    tree = ast.parse((SRC / test_file).read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert test_name in names, f"{name}: {test_name} is not a test in {test_file}"


def test_mutant_names_are_unique():
    names = [m[0] for m in MUTANTS]
    assert len(names) == len(set(names))
    assert all((SRC / m[1]).suffix in (".py", ".yaml") for m in MUTANTS), "mutants change code or config"
