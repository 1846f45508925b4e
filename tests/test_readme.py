"""The README's 'wrap your own environment' example runs as printed (with fewer steps)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_wrap_your_own_env_example_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text.split("## Wrap your own environment", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "30_000" in code and "total_labels=200" in code
    code = code.replace("30_000", "3_000").replace("total_labels=200", "total_labels=20")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["feedback"].labels_asked == 20
    assert (tmp_path / "reward_model.pt").is_file()


def test_readme_numbers_match_the_committed_summaries():
    """Every benchmark figure the README quotes sits in a block rendered from benchmarks/results/*."""
    import sys

    sys.path.insert(0, str(README.parent))
    from benchmarks import readme_tables

    text = README.read_text()
    assert readme_tables.render(text) == text, "run: python benchmarks/readme_tables.py"
    for name in readme_tables.BLOCKS:
        assert f"<!-- results:{name} -->" in text
