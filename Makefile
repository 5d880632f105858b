# The README's two commands: `make sweep` and `make test`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo sweep test lint format bench bench-main-job baselines factors ladder ablation study selection-study clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev,trackers]'
	touch $(STAMP)

setup: $(STAMP)

# A minute's look at the tool (configs/synthcity/demo.yaml): a tiny SynthCity, source-only and the whole
# method with a few dozen steps a stage, then their table and bar chart; every picture is named at
# the end. Each call writes a new folder runs/demo-<time>.
DEMO = runs/demo-$(shell date +%Y%m%d-%H%M%S)
demo: $(STAMP)
	@d=$(DEMO); \
	$(BIN)/symda train --config configs/synthcity/demo.yaml --set translate.enabled=false --set name=demo_source_only \
	  --out $$d/source_only && \
	$(BIN)/symda run --config configs/synthcity/demo.yaml --out $$d/method && \
	$(BIN)/python analysis/ablation_table.py $$d --out $$d/table.md && \
	echo "demo: $$d (table.md, table.png; pictures: $$d/method/pictures.md; curves: tensorboard --host 127.0.0.1 --logdir $$d)"

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
	$(BIN)/python bench/bench_ray_overhead.py

# The main job as a fresh clone runs it, 3 first runs + 3 reruns (about 35 min on 2 cores).
bench-main-job: $(STAMP)
	$(BIN)/python bench/bench_main_job.py --work /tmp/symda_bench_main_job --runs 3

# Source-only, source-only on S' (translated) and oracle on SynthCity over seeds (README table): each
# seed generates its own SynthCity of the preset (PRESET=v1: the benchmark of symda 0.1); finished runs
# are kept and an interrupted one resumes from its checkpoint (--resume), so an interrupted table
# resumes. Runs go to runs/<preset>/, tables to docs/results/<preset>/.
SEEDS ?= 0 1 2
PRESET ?= v2
# v1's published rows were made with the published StarGAN generator (README, Stage 1).
TRANSLATOR_v1 = --set translate.residual=false
SYNTH = --set synth.preset=$(PRESET) --set synth.seed=$$s --set synth.root=data/synthcity-$(PRESET)-s$$s \
  $(TRANSLATOR_$(PRESET))
EXPERIMENTS ?= source_only translated_source oracle
baselines: $(STAMP)
	for s in $(SEEDS); do for e in $(EXPERIMENTS); do \
	  test -f runs/$(PRESET)/baselines/$$e-s$$s/metrics.json || \
	  $(BIN)/symda train --config configs/synthcity/$$e.yaml --set seed=$$s $(SYNTH) \
	    --out runs/$(PRESET)/baselines/$$e-s$$s $$(test -f runs/$(PRESET)/baselines/$$e-s$$s/checkpoint.pt && echo --resume) \
	    || exit 1; done; done
	$(BIN)/python analysis/ablation_table.py runs/$(PRESET)/baselines --out docs/results/$(PRESET)/baselines.md

# SynthCity v2's factor table: the baselines with one gap factor on and the others off (seed 0 by
# default), beside the all-factors baselines; analysis/factor_table.py writes docs/results/v2/factors.md.
FACTORS ?= tone texture illumination sensor layout
FACTOR_SEEDS ?= 0
factors: $(STAMP)
	for f in $(FACTORS); do for s in $(FACTOR_SEEDS); do for e in $(EXPERIMENTS); do \
	  test -f runs/v2/factors/$$f/$$e-s$$s/metrics.json || \
	  $(BIN)/symda train --config configs/synthcity/$$e.yaml --set seed=$$s --set synth.seed=$$s \
	    $$(for g in tone texture illumination sensor layout; do printf -- "--set synth.gap.$$g=%s " $$([ $$g = $$f ] && echo 1 || echo 0); done) \
	    --set synth.root=data/synthcity-v2-$$f-s$$s --out runs/v2/factors/$$f/$$e-s$$s \
	    $$(test -f runs/v2/factors/$$f/$$e-s$$s/checkpoint.pt && echo --resume) || exit 1; done; done; done
	$(BIN)/python analysis/factor_table.py runs/v2/factors runs/v2/baselines --out docs/results/v2/factors.md

