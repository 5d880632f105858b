# The README's two commands: `make sweep` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup sweep test lint format bench baselines ladder ablation clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The main job: the pseudo-label threshold sweep on SynthCity (generated on first use), Ray Tune +
# Optuna on a local cluster whose dashboard is http://127.0.0.1:8265. ARGS passes flags, e.g.
# `make sweep ARGS=--resume`.
sweep: $(STAMP)
	$(BIN)/python tune/sweep_threshold.py $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_models.py
	$(BIN)/python bench/bench_synthcity.py

# Source-only, source-only on S' (translated) and oracle on SynthCity over seeds (README table): each
# seed generates its own SynthCity; finished runs are kept, so an interrupted table resumes.
SEEDS ?= 0 1 2
EXPERIMENTS ?= source_only translated_source oracle
baselines: $(STAMP)
	for s in $(SEEDS); do for e in $(EXPERIMENTS); do \
	  test -f runs/baselines/$$e-s$$s/metrics.json || \
	  $(BIN)/symda train --config configs/synthcity/$$e.yaml --set seed=$$s --set synth.seed=$$s \
	    --set synth.root=data/synthcity-s$$s --out runs/baselines/$$e-s$$s || exit 1; done; done
	$(BIN)/python analysis/ablation_table.py runs/baselines --out docs/results/baselines.md

# The method's ablation ladder with `symda run` (one config per row; rows share upstream artifacts).
ROWS ?= adversarial_only translation_adversarial bdl_like symmetric_prob_pseudo full
ladder: $(STAMP)
	for s in $(SEEDS); do for e in $(ROWS); do \
	  test -f runs/ladder/$$e-s$$s/result.json || \
	  $(BIN)/symda run --config configs/synthcity/$$e.yaml --set seed=$$s --set synth.seed=$$s \
	    --set synth.root=data/synthcity-s$$s --out runs/ladder/$$e-s$$s || exit 1; done; done
	$(BIN)/python analysis/ablation_table.py runs/baselines runs/ladder --out docs/results/ablation.md

# The same ladder (baselines + method rows) as one Ray Tune grid into runs/ablation/, then its table in
# docs/results/ (the README's). Finished cells are kept; ARGS passes flags, e.g. ARGS="--seeds 0".
ablation: $(STAMP)
	$(BIN)/python tune/run_ablation.py $(ARGS)
	$(BIN)/python analysis/ablation_table.py runs/ablation --out docs/results/ablation.md

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
