"""``nbtrack run``'s report of a failure, from IPython tracebacks (no kernel needed)."""

import nbformat
import pytest

from nbtrack.cli import main
from nbtrack.runner.notebook import NotebookResult, failing_line

RED, GREEN, RESET = "\x1b[31m", "\x1b[32m", "\x1b[39m"


def test_the_failing_line_of_a_plain_cell():
    traceback = [f"{RED}----------{RESET}", f"{RED}KeyError{RESET}   Traceback",
                 f"Cell {GREEN}In[3]{RESET}{GREEN}, line 2{RESET}",
                 f"{GREEN}      1{RESET} y = 1",
                 f"{GREEN}----> {RESET}{GREEN}2{RESET} raise KeyError('k')", "",
                 f"{RED}KeyError{RESET}: 'k'"]
    assert failing_line(traceback) == "raise KeyError('k')"


def test_the_innermost_cell_frame_wins():
    traceback = ["Cell In[2], line 5\n      4 \n----> 5 f()", "",
                 "Cell In[2], line 4, in f()\n      3 def f():\n----> 4     raise ValueError()",
                 "", "ValueError: boom"]
    assert failing_line(traceback) == "    raise ValueError()"


def test_a_syntax_error_shows_its_line():
    assert failing_line(["  Cell In[4], line 1", "    x = (", "        ^",
                         "SyntaxError: incomplete input"]) == "    x = ("


def test_no_line_when_the_traceback_has_none():
    assert failing_line(["ValueError: boom"]) is None
    assert failing_line(["Cell In[2], line 1",
                         "----> 1 get_ipython().run_cell_magic('track', '', 'x')"]) is None


def test_describe_failure():
    result = NotebookResult("r", "FAILED", 4, "ValueError: boom", 2, "    check(rows)")
    assert result.describe_failure() == \
        "in cell 4 (code cell 2):\n    check(rows)\nValueError: boom"
    assert NotebookResult("r", "FAILED", error="DeadKernelError: died").describe_failure() == \
        "in a cell:\nDeadKernelError: died"


@pytest.mark.parametrize("tags", [[], ["other"]])
def test_parameters_without_a_parameters_cell_are_refused(tmp_path, capsys, tags):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1",
                                                                   metadata={"tags": tags})])
    nbformat.write(nb, tmp_path / "plain.ipynb")
    assert main(["run", str(tmp_path / "plain.ipynb"), "-p", "x=5", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "plain.ipynb has no cell tagged 'parameters'" in err
    assert "or pass --inject-at-top" in err