# The method's ablation ladder with `symda run` (one config per row; rows share upstream artifacts).
# SET passes overrides to every row, e.g. SET="--set scale.use_gpu=true" on a GPU machine.
ROWS ?= adversarial_only minent_like advent_like translation_adversarial bdl_like symmetric_prob_pseudo full
SET ?=
ladder: $(STAMP)
	for s in $(SEEDS); do for e in $(ROWS); do \
	  test -f runs/$(PRESET)/ladder/$$e-s$$s/metrics.json || \
	  $(BIN)/symda run --config configs/synthcity/$$e.yaml --set seed=$$s $(SYNTH) $(SET) \
	    --out runs/$(PRESET)/ladder/$$e-s$$s || exit 1; done; done
	$(BIN)/python analysis/ablation_table.py runs/$(PRESET)/baselines runs/$(PRESET)/ladder \
	  --out docs/results/$(PRESET)/ablation.md

# The same ladder (baselines + method rows) as one Ray Tune grid into runs/ablation-<preset>/, then its
# table in docs/results/<preset>/ (the README's). Finished cells are kept; ARGS passes flags, e.g.
# ARGS="--seeds 0".
ablation: $(STAMP)
	$(BIN)/python tune/run_ablation.py --set synth.preset=$(PRESET) $(TRANSLATOR_$(PRESET)) $(ARGS)
	$(BIN)/python analysis/ablation_table.py runs/ablation-$(PRESET) --out docs/results/$(PRESET)/ablation.md

# The validator study (configs/study/validators.yaml: 8 variants x 3 seeds of v2, as one Ray Tune grid
# into runs/study/validators/; finished cells are kept), then its table and plots in
# docs/results/validators/ and the numbers the sweep summary quotes (symda/select/study.json).
study: $(STAMP)
	$(BIN)/python tune/validator_study.py $(ARGS)
	$(BIN)/python analysis/validator_study.py runs/study/validators --out docs/results/validators \
	  --package-file symda/select/study.json

# The selection study (configs/study/selection_<kind>.yaml, docs/results/selection/): which validator
# picks among the configurations each sweep compares. First a reference network per seed for
# agreement_ref (adapted without translation, torch seed + 100: it labels nothing), then each kind's
# cells as one Ray Tune grid into runs/study/selection_<kind>/ (finished cells are kept: it resumes),
# their records and points kept in docs/results/selection/cells/selection_<kind>/ (a cell kept there
# is not run again, in this checkout or a later one), then the report over every
# kind recorded there (one kind at a time keeps the others) and the figures the sweep summary quotes
# (symda/select/selection.json).
SELECTION_KINDS ?= threshold adversarial stargan
selection-study: $(STAMP)
	for s in $(SEEDS); do test -f runs/study/reference/untranslated-s$$s/metrics.json || \
	  $(BIN)/symda run --config configs/synthcity/quick.yaml --set seed=$$((s + 100)) --set synth.seed=$$s \
	    --set synth.root=data/synthcity-v2-study-s$$s --set synth.n_val=300 --set data.source_holdout=100 \
	    --set translate.enabled=false --set adapt.symmetric=false --set self_train.enabled=false \
	    --out runs/study/reference/untranslated-s$$s || exit 1; done
	for k in $(SELECTION_KINDS); do $(BIN)/python tune/validator_study.py --study configs/study/selection_$$k.yaml \
	  --out runs/study/selection_$$k --keep docs/results/selection/cells/selection_$$k $(ARGS) || exit 1; done
	$(BIN)/python analysis/selection_study.py docs/results/selection/cells/selection_* \
	  --out docs/results/selection --package-file symda/select/selection.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
