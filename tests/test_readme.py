"""README.rst tells the truth: its Python examples run, its tables match the code."""
import pathlib
import re

from batchfetch import ERROR_KINDS, ErrorKind, FetchOptions

README = (pathlib.Path(__file__).parent.parent / "README.rst").read_text()


def python_blocks() -> list[str]:
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", README, re.M):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[4:] for line in lines))
    return blocks


def test_readme_python_examples_run(capsys):
    blocks = python_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.rst", "exec"), {})
    printed = capsys.readouterr().out
    assert "<ResultTable 5 ok, 2 failed>" in printed
    assert "7 fetched: 5 ok, 2 failed, 1 retries" in printed


def test_readme_resume_example_prints_what_its_comments_say(capsys):
    """The "Resuming from Python" example: an interrupted run finished, then its failed
    row fetched again."""
    block = next(block for block in python_blocks() if "resume=" in block)
    exec(compile(block, "README.rst", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["6 1", "7 0"]


def error_kinds_table() -> list[list[str]]:
    """The rows of the table after ``.. ERROR-KINDS``, header first, as docutils reads them."""
    import docutils.core
    import docutils.nodes

    section = README.split(".. ERROR-KINDS", 1)[1].split("Retries, deadlines", 1)[0]
    tree = docutils.core.publish_doctree(section, settings_overrides={"report_level": 5})
    table = next(iter(tree.findall(docutils.nodes.table)))
    return [[entry.astext() for entry in row.findall(docutils.nodes.entry)]
            for row in table.findall(docutils.nodes.row)]


def test_error_kinds_table_lists_exactly_the_kinds():
    documented = [row[0] for row in error_kinds_table()[1:]]
    assert documented == list(ERROR_KINDS)


def test_error_kinds_table_says_what_the_enum_says():
    """Issue 15: the retried and may-have-been-sent columns come from ErrorKind."""
    header, *rows = error_kinds_table()
    assert header == ["error", "retried?", "may have been sent?", "meaning"]
    assert rows == [[kind.value, kind.retried, "yes" if kind.maybe_sent else "no", kind.meaning]
                    for kind in ErrorKind]


def test_every_option_is_in_the_options_table():
    section = README.split(".. OPTIONS-TABLE", 1)[1].split("Output columns", 1)[0]
    for name in FetchOptions.field_names():
        assert f"``{name}" in section, name


def test_readme_is_valid_restructuredtext():
    import docutils.core
    import docutils.utils

    docutils.core.publish_doctree(README, settings_overrides={
        "halt_level": docutils.utils.Reporter.WARNING_LEVEL, "report_level": 5})
