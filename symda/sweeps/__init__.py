"""The Ray Tune side: sweep driver, search spaces, the trial function, summaries and ablation grids.

    space.py     loading and checking a space file; Optuna define-by-run sampling
    trial.py     run_trial, the Tune trainable: base config + sampled values -> run_experiment
    driver.py    flags, resources, the Ray connection, the Tuner (TPE + ASHA), --resume
    summary.py   the end of a sweep: trials table, rank correlations, best config
    ablation.py  the ablation ladder (rows x seeds) as one Ray Tune grid

Nothing here is imported by the stages or by symda.results; Ray is imported inside functions only.
"""
