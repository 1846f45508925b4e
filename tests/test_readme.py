"""The README: its 'wrap your own environment' example runs as printed (with fewer steps), and the figures it quotes
come from the committed results."""

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


def test_per_seed_returns_quoted_in_the_prose_are_committed_runs():
    """The MuJoCo results' prose quotes per-seed true returns as 'a / b / c'; each such run of three or more whole
    numbers must be final returns of committed run records (benchmarks/results/**.json) of one env, to the unit."""
    import json

    returns: dict[str, set[int]] = {}
    for path in (README.parent / "benchmarks" / "results").rglob("*.json"):
        record = json.loads(path.read_text())
        metrics = record.get("metrics") if isinstance(record, dict) else None
        if isinstance(metrics, dict) and isinstance(metrics.get("true_return"), (int, float)):
            returns.setdefault(metrics["env"], set()).add(round(metrics["true_return"]))
    assert len(returns) >= 4, f"found run records of {sorted(returns)} only"
    mujoco = README.read_text().split("## Results", 1)[1].split("### Language models", 1)[0]
    quoted = re.findall(r"(?<![\d.])-?\d+(?:\s/\s-?\d+){2,}(?![\d.])", mujoco)  # a run may wrap a line
    assert len(quoted) > 50  # the check reads what it should

    def committed(numbers: list[int]) -> bool:  # a mean rounded the other way counts: 1 either side
        return any(all({n - 1, n, n + 1} & seen for n in numbers) for seen in returns.values())

    unmatched = [q for q in quoted if not committed([int(x) for x in re.split(r"\s/\s", q)])]
    assert not unmatched, f"per-seed returns in README.md that no env's committed runs ended with: {unmatched}"
